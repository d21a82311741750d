"""Slack OAuth tokens encrypted at rest in the installation store.

Multi-workspace Slack keeps every workspace's bot token in the `slack_installations` and
`slack_bots` tables; anyone with a copy of the database (a backup, a world-readable file)
could post as the bot everywhere. So the tokens are stored as Fernet tokens
(AES-128-CBC + HMAC-SHA256, from `cryptography`) under `MOODGIF_SECRET_KEY`, which lives
only in the environment; `moodgif config secret-key` prints a new key.

A value without our prefix is a token stored before encryption: it is still read, and
`seal_existing()` (run when the tables are created at startup) encrypts such rows in place.
A key that does not open the stored tokens is a clear error, never a silent failure.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import Text, delete, select, update

log = logging.getLogger(__name__)

PREFIX = "enc1:"
INSTALLATION_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
BOT_FIELDS = ("bot_token", "bot_refresh_token")


class TokenKeyError(RuntimeError):
    """MOODGIF_SECRET_KEY is missing, malformed, or not the key the tokens were sealed with."""


def new_key() -> str:
    return Fernet.generate_key().decode()


class TokenCipher:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.strip().encode())
        except (ValueError, TypeError):
            raise TokenKeyError("MOODGIF_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                                "`moodgif config secret-key` prints a new one") from None

    def seal(self, value: str | None) -> str | None:
        if not value or value.startswith(PREFIX):
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str | None) -> str | None:
        if not value or not value.startswith(PREFIX):
            return value  # empty, or stored before encryption (sealed at the next start)
        try:
            return self._fernet.decrypt(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise TokenKeyError("the Slack tokens in the database were encrypted with another "
                                "MOODGIF_SECRET_KEY: set the key they were stored with") from None


class EncryptedInstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy store, with every token sealed before it is written."""

    def __init__(self, cipher: TokenCipher, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cipher = cipher
        # Sealed tokens are longer than the 200 characters slack_sdk's columns allow
        # (PostgreSQL enforces it); tables created from here on use TEXT.
        for table, fields in ((self.installations, INSTALLATION_FIELDS), (self.bots, BOT_FIELDS)):
            for name in fields:
                table.c[name].type = Text()

    def _sealed(self, obj: Any, fields: tuple[str, ...]) -> Any:
        out = copy.copy(obj)
        for name in fields:
            if hasattr(out, name):
                setattr(out, name, self.cipher.seal(getattr(out, name)))
        return out

    def _opened(self, obj: Any, fields: tuple[str, ...]) -> Any:
        if obj is None:
            return None
        for name in fields:
            if hasattr(obj, name):
                setattr(obj, name, self.cipher.open(getattr(obj, name)))
        return obj

    async def async_save(self, installation: Any) -> None:  # type: ignore[override]
        await super().async_save(self._sealed(installation, INSTALLATION_FIELDS))

    async def async_save_bot(self, bot: Any) -> None:  # type: ignore[override]
        await super().async_save_bot(self._sealed(bot, BOT_FIELDS))

    async def async_find_bot(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._opened(await super().async_find_bot(**kwargs), BOT_FIELDS)

    async def async_find_installation(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._opened(await super().async_find_installation(**kwargs), INSTALLATION_FIELDS)

    async def seal_existing(self) -> int:
        """Encrypt tokens stored in plain text (before this version); returns how many rows."""
        changed = 0
        async with self.engine.begin() as conn:
            for table, fields in ((self.installations, INSTALLATION_FIELDS), (self.bots, BOT_FIELDS)):
                cols = [table.c[name] for name in fields]
                for row in (await conn.execute(select(table.c.id, *cols))).all():
                    values = {name: self.cipher.seal(getattr(row, name)) for name in fields
                              if getattr(row, name) and not getattr(row, name).startswith(PREFIX)}
                    if values:
                        await conn.execute(update(table).where(table.c.id == row.id).values(**values))
                        changed += 1
        if changed:
            log.info("Slack: encrypted the tokens of %d stored installation rows", changed)
        return changed


class PurgingOAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's OAuth state store, which never deletes a state nobody came back with:
    every anonymous `GET /slack/install` left a row forever. Expired states are deleted each
    time a new one is issued, so the table holds at most `expiration_seconds` of visits."""

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        now = normalize_datetime_for_db(dt.datetime.now(tz=dt.UTC))
        async with self.engine.begin() as conn:
            await conn.execute(delete(self.oauth_states).where(self.oauth_states.c.expire_at <= now))
        return await super().async_issue(*args, **kwargs)


__all__ = ["EncryptedInstallationStore", "PurgingOAuthStateStore", "TokenCipher", "TokenKeyError",
           "new_key"]

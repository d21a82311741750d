"""The user-hash salt: kept outside the database.

Every `who` in the ledger is sha256(salt, platform, user id). With the salt next to the
hashes (it used to be a row of the `meta` table, so in every backup and every copy of the
database) anyone holding a copy could re-identify voters from a guessed list of user ids.
So the salt lives in `MOODGIF_USER_HASH_SALT` (an environment secret) or in the file
`$MOODGIF_HOME/user_hash_salt` (mode 0600, created on first use), never in the database.

Migration: a database that still has the old `meta` row gets it moved to the file on
first start (old hashes keep matching) and the row is deleted. The database keeps only a
fingerprint (`user_hash_salt_check`, a hash that reveals nothing about the salt), so a
second host sharing the database without the same salt is stopped with a clear error
instead of silently hashing the same people differently.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from scorer.settings import Settings
from scorer.store import Meta, session_scope

LEGACY_KEY = "user_hash_salt"
CHECK_KEY = "user_hash_salt_check"
FILE_NAME = "user_hash_salt"


class SaltError(RuntimeError):
    """The salt this process has does not match the one the ledger was hashed with."""


def salt_file(settings: Settings) -> Path:
    return Path(settings.home) / FILE_NAME


def fingerprint(salt: str) -> str:
    return hashlib.sha256(b"moodgif user-hash salt check\x00" + salt.encode()).hexdigest()


def _read(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def _create(path: Path, value: str) -> str:
    """Write the salt file once (O_EXCL, 0600); if another process won, use its value."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = _read(path)
        if existing is None:
            raise SaltError(f"{path} exists but is empty: remove it or restore it") from None
        return existing
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return value


def _missing(path: Path) -> str:
    return (f"the ledger's votes were hashed with a salt this host does not have ({path} is "
            "missing): copy that file from the host that made it, or set "
            "MOODGIF_USER_HASH_SALT to the same secret on every host")


def _wrong(path: Path) -> str:
    return (f"{path} is not the salt the ledger was hashed with: restore the right file or set "
            "MOODGIF_USER_HASH_SALT to the secret the other hosts use")


def _ledger_marks(engine: Engine) -> tuple[str | None, str | None]:
    """(the ledger's salt fingerprint, a legacy salt still in the database), either None."""
    with session_scope(engine) as s:
        check, legacy = s.get(Meta, CHECK_KEY), s.get(Meta, LEGACY_KEY)
        return (check.value if check else None), (legacy.value if legacy else None)


def salt_problem(engine: Engine, settings: Settings) -> str:
    """Why `load_salt` would refuse this host, without writing anything ("" when it would
    not): `moodgif restore` says it at once, since a backup never carries the salt."""
    if settings.chat.user_hash_salt:
        return ""
    check_value, legacy_value = _ledger_marks(engine)
    path = salt_file(settings)
    salt = _read(path) or legacy_value
    if check_value is None:
        return ""
    if salt is None:
        return _missing(path)
    return "" if fingerprint(salt) == check_value else _wrong(path)


def load_salt(engine: Engine, settings: Settings) -> str:
    """The salt for `user_hash`; see the module doc. Raises SaltError on a mismatch."""
    if settings.chat.user_hash_salt:  # an explicit secret (several hosts, simulations) wins
        return settings.chat.user_hash_salt
    path = salt_file(settings)
    check_value, legacy_value = _ledger_marks(engine)
    salt = _read(path)
    if salt is None and legacy_value is not None:
        salt = _create(path, legacy_value)  # migrate: the old hashes keep matching
    if salt is None:
        if check_value is not None:
            raise SaltError(_missing(path))
        salt = _create(path, secrets.token_hex(32))
    mine = fingerprint(salt)
    if check_value is None:
        with contextlib.suppress(IntegrityError), session_scope(engine) as s:
            s.add(Meta(key=CHECK_KEY, value=mine))
        with session_scope(engine) as s:
            check_value = s.get(Meta, CHECK_KEY).value  # type: ignore[union-attr]
    if check_value != mine:
        raise SaltError(_wrong(path))
    if legacy_value is not None:
        with session_scope(engine) as s:  # moved out: no copy of the database carries it now
            row = s.get(Meta, LEGACY_KEY)
            if row is not None and row.value == salt:
                s.delete(row)
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    return salt


def start_new_salt(engine: Engine, settings: Settings) -> None:
    """The salt is lost for good (a host gone with its home, no copy): forget the ledger's
    fingerprint, and a wrong salt file, so the next start makes a new salt. The votes stay
    and count; only who cast them is no longer recognised, so a returning person's votes
    count as a new person's."""
    with session_scope(engine) as s:
        row = s.get(Meta, CHECK_KEY)
        if row is not None:
            s.delete(row)
    path = salt_file(settings)
    if _read(path) is not None:
        path.rename(path.with_name(path.name + ".replaced"))  # kept, in case it was the right one


__all__ = ["SaltError", "fingerprint", "load_salt", "salt_file", "salt_problem", "start_new_salt"]

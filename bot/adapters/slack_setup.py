"""Is Slack on, and how; and does Slack accept the bot token?

Both are told in words an admin can act on: one log line at startup and the `slack`
component of `/readyz` (bot.health). Before, a half-configured Slack (a signing secret alone,
an app token without Socket Mode) was off without a word, and a bot token Slack refused left
every `/gif` unanswered: the HTTP path acks a slash command before bolt runs it, so bolt's
own "please reinstall" reply went nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.health import get_health
from scorer.settings import SlackSettings

log = logging.getLogger("bot.adapters.slack")

Mode = Literal["off", "http", "oauth", "socket"]


@dataclass(frozen=True)
class SlackSetup:
    mode: Mode
    detail: str  # on: how it runs; off: why ("" when nothing Slack is set at all)

    @property
    def on(self) -> bool:
        return self.mode != "off"

    @property
    def broken(self) -> bool:
        """Something was set for Slack, yet not enough to turn it on."""
        return self.mode == "off" and bool(self.detail)


def _not_set(names: list[str], needs: str) -> str:
    if len(names) == 1:
        return f"{names[0]} is not set ({needs} needs it)"
    return f"{' and '.join(names)} are not set ({needs} needs them)"


def slack_setup(slack: SlackSettings, *, socket_mode: bool | None = None) -> SlackSetup:
    """What these credentials turn on; `socket_mode` overrides `slack.socket_mode`."""
    socket = slack.socket_mode if socket_mode is None else socket_mode
    return _socket_setup(slack) if socket else _http_setup(slack)


def _socket_setup(slack: SlackSettings) -> SlackSetup:
    missing = [name for name, value in (("SLACK_APP_TOKEN", slack.app_token),
                                        ("SLACK_BOT_TOKEN", slack.bot_token)) if not value]
    if missing:
        return SlackSetup("off", _not_set(missing, "Socket Mode (MOODGIF_SLACK_SOCKET_MODE=true)"))
    unused = ("; SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are not used: installing in several "
              "workspaces needs HTTP mode") if slack.client_id or slack.client_secret else ""
    return SlackSetup("socket", f"one workspace, SLACK_APP_TOKEN and SLACK_BOT_TOKEN{unused}")


def _http_setup(slack: SlackSettings) -> SlackSetup:
    oauth = bool(slack.client_id and slack.client_secret)
    if not (slack.bot_token or slack.signing_secret or slack.client_id or slack.client_secret):
        if slack.app_token:
            return SlackSetup("off", "SLACK_APP_TOKEN is set, but MOODGIF_SLACK_SOCKET_MODE is not "
                                     "true (Socket Mode needs it, and SLACK_BOT_TOKEN)")
        return SlackSetup("off", "")
    missing = [] if slack.signing_secret else ["SLACK_SIGNING_SECRET"]
    if not (slack.bot_token or oauth):
        if slack.client_id or slack.client_secret:
            half = "SLACK_CLIENT_SECRET" if slack.client_id else "SLACK_CLIENT_ID"
            missing.append(f"{half} (or SLACK_BOT_TOKEN for one workspace)")
        else:
            missing.append("SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for "
                           "several workspaces)")
    if missing:
        # An app token is Socket Mode's credential: the likelier fix is the mode, not HTTP's secret.
        hint = ("; SLACK_APP_TOKEN is set, so perhaps MOODGIF_SLACK_SOCKET_MODE=true was meant"
                if slack.app_token else "")
        return SlackSetup("off", _not_set(missing, "HTTP mode") + hint)
    unused = "; SLACK_APP_TOKEN is unused (MOODGIF_SLACK_SOCKET_MODE is off)" if slack.app_token else ""
    if not oauth:
        if slack.client_id or slack.client_secret:  # half of OAuth: say it is not what runs
            half = "SLACK_CLIENT_ID" if slack.client_id else "SLACK_CLIENT_SECRET"
            other = "SLACK_CLIENT_SECRET" if slack.client_id else "SLACK_CLIENT_ID"
            unused += f"; {half} is unused ({other} is not set, so no OAuth installs)"
        return SlackSetup("http", f"one workspace, SLACK_BOT_TOKEN{unused}")
    if not slack.secret_key:
        return SlackSetup("off", "multi-workspace OAuth needs MOODGIF_SECRET_KEY (`moodgif config "
                                 "secret-key` prints one): it encrypts the workspaces' bot tokens "
                                 "in the database")
    unused += "; SLACK_BOT_TOKEN is unused (OAuth)" if slack.bot_token else ""
    return SlackSetup("oauth", f"several workspaces, OAuth installs{unused}")


_SECRETS = (("SLACK_BOT_TOKEN", "bot_token"), ("SLACK_SIGNING_SECRET", "signing_secret"),
            ("SLACK_APP_TOKEN", "app_token"), ("SLACK_CLIENT_ID", "client_id"),
            ("SLACK_CLIENT_SECRET", "client_secret"))


def padded_secrets(slack: SlackSettings) -> list[str]:
    """The Slack credentials with a space or line break at either end (pasted along with the
    value): Slack refuses every one of them, and a padded signing secret turns each request
    into a 401 that is logged at INFO only."""
    return [name for name, field in _SECRETS
            if (value := getattr(slack, field)) and value != value.strip()]


# ---------------------------------------------------------------------------------------
# does Slack accept the bot token?

# auth.test errors that mean "this token will never work"; anything else (a rate limit, an
# outage) is asked again at the next request.
REFUSED = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                     "token_expired"})
MISCONFIGURED = (":warning: moodgif is misconfigured: Slack refused its bot token, so it "
                 "cannot answer. Please tell your Slack admin.")
_NO_AUTH = frozenset({"url_verification", "ssl_check"})  # bolt answers these without a token


class TokenCheck:
    """Slack's answer to the one bot token (auth.test), asked in the background at startup
    and again, at most every `RETRY_AFTER_S`, while Slack has not answered; remembered once it
    has, as a token does not change while the process runs. No request ever waits on it: a
    Slack that does not answer must not hold up clicks, which Slack wants answered in 3 s.

    A refused token is told once: an ERROR line, the `slack` component of `/readyz`, and then
    an ephemeral "tell your admin" note to each user who asks (through the request's
    response_url) instead of bolt's authorization, whose reply the ack-first path loses.
    """

    RETRY_AFTER_S = 30.0
    TIMEOUT_S = 10.0

    def __init__(self) -> None:
        self.ok = False
        self.refused = ""  # why, once Slack refused the token
        self._task: asyncio.Task[None] | None = None
        self._failed_at = float("-inf")

    async def check(self, client: AsyncWebClient) -> None:
        """One attempt (the background task's)."""
        if self.ok or self.refused:
            return
        try:
            await asyncio.wait_for(client.auth_test(), self.TIMEOUT_S)
        except SlackApiError as exc:
            error = str(exc.response.get("error") if exc.response is not None else "") or "error"
            if error not in REFUSED:
                self._unanswered(f"auth.test: {error}")
                return
            self.refused = (f"the bot token was refused by Slack ({error}): reinstall the app "
                            "or fix SLACK_BOT_TOKEN")
            log.error("Slack: %s; until then each user who asks is told to tell the admin",
                      self.refused)
            get_health().set_component("slack", False, self.refused)
            return
        except Exception as exc:  # Slack unreachable or slow: not the token's fault
            self._unanswered(type(exc).__name__)
            return
        self.ok = True

    def _unanswered(self, why: str) -> None:
        self._failed_at = asyncio.get_running_loop().time()
        log.warning("Slack: could not check the bot token (%s); asking again in %.0f s at the "
                    "next request", why, self.RETRY_AFTER_S)

    def start(self, client: AsyncWebClient) -> None:
        """Ask in the background, unless Slack answered, an attempt is under way or one
        failed moments ago."""
        if self.ok or self.refused or (self._task is not None and not self._task.done()):
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._failed_at < self.RETRY_AFTER_S:
            return
        self._task = loop.create_task(self.check(client), name="slack-token-check")

    async def stop(self, *_: Any) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def middleware(self) -> Callable[..., Awaitable[BoltResponse]]:
        """bolt's `before_authorize`: a refused token answers here, before bolt's authorization."""
        async def check_bot_token(context: Any, body: dict[str, Any],
                                  next_: Callable[[], Awaitable[BoltResponse]]) -> BoltResponse:
            if isinstance(body, dict) and body.get("type") in _NO_AUTH:
                return await next_()
            if not self.refused:
                if not self.ok:
                    self.start(context.client)
                return await next_()
            if context.response_url:
                with contextlib.suppress(Exception):  # the log and /readyz already tell the admin
                    await context.respond(response_type="ephemeral", replace_original=False,
                                          text=MISCONFIGURED)
            return BoltResponse(status=200, body="")

        return check_bot_token

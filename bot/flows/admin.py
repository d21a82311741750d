"""Admin commands as typed values, and what each one does.

Discord's slash commands and the web form already have typed options: they build a command
object directly (`AddPool("cats", "giphy:cats")`; `hide_command` for a GIF named by one word) and
call `BotCore.run_admin`. Only Slack's
`/gif-admin` is a line of text: `parse_admin` turns its words into the same objects, so the
words are parsed in one place and no adapter rebuilds a string for the core to re-parse.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot import session as sess
from bot.events import Actor, Reply
from bot.flows import hiding
from bot.flows.context import CoreContext
from bot.flows.hiding import HideGif, ListHidden, UnhideGif
from bot.flows.jobs import POOL_ADD, RETRAIN, JobQueue
from bot.flows.reports import Reports
from bot.learned_phrases import MIN_PEOPLE, memory_since, phrase_key, workspace_phrases
from scorer.settings import RATINGS

ADMIN_HELP = """Admin commands:
pools list | pools add NAME FOLDER|MANIFEST|URL-LIST|giphy:WORDS|giphy:trending|giphy:id:ID,...
rating g|pg|pg-13|r [channel]   (workspace-wide unless "channel")
channel show | channel pools NAME[,NAME]|all | channel watch on|off | channel strict on|off
channel preview 1|3 | channel cooldown SECONDS | channel rating CEILING | channel phrases on|off
channel KEY reset
phrases | phrases forget WORDS   (what this workspace's Sends have taught moodgif; forget some words)
hide [last|SHA] | unhide SHA|all | hidden   (a GIF never offered in this workspace again)
retrain   (refit from the votes, retrain, rescore; activates only if not worse)
stats"""

POOLS_USAGE = "Usage: pools list | pools add NAME FOLDER|MANIFEST|URL-LIST|giphy:WORDS"
CHANNEL_USAGE = ("Usage: channel show | channel pools NAME[,NAME] | channel watch on|off | "
                 "channel strict on|off | channel preview 1|3 | channel cooldown SECONDS | channel rating CEILING | "
                 "channel phrases on|off | channel KEY reset")
# the words an admin may type for a scoped setting -> its key in bot.scoped_settings.KEYS
# A channel setting as the admin types it (`channel cooldown 30`) -> its stored key.
_SETTING_NAMES = {"pools": "pools", "watch": "watch", "strict": "watch_strict",
                  "preview": "preview_count", "cooldown": "cooldown_s", "rating": "rating_ceiling",
                  "phrases": "learn_phrases"}
# What `channel KEY` accepts: the typed name, the stored key, and "pool".
CHANNEL_KEYS = {**{key: key for key in _SETTING_NAMES.values()}, "pool": "pools", **_SETTING_NAMES}


@dataclass(frozen=True)
class ListPools:
    pass


@dataclass(frozen=True)
class AddPool:
    name: str
    source: str  # FOLDER | MANIFEST | URL-LIST | giphy:... (checked by scorer.admin_sources)


@dataclass(frozen=True)
class SetRating:
    ceiling: str
    channel_only: bool = False  # else workspace-wide


@dataclass(frozen=True)
class ShowChannel:
    pass


@dataclass(frozen=True)
class SetChannel:
    key: str  # a key of bot.scoped_settings.KEYS (or an alias in CHANNEL_KEYS)
    value: str | None  # None: back to the workspace's value or the default


@dataclass(frozen=True)
class ListPhrases:
    pass


@dataclass(frozen=True)
class ForgetPhrase:
    words: str  # as typed; matched as bot.learned_phrases.phrase_key matches requests


@dataclass(frozen=True)
class Retrain:
    pass


@dataclass(frozen=True)
class Stats:
    pass


@dataclass(frozen=True)
class Help:
    usage: str = ""  # a usage line for a malformed command; empty: the full help


AdminCommand = (ListPools | AddPool | SetRating | ShowChannel | SetChannel | ListPhrases | ForgetPhrase
                | HideGif | UnhideGif | ListHidden | Retrain | Stats | Help)
PHRASES_USAGE = "Usage: phrases | phrases forget WORDS"
HIDE_USAGE = "Usage: hide [last|SHA] | unhide SHA|all | hidden   (SHA: 8 or more hex digits of the GIF's SHA-256)"
_SHA_PREFIX = re.compile(r"[0-9a-f]{8,64}")


def parse_admin(command: str, args: list[str] | tuple[str, ...] = ()) -> AdminCommand:
    """Slack's `/gif-admin` words (and the old string API) as a typed command."""
    command = (command or "help").strip().lower()
    args = [a for a in (args or []) if a]
    if command in {"pools", "pool"}:
        sub = args[0].lower() if args else "list"
        if sub == "list":
            return ListPools()
        if sub == "add" and len(args) >= 3:
            return AddPool(args[1], " ".join(args[2:]))
        return Help(POOLS_USAGE)
    if command in {"rating", "ceiling"}:
        if not args:
            return Help(f"Usage: rating {'|'.join(RATINGS)} [channel]")
        return SetRating(args[0], len(args) > 1 and args[1].lower() in {"channel", "here"})
    if command == "channel":
        if not args or args[0].lower() == "show":
            return ShowChannel()
        if args[0].lower() not in CHANNEL_KEYS or len(args) < 2:
            return Help(CHANNEL_USAGE)
        reset = args[1].lower() in {"reset", "default"}
        return SetChannel(args[0], None if reset else " ".join(args[1:]))
    if command in {"phrases", "phrase", "words"}:
        if not args:
            return ListPhrases()
        if args[0].lower() == "forget" and len(args) > 1:
            return ForgetPhrase(" ".join(args[1:]))
        return Help(PHRASES_USAGE)
    if command in {"hide", "unhide", "hidden"}:
        return hide_command(command, args[0] if args else "")
    return {"retrain": Retrain(), "stats": Stats()}.get(command, Help())


def hide_command(command: str, gif: str) -> AdminCommand:
    """`hide`, `unhide` or `hidden` with the one word an admin typed (Slack's words and
    Discord's `gif` option alike): which GIF, checked here once."""
    gif = gif.strip().lower()
    if command == "hidden" or gif == "list":
        return ListHidden()
    if command == "hide" and (not gif or gif == "last"):
        return HideGif("last")
    if _SHA_PREFIX.fullmatch(gif) or (command == "unhide" and gif == "all"):
        return HideGif(gif) if command == "hide" else UnhideGif(gif)
    return Help(HIDE_USAGE)


def _unknown_pools(db: Session, value: str, viewer: str) -> str:
    """Why a channel's pool list is refused ("" when every name is a pool this workspace
    sees): a typo would otherwise take all of the channel's GIFs away without a word, and
    another workspace's pool is refused as if there were none by that name."""
    from scorer.pool import list_pools

    known = [row["name"] for row in list_pools(db, viewer)]
    unknown = [n for n in sess.parse("pools", value) if n not in known]
    if not unknown:
        return ""
    return (f"No pool named {', '.join(unknown)} here; the pools are {', '.join(known) or 'none yet'} "
            "(`pools list`). Nothing was changed.")


class AdminFlow:
    """Runs typed admin commands; the caller has checked `actor.is_admin`."""

    def __init__(self, ctx: CoreContext, jobs: JobQueue, reports: Reports) -> None:
        self.ctx = ctx
        self.jobs = jobs
        self.reports = reports

    async def run(self, actor: Actor, cmd: AdminCommand) -> Reply:
        try:
            if isinstance(cmd, AddPool):
                return await self._add_pool(actor, cmd)
            if isinstance(cmd, Retrain):
                job = await self.jobs.enqueue(RETRAIN, {}, "retrain", once=True)
                if job.joined:
                    return Reply(kind="ack", text=(
                        f"A retrain is already waiting to run (job {job.id}): it will learn from "
                        f"every vote up to when it starts. {_where_jobs_show(actor)}"))
                return Reply(kind="ack", text=(f"Retraining now (job {job.id}, in the worker). "
                                               f"{_where_jobs_show(actor)}"))
            if isinstance(cmd, Help):
                return Reply(kind="error" if cmd.usage else "help", text=cmd.usage or ADMIN_HELP)
            return await self.ctx.for_user(self._run_db, actor, cmd)
        except sess.ScopedSettingError as exc:
            return Reply(kind="error", text=f"{_typed_keys(str(exc))}. Nothing was changed.")

    def _run_db(self, db: Session, actor: Actor, cmd: AdminCommand) -> Reply:
        """The commands that read or write the database only (one transaction)."""
        if isinstance(cmd, ListPools):
            return Reply(kind="ack", text=self.reports.pools_text(db, actor.pool_owner))
        if isinstance(cmd, Stats):
            return Reply(kind="ack", text=self.reports.stats_text(db, actor))
        if isinstance(cmd, SetRating):
            value = sess.set_scoped(db, actor.platform, actor.workspace,
                                    actor.channel if cmd.channel_only else "", "rating_ceiling",
                                    cmd.ceiling)
            where = "channel" if cmd.channel_only else "workspace"
            return Reply(kind="ack", text=f"Rating ceiling for this {where} is now {value}."
                         + ("" if cmd.channel_only else _own_ceilings(db, actor)))
        if isinstance(cmd, ShowChannel):
            return Reply(kind="ack", text="This channel:\n" + "\n".join(
                _setting_line(k, v) for k, v in self.ctx.scoped(db, actor).model_dump().items()))
        if isinstance(cmd, ListPhrases):
            return Reply(kind="ack", text=self._phrases_text(db, actor))
        if isinstance(cmd, ForgetPhrase):
            key = phrase_key(cmd.words)
            n = sess.forget_phrase(db, actor.platform, actor.workspace, key)
            if not n:
                return Reply(kind="ack", text=f"Nothing was learned for “{key[:80]}” here.")
            return Reply(kind="ack", text=f"Forgot “{key[:80]}”: its {n} previews teach nothing now.")
        if isinstance(cmd, HideGif | UnhideGif | ListHidden):
            return Reply(kind="ack", text=hiding.answer(self.ctx, db, actor, cmd))
        if isinstance(cmd, SetChannel):
            key = CHANNEL_KEYS.get(cmd.key.lower(), cmd.key)
            if key == "pools" and cmd.value is not None and (
                    refused := _unknown_pools(db, cmd.value, actor.pool_owner)):
                return Reply(kind="error", text=refused)
            value = sess.set_scoped(db, actor.platform, actor.workspace, actor.channel, key,
                                    cmd.value)
            if value is None:  # reset: what the channel has now is the workspace's (or global) value
                now = _shown(sess.get_scoped(db, self.ctx.settings, actor.platform, actor.workspace,
                                             actor.channel, key)) or "every pool"
                return Reply(kind="ack", text=f"{typed_key(key)} for this channel now follows the "
                                              f"workspace's setting: {now}.")
            return Reply(kind="ack", text=f"{typed_key(key)} for this channel is now "
                                          f"{_shown(value) or 'every pool'}.")
        raise TypeError(f"not an admin command: {cmd!r}")

    def _phrases_text(self, db: Session, actor: Actor) -> str:
        days = self.ctx.settings.chat.phrase_memory_days
        since = memory_since(self.ctx.settings, self.ctx.now())
        if since is None:
            return "Learning a workspace's words is off (MOODGIF_PHRASE_MEMORY_DAYS=0)."
        phrases = [p for p in workspace_phrases(sess.phrase_sends(db, actor.platform, actor.workspace, since))
                   if self.ctx.teaches(p.key)]
        if not phrases:
            return (f"No words read the workspace's way yet: {MIN_PEOPLE} people must send the same "
                    f"words as the same feeling (last {days:g} days).")
        lines = [f"“{p.key[:60]}” → {p.learned.emotion} ({p.learned.people} of {p.learned.senders} people)"
                 for p in phrases]
        return (f"Words read the way people here sent them (last {days:g} days; "
                "`phrases forget WORDS` to unlearn):\n" + "\n".join(lines))

    async def _add_pool(self, actor: Actor, cmd: AddPool) -> Reply:
        from scorer.admin_sources import SourceNotAllowed, check_admin_source
        from scorer.giphy import GiphyKeyError, check_key
        from scorer.giphy_import import is_giphy_source

        # A chat or web admin is not the machine's operator: URLs, giphy: or the operator's
        # allowed folders only, refused with one message whether or not a path exists.
        from scorer.pool_storage import PoolError, check_may_add, check_pool_name

        try:
            check_pool_name(cmd.name)  # refused now, not by a job failing in the worker
            # another workspace's pool, or the operator's: refused now (the worker checks again)
            await asyncio.to_thread(check_may_add, self.ctx.engine, cmd.name, actor.pool_owner)
            source = check_admin_source(self.ctx.settings, cmd.source).source
            if is_giphy_source(source):  # refused now, as the CLI does, not by a failed job
                check_key(self.ctx.settings)
        except GiphyKeyError as exc:  # the web admin is the operator: it can set the key itself
            return Reply(kind="error", text=str(exc) if actor.pool_owner == "" else (
                "GIPHY is not set up on this installation: the bot's operator must set "
                "GIPHY_API_KEY first. A folder or a list of GIF URLs works without it."))
        except (PoolError, SourceNotAllowed) as exc:
            return Reply(kind="error", text=str(exc))
        job = await self.jobs.enqueue(
            POOL_ADD, {"name": cmd.name, "source": source, "owner": actor.pool_owner},
            f"add pool {cmd.name} from {source}")
        return Reply(kind="ack", text=(f"Adding pool {cmd.name} from {source} and scoring it "
                                       f"(job {job.id}, in the worker). {_where_jobs_show(actor)}"))


def _where_jobs_show(actor: Actor) -> str:
    """Where this admin follows a queued job: `stats` is a chat command; the web admin has
    the Jobs list on its own page."""
    if actor.platform == "web":
        return "The Jobs list on /admin shows how it goes."
    return "`stats` shows how it goes."


# A stored key as the admin types it, for the answers (`hidden`: the workspace's hide list).
_TYPED = {key: typed for typed, key in _SETTING_NAMES.items()} | {"hidden_gifs": "hidden"}


def typed_key(key: str) -> str:
    return _TYPED.get(key, key)


def _typed_keys(text: str) -> str:
    """A message that names stored keys, in the words an admin types."""
    for key, typed in _TYPED.items():
        text = text.replace(key, typed)
    return text


def _shown(value: Any) -> str:
    """A setting as an admin types it: on/off, a comma list, a whole number as one, or the value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return ", ".join(value) if isinstance(value, list) else str(value)


def _own_ceilings(db: Session, actor: Actor) -> str:
    """After a workspace-wide ceiling: the channels that keep their own, which it does not move."""
    own = sorted({channel for channel, key, _ in sess.list_scoped(db, actor.platform, actor.workspace)
                  if channel and key == "rating_ceiling"})
    if not own:
        return ""
    return (f" {len(own)} channel{'s keep their' if len(own) > 1 else ' keeps its'} own ceiling "
            "(`channel rating reset` there follows this one).")


def _setting_line(key: str, value: Any) -> str:
    if key == "hidden_gifs":  # SHA-256s: `hidden` lists them with their titles
        return f"{typed_key(key)}: {len(value)} in this workspace (`hidden` lists them)"
    if key == "pools" and not value:
        return f"{key}: every pool"
    return f"{typed_key(key)}: {_shown(value)}"


__all__ = ["ADMIN_HELP", "AddPool", "AdminCommand", "AdminFlow", "ForgetPhrase", "Help", "HideGif",
           "ListHidden", "ListPhrases", "ListPools", "Retrain", "SetChannel", "SetRating", "ShowChannel",
           "Stats", "UnhideGif", "hide_command", "parse_admin"]

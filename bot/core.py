"""The bot core: the one facade every adapter calls (Slack, Discord, the web playground, tests).

Adapters translate a platform event into a call here with an `Actor` and render the `Reply`
that comes back (`bot.events`). Nothing here knows a platform. `BotCore` is thin: each
method hands the work to a flow in `bot.flows` (requests, feedback, polls, admin, reports,
jobs), run in a worker thread as ONE database transaction per user action
(`CoreContext.for_user`), so a Discord heartbeat or a Slack 3-second ack is never held up
by a query or a ranking.

What a user can do, and what it becomes:

- `request_with_poll("/gif happy")` -> intent -> ranking -> a private preview (Send /
  Shuffle / Cancel), and now and then a "which is more X?" poll after it; help for an empty
  request, "did you mean" for an unsure one, a polite wait on cooldown. (`request` and
  `maybe_poll` are the two halves, for adapters not yet switched.)
- `shuffle` -> the next best GIF not yet shown in this preview nor recently in the channel.
- `send_and_publish` -> a public post (the adapter's `publish` puts it on the platform),
  the sent GIF beating every GIF skipped in this preview (ledger), and the platform's
  message id kept for reactions. (`send` + `attach_message` are the two halves.)
- `vote` (👍/👎 button or reaction) -> the post's GIF against the emotion's reference
  item; one vote per person per post, a changed vote replaces the old one.
- `answer_poll` -> "which is more X?" left / right / neither.
- `run_admin(AddPool(...))` / `admin("pools", [...])` -> typed admin commands; heavy ones
  (pool add, retrain) are queued for the worker process (`bot.flows.jobs`).
Bad input (an expired or someone else's preview, a double click, 10 kB of text, control
characters) gets a polite Reply, and nothing is ever recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Engine

from bot.events import Actor, Answer, GifCard, PostView, Published, Reply
from bot.flows.admin import ADMIN_HELP, AdminCommand, AdminFlow, parse_admin
from bot.flows.context import BUSY_TEXT, MAX_TEXT_CHARS, CoreContext, clean_text
from bot.flows.feedback import FeedbackFlow
from bot.flows.jobs import Job, JobQueue
from bot.flows.offers import OfferFlow, Suggestion, worth_watching
from bot.flows.picks import PickFlow
from bot.flows.polls import PollFlow
from bot.flows.reports import Reports
from bot.flows.requests import RequestFlow
from bot.ranking import Ranker
from bot.topics import Reading
from scorer.emotions import INDEX, N_EMOTIONS
from scorer.settings import Settings

log = logging.getLogger("moodgif.bot.core")

# What an adapter gives `send_and_publish`: post this publicly, return the platform's id of
# the message. None: the platform refused it and the adapter has told the user why; an
# exception: it could not be posted either, and the core says so. Either way the Send is
# taken back and the preview stays open.
Publish = Callable[[PostView], Awaitable[str | None]]
NOT_POSTED_TEXT = "I couldn't post that GIF just now, so nothing was sent: try Send again in a moment."


class BotCore:
    """One instance per process; shared by every adapter in it."""

    def __init__(self, settings: Settings, engine: Engine, *, intent_parser: Any = None,
                 clock: Callable[[], float] | None = None, ranker: Ranker | None = None,
                 seed: int | None = None) -> None:
        self.ctx = CoreContext(settings, engine, intent_parser=intent_parser, clock=clock,
                               ranker=ranker, seed=seed)
        # /readyz's "scores" follows every snapshot the ranker loads, not only the first.
        self.ctx.ranker.add_listener(self.ctx.report_scores)
        self.requests = RequestFlow(self.ctx)
        self.offers = OfferFlow(self.ctx, self.requests)
        self.picks = PickFlow(self.ctx, self.requests)
        self.feedback = FeedbackFlow(self.ctx)
        self.polls = PollFlow(self.ctx, self.requests)
        self.job_queue = JobQueue(self.ctx)
        self.reports = Reports(self.ctx)
        self.admin_flow = AdminFlow(self.ctx, self.job_queue, self.reports)

    # ------------------------------------------------------------------ shared state
    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self.ctx.settings = value

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    @property
    def clock(self) -> Callable[[], float]:
        return self.ctx.clock

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.ctx.clock = value

    @property
    def ranker(self) -> Ranker:
        return self.ctx.ranker

    @property
    def parser(self) -> Any:
        return self.ctx.parser

    @property
    def jobs(self) -> list[Job]:
        """This process's admin jobs (queued for the worker), oldest first."""
        return self.job_queue.jobs

    async def warm_up(self) -> None:
        """Load the intent models and the score matrix before the first user waits for them."""
        def work() -> None:
            parser = self.ctx.parser
            if hasattr(parser, "warm_up"):
                parser.warm_up(self.ctx.report_intent)
            self.ctx.ranker.refresh()  # reported to /readyz by the listener

        await asyncio.to_thread(work)
        await self.job_queue.resume()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Let background loading finish: a thread killed inside torch at interpreter exit
        aborts the process ("terminate called without an active exception")."""
        thread = self.ctx.warm_thread()
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout_s)
        await asyncio.to_thread(self.ctx.ranker.wait_idle, timeout_s)
        await self.job_queue.close(timeout_s)

    # ------------------------------------------------------------------ reading
    def card(self, sha: str, emotion: str = "") -> GifCard:
        """How an adapter renders one GIF (title, size, file path, public URL if any)."""
        cards = self.ctx.cards(None, [sha], emotion)
        if not cards:
            raise KeyError(f"no such GIF: {sha[:16]}")
        return cards[0]

    def interpret(self, text: str, actor: Actor | None = None) -> Reading:
        """How a request would be read now (feeling and topic), for `actor` as the request
        would be (their workspace's words) when given; for hints such as Discord's
        autocomplete. Synchronous and cheap: call it from a worker thread."""
        query = clean_text(text or "")[:MAX_TEXT_CHARS]
        if actor is None:
            return self.ctx.read(query)
        return self.ctx.unit(lambda db: self.ctx.read_here(db, actor, query, self.ctx.scoped(db, actor)))

    async def suggest(self, text: str, k: int, *, actor: Actor | None = None,
                      explore: bool = False) -> Suggestion:
        """The top `k` GIFs for a request, read and ranked as the bot would (nothing is
        written); `moodgif suggest`."""
        return await asyncio.to_thread(self.ctx.unit, self.offers.suggest, actor, text, k,
                                       explore)

    # ------------------------------------------------------------------ a request
    async def request(self, actor: Actor, text: str) -> Reply:
        """A `/gif ...` request: a preview, help, did-you-mean, or a polite no."""
        return await self.ctx.for_user(self.requests.request, actor, text)

    async def request_with_poll(self, actor: Actor, text: str) -> Answer:
        """The whole answer to a `/gif ...` request: the reply, and for `poll_share` of
        previews a poll to show after it; one transaction."""
        answer = await self.ctx.for_user(self.polls.request_with_poll, actor, text)
        return answer if isinstance(answer, Answer) else Answer(answer)

    async def shuffle(self, actor: Actor, session_id: str) -> Reply:
        return await self.ctx.for_user(self.requests.shuffle, actor, session_id)

    async def cancel(self, actor: Actor, session_id: str) -> Reply:
        return await self.ctx.for_user(self.requests.cancel, actor, session_id)

    async def choose(self, actor: Actor, ask_id: str, emotion: str) -> Reply:
        """A "did you mean" button (`Reply.ask_id`): a preview of `emotion` for the words asked
        about; an old question's button answers as `/gif <emotion>`."""
        return await self.ctx.for_user(self.picks.choose, actor, ask_id, emotion)

    async def switch(self, actor: Actor, session_id: str, emotion: str) -> Reply:
        """The preview's request as another feeling (a switch button): a new preview."""
        return await self.ctx.for_user(self.picks.switch, actor, session_id, emotion)

    async def send(self, actor: Actor, session_id: str, sha: str | None = None) -> Reply:
        """Close the preview and create the post with its comparisons (one transaction);
        the adapter then posts `reply.post` and calls `attach_message`."""
        return await self.ctx.for_user(self.requests.send, actor, session_id, sha)

    async def send_and_publish(self, actor: Actor, session_id: str, sha: str | None,
                               publish: Publish) -> Published:
        """Send, post it publicly through `publish`, and keep the platform's message id
        for reactions: what a Send click means, in one call."""
        reply = await self.send(actor, session_id, sha)
        if reply.kind != "posted" or reply.post is None:
            return Published(reply)
        post_id = reply.post.post_id
        try:
            ref = await publish(reply.post)
        except Exception:  # an outage, a permission the platform refused: nothing was sent
            log.exception("posting a sent GIF failed; the Send is taken back")
            await self.ctx.for_user(self.requests.unsend, actor, post_id)
            return Published(Reply(kind="error", text=NOT_POSTED_TEXT))
        if ref is None:
            await self.ctx.for_user(self.requests.unsend, actor, post_id)
            return Published(Reply(kind="not_posted"))
        await self.attach_message(post_id, ref)
        return Published(reply, ref)

    async def undo(self, actor: Actor, post_id: int) -> Reply:
        """The sender takes a Send back (within `UNDO_MINUTES`): on "undone" the adapter
        deletes the public post, `reply.message_ref`."""
        return await self.ctx.for_user(self.feedback.undo, actor, int(post_id))

    async def attach_message(self, post_id: int, message_ref: str) -> None:
        """The adapter tells the core the platform's id of the public post (for reactions)."""
        await self.ctx.for_user(self.feedback.attach, int(post_id), str(message_ref))

    async def watch(self, actor: Actor, text: str) -> Reply | None:
        """In a channel that opted in, a private offer when a message clearly carries an
        emotion; at most once per person per `watch_cooldown_min`. None = stay quiet."""
        if not worth_watching(text):
            return None
        return await self.ctx.for_user(self.offers.watch, actor, text, quiet=True)

    # ------------------------------------------------------------------ feedback and polls
    async def vote(self, actor: Actor, *, post_id: int | None = None,
                   message_ref: str | None = None, up: bool | None,
                   source: str = "vote") -> Reply:
        """👍 (up=True) / 👎 (False) / withdrawn (None), from a button or a reaction
        (`source="reaction"`). Votes are not rate-limited beyond one per person per post."""
        return await self.ctx.for_user(self.feedback.vote, actor, post_id, message_ref, up,
                                       source)

    async def maybe_poll(self, actor: Actor, emotion: str) -> Reply | None:
        """A "which is more X?" poll for `settings.ranking.poll_share` of requests (None otherwise)."""
        if not self.polls.wanted(emotion):
            return None
        return await self.ctx.for_user(self.polls.poll, actor, INDEX[emotion], quiet=True)

    async def answer_poll(self, actor: Actor, poll_id: str, answer: str) -> Reply:
        return await self.ctx.for_user(self.polls.answer, actor, poll_id, answer)

    # ------------------------------------------------------------------ admin
    async def run_admin(self, actor: Actor, command: AdminCommand) -> Reply:
        """A typed admin command (`bot.flows.admin`); forbidden unless `actor.is_admin`."""
        if not actor.is_admin:
            return Reply(kind="forbidden", text="Only admins can use `/gif-admin`.")
        return await self.admin_flow.run(actor, command)

    async def admin(self, actor: Actor, command: str, args: list[str]) -> Reply:
        """Admin commands as words (Slack's `/gif-admin`; see `ADMIN_HELP`)."""
        return await self.run_admin(actor, parse_admin(command, args))


__all__ = ["ADMIN_HELP", "BUSY_TEXT", "N_EMOTIONS", "BotCore", "Publish", "clean_text"]

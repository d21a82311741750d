"""The adapter contract: one scripted conversation that every adapter must turn into the same
comparisons in the ledger.

The script (`run_contract`):

1. alice asks for `/gif happy`            -> a private preview with one GIF (A) and a poll
2. alice shuffles twice                    -> B, then C (never a repeat)
3. alice sends                             -> C is posted publicly
4. alice clicks Send again (a double click) -> refused, nothing new recorded
5. bob clicks 👍 on the post, then changes it to 👎
6. alice answers the poll "left"

and the ledger must then hold exactly, whatever the platform:

    send  C beats A      send  C beats B
    vote  REF beats C    (bob's 👍 replaced by his 👎: one row)
    poll  L beats R      (no tie)

with `platform` = the driver's platform, alice's rows under one hashed `who`, bob's under
another, and never a raw user id.

A **driver** plays the users on one platform: it turns each gesture into what that platform
would deliver (a direct `BotCore` call, an HTTP request to the web playground, a signed
Slack payload, a Discord interaction) and reads back what the user would see. It must
implement the five methods of `Driver`; a handle is whatever the driver needs to address
the preview, post or poll again (a session id, a message ts, a custom_id...).

Settings a driver's bot must run with: `CONTRACT_SETTINGS` (every request also gets a poll,
no cooldown, one GIF per preview). The pool must hold at least three GIFs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer.emotions import NAMES
from scorer.store import Comparison, session_scope
from training.comparisons import reference_id

CONTRACT_SETTINGS = {"poll_share": 1.0, "cooldown_s": 0.0, "preview_count": 1}


@dataclass(frozen=True)
class PollSeen:
    handle: str
    left: str  # sha256 shown on the left
    right: str


@dataclass(frozen=True)
class Shown:
    """A preview as the user sees it."""

    handle: str
    shas: tuple[str, ...]
    poll: PollSeen | None = None  # a poll that came with the request, if any
    alternatives: tuple[str, ...] = ()  # the feelings it offers to switch to, in order
    more: tuple[str, ...] = ()  # the "Another feeling…" menu's feelings


@dataclass(frozen=True)
class Asked:
    """A "did you mean" as the user sees it: its buttons, in order."""

    handle: str  # whatever the driver needs to click one of them
    choices: tuple[str, ...]
    more: tuple[str, ...] = ()  # its "Another feeling…" menu


@dataclass(frozen=True)
class PostSeen:
    handle: str
    sha: str


class Driver(Protocol):
    """One platform's users. Each method is one gesture; raise AssertionError if the platform
    answered something a user could not act on (an error page, no buttons)."""

    platform: str  # what the bot records as `comparisons.platform`

    async def request(self, user: str, text: str) -> Shown: ...

    async def shuffle(self, user: str, shown: Shown) -> Shown: ...

    async def send(self, user: str, shown: Shown) -> PostSeen | None:
        """The public post, or None when the bot refused (e.g. already sent)."""
        ...

    async def vote(self, user: str, post: PostSeen, up: bool | None) -> None: ...

    async def answer_poll(self, user: str, poll: PollSeen, answer: str) -> None: ...

    async def switch(self, user: str, shown: Shown, emotion: str) -> Shown:
        """Click the preview's switch to `emotion`: the new preview."""
        ...

    async def ask(self, user: str, text: str) -> Asked:
        """A request the bot answers with "did you mean" buttons."""
        ...

    async def switch_other(self, user: str, shown: Shown, emotion: str) -> Shown:
        """Pick `emotion` in the preview's "Another feeling…" menu: the new preview."""
        ...

    async def choose_other(self, user: str, asked: Asked, emotion: str) -> Shown:
        """Pick `emotion` in a "did you mean"'s "Another feeling…" menu: the preview."""
        ...

    async def choose(self, user: str, asked: Asked, emotion: str) -> Shown:
        """Click the "did you mean" button for `emotion`: the preview."""
        ...


EXPECTED = sorted([
    ("send", "happiness", "C", "A", False),
    ("send", "happiness", "C", "B", False),
    ("vote", "happiness", "REF", "C", False),
    ("poll", "happiness", "L", "R", False),
])


async def run_contract(driver: Driver, engine: Engine) -> list[tuple]:
    """Play the script through `driver`; check the ledger; return its normalised rows."""
    first = await driver.request("alice", "/gif happy")
    assert len(first.shas) == 1, f"expected one GIF in the preview, got {first.shas}"
    assert first.poll is not None, "with poll_share 1 every request comes with a poll"
    second = await driver.shuffle("alice", first)
    third = await driver.shuffle("alice", second)
    a, b, c = first.shas[0], second.shas[0], third.shas[0]
    assert len({a, b, c}) == 3, "a shuffle offered a GIF already shown in this preview"
    assert _rows(engine) == [], "nothing is recorded before Send"

    post = await driver.send("alice", third)
    assert post is not None and post.sha == c
    assert await driver.send("alice", third) is None, "a second Send must be refused"

    await driver.vote("bob", post, True)
    await driver.vote("bob", post, False)
    await driver.answer_poll("alice", first.poll, "left")

    labels = {a: "A", b: "B", c: "C", reference_id(NAMES.index("happiness")): "REF"}
    poll_labels = {first.poll.left: "L", first.poll.right: "R"}
    rows = _rows(engine)
    got = sorted(
        (r.source, NAMES[r.emotion],
         (poll_labels if r.source == "poll" else labels).get(r.winner, r.winner[:8]),
         (poll_labels if r.source == "poll" else labels).get(r.loser, r.loser[:8]),
         bool(r.tie))
        for r in rows
    )
    assert got == EXPECTED, f"{driver.platform}: ledger {got} != contract {EXPECTED}"
    assert {r.platform for r in rows} == {driver.platform}
    alice = {r.who for r in rows if r.source in {"send", "poll"}}
    bob = {r.who for r in rows if r.source == "vote"}
    assert len(alice) == 1 and len(bob) == 1 and alice != bob
    assert all(len(w) == 64 and w not in {"alice", "bob"} for w in alice | bob)
    return got


SWITCH_EXPECTED = [("send", "contempt", "B", "A", False)]


async def run_switch_contract(driver: Driver, engine: Engine) -> list[tuple]:
    """An unsure reading offers its other feelings; a switch reopens the preview as one of
    them, and a Send then records under the feeling picked (`SWITCH_EXPECTED`)."""
    first = await driver.request("alice", "/gif ugh")  # the lexicon: anger 45 %, contempt 30 %, ...
    assert first.alternatives == ("contempt", "disgust", "sadness"), first
    switched = await driver.switch("alice", first, "contempt")
    assert switched.handle != first.handle and switched.alternatives[0] == "anger", switched
    return await _shuffle_send_and_check(driver, engine, switched, SWITCH_EXPECTED)


OTHER_EXPECTED = [("send", "fear", "B", "A", False)]


async def run_other_feeling_contract(driver: Driver, engine: Engine) -> list[tuple]:
    """A feeling no switch offers is one pick away in the "Another feeling…" menu, and a Send
    then records under it (`OTHER_EXPECTED`)."""
    first = await driver.request("alice", "/gif ugh")  # switches: contempt, disgust, sadness
    assert "fear" in first.more and not set(first.more) & {"anger", *first.alternatives}, first
    picked = await driver.switch_other("alice", first, "fear")
    assert picked.handle != first.handle and picked.alternatives[0] == "anger", picked
    return await _shuffle_send_and_check(driver, engine, picked, OTHER_EXPECTED)


CHOICE_EXPECTED = [("send", "embarrassment", "B", "A", False)]


async def run_choice_contract(driver: Driver, engine: Engine) -> list[tuple]:
    """A "did you mean" pick opens a preview for the words asked about, offers the other
    guesses as switches, and a Send is remembered: the same words then read as that
    feeling for that person (bot.learned_phrases). The ledger: `CHOICE_EXPECTED`."""
    asked = await driver.ask("alice", "/gif welp")  # the lexicon: sadness 35 %, embarrassment 30 %, ...
    assert asked.choices == ("sadness", "embarrassment", "contempt"), asked
    picked = await driver.choose("alice", asked, "embarrassment")
    assert picked.alternatives == ("sadness", "contempt"), picked
    got = await _shuffle_send_and_check(driver, engine, picked, CHOICE_EXPECTED)
    again = await driver.request("alice", "/gif welp")  # no question this time: her pick
    assert again.alternatives == ("sadness", "contempt"), again
    asked = await driver.ask("bob", "/gif welp")  # one person's pick is theirs: bob is asked
    assert "fear" in asked.more and not set(asked.more) & set(asked.choices), asked
    menu_pick = await driver.choose_other("bob", asked, "fear")  # any feeling, one pick away
    assert menu_pick.alternatives[:2] == ("sadness", "embarrassment"), menu_pick
    assert len(_rows(engine)) == len(got), "bob's menu pick recorded something before any Send"
    return got


async def _shuffle_send_and_check(driver: Driver, engine: Engine, picked: Shown,
                                  expected: list[tuple]) -> list[tuple]:
    """alice shuffles the preview of the feeling she picked once and sends: the ledger must
    hold `expected`, the second GIF (B) sent over the first (A) under the feeling picked."""
    second = await driver.shuffle("alice", picked)
    post = await driver.send("alice", second)
    assert post is not None and post.sha == second.shas[0]
    got = _sends(engine, {picked.shas[0]: "A", second.shas[0]: "B"})
    assert got == expected, f"{driver.platform}: ledger {got} != {expected}"
    return got


def _sends(engine: Engine, labels: dict[str, str]) -> list[tuple]:
    """The ledger's Send rows, sorted, with the GIFs named by `labels`."""
    return sorted((r.source, NAMES[r.emotion], labels.get(r.winner, r.winner[:8]),
                   labels.get(r.loser, r.loser[:8]), bool(r.tie)) for r in _rows(engine) if r.source == "send")


def _rows(engine: Engine) -> list[Comparison]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Comparison).order_by(Comparison.id)))


class CoreDriver:
    """Calls `BotCore` directly, as errbot's TestBackend drives plugins: the reference driver."""

    platform = "test"

    def __init__(self, core, workspace: str = "T1", channel: str = "general") -> None:  # type: ignore[no-untyped-def]
        self.core = core
        self.workspace = workspace
        self.channel = channel

    def _actor(self, user: str):  # type: ignore[no-untyped-def]
        from bot.events import Actor

        return Actor(self.platform, self.workspace, self.channel, user, user.title())

    async def request(self, user: str, text: str) -> Shown:
        answer = await self.core.request_with_poll(self._actor(user), text)
        reply, poll = answer.reply, answer.poll
        assert reply.kind == "preview", reply
        seen = PollSeen(poll.poll.poll_id, poll.poll.left.sha256, poll.poll.right.sha256) \
            if poll is not None else None
        return Shown(reply.preview.session_id, tuple(c.sha256 for c in reply.preview.cards), seen,
                     reply.preview.alternatives, reply.preview.more_feelings)

    async def shuffle(self, user: str, shown: Shown) -> Shown:
        reply = await self.core.shuffle(self._actor(user), shown.handle)
        assert reply.kind == "preview", reply
        return Shown(shown.handle, tuple(c.sha256 for c in reply.preview.cards))

    async def switch(self, user: str, shown: Shown, emotion: str) -> Shown:
        reply = await self.core.switch(self._actor(user), shown.handle, emotion)
        assert reply.kind == "preview", reply
        return Shown(reply.preview.session_id, tuple(c.sha256 for c in reply.preview.cards),
                     alternatives=reply.preview.alternatives)

    async def switch_other(self, user: str, shown: Shown, emotion: str) -> Shown:
        return await self.switch(user, shown, emotion)  # the menu and a switch are the same call

    async def ask(self, user: str, text: str) -> Asked:
        reply = (await self.core.request_with_poll(self._actor(user), text)).reply
        assert reply.kind == "did_you_mean" and reply.ask_id, reply
        return Asked(reply.ask_id, reply.choices, reply.more_choices)

    async def choose_other(self, user: str, asked: Asked, emotion: str) -> Shown:
        return await self.choose(user, asked, emotion)  # the menu and a button are the same call

    async def choose(self, user: str, asked: Asked, emotion: str) -> Shown:
        reply = await self.core.choose(self._actor(user), asked.handle, emotion)
        assert reply.kind == "preview", reply
        return Shown(reply.preview.session_id, tuple(c.sha256 for c in reply.preview.cards),
                     alternatives=reply.preview.alternatives)

    async def send(self, user: str, shown: Shown) -> PostSeen | None:
        async def publish(post) -> str:  # type: ignore[no-untyped-def]
            return f"msg-{post.post_id}"

        sent = await self.core.send_and_publish(self._actor(user), shown.handle, None, publish)
        if sent.reply.kind != "posted":
            return None
        return PostSeen(sent.message_ref, sent.reply.post.card.sha256)

    async def vote(self, user: str, post: PostSeen, up: bool | None) -> None:
        reply = await self.core.vote(self._actor(user), message_ref=post.handle, up=up)
        assert reply.kind == "ack", reply

    async def answer_poll(self, user: str, poll: PollSeen, answer: str) -> None:
        reply = await self.core.answer_poll(self._actor(user), poll.handle, answer)
        assert reply.kind == "ack", reply


class WebDriver:
    """Drives the web playground's JSON API over real HTTP (aiohttp's TestClient)."""

    platform = "web"

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client = client

    async def _post(self, path: str, user: str, **body) -> dict:  # type: ignore[no-untyped-def]
        resp = await self.client.post(path, json={"user": user, **body})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def request(self, user: str, text: str) -> Shown:
        r = await self._post("/api/request", user, text=text)
        assert r["kind"] == "preview", r
        p = r.get("poll_reply", {}).get("poll")
        poll = PollSeen(p["poll_id"], p["left"]["sha256"], p["right"]["sha256"]) if p else None
        return Shown(r["preview"]["session_id"], tuple(c["sha256"] for c in r["preview"]["cards"]),
                     poll, tuple(r["preview"]["alternatives"]), tuple(r["preview"]["more_feelings"]))

    async def shuffle(self, user: str, shown: Shown) -> Shown:
        r = await self._post("/api/shuffle", user, session_id=shown.handle)
        assert r["kind"] == "preview", r
        return Shown(shown.handle, tuple(c["sha256"] for c in r["preview"]["cards"]))

    async def switch(self, user: str, shown: Shown, emotion: str) -> Shown:
        r = await self._post("/api/switch", user, session_id=shown.handle, emotion=emotion)
        assert r["kind"] == "preview", r
        return Shown(r["preview"]["session_id"], tuple(c["sha256"] for c in r["preview"]["cards"]),
                     alternatives=tuple(r["preview"]["alternatives"]))

    async def switch_other(self, user: str, shown: Shown, emotion: str) -> Shown:
        return await self.switch(user, shown, emotion)  # the page's menu posts /api/switch too

    async def ask(self, user: str, text: str) -> Asked:
        r = await self._post("/api/request", user, text=text)
        assert r["kind"] == "did_you_mean" and r.get("ask_id"), r
        return Asked(r["ask_id"], tuple(r["choices"]), tuple(r["more_choices"]))

    async def choose_other(self, user: str, asked: Asked, emotion: str) -> Shown:
        return await self.choose(user, asked, emotion)  # the page's menu posts /api/choose too

    async def choose(self, user: str, asked: Asked, emotion: str) -> Shown:
        r = await self._post("/api/choose", user, ask_id=asked.handle, emotion=emotion)
        assert r["kind"] == "preview", r
        return Shown(r["preview"]["session_id"], tuple(c["sha256"] for c in r["preview"]["cards"]),
                     alternatives=tuple(r["preview"]["alternatives"]))

    async def send(self, user: str, shown: Shown) -> PostSeen | None:
        r = await self._post("/api/send", user, session_id=shown.handle)
        if r["kind"] != "posted":
            return None
        return PostSeen(str(r["post"]["post_id"]), r["post"]["card"]["sha256"])

    async def vote(self, user: str, post: PostSeen, up: bool | None) -> None:
        r = await self._post("/api/vote", user, post_id=int(post.handle), up=up)
        assert r["kind"] == "ack", r

    async def answer_poll(self, user: str, poll: PollSeen, answer: str) -> None:
        r = await self._post("/api/poll", user, poll_id=poll.handle, answer=answer)
        assert r["kind"] == "ack", r

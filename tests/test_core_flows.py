"""The bot core's flows (bot/flows): typed admin commands, the whole answer to a request and
to a Send, one transaction per user action, admin jobs queued for the worker, and
`moodgif suggest` answering as the bot does."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time

import pytest
from sqlalchemy import event, select
from test_core import Env

from bot.events import Actor
from bot.flows import admin as adm
from bot.flows.jobs import DEAD_WORKER, LEASE_S, RUNNERS, drain, enqueue, fail_abandoned, job_state
from scorer.store import ChatSession, CoreJob, Gif, Post, session_scope


@pytest.fixture
def env(sqlite_settings, sqlite_engine) -> Env:
    return Env(sqlite_settings, sqlite_engine)


@pytest.mark.parametrize(("command", "args", "typed"), [
    ("pools", [], adm.ListPools()),
    ("pool", ["list"], adm.ListPools()),
    ("pools", ["add", "cats", "giphy:funny", "cats"], adm.AddPool("cats", "giphy:funny cats")),
    ("pools", ["add", "cats"], adm.Help(adm.POOLS_USAGE)),
    ("rating", ["pg"], adm.SetRating("pg", False)),
    ("ceiling", ["g", "here"], adm.SetRating("g", True)),
    ("rating", [], adm.Help("Usage: rating g|pg|pg-13|r [channel]")),
    ("channel", [], adm.ShowChannel()),
    ("channel", ["show"], adm.ShowChannel()),
    ("channel", ["cooldown", "reset"], adm.SetChannel("cooldown", None)),
    ("channel", ["pools", "a", "b"], adm.SetChannel("pools", "a b")),
    ("channel", ["colour", "red"], adm.Help(adm.CHANNEL_USAGE)),
    ("RETRAIN", [], adm.Retrain()),
    ("stats", ["", ""], adm.Stats()),
    ("what", [], adm.Help()),
    ("", [], adm.Help()),
])
def test_admin_words_parse_to_typed_commands(command, args, typed) -> None:  # type: ignore[no-untyped-def]
    assert adm.parse_admin(command, args) == typed


async def test_typed_admin_commands_run_without_words(env: Env) -> None:
    ada, alice = env.actor("ada", admin=True), env.actor()
    assert (await env.core.run_admin(alice, adm.Stats())).kind == "forbidden"
    ack = await env.core.run_admin(ada, adm.SetChannel("preview", "3"))
    assert ack.kind == "ack" and ack.text == "preview for this channel is now 3."
    assert len((await env.core.request(alice, "happy")).preview.cards) == 3
    assert (await env.core.run_admin(ada, adm.SetRating("nc-17"))).kind == "error"
    shown = (await env.core.run_admin(ada, adm.ShowChannel())).text
    assert "preview: 3" in shown and "every pool" in shown
    pools = (await env.core.run_admin(ada, adm.ListPools())).text
    assert pools == "Pools:\ndemo: 24 GIFs, 24 ranked"  # scorer.pool.list_pools' count
    assert (await env.core.run_admin(ada, adm.Help("Usage: x"))).kind == "error"


async def test_request_with_poll_is_the_whole_answer_in_one_transaction(
        sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    env = Env(sqlite_settings, sqlite_engine, poll_share=1.0)
    alice = env.actor()
    await env.core.request(env.actor("bob"), "happy")  # warm: parser, scores, the salt
    begins = _count_begins(env)
    answer = await env.core.request_with_poll(alice, "happy")
    assert answer.reply.kind == "preview" and answer.poll is not None
    assert answer.poll.kind == "poll" and answer.poll.poll.emotion == "happiness"
    assert begins() == 1  # the preview and the poll: one transaction
    with session_scope(env.engine) as s:
        kinds = sorted(s.scalars(select(ChatSession.kind)))
    assert kinds == ["poll", "preview", "preview"]  # bob's, then alice's preview and poll
    help_answer = await env.core.request_with_poll(alice, "")
    assert help_answer.reply.kind == "help" and help_answer.poll is None


async def test_send_and_publish_posts_attaches_and_is_one_transaction(env: Env) -> None:
    alice = env.actor()
    sid = (await env.core.request(alice, "happy")).preview.session_id
    posted: list[int] = []

    async def publish(post):  # type: ignore[no-untyped-def]
        posted.append(post.post_id)
        return f"C1:{post.post_id}"

    begins = _count_begins(env)
    sent = await env.core.send_and_publish(alice, sid, None, publish)
    assert sent.reply.kind == "posted" and sent.message_ref == f"C1:{posted[0]}"
    assert begins() == 2  # the Send; then, once the platform answered, its message id
    vote = await env.core.vote(env.actor("bob"), message_ref=sent.message_ref, up=True)
    assert vote.kind == "ack" and "Noted" in vote.text
    again = await env.core.send_and_publish(alice, sid, None, publish)
    assert again.reply.kind == "closed" and again.message_ref is None and len(posted) == 1

    async def refused(post):  # type: ignore[no-untyped-def]
        return None  # e.g. the bot is not in the channel

    async def outage(post):  # type: ignore[no-untyped-def]
        raise ConnectionError("the platform is down")

    sid2 = (await env.core.request(alice, "happy")).preview.session_id
    sends_before = len([c for c in env.comparisons() if c.source == "send"])
    lost = await env.core.send_and_publish(alice, sid2, None, refused)
    assert lost.reply.kind == "not_posted" and lost.message_ref is None  # the adapter said why
    failed = await env.core.send_and_publish(alice, sid2, None, outage)
    assert failed.reply.kind == "error" and "nothing was sent" in failed.reply.text
    with session_scope(env.engine) as s:  # taken back whole: no post, the preview still open
        assert s.scalars(select(Post).where(Post.session_id == sid2)).all() == []
        assert s.get(ChatSession, sid2).state == "open"
    assert len([c for c in env.comparisons() if c.source == "send"]) == sends_before
    kept = await env.core.send_and_publish(alice, sid2, None, publish)  # the platform is back
    assert kept.reply.kind == "posted" and kept.message_ref == f"C1:{posted[-1]}"


async def test_a_request_is_one_transaction(env: Env) -> None:
    alice = env.actor()
    await env.core.request(env.actor("bob"), "happy")  # warm: parser, scores, the salt
    begins = _count_begins(env)
    r = await env.core.request(alice, "happy")
    assert r.kind == "preview" and begins() == 1
    begins = _count_begins(env)
    assert (await env.core.shuffle(alice, r.preview.session_id)).kind == "preview"
    assert begins() == 1


async def test_admin_jobs_are_queued_for_the_worker(env: Env) -> None:
    ada = env.actor("ada", admin=True)
    started: list[str] = []

    def fake_worker(settings):  # type: ignore[no-untyped-def]
        # The worker process's part, run here so the test sees the queue as the worker does.
        started.append("worker")
        with session_scope(env.engine) as s:
            row = s.scalars(select(CoreJob)).one()
            assert (row.kind, row.state) == ("retrain", "queued")
            row.state, row.detail = "done", "skipped: no new comparisons"
        return 0

    env.core.job_queue.start_worker = fake_worker
    reply = await env.core.run_admin(ada, adm.Retrain())
    assert reply.kind == "ack" and "in the worker" in reply.text
    job = env.core.jobs[-1]
    await asyncio.wait_for(job.task, 30)
    assert started == ["worker"] and (job.state, job.detail) == ("done", "skipped: no new comparisons")
    assert "job 1: retrain: done - skipped" in (await env.core.run_admin(ada, adm.Stats())).text


async def test_a_bot_with_its_schedule_off_leaves_admin_jobs_to_the_worker(sqlite_settings, sqlite_engine,
                                                                            monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """compose and systemd switch the bot's schedule off because a worker (`retrain
    --schedule`, the GPU host) runs it; a pool add or "retrain now" once ran beside chat
    anyway, in the bot's own child."""
    env = Env(sqlite_settings, sqlite_engine, training__retrain_cron="", training__retrain_interval_min=0)
    ada = env.actor("ada", admin=True)
    env.core.job_queue.start_worker = lambda settings: pytest.fail("the bot started a worker child")
    monkeypatch.setitem(RUNNERS, "retrain", lambda settings, engine, args: "ran in the worker")
    await env.core.job_queue.resume()
    assert (await env.core.run_admin(ada, adm.Retrain())).kind == "ack"
    job = env.core.jobs[-1]
    await asyncio.sleep(0.3)
    assert job.state == "queued" and env.core.job_queue._worker is None
    assert await asyncio.to_thread(drain, env.settings, env.engine) == 1  # the worker's minute
    await asyncio.wait_for(job.task, 30)
    assert (job.state, job.detail) == ("done", "ran in the worker")


async def test_many_queued_jobs_share_one_worker_child(env: Env) -> None:
    """Six quick clicks on "retrain now" once started six worker children at once (each
    imports torch); one drains the queue now, and another starts only for a job it missed."""
    ada = env.actor("ada", admin=True)
    running, starts, most = [0], [0], [0]
    release = threading.Event()

    def fake_worker(settings):  # type: ignore[no-untyped-def]
        running[0] += 1
        starts[0] += 1
        most[0] = max(most[0], running[0])
        release.wait(10)  # every click lands while this child runs
        with session_scope(env.engine) as s:  # the worker's part: it drains every queued job
            for row in s.scalars(select(CoreJob).where(CoreJob.state == "queued")):
                row.state, row.detail = "done", "drained"
        running[0] -= 1
        return 0

    env.core.job_queue.start_worker = fake_worker
    replies = [await env.core.run_admin(ada, adm.Retrain()) for _ in range(6)]
    assert all(r.kind == "ack" for r in replies)
    # one retrain waits for all six clicks: it will see every vote up to when it starts
    assert len(env.core.jobs) == 1 and all("already waiting to run (job" in r.text for r in replies[1:])
    await asyncio.sleep(0.2)
    release.set()
    await asyncio.wait_for(asyncio.gather(*(job.task for job in env.core.jobs)), 30)
    assert most[0] == 1 and starts[0] == 1
    assert {(job.state, job.detail) for job in env.core.jobs} == {("done", "drained")}
    await env.core.run_admin(ada, adm.Retrain())  # a later click: a new child, the first has ended
    await asyncio.wait_for(env.core.jobs[-1].task, 30)
    assert starts[0] == 2 and env.core.jobs[-1].state == "done"


async def test_jobs_left_queued_by_a_stopped_bot_run_when_the_next_one_starts(env: Env) -> None:
    left = enqueue(env.engine, "retrain", {}, "retrain")  # queued, then the bot was stopped
    ran: list[int] = []

    def fake_worker(settings):  # type: ignore[no-untyped-def]
        ran.append(1)
        return drain(settings, env.engine)

    env.core.job_queue.start_worker = fake_worker
    monkey = pytest.MonkeyPatch()
    monkey.setitem(RUNNERS, "retrain", lambda settings, engine, args: "ran after the restart")
    try:
        await env.core.job_queue.resume()
        worker = env.core.job_queue._worker
        assert worker is not None
        await asyncio.wait_for(worker, 30)
    finally:
        monkey.undo()
    assert ran == [1] and job_state(env.engine, left) == ("done", "ran after the restart")
    await env.core.job_queue.resume()  # nothing queued: no worker
    assert env.core.job_queue._worker is worker


def test_the_worker_drains_the_queue_and_reports_failures(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    bad = enqueue(sqlite_engine, "pool_add", {"name": "x", "source": "/etc"}, "add pool x")
    odd = enqueue(sqlite_engine, "no_such_kind", {}, "mystery")
    assert job_state(sqlite_engine, bad) == ("queued", "")
    assert drain(sqlite_settings, sqlite_engine) == 2
    state, detail = job_state(sqlite_engine, bad)
    assert state == "failed" and "MOODGIF_ADMIN_SOURCE_DIRS" in detail  # checked again there
    assert job_state(sqlite_engine, odd) == ("failed", "unknown job kind 'no_such_kind'")
    assert drain(sqlite_settings, sqlite_engine) == 0  # a job runs once


def _age(engine, job_id: int, *, started_h: float, beat_s: float | None) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with session_scope(engine) as s:
        row = s.get(CoreJob, job_id)
        row.state, row.started_at = "running", now - dt.timedelta(hours=started_h)
        row.heartbeat_at = None if beat_s is None else now - dt.timedelta(seconds=beat_s)


def test_a_job_whose_worker_stopped_beating_is_marked_failed(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    silent = enqueue(sqlite_engine, "retrain", {}, "retrain")
    beating = enqueue(sqlite_engine, "retrain", {}, "retrain")
    old_row = enqueue(sqlite_engine, "retrain", {}, "retrain")  # from before the heartbeat
    _age(sqlite_engine, silent, started_h=0.5, beat_s=LEASE_S + 60)
    _age(sqlite_engine, beating, started_h=5, beat_s=2)  # a long job, alive
    _age(sqlite_engine, old_row, started_h=1, beat_s=None)
    assert fail_abandoned(sqlite_engine) == 2
    assert job_state(sqlite_engine, silent) == ("failed", DEAD_WORKER)
    assert job_state(sqlite_engine, old_row) == ("failed", DEAD_WORKER)
    assert job_state(sqlite_engine, beating) == ("running", "")
    assert fail_abandoned(sqlite_engine, job_id=beating, lease_s=1) == 1  # one job only
    assert job_state(sqlite_engine, beating) == ("failed", DEAD_WORKER)


def test_a_running_job_keeps_beating(sqlite_settings, sqlite_engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[dt.datetime, dt.datetime]] = []

    def slow_job(settings, engine, args):  # type: ignore[no-untyped-def]
        # Wait (bounded) for the side thread's beat instead of sleeping a fixed time: a
        # loaded machine may schedule the thread late, never not at all.
        for _ in range(3000):
            with session_scope(engine) as s:
                row = s.get(CoreJob, job_id)
                if row.heartbeat_at > row.started_at:
                    seen.append((row.started_at, row.heartbeat_at))
                    return "beat seen"
            time.sleep(0.01)
        return "no beat"

    monkeypatch.setitem(RUNNERS, "slow", slow_job)
    job_id = enqueue(sqlite_engine, "slow", {}, "a slow job")
    assert drain(sqlite_settings, sqlite_engine, heartbeat_s=0.02) == 1
    assert job_state(sqlite_engine, job_id) == ("done", "beat seen") and len(seen) == 1
    assert fail_abandoned(sqlite_engine, lease_s=0) == 0  # finished jobs are never touched


async def test_the_chat_side_reports_a_dead_worker(env: Env) -> None:
    ada = env.actor("ada", admin=True)

    def dying_worker(settings):  # type: ignore[no-untyped-def]
        # The worker claimed the job, beat once long ago and was killed (no finish written).
        with session_scope(env.engine) as s:
            row = s.scalars(select(CoreJob)).one()
            row.state, row.host = "running", "elsewhere"
            row.started_at = row.heartbeat_at = dt.datetime.now(dt.UTC).replace(
                tzinfo=None) - dt.timedelta(seconds=LEASE_S + 30)
        return -9

    env.core.job_queue.start_worker = dying_worker
    await env.core.run_admin(ada, adm.Retrain())
    job = env.core.jobs[-1]
    await asyncio.wait_for(job.task, 30)
    assert (job.state, job.detail) == ("failed", DEAD_WORKER)


def test_suggest_uses_the_bots_rating_ceiling(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from bot.cli import cli

    env = Env(sqlite_settings, sqlite_engine)
    best = env.best(n=1)[0]
    with session_scope(sqlite_engine) as s:
        s.get(Gif, best).rating = "r"  # the best happy GIF is now above the bot's pg-13
    out = CliRunner().invoke(cli, ["suggest", "happy", "--k", "3", "--json"],
                             env={"MOODGIF_HOME": str(sqlite_settings.home)})
    assert out.exit_code == 0, out.output
    shas = [g["sha256"] for g in json.loads(out.stdout)["gifs"]]
    assert len(shas) == 3 and best not in shas and shas == env.best(n=4)[1:]


def _count_begins(env: Env):  # type: ignore[no-untyped-def]
    """A counter of the transactions begun on the engine from now on."""
    n = [0]

    def on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        n[0] += 1

    event.listen(env.engine, "begin", on_begin)
    return lambda: n[0]


async def test_one_read_gives_the_channel_settings_and_recent_gifs(settings, engine) -> None:
    """The folded read (scoped rows + recent GIFs in one statement) answers as the two
    reads it replaces, on SQLite and on PostgreSQL."""
    from bot import session as sess
    from bot.scoped_settings import set_scoped

    env = Env(settings, engine)
    alice = env.actor()
    set_scoped(engine, "test", "T1", "", "cooldown_s", 7)  # the workspace's row ...
    set_scoped(engine, "test", "T1", "general", "cooldown_s", 3)  # ... the channel's wins
    set_scoped(engine, "test", "T1", "general", "pools", ["demo"])
    for _ in range(2):
        env.now[0] += 60  # past the channel's cooldown
        sid = (await env.core.request(alice, "happy")).preview.session_id
        assert (await env.core.send(alice, sid)).kind == "posted"
    ctx = env.core.ctx
    assert ctx.recent_since() is not None  # the default repeat window reads recent posts
    with session_scope(engine) as db:
        scoped, recent = ctx.scoped_and_recent(db, alice)
        two = (ctx.scoped(db, alice), sess.recent_in_channel(
            db, "test", "T1", "general", ctx.recent_since()))
    assert scoped == two[0] and scoped.cooldown_s == 3 and scoped.pools == ["demo"]
    assert sorted(recent) == sorted(two[1]) and len(recent) == 2
    with session_scope(engine) as db:  # another channel: the workspace's row, no posts
        other = ctx.scoped_and_recent(db, env.actor(channel="random"))
    assert other[0].cooldown_s == 7 and other[1] == []


def test_a_pool_add_that_adds_nothing_fails_with_its_reasons_and_leaves_no_pool(
        sqlite_settings, sqlite_engine, caplog) -> None:  # type: ignore[no-untyped-def]
    from scorer.pool import list_pools

    url = "http://127.0.0.1:9/nope.gif"  # a loopback address: refused before any connection
    job = enqueue(sqlite_engine, "pool_add", {"name": "u", "source": url}, "add pool u")
    with caplog.at_level("INFO", logger="moodgif.bot.jobs"):
        assert drain(sqlite_settings, sqlite_engine) == 1
    state, detail = job_state(sqlite_engine, job)
    assert state == "failed", detail
    assert detail == (f"nothing added to pool u: 1 refused ({url}: refused: loopback address "
                      "127.0.0.1); the new pool was not kept")
    assert "u" not in [p["name"] for p in list_pools(sqlite_engine)]
    # an expected failure is one line in the log, never a traceback
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None


def test_a_job_summary_is_words_not_a_repr() -> None:
    from bot.flows.jobs import summary
    from scorer.pipeline import ScoreReport

    line = summary(ScoreReport(encoded=3, cached=1, failed=[("ab", "bad")], scored=4,
                               model_version_id=7, seconds=2.345, prior_version_id=6,
                               prior_written=4, prior_faces=1, prior_words=3))
    assert line == ("scored: 3 encoded, 1 cached, 1 failed; zero-shot prior for 4 GIFs (1 with a "
                    "face, 3 with readable words); 4 scored by model version 7 in 2.3 s")
    assert "ScoreReport(" not in summary(ScoreReport())


async def test_a_giphy_source_without_a_key_is_refused_at_once(env: Env, caplog) -> None:
    web_admin = Actor("web", "local", "general", "admin", "admin", is_admin=True)
    env.core.job_queue.start_worker = lambda settings: pytest.fail("nothing may be queued")
    reply = await env.core.run_admin(web_admin, adm.AddPool("g", "giphy:cat"))
    assert reply.kind == "error" and reply.text.startswith("GIPHY_API_KEY is not set: ")
    assert "\n" not in reply.text and env.core.jobs == []
    chat_admin = Actor("slack", "T1", "general", "ada", "ada", is_admin=True)  # not the operator
    said = (await env.core.run_admin(chat_admin, adm.AddPool("g", "giphy:cat"))).text
    assert said.startswith("GIPHY is not set up on this installation: the bot's operator must set")
    assert "export" not in said and env.core.jobs == []
    # with a key, the web admin is pointed at its own Jobs list, chat at `stats`
    env.core.settings = env.core.settings.override(giphy__api_key="k")
    env.core.job_queue.start_worker = lambda settings: 0
    queued = await env.core.run_admin(web_admin, adm.AddPool("g", "giphy:cat"))
    assert queued.kind == "ack" and "Jobs list on /admin" in queued.text and "stats" not in queued.text
    chat = await env.core.run_admin(env.actor("ada", admin=True), adm.Retrain())
    assert "`stats` shows how it goes" in chat.text
    for job in env.core.jobs:  # no worker will run them: stop watching
        job.task.cancel()
    await asyncio.gather(*(job.task for job in env.core.jobs), return_exceptions=True)


def test_a_pool_add_names_the_gifs_of_other_pools_still_unscored(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """Once anything is scored the ranker leaves unscored GIFs out: a web or chat admin's
    pool add (scored by its job) once hid another pool's never-scored GIFs without a word."""
    from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo

    from bot.flows.jobs import unscored_elsewhere

    pool = ingest_demo(sqlite_settings, sqlite_engine, demo_manifest(), pool="older")
    assert unscored_elsewhere(sqlite_engine, "new") == len(pool.shas)
    assert unscored_elsewhere(sqlite_engine, "older") == 0  # its own GIFs the job scores
    add_model_version(sqlite_engine, pool.shas[:5], designed_scores(5))
    assert unscored_elsewhere(sqlite_engine, "new") == len(pool.shas) - 5

    # Another workspace's pool is not this workspace's business (its job detail counted them).
    from sqlalchemy import update

    from scorer.store import Pool
    with session_scope(sqlite_engine) as s:
        s.execute(update(Pool).where(Pool.name == "older").values(owner="slack:T2"))
    assert unscored_elsewhere(sqlite_engine, "new", "slack:T1") == 0
    assert unscored_elsewhere(sqlite_engine, "new", "slack:T2") == len(pool.shas) - 5
    assert unscored_elsewhere(sqlite_engine, "new") == len(pool.shas) - 5  # the operator sees all


async def test_quick_parallel_shuffles_and_picks_lose_nothing(settings, engine) -> None:  # type: ignore[no-untyped-def]
    """SQLite ignores FOR UPDATE: three Shuffles at once once returned the same GIF three
    times and lost GIFs from `shown` (Send then posted one no longer on screen); three picks on
    one question opened three previews. On SQLite and PostgreSQL alike."""
    env = Env(settings, engine)
    alice = env.actor()
    for _trial in range(3):
        env.now[0] += 60
        first = await env.core.request(alice, "happy")
        sid = first.preview.session_id
        got = await asyncio.gather(*(env.core.shuffle(alice, sid) for _ in range(3)))
        shown_now = [r.preview.cards[0].sha256 for r in got if r.kind == "preview"]
        assert len(shown_now) == 3 and len(set(shown_now) | {first.preview.cards[0].sha256}) == 4
        with session_scope(env.engine) as s:
            assert len(set(s.get(ChatSession, sid).shown)) == 4
        await env.core.cancel(alice, sid)
    env.now[0] += 60
    asked = await env.core.request(alice, "welp")
    assert asked.kind == "did_you_mean"
    picks = await asyncio.gather(*(env.core.choose(alice, asked.ask_id, e) for e in asked.choices))
    assert sorted(r.kind for r in picks) == ["closed", "closed", "preview"], picks


async def test_a_vote_that_cannot_count_says_so_plainly_and_is_no_ack(env: Env) -> None:
    """Its pool removed, a posted GIF's vote once came back "ack" (the page marked it as
    chosen) with the ledger's own reason, a SHA prefix and all."""
    from scorer.pool import remove_pool

    alice = env.actor()
    sid = (await env.core.request(alice, "happy")).preview.session_id
    posted = await env.core.send(alice, sid)
    remove_pool(env.engine, "demo")
    vote = await env.core.vote(env.actor("bob"), post_id=posted.post.post_id, up=True)
    assert vote.kind == "error" and vote.text == "That vote was not counted: that GIF is no longer in any pool here."


async def test_metrics_count_sends_and_only_requests_that_were_answered(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """A busy workspace's /metrics showed 1,068 "unknown" requests where 351 were asked
    about (the rest were turned away by the cooldown), and no count of Sends at all."""
    from bot.health import REGISTRY

    env = Env(sqlite_settings, sqlite_engine, cooldown_s=60.0)

    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"platform": "test", **labels}) or 0.0

    unknown, posted, back = (count("moodgif_requests_total", emotion="unknown"),
                             count("moodgif_sends_total", outcome="posted"),
                             count("moodgif_sends_total", outcome="taken_back"))
    alice, bob = env.actor(), env.actor("bob")
    asked = await env.core.request(alice, "printer")  # asks which feeling: takes the cooldown token
    assert asked.kind in {"did_you_mean", "help"} and asked.ask_id
    assert (await env.core.request(alice, "printer")).kind == "cooldown"
    assert (await env.core.request(alice, "")).kind == "help"  # the list: no GIF request
    assert count("moodgif_requests_total", emotion="unknown") == unknown + 1

    async def publish(post):  # type: ignore[no-untyped-def]
        return f"C1:{post.post_id}"

    async def refused(post):  # type: ignore[no-untyped-def]
        return None

    sid = (await env.core.request(bob, "happy")).preview.session_id
    assert (await env.core.send_and_publish(bob, sid, None, refused)).reply.kind == "not_posted"
    assert (await env.core.send_and_publish(bob, sid, None, publish)).reply.kind == "posted"
    assert count("moodgif_sends_total", outcome="posted") == posted + 2
    assert count("moodgif_sends_total", outcome="taken_back") == back + 1

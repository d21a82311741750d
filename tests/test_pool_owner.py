"""Pools belong to whoever added them (QA's hole: a Discord server's admin added GIFs to a pool
another server used, and its own pool reached every server's suggestions).

The operator's pools (the CLI, the web admin, the demo: owner "") are every workspace's; a pool
added from chat is its workspace's alone: another workspace cannot add to it, list it, choose
it for a channel, rank its GIFs, or read its jobs in `stats`. Driven through `BotCore` as the
adapters drive it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv

import numpy as np
import pytest
from _bot_pool import add_model_version, demo_manifest
from sqlalchemy import select
from test_core import Env

from bot.events import Actor
from bot.flows import admin as adm
from bot.flows.jobs import POOL_ADD, RUNNERS, drain, enqueue, job_state
from scorer.emotions import N_EMOTIONS
from scorer.pool import ingest, list_pools
from scorer.pool_storage import PoolError
from scorer.store import CoreJob, Pool, Prediction, session_scope

A, B = "discord:111", "discord:222"  # two Discord servers sharing one installation


def _admin(workspace: str, channel: str = "general") -> Actor:
    platform, guild = workspace.split(":")
    return Actor(platform, guild, channel, f"admin-{guild}", is_admin=True)


def _user(workspace: str, channel: str = "general") -> Actor:
    platform, guild = workspace.split(":")
    return Actor(platform, guild, channel, f"user-{guild}")


def _manifest_shas(manifest) -> list[str]:  # type: ignore[no-untyped-def]
    with manifest.open(newline="") as fh:
        return [row["sha256"] for row in csv.DictReader(fh)]


@pytest.fixture
def own_gifs():  # type: ignore[no-untyped-def]
    """Four GIFs no other pool has (another seed than the demo pool's), in an admin folder."""
    return demo_manifest(count=4, seed=23)


@pytest.fixture
def env(settings, engine, own_gifs) -> Env:  # type: ignore[no-untyped-def]
    """The operator's demo pool (added as the CLI adds it), scored; chat admins may name
    files under the folder of `own_gifs`."""
    return Env(settings, engine, fetch__admin_source_dirs=[str(own_gifs.parent)], poll_share=1.0)


def _best_everywhere(env: Env, shas: list[str]) -> None:
    """The worker's scoring, standing in for the encoders: a new active version where `shas`
    are the best GIFs for every feeling (and the demo pool keeps its scores)."""
    with session_scope(env.engine) as s:
        scored = set(s.scalars(select(Prediction.gif_sha)))
    new = [sha for sha in shas if sha not in scored]
    add_model_version(env.engine, [*env.pool.shas, *new],
                      np.vstack([env.scores * 0.5, np.ones((len(new), N_EMOTIONS), np.float32)]))


@pytest.fixture
def worker(env: Env, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The worker child run in this process: the real pool add (ingest with the job's owner),
    its scoring replaced by `_best_everywhere`."""
    import bot.intent
    import scorer.pipeline

    class _Parser:
        distribution = None

    def score_pool(settings, engine, *, pool, **_):  # type: ignore[no-untyped-def]
        from scorer.pool import pool_gifs

        _best_everywhere(env, pool_gifs(engine, pool))

    monkeypatch.setattr(scorer.pipeline, "score_pool", score_pool)
    monkeypatch.setattr(bot.intent, "get_parser", lambda settings=None: _Parser())
    env.core.job_queue.start_worker = lambda settings: drain(settings, env.engine)
    return env


async def _finished(env: Env) -> CoreJob:
    """The newest job, once the worker has run it (and the ranker has seen the result)."""
    job = env.core.jobs[-1]
    await asyncio.wait_for(job.task, 60)
    with session_scope(env.engine) as s:
        row = s.get(CoreJob, job.id)
        s.expunge(row)
    return row


async def _suggested(env: Env, actor: Actor) -> list[str]:
    got = await env.core.suggest("happy", 100, actor=actor)
    assert got.ranked is not None
    return got.ranked.shas


# ---------------------------------------------------------------------------------------
# QA's scenario


async def test_a_workspace_cannot_add_to_the_operators_pool_another_uses(worker: Env, own_gifs) -> None:
    env = worker
    assert (await env.core.run_admin(_admin(A), adm.SetChannel("pools", "demo"))).kind == "ack"
    refused = await env.core.run_admin(_admin(B), adm.AddPool("demo", str(own_gifs)))
    assert refused.kind == "error"
    assert refused.text == "pool demo is shared by this installation's operator: choose another name"
    assert env.core.jobs == []  # refused at once: nothing queued
    first = (await env.core.request(_user(A), "happy")).preview.cards[0].sha256
    assert first in env.pool.shas and first not in _manifest_shas(own_gifs)
    assert {p["name"]: p["gifs"] for p in list_pools(env.engine)} == {"demo": len(env.pool.shas)}


async def test_a_workspaces_own_pool_never_reaches_another_workspace(worker: Env, own_gifs) -> None:
    env = worker
    added = await env.core.run_admin(_admin(B), adm.AddPool("bees", str(own_gifs)))
    assert added.kind == "ack", added.text
    row = await _finished(env)
    assert row.state == "done", row.detail
    assert row.args["owner"] == B  # the job carries whose the pool is
    with session_scope(env.engine) as s:
        assert s.scalar(select(Pool.owner).where(Pool.name == "bees")) == B
    bees = set(_manifest_shas(own_gifs))
    # B's GIFs are now the best for every feeling: B's channels offer them first ...
    assert (await _suggested(env, _user(B)))[0] in bees
    assert (await env.core.request(_user(B), "happy")).preview.cards[0].sha256 in bees
    # ... and A's channels (no pools setting: "every pool") never offer any of them
    assert not bees & set(await _suggested(env, _user(A)))
    assert (await env.core.request(_user(A), "happy")).preview.cards[0].sha256 not in bees
    # nor do A's polls ask about them
    for _ in range(5):
        poll = (await env.core.request_with_poll(_user(A), "happy")).poll
        assert poll is not None and not bees & {poll.poll.left.sha256, poll.poll.right.sha256}
    # A cannot list B's pool, choose it for a channel, or add to it
    listed = (await env.core.run_admin(_admin(A), adm.ListPools())).text
    assert "bees" not in listed and "demo" in listed
    chosen = await env.core.run_admin(_admin(A), adm.SetChannel("pools", "bees"))
    assert chosen.kind == "error" and chosen.text.startswith("No pool named bees here")
    taken = await env.core.run_admin(_admin(A), adm.AddPool("bees", str(own_gifs)))
    assert (taken.kind, taken.text) == ("error", "pool bees belongs to another workspace: choose another name")
    assert "bees: 4 GIFs, 4 ranked (this workspace's)" in (
        await env.core.run_admin(_admin(B), adm.ListPools())).text


async def test_a_channel_limited_to_another_workspaces_pool_gets_none_of_it(worker: Env, own_gifs) -> None:
    """A pools setting made before pools had owners (or written by hand) naming another
    workspace's pool ranks nothing from it: never "every pool" either."""
    from bot.scoped_settings import set_scoped

    env = worker
    ingest(env.settings, env.engine, "bees", str(own_gifs), owner=B)
    _best_everywhere(env, _manifest_shas(own_gifs))
    set_scoped(env.engine, "discord", "111", "general", "pools", ["bees"])
    reply = await env.core.request(_user(A), "happy")
    assert reply.kind == "empty_pool" and "no longer exist (bees)" in reply.text
    set_scoped(env.engine, "discord", "222", "general", "pools", ["bees"])
    assert (await env.core.request(_user(B), "happy")).kind == "preview"


async def test_a_topic_only_another_workspace_has_reads_as_no_such_gifs(worker: Env, own_gifs) -> None:
    """"happy giraffe" where only B's private pool has giraffes: A hears "no giraffe GIFs in
    this pool", as for a word no GIF has, never "not allowed in this channel" (which said B
    has them); B gets its giraffes."""
    env = worker
    rows = list(csv.DictReader(own_gifs.open(newline="")))
    giraffes = own_gifs.parent / "giraffes.csv"  # beside the GIFs: a manifest reads its own folder
    with giraffes.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        for row in rows:
            out.writerow({**row, "title": "giraffe waving", "tags": "giraffe"})
    ingest(env.settings, env.engine, "zoo", str(giraffes), owner=B)
    _best_everywhere(env, _manifest_shas(own_gifs))
    a = await env.core.request(_user(A), "happy giraffe")
    assert a.kind == "preview" and a.preview.cards[0].sha256 not in set(_manifest_shas(own_gifs))
    assert a.text == "No giraffe GIFs in this pool; here's happiness.", a.text
    assert "giraffe" not in (a.preview.interpretation or "").replace("no GIFs here about “giraffe”", "")
    b = await env.core.request(_user(B), "happy giraffe")
    assert b.preview.cards[0].sha256 in set(_manifest_shas(own_gifs))


def _retitled(manifest, name: str, title: str, tags: str):  # type: ignore[no-untyped-def]
    """A copy of `manifest` beside its GIFs (a manifest reads its own folder), every GIF
    titled `title` and tagged `tags`."""
    rows = list(csv.DictReader(manifest.open(newline="")))
    out = manifest.parent / name
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "title": title, "tags": tags})
    return out


async def test_another_workspaces_topic_words_do_not_change_this_ones_reading(worker: Env, own_gifs) -> None:
    """"happy coffee giraffe" where the shared pool has coffee GIFs and only B's private pool
    has giraffes drinking coffee: A gets its coffee GIFs, as if B's pool did not exist. The
    whole reading fell back to no topic at all (B's GIFs were the ones with both words), so A
    lost its coffee GIFs, and learnt that another workspace has such GIFs."""
    env = worker
    cafe = demo_manifest(count=4, seed=29)
    ingest(env.settings, env.engine, "cafe", str(_retitled(cafe, "coffee.csv", "coffee mug", "coffee")))
    ingest(env.settings, env.engine, "zoo", str(_retitled(own_gifs, "giraffes.csv", "giraffe drinking coffee",
                                                          "giraffe;coffee")), owner=B)
    coffee = set(_manifest_shas(cafe))
    _best_everywhere(env, [*coffee, *_manifest_shas(own_gifs)])
    a = await env.core.request(_user(A), "happy coffee giraffe")
    assert a.kind == "preview" and a.preview is not None
    assert {c.sha256 for c in a.preview.cards} <= coffee, a.preview.cards
    assert "topic: coffee" in (a.preview.interpretation or ""), a.preview.interpretation
    b = await env.core.request(_user(B), "happy coffee giraffe")
    assert {c.sha256 for c in b.preview.cards} <= set(_manifest_shas(own_gifs))


async def test_stats_show_only_the_jobs_this_workspace_queued(env: Env, monkeypatch, own_gifs) -> None:
    monkeypatch.setitem(RUNNERS, POOL_ADD, lambda settings, engine, args: "stood in for the pool add")
    monkeypatch.setitem(RUNNERS, "retrain", lambda settings, engine, args: "retrained")
    env.core.job_queue.start_worker = lambda settings: drain(settings, env.engine)
    source = str(own_gifs)
    await env.core.run_admin(_admin(A), adm.AddPool("ays", source))
    await _finished(env)
    await env.core.run_admin(_admin(A), adm.Retrain())
    await _finished(env)
    web_add = enqueue(env.engine, POOL_ADD, {"name": "ops", "source": "https://example.com/ops.txt"},
                      "add pool ops from https://example.com/ops.txt")  # the operator's
    mine = (await env.core.run_admin(_admin(A), adm.Stats())).text
    theirs = (await env.core.run_admin(_admin(B), adm.Stats())).text
    assert f"add pool ays from {source}" in mine and "retrain: done" in mine
    assert "ays" not in theirs and source not in theirs and "ops" not in theirs
    assert "retrain: done - retrained" in theirs  # the installation's retrains: no source in them
    assert job_state(env.engine, web_add)[0] == "queued"


async def test_stats_count_this_workspaces_gifs_posts_and_votes(worker: Env, own_gifs) -> None:
    """`stats` said "GIFs ranked (whole installation): 28", so B learnt that another workspace
    had 4 private GIFs, and its post and vote counts were every workspace's."""
    env = worker
    assert (await env.core.run_admin(_admin(A), adm.AddPool("bees", str(own_gifs)))).kind == "ack"
    assert (await _finished(env)).state == "done"
    env.core.ranker.refresh()
    shared = len(env.pool.shas)
    preview = (await env.core.request(_user(A), "happy")).preview
    assert preview is not None
    await env.core.send(_user(A), preview.session_id)
    theirs = (await env.core.run_admin(_admin(B), adm.Stats())).text
    mine = (await env.core.run_admin(_admin(A), adm.Stats())).text
    assert f"GIFs ranked (this workspace): {shared}\n" in theirs, theirs
    assert f"GIFs ranked (this workspace): {shared + 4}\n" in mine, mine
    assert "posts: 0; comparisons: 0 (none yet) from 0 people (this workspace)" in theirs
    assert "posts: 1;" in mine and "whole installation" not in mine + theirs


# ---------------------------------------------------------------------------------------
# the worker checks again


async def test_the_worker_refuses_a_name_another_workspace_took_meanwhile(worker: Env, own_gifs) -> None:
    """Two workspaces asked for the same new name; A's add ran first. B's job, queued while
    the name was free, is refused in the worker and leaves A's pool as it was."""
    env = worker
    queued = enqueue(env.engine, POOL_ADD, {"name": "race", "source": str(own_gifs), "owner": B},
                     "add pool race")
    ingest(env.settings, env.engine, "race", str(own_gifs), owner=A)
    assert drain(env.settings, env.engine) == 1
    assert job_state(env.engine, queued) == (
        "failed", "pool race belongs to another workspace: choose another name")
    assert [(p["name"], p["owner"], p["gifs"]) for p in list_pools(env.engine) if p["name"] == "race"] == [
        ("race", A, 4)]


def test_a_refused_add_never_drops_the_pool_another_workspace_created(env: Env, own_gifs) -> None:
    """A pool created by someone else after this add looked (empty so far) is not this add's
    to clean up when it fails."""
    from scorer.pool_storage import PoolError, drop_pool_if_empty, get_or_create_pool

    get_or_create_pool(env.engine, "fresh", A)
    with pytest.raises(PoolError, match="belongs to another workspace"):
        get_or_create_pool(env.engine, "fresh", B)
    assert not drop_pool_if_empty(env.engine, "fresh", B)
    assert "fresh" in [p["name"] for p in list_pools(env.engine)]


# ---------------------------------------------------------------------------------------
# single tenant: as before


async def test_the_operators_pools_are_ranked_in_every_workspace_unfiltered(env: Env) -> None:
    """One operator's pools (the CLI's): every workspace ranks them, with no pool filter at
    all (the single-tenant fast path: one cached penalty for every channel)."""
    matrix = env.core.ranker.matrix()
    for workspace in (A, B, "slack:T1"):
        assert matrix.channel_pools([], workspace) is None
        got = (await env.core.request(_user(workspace), "happy")).preview.cards[0].sha256
        assert got == env.best(n=1)[0]
    assert set(matrix._penalties) == {(None, "pg-13")}  # every channel: the one unfiltered penalty
    assert (await env.core.run_admin(_admin(A), adm.SetChannel("pools", "demo"))).kind == "ack"
    assert "demo: 24 GIFs" in (await env.core.run_admin(_admin(B), adm.ListPools())).text


async def test_a_workspace_adds_to_its_own_pool_again(worker: Env, own_gifs) -> None:
    env = worker
    assert (await env.core.run_admin(_admin(B), adm.AddPool("bees", str(own_gifs)))).kind == "ack"
    assert (await _finished(env)).state == "done"
    again = await env.core.run_admin(_admin(B), adm.AddPool("bees", str(own_gifs)))
    assert again.kind == "ack", again.text
    row = await _finished(env)
    assert row.state == "done" and "bees: 0 added, 4 duplicates" in row.detail, row.detail
    assert [p["owner"] for p in list_pools(env.engine) if p["name"] == "bees"] == [B]


def test_the_operator_cannot_fill_a_name_a_workspace_took_first(env: Env, own_gifs) -> None:
    """A server squats `bees` from chat: `moodgif pool add bees` (the operator) is refused in one
    line instead of filling that server's private pool, and nothing is added."""
    ingest(env.settings, env.engine, "bees", str(own_gifs), owner=B)
    before = [p for p in list_pools(env.engine) if p["name"] == "bees"]
    with pytest.raises(PoolError, match=f"pool bees belongs to the chat workspace {B} .*choose another name"):
        ingest(env.settings, env.engine, "bees", str(env.pool.manifest))
    assert [p for p in list_pools(env.engine) if p["name"] == "bees"] == before


async def test_hide_never_names_a_gif_of_another_workspaces_pool(env: Env, own_gifs) -> None:
    """`hide SHA` once looked in every pool: another workspace's GIF was found, its title
    read back ("Hidden: ...") and added to this workspace's hidden list."""
    from bot.flows.hiding import HideGif, ListHidden

    ingest(env.settings, env.engine, "bees", str(own_gifs), owner=B)
    _best_everywhere(env, _manifest_shas(own_gifs))
    bee = _manifest_shas(own_gifs)[0]
    refused = await env.core.run_admin(_admin(A), HideGif(bee[:12]))
    assert refused.text == f"No GIF here has a SHA-256 starting with {bee[:12]}, or more than one does."
    assert (await env.core.run_admin(_admin(A), ListHidden())).text == "No GIF is hidden in this workspace."
    assert (await env.core.run_admin(_admin(B), HideGif(bee[:12]))).text.startswith("Hidden: ")
    shared = env.pool.shas[0]  # the operator's pool: every workspace may hide its GIFs
    assert (await env.core.run_admin(_admin(A), HideGif(shared[:12]))).text.startswith("Hidden: ")


async def test_the_operator_gives_a_shared_pool_to_the_workspace_that_added_it(
        env: Env, own_gifs, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool a workspace's admin added from chat before pools had owners became shared, and
    there was no way to give it back: `moodgif pool owner NAME OWNER`, followed by a running bot."""
    from click.testing import CliRunner

    from bot.cli import cli
    from bot.scoped_settings import set_scoped
    from bot.score_matrix import version_stamp

    ingest(env.settings, env.engine, "bees", str(own_gifs))  # as migration 0010 left it: shared
    _best_everywhere(env, _manifest_shas(own_gifs))
    bees = set(_manifest_shas(own_gifs))
    env.core.ranker.refresh()
    assert (await _suggested(env, _user(A)))[0] in bees  # B's GIFs in A's channels
    set_scoped(env.engine, "discord", "111", "bees-only", "pools", ["bees"])  # A chose it, while it could
    monkeypatch.setenv("MOODGIF_HOME", str(env.settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", env.settings.db_url)
    runner = CliRunner()

    listed = runner.invoke(cli, ["pool", "list"]).stdout
    assert "owner shared" in next(line for line in listed.splitlines() if line.startswith("bees"))
    stamp = version_stamp(env.engine)
    res = runner.invoke(cli, ["pool", "owner", "bees", B])
    assert res.exit_code == 0, res.output
    assert "pool bees now belongs to discord:222 (was shared): only that workspace" in res.stdout
    assert "warning: 1 channel(s) or workspace(s)" in res.stderr and "discord/111/bees-only" in res.stderr
    assert version_stamp(env.engine) != stamp  # what tells a running bot to rebuild its matrix
    env.core.ranker.refresh()
    assert not bees & set(await _suggested(env, _user(A)))
    assert (await _suggested(env, _user(B)))[0] in bees
    assert "bees" not in (await env.core.run_admin(_admin(A), adm.ListPools())).text
    assert [p["owner"] for p in list_pools(env.engine) if p["name"] == "bees"] == [B]
    assert "owner discord:222" in runner.invoke(cli, ["pool", "list"]).stdout

    again = runner.invoke(cli, ["pool", "owner", "bees", B])
    assert again.exit_code == 0 and "already belongs to discord:222; nothing changed" in again.stdout
    shared = runner.invoke(cli, ["pool", "owner", "bees", "shared"])
    assert shared.exit_code == 0 and "now belongs to shared (was discord:222): every workspace" in shared.stdout
    for bad in ("T123", "slack:", "discord:abc", "everyone"):
        res = runner.invoke(cli, ["pool", "owner", "bees", bad])
        assert res.exit_code == 2 and "is not an owner" in res.output, res.output
    res = runner.invoke(cli, ["pool", "owner", "wasps", B])
    assert res.exit_code == 1 and "no pool named 'wasps'" in res.output


def test_a_refusal_names_the_owners_platform_in_its_own_words() -> None:
    """Discord turned "another workspace" into "another server" for a pool a Slack workspace
    owns; each platform's own word now, and a Slack workspace stays one on Discord."""
    from bot.adapters.discord_views import admin_wording
    from scorer.pool_owners import add_refusal

    assert add_refusal("p", "slack:T2", "slack:T1") == "pool p belongs to another workspace: choose another name"
    assert add_refusal("p", "discord:2", "discord:1") == "pool p belongs to another workspace: choose another name"
    assert admin_wording(add_refusal("p", "discord:2", "discord:1")) == (
        "pool p belongs to another server: choose another name")
    assert admin_wording(add_refusal("p", "slack:T2", "discord:1")) == (
        "pool p belongs to a Slack workspace: choose another name")
    assert add_refusal("p", "discord:2", "slack:T1") == "pool p belongs to a Discord server: choose another name"
    assert add_refusal("p", "slack:T1", "slack:T1") == ""

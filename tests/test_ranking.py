"""Ranking: posterior scores, exploration, filters, no repeats, and reloading on activation."""

from __future__ import annotations

import numpy as np
import pytest
from _bot_pool import (
    add_bt_fit,
    add_model_version,
    demo_manifest,
    designed_scores,
    ingest_demo,
)
from sqlalchemy import update

from bot.ranking import NOT_SCORED_NOTE, Ranker, rank
from bot.score_matrix import PRIOR_SD, FitPosterior, build_matrix, load_matrix
from scorer.demo_pool import read_truth
from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.store import Gif, ModelVersion, session_scope
from training.comparisons import record_poll

HAPPY = INDEX["happiness"]


def _shas(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


def _matrix(n: int = 50, ratings: list[str] | None = None, pools: dict | None = None, **kw):
    prior = kw.pop("prior", designed_scores(n))
    return build_matrix(_shas(n), ratings or ["g"] * n, pools or {"p": np.ones(n, bool)},
                        prior=prior, **kw)


def test_greedy_ranking_follows_the_posterior_mean() -> None:
    m = _matrix()
    got = rank(m, HAPPY, 5, rng=np.random.default_rng(0), exploration="none")
    expected = np.argsort(-designed_scores(50)[:, HAPPY], kind="stable")[:5]
    assert got.shas == [_shas(50)[i] for i in expected]
    assert got.means == sorted(got.means, reverse=True)
    assert got.eligible == 50 and got.note == ""


def test_rating_ceiling_and_pools_filter() -> None:
    n = 30
    ratings = ["g", "pg", "pg-13", "r", None] * 6
    in_a = np.arange(n) < 15
    m = _matrix(n, ratings=ratings, pools={"a": in_a, "b": ~in_a})
    got = rank(m, HAPPY, n, rng=np.random.default_rng(0), ceiling="pg", exploration="none")
    idx = [int(s, 16) for s in got.shas]
    assert idx and all(ratings[i] in {"g", "pg"} for i in idx)
    # unknown rating counts as pg-13: shown under pg-13, hidden under pg
    got13 = rank(m, HAPPY, n, rng=np.random.default_rng(0), ceiling="pg-13", exploration="none")
    assert any(ratings[int(s, 16)] is None for s in got13.shas)
    assert not any(ratings[int(s, 16)] == "r" for s in got13.shas)
    only_b = rank(m, HAPPY, n, rng=np.random.default_rng(0), pools=["b"], ceiling="r",
                  exploration="none")
    assert len(only_b.shas) == 15 and all(int(s, 16) >= 15 for s in only_b.shas)
    assert rank(m, HAPPY, 3, rng=np.random.default_rng(0), pools=["nope"]).shas == []


def test_session_exclusions_are_hard_and_channel_repeats_soft() -> None:
    m = _matrix(10)
    rng = np.random.default_rng(0)
    everything = _shas(10)
    best = rank(m, HAPPY, 1, rng=rng, exploration="none").shas[0]
    second = rank(m, HAPPY, 1, rng=rng, exploration="none", exclude=[best]).shas[0]
    assert second != best
    assert rank(m, HAPPY, 1, rng=rng, exploration="none", soft_exclude=[best]).shas == [second]
    # every GIF posted recently: the channel's repeats come back rather than nothing
    relaxed = rank(m, HAPPY, 2, rng=rng, exploration="none", soft_exclude=everything)
    assert relaxed.relaxed_repeats and relaxed.shas[0] == best
    # ...but never one already shown in this session
    none_left = rank(m, HAPPY, 2, rng=rng, exclude=everything, soft_exclude=everything)
    assert none_left.shas == []


def test_thompson_explores_uncertain_gifs_and_ucb_is_optimistic() -> None:
    n = 20
    prior = np.full((n, N_EMOTIONS), 0.5, np.float32)
    prior[0, HAPPY] = 0.6  # best mean, certain
    bt_scaled = prior.copy()
    bt_sd = np.full((n, N_EMOTIONS), 1e-3, np.float32)
    bt_mask = np.ones(n, bool)
    bt_mask[1] = False  # GIF 1 keeps the prior's width: nobody voted on it
    m = _matrix(n, prior=prior, fit=FitPosterior(bt_scaled, bt_sd, bt_mask, has_prior=True))
    rng = np.random.default_rng(1)
    firsts = [rank(m, HAPPY, 1, rng=rng).shas[0] for _ in range(400)]
    share_new = firsts.count(_shas(n)[1]) / len(firsts)
    # P(N(0.5, 0.2) > 0.6) is about 0.31: the unvoted GIF gets shown, the certain ones never
    assert 0.2 < share_new < 0.45
    assert set(firsts) <= {_shas(n)[0], _shas(n)[1]}
    assert rank(m, HAPPY, 1, rng=rng, exploration="ucb").shas == [_shas(n)[1]]
    assert rank(m, HAPPY, 1, rng=rng, exploration="none").shas == [_shas(n)[0]]


def test_bt_evidence_updates_the_prior() -> None:
    n = 4
    prior = np.full((n, N_EMOTIONS), 0.5, np.float32)
    bt = np.full((n, N_EMOTIONS), 0.9, np.float32)
    sd = np.full((n, N_EMOTIONS), PRIOR_SD, np.float32)  # as sure as the prior
    mask = np.array([True, False, False, False])
    m = _matrix(n, prior=prior, fit=FitPosterior(bt, sd, mask))
    assert m.mean[HAPPY, 0] == pytest.approx(0.7, abs=1e-5)  # halfway: equal precisions
    assert m.sd[HAPPY, 0] == pytest.approx(PRIOR_SD / np.sqrt(2), rel=1e-4)
    assert m.mean[HAPPY, 1] == pytest.approx(0.5) and m.sd[HAPPY, 1] == pytest.approx(PRIOR_SD)
    m2 = _matrix(n, prior=prior, fit=FitPosterior(bt, sd, mask, has_prior=True))
    assert m2.mean[HAPPY, 0] == pytest.approx(0.9)  # the fit already is the posterior


def test_unscored_pool_is_random_with_a_note_and_unscored_gifs_wait_otherwise() -> None:
    n = 12
    m = build_matrix(_shas(n), ["g"] * n, {"p": np.ones(n, bool)}, prior=None)
    assert not m.scored
    firsts = {rank(m, HAPPY, 1, rng=np.random.default_rng(s)).shas[0] for s in range(40)}
    assert len(firsts) > 4
    assert rank(m, HAPPY, 1, rng=np.random.default_rng(0)).note == NOT_SCORED_NOTE
    mask = np.arange(n) < 6
    partial = build_matrix(_shas(n), ["g"] * n, {"p": np.ones(n, bool)},
                           prior=designed_scores(n), prior_mask=mask)
    assert partial.scored and partial.size == 6


@pytest.mark.slow
def test_a_million_gifs_rank_without_a_python_loop() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    prior = rng.random((n, N_EMOTIONS), dtype=np.float32)
    m = build_matrix([str(i) for i in range(n)], ["g"] * n, {"p": np.ones(n, bool)}, prior=prior)
    got = rank(m, HAPPY, 3, rng=rng, exploration="none")
    assert got.shas == [str(i) for i in np.argsort(-prior[:, HAPPY])[:3]]


# ------------------------------------------------------------------ from the database


@pytest.fixture
def pool(settings, engine):
    return ingest_demo(settings, engine, demo_manifest())


def test_load_matrix_uses_the_active_model_version(settings, engine, pool) -> None:
    m0 = load_matrix(engine)
    assert not m0.scored and m0.size == len(pool.shas)
    scores = designed_scores(len(pool.shas))
    mv = add_model_version(engine, pool.shas, scores)
    m = load_matrix(engine)
    assert m.scored and m.model_version_id == mv and m.size == len(pool.shas)
    got = rank(m, HAPPY, 3, rng=np.random.default_rng(0), exploration="none", ceiling="r")
    expected = [pool.shas[i] for i in np.argsort(-scores[:, HAPPY], kind="stable")[:3]]
    assert got.shas == expected


def test_ranking_never_reads_the_manifest_truth(settings, engine, pool) -> None:
    truth = read_truth(pool.manifest)
    t = np.stack([truth[s] for s in pool.shas])
    # a model that believes the opposite of the truth: the ranking must follow the model
    add_model_version(engine, pool.shas, (1.0 - t).astype(np.float32))
    got = rank(load_matrix(engine), HAPPY, 1, rng=np.random.default_rng(0),
               exploration="none", ceiling="r")
    assert got.shas == [pool.shas[int(np.argmin(t[:, HAPPY]))]]


def test_ratings_come_from_the_gifs_table(settings, engine, pool) -> None:
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    with session_scope(engine) as s:
        s.execute(update(Gif).values(rating="r"))
        s.execute(update(Gif).where(Gif.sha256 == pool.shas[0]).values(rating="g"))
    got = rank(load_matrix(engine), HAPPY, 5, rng=np.random.default_rng(0), ceiling="g")
    assert got.shas == [pool.shas[0]]


def _polls(engine, winner: str, losers: list[str], emotion: int, times: int = 1) -> None:
    for _ in range(times):
        for loser in losers:
            record_poll(engine, emotion=emotion, left=winner, right=loser, answer="left", who="")


def test_bt_fit_with_votes_moves_a_gif_up(settings, engine, pool) -> None:
    scores = designed_scores(len(pool.shas)) * 0.9  # the model's best is 0.9
    mv = add_model_version(engine, pool.shas, scores)
    worst = pool.shas[int(np.argmin(scores[:, HAPPY]))]
    _polls(engine, worst, [s for s in pool.shas if s != worst][:5], HAPPY, times=4)
    rows = {}
    for i, sha in enumerate(pool.shas):
        theta = np.zeros(N_EMOTIONS, np.float32) + (i % 5) * 0.1
        rows[sha] = (theta, np.full(N_EMOTIONS, 0.5, np.float32), 1 / (1 + np.exp(-theta)), 0)
    theta = np.full(N_EMOTIONS, 4.0, np.float32)
    rows[worst] = (theta, np.full(N_EMOTIONS, 0.05, np.float32), 1 / (1 + np.exp(-theta)), 20)
    fit = add_bt_fit(engine, rows, prior_model_version_id=mv)
    m = load_matrix(engine)
    assert m.fit_id == fit and m.n_bt == 6  # the worst GIF and the five it beat
    i = m.index[worst]
    assert m.mean[HAPPY, i] == pytest.approx(1 / (1 + np.exp(-4.0)), abs=1e-4)
    # se through the logistic map's derivative p(1-p): much narrower than the prior
    assert m.sd[HAPPY, i] < 0.01
    # compared on happiness only: its other emotions keep the model's prediction
    fear = INDEX["fear"]
    assert m.mean[fear, i] == pytest.approx(scores[pool.shas.index(worst), fear])
    assert m.sd[fear, i] == pytest.approx(PRIOR_SD)
    got = rank(m, HAPPY, 1, rng=np.random.default_rng(0), exploration="none", ceiling="r")
    assert got.shas == [worst]


def test_a_degenerate_fit_scale_cannot_pin_a_gif(settings, engine, pool) -> None:
    # a fit whose [0, 1] map collapsed (scaled stuck at 0/1) and that had no model prior
    scores = designed_scores(len(pool.shas))
    add_model_version(engine, pool.shas, scores)
    a, b, c = pool.shas[:3]
    _polls(engine, a, [b], HAPPY)
    _polls(engine, b, [c], HAPPY)
    rows = {}
    for sha in pool.shas:
        theta = np.full(N_EMOTIONS, 0.3, np.float32)
        rows[sha] = (theta, np.full(N_EMOTIONS, 3.16, np.float32),
                     np.full(N_EMOTIONS, 0.24, np.float32), 0)
    for sha, t in ((a, 0.8), (b, 0.3), (c, -0.2)):
        theta = np.full(N_EMOTIONS, t, np.float32)
        rows[sha] = (theta, np.full(N_EMOTIONS, 2.5, np.float32),
                     np.where(theta > 0.3, 1.0, 0.0).astype(np.float32), 1)
    add_bt_fit(engine, rows, prior_model_version_id=None)
    m = load_matrix(engine)
    ia, ic = m.index[a], m.index[c]
    # one or two votes with a wide se hardly move the model's prior, and never to 0 or 1
    for i, sha in ((ia, a), (ic, c)):
        prior = scores[pool.shas.index(sha), HAPPY]
        assert abs(m.mean[HAPPY, i] - prior) < 0.3
        assert 0.0 < m.mean[HAPPY, i] < 1.0
    assert m.mean[HAPPY, ia] - scores[0, HAPPY] > m.mean[HAPPY, ic] - scores[2, HAPPY]


def test_ranker_reloads_when_a_new_version_activates(settings, engine, pool) -> None:
    now = [0.0]
    ranker = Ranker(engine, clock=lambda: now[0], stamp_interval_s=5.0)
    first = ranker.matrix()
    assert not first.scored
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    now[0] = 1.0
    assert ranker.matrix() is first  # checked at most every few seconds
    now[0] = 6.0
    second = ranker.matrix()
    assert second is not first and second.scored
    now[0] = 12.0
    assert ranker.matrix() is second  # nothing changed: same snapshot
    with session_scope(engine) as s:
        s.execute(update(ModelVersion).values(status="retired"))
    assert not ranker.refresh().scored


def test_suggest_cli(sqlite_settings, sqlite_engine) -> None:
    import json

    from click.testing import CliRunner

    from bot.cli import cli

    pool = ingest_demo(sqlite_settings, sqlite_engine, demo_manifest())
    env = {"MOODGIF_HOME": str(sqlite_settings.home)}
    runner = CliRunner()
    before = runner.invoke(cli, ["suggest", "happy", "--json"], env=env)
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["note"].startswith("not scored yet")
    scores = designed_scores(len(pool.shas))
    add_model_version(sqlite_engine, pool.shas, scores)
    res = runner.invoke(cli, ["suggest", "so", "happy", "--k", "3", "--json"], env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    expected = [pool.shas[i] for i in np.argsort(-scores[:, HAPPY], kind="stable")[:3]]
    assert out["emotion"] == "happiness" and [g["sha256"] for g in out["gifs"]] == expected
    assert all(g["path"].endswith(".gif") for g in out["gifs"])
    text = runner.invoke(cli, ["suggest", "happy", "--k", "2"], env=env)
    assert text.exit_code == 0 and expected[0][:12] in text.stdout
    scoped = runner.invoke(cli, ["suggest", "happy", "--channel", "web/local/general"], env=env)
    assert scoped.exit_code == 0
    listed = runner.invoke(cli, ["suggest", "help"], env=env)  # asked for the list: it is the answer
    assert listed.exit_code == 0 and all(name in listed.stdout for name in NAMES), listed.output
    for asked in ("help", ""):  # a script asking for the list still reads JSON
        as_json = runner.invoke(cli, ["suggest", "--json", asked], env=env)
        assert as_json.exit_code == 0 and json.loads(as_json.stdout)["emotions"] == list(NAMES)
    unknown = runner.invoke(cli, ["suggest", "qwzx", "vbnm", "--json"], env=env)
    assert unknown.exit_code == 3 and "moodgif suggest:" in unknown.stderr
    answer = json.loads(unknown.stdout)  # a script still reads an answer
    assert answer["emotion"] is None and answer["gifs"] == [] and answer["reason"]
    for channel in ("nope", "irc/T1/C1", f"slack/T1/{'c' * 300}"):
        bad = runner.invoke(cli, ["suggest", "happy", "--channel", channel], env=env)
        assert bad.exit_code == 2 and "--channel" in bad.output, channel
    # a wall of text gets what chat answers it, not its first lines' GIFs
    wall = runner.invoke(cli, ["suggest", "--json", "I am so happy today because " * 60], env=env)
    assert wall.exit_code == 3 and json.loads(wall.stdout)["reason"].startswith("That's a lot of text")

    # topics: a topic alone, a feeling among a topic's GIFs, and a topic no GIF has
    from sqlalchemy import select, update

    from scorer.store import Gif

    with session_scope(sqlite_engine) as s:  # four GIFs about cats, as ingest keeps their words
        cats = sorted(s.scalars(select(Gif.sha256)))[:4]
        s.execute(update(Gif).where(Gif.sha256.in_(cats)).values(title="Cat being silly", tags=["cats"]))
    topic = json.loads(runner.invoke(cli, ["suggest", "cats", "--json"], env=env).stdout)
    assert topic["emotion"] is None and topic["topic"] == ["cats"] and {g["sha256"] for g in topic["gifs"]} == set(cats)
    shown = runner.invoke(cli, ["suggest", "cats", "--k", "2"], env=env).stdout
    assert shown.startswith("topic: cats (no feeling named") and "appeal " in shown and "unscored" not in shown
    assert "appeal 0.000" not in shown and all(g["score"] > 0 for g in topic["gifs"])  # each one's appeal
    scores = [g["score"] for g in topic["gifs"]]
    assert scores == sorted(scores, reverse=True)  # the best-liked first, without --explore
    again = json.loads(runner.invoke(cli, ["suggest", "cats", "--json"], env=env).stdout)
    assert [g["sha256"] for g in again["gifs"]] == [g["sha256"] for g in topic["gifs"]]
    both = json.loads(runner.invoke(cli, ["suggest", "happy", "cats", "--json"], env=env).stdout)
    assert both["emotion"] == "happiness" and both["topic"] == ["cats"]
    missing = runner.invoke(cli, ["suggest", "happy", "unicorn"], env=env).stdout
    assert missing.startswith("happiness (confidence") and "No unicorn GIFs in this pool; here's happiness." in missing
    missing_json = json.loads(runner.invoke(cli, ["suggest", "happy", "unicorn", "--json"], env=env).stdout)
    assert missing_json["topic_missing"] == ["unicorn"] and missing_json["note"] == "No unicorn GIFs in this pool; here's happiness"


def test_background_ranker_keeps_serving_while_it_rebuilds(settings, engine, pool) -> None:
    now = [0.0]
    ranker = Ranker(engine, clock=lambda: now[0], stamp_interval_s=5.0, background=True)
    first = ranker.matrix()
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    now[0] = 6.0
    assert ranker.matrix() is first  # the change is noticed; the old snapshot still answers
    ranker.wait_idle()
    assert ranker.matrix().scored


def test_what_a_workspace_may_see_is_counted_and_masked_once_per_snapshot() -> None:
    """A workspace's visible rows are read by every topic request: the mask is built once per
    snapshot (a 1M-row pass each time before), and shared by workspaces that see the same."""
    n = 10
    theirs = np.arange(n) >= 7
    m = _matrix(n, pools={"shared": ~theirs, "bees": theirs}, owners={"bees": "slack:T2"})
    assert m.visible_rows("") is None and m.visible_count("") == n  # the operator: everything
    mask = m.visible_rows("slack:T1")
    assert mask is not None and mask.tolist() == (~theirs).tolist()
    assert m.visible_rows("slack:T1") is mask and m.visible_rows("discord:9") is mask
    assert m.visible_rows("slack:T2") is None  # its own and the shared: every row
    assert m.visible_count("slack:T1") == 7

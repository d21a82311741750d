"""Heads trained from votes read the prior's channels, and take a pool over from the
zero-shot prior only where they beat it on that pool's held-out comparisons (issue 11, 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _h1_gifs import good_gif
from _train_data import synthetic
from sqlalchemy import select

from bot.intent import IntentParser
from scorer.channels import (
    CHANNELS_ID,
    N_CHANNELS,
    channel_vector,
    head_features,
    load_channels,
    save_channels,
    with_channels,
)
from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.faces import CLASSES, N_CLASSES
from scorer.features import save_features
from scorer.settings import Settings
from scorer.store import (
    BTFit,
    Gif,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    pack_scores,
    session_scope,
)
from training.comparisons import import_pairs

LEXICON = IntentParser(use_embeddings=False).distribution


def test_channel_vector_layout() -> None:
    words = np.zeros(N_EMOTIONS)
    words[INDEX["happiness"]] = 1.0
    v = channel_vector(np.full(N_CLASSES, 0.5), 0.6, words, 0.8)
    assert v.shape == (N_CHANNELS,) and v.dtype == np.float32
    assert np.allclose(v[:N_CLASSES], 0.5) and v[N_CLASSES] == pytest.approx(0.6)
    assert v[N_CLASSES + 1 + INDEX["happiness"]] == 1.0 and v[-1] == pytest.approx(0.8)
    # No face, no words: all zeros (the same as a GIF scored without the prior).
    assert not channel_vector(None, 0.0, None, 0.0).any()
    assert not channel_vector(np.full(N_CLASSES, 0.9), 0.0, words, 0.0).any()
    tiled = with_channels(np.ones((5, 3), np.float32), v)
    assert tiled.shape == (5, 3 + N_CHANNELS) and np.allclose(tiled[:, 3:], v)


def test_score_stores_channels_and_heads_with_and_without_them_run(
        sqlite_settings: Settings, tmp_path: Path) -> None:
    from scorer.encoders import get_encoder
    from scorer.heads import build_head, save_head
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool, write_predictions
    from scorer.pool import ingest, pool_details

    settings = sqlite_settings
    engine = init_db(settings.db_url)
    folder = tmp_path / "team"
    folder.mkdir()
    for i, name in enumerate(("so-happy-yay.gif", "crying-sad.gif", "3f9a2c1b7d8e4f60.gif")):
        (folder / name).write_bytes(good_gif(40 + i, size=48, n=3))
    ingest(settings, engine, "team", folder)
    enc = "motion"
    dim = get_encoder(enc, settings, "cpu").dim
    report = score_pool(settings, engine, encoder_id=enc, device="cpu", workers=0, prior=True,
                        text_model=LEXICON)
    assert report.prior_written == 3
    titles = {g["title"]: g["sha256"] for g in pool_details(engine, "team")["first"]}
    happy = load_channels(settings, titles["so happy yay"], settings.scoring.sampling)
    unknown = load_channels(settings, titles[""], settings.scoring.sampling)
    assert happy[-1] > 0 and happy[N_CLASSES + 1 + INDEX["happiness"]] == happy[N_CLASSES + 1:-1].max()
    assert unknown[-1] == 0 and not unknown[N_CLASSES + 1:].any()
    assert head_features(settings, titles["crying sad"], enc, settings.scoring.sampling, CHANNELS_ID).shape[1] == dim + N_CHANNELS
    # A head trained with the channels and an old one without: both load and score.
    torch.manual_seed(0)
    ids = []
    for name, in_dim, extra in (("new", dim + N_CHANNELS, {"channels": CHANNELS_ID}), ("old", dim, {})):
        path = save_head(settings.models_dir / f"{name}.pt", build_head("fc-maxpool-1", in_dim, hidden=4),
                         {"kind": "fc-maxpool-1", "in_dim": in_dim, "cfg": {"hidden": 4},
                          "encoder_id": enc, "sampling": "sparse", **extra})
        with session_scope(engine) as s:
            mv = ModelVersion(name=name, encoder_id=enc, sampling="sparse", head_kind="fc-maxpool-1",
                              path=path.name, status="candidate", config={"pools": None})
            s.add(mv)
            s.flush()
            ids.append(mv.id)
    for mv_id in ids:
        assert write_predictions(settings, engine, mv_id, list(titles.values())) == 3


def test_prior_residual_head_starts_as_the_prior() -> None:
    """Untrained, the residual head gives exactly scorer.prior.combine on the channels."""
    from scorer.heads import build_head, predict
    from scorer.prior import NONE, Channel, combine, face_matrix

    rng = np.random.default_rng(0)
    feats, want = [], []
    for k in range(6):
        classes, words = rng.random(N_CLASSES), rng.random(N_EMOTIONS)
        face_conf, word_conf = (0.0, 1 / 3, 1.0)[k % 3], (0.0, 0.5, 1.0, 0.8, 0.0, 1.0)[k]
        face = NONE if face_conf == 0 else Channel(np.clip(face_matrix() @ classes, 0, 1), face_conf)
        word = NONE if word_conf == 0 else Channel(words, word_conf)
        want.append(combine(word, face)[0])
        vec = channel_vector(classes, face_conf, words, word_conf)
        feats.append(with_channels(rng.normal(size=(3 + k, 10)).astype(np.float32), vec))
    head = build_head("prior-residual", 10 + N_CHANNELS)
    head.fit_input_norm(feats)
    np.testing.assert_allclose(predict(head, feats), np.stack(want), atol=1e-5)
    linear = build_head("channels-linear", 10 + N_CHANNELS)
    assert predict(linear, feats).shape == (6, N_EMOTIONS)


# --- per-pool activation -------------------------------------------------------------------

N_PER_POOL = 40


def _two_pools(settings: Settings, engine, names: tuple[str, ...] = ("p1", "p2")  # type: ignore[no-untyped-def]
               ) -> dict[str, dict[str, np.ndarray]]:
    """Pools (p1 and p2) of synthetic GIFs with cached features: {pool: {sha: truth}}."""
    feats, truth, frames = synthetic(len(names) * N_PER_POOL, dim=8, seed=3)
    shas = sorted(feats)
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
    with session_scope(engine) as s:
        for k, name in enumerate(out):
            pool = Pool(name=name)
            s.add(pool)
            s.flush()
            for sha in shas[k * N_PER_POOL:(k + 1) * N_PER_POOL]:
                s.add(Gif(sha256=sha, bytes=100, width=8, height=8, n_frames=frames[sha]))
                s.flush()
                s.add(PoolGif(pool_id=pool.id, gif_sha=sha, source_ref=""))
                out[name][sha] = truth[sha]
    for sha, f in feats.items():
        save_features(settings, sha, settings.scoring.encoder, settings.scoring.sampling, f)
    return out


def _sure_votes(engine, truth: dict[str, np.ndarray], n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """Votes that always prefer the truly stronger GIF: the truth orders every one right."""
    rng = np.random.default_rng(seed)
    shas = sorted(truth)
    rows = []
    for _ in range(n):
        i, j = rng.choice(len(shas), 2, replace=False)
        e = int(rng.integers(N_EMOTIONS))
        rows.append((NAMES[e], shas[i], shas[j], "left" if truth[shas[i]][e] > truth[shas[j]][e] else "right"))
    import_pairs(engine, rows, source="poll")


def _prior(settings: Settings, engine, scores: dict[str, np.ndarray]) -> int:  # type: ignore[no-untyped-def]
    """A zero-shot prior version, active (a fresh home), with the given predictions."""
    from scorer.prior import activate_prior, prior_version

    zs = prior_version(engine, settings.scoring.encoder, settings.scoring.sampling, with_faces=False)
    with session_scope(engine) as s:
        for sha, row in scores.items():
            s.add(Prediction(model_version_id=zs, gif_sha=sha, scores=pack_scores(row),
                             sd=pack_scores(np.full(N_EMOTIONS, 0.1))))
    assert activate_prior(engine, zs).active_id == zs
    return zs


@pytest.mark.slow
def test_head_takes_over_only_the_pool_where_it_beats_the_prior(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """p1's prior is the truth itself (it orders every held-out vote right: no head can beat
    it); p2's prior is the truth upside down. Same votes in both: the head gets p2 only."""
    from bot.score_matrix import load_matrix
    from scorer.versions import prediction_matrix, ranked_predictions
    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    pools = _two_pools(settings, engine)
    zs = _prior(settings, engine, {**pools["p1"], **{s: 1 - t for s, t in pools["p2"].items()}})
    for k, name in enumerate(pools):
        _sure_votes(engine, pools[name], 2500, seed=k)
    out = run_retrain(settings, engine, epochs=30)
    per = out.metrics["pools"]
    assert per["p1"]["takes_over"] is False and per["p1"]["accuracy_prior"] == 1.0
    assert per["p2"]["takes_over"] is True and per["p2"]["accuracy_new"] > per["p2"]["accuracy_prior"]
    assert min(per["p1"]["heldout_pairs"], per["p2"]["heldout_pairs"]) >= 10
    assert out.status == "activated", out.message
    assert "the zero-shot prior keeps p1" in out.message
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, out.model_version_id)
        assert mv.config["pools"] == ["p2"]
        ranked = set(s.scalars(select(Prediction.gif_sha).where(Prediction.model_version_id == mv.id)))
    assert ranked == set(pools["p2"])
    # What ranks each GIF now: the new head on p2, the zero-shot prior still on p1.
    assert load_matrix(engine).model_version_id == out.model_version_id
    p1_gif, p2_gif = sorted(pools["p1"])[0], sorted(pools["p2"])[0]
    now = ranked_predictions(engine, out.model_version_id, [p1_gif, p2_gif])
    np.testing.assert_allclose(now[0], pools["p1"][p1_gif], atol=1e-6)
    np.testing.assert_allclose(now[1], prediction_matrix(engine, out.model_version_id, [p2_gif])[0])
    assert zs != out.model_version_id


@pytest.mark.slow
def test_a_pool_the_prior_never_scored_is_judged_against_chance(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    pools = _two_pools(settings, engine)
    _prior(settings, engine, dict(pools["p1"]))  # p2 was scored without the prior
    for k, name in enumerate(pools):
        _sure_votes(engine, pools[name], 2500, seed=k)
    out = run_retrain(settings, engine, epochs=30)
    per = out.metrics["pools"]
    assert per["p1"]["takes_over"] is False
    assert per["p2"]["takes_over"] is True and per["p2"]["accuracy_prior"] == 0.5
    assert "against chance" in per["p2"]["why"] and per["p2"]["accuracy_new"] > 0.5
    assert out.status == "activated", out.message


@pytest.mark.slow
def test_head_that_beats_the_prior_nowhere_is_rejected(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The prior is the truth on both pools: the head ranks no pool and the prior stays."""
    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    pools = _two_pools(settings, engine)
    zs = _prior(settings, engine, {**pools["p1"], **pools["p2"]})
    for k, name in enumerate(pools):
        _sure_votes(engine, pools[name], 2500, seed=k)
    out = run_retrain(settings, engine, epochs=30)
    assert out.status == "rejected", out.message
    assert "beats the zero-shot prior on the held-out comparisons of no pool" in out.message
    assert all(not row["takes_over"] for row in out.metrics["pools"].values())
    with session_scope(engine) as s:
        assert s.get(ModelVersion, out.model_version_id).config["pools"] == []
        active = s.scalars(select(ModelVersion.id).where(ModelVersion.status == "active")).all()
    assert active == [zs]


def test_a_head_too_few_votes_can_judge_says_so_not_that_it_lost(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """With under MIN_POOL_PAIRS held-out comparisons in every pool the head was never
    measured against the prior: "beats the prior in no pool" said it had lost."""
    from training.retrain import MIN_POOL_PAIRS, run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    pools = _two_pools(settings, engine)
    _prior(settings, engine, {**pools["p1"], **pools["p2"]})
    _sure_votes(engine, pools["p1"], 40, seed=5)
    out = run_retrain(settings, engine, epochs=5)
    assert out.status == "rejected", out.message
    assert all(row["heldout_pairs"] < MIN_POOL_PAIRS for row in out.metrics["pools"].values())
    assert f"no pool has {MIN_POOL_PAIRS} held-out comparisons yet" in out.message
    assert "beats the zero-shot prior" not in out.message


@pytest.mark.slow
def test_retrained_head_reads_the_stored_channels(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from scorer.heads import load_head
    from scorer.versions import head_path
    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    pools = _two_pools(settings, engine)
    truth = {**pools["p1"], **pools["p2"]}
    for sha, t in truth.items():  # the words say what the GIF is
        save_channels(settings, sha, settings.scoring.sampling, channel_vector(None, 0.0, t, 1.0))
    _prior(settings, engine, {sha: np.full(N_EMOTIONS, 0.5) for sha in truth})
    _sure_votes(engine, truth, 3000, seed=5)
    out = run_retrain(settings, engine, epochs=30)
    assert out.metrics["dataset"]["channels"] == CHANNELS_ID
    assert out.metrics["train"]["n_train"] > 0
    # Both heads were tried; the one kept had the lower dev loss on the votes.
    tried = out.metrics["train"]["tried"]
    assert set(tried) == {"fc-maxpool-2", "prior-residual"}
    assert out.metrics["train"]["head"]["kind"] == min(tried, key=tried.get)
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, out.model_version_id)
        assert mv.config["channels"] == CHANNELS_ID
        _, meta = load_head(head_path(settings, mv))
    assert meta["channels"] == CHANNELS_ID and meta["in_dim"] == 8 + N_CHANNELS


# --- pretrain gifgif's result against the zero-shot prior ----------------------------------

def _gifgif_version(settings: Settings, engine, prior_of) -> tuple[int, dict, object]:  # type: ignore[no-untyped-def]
    """A head trained on the `gifgif` pool's votes (as step 4 does), a zero-shot prior with
    `prior_of(pool, truth)` predictions (not active), then steps 5's measure and labels."""
    from scorer.prior import prior_version
    from training.gifgif import PretrainReport, _label_and_measure
    from training.workflow import train_version

    pools = _two_pools(settings, engine, ("gifgif", "team1", "team2"))
    for k, name in enumerate(pools):
        _sure_votes(engine, pools[name], 2000, seed=k)
    mv_id = train_version(settings, engine, pool="gifgif", head="fc-maxpool-2", epochs=40,
                          device="cpu").model_version_id
    zs = prior_version(engine, settings.scoring.encoder, settings.scoring.sampling, with_faces=False)
    with session_scope(engine) as s:
        for name, truth in pools.items():
            for sha, row in prior_of(name, truth).items():
                s.add(Prediction(model_version_id=zs, gif_sha=sha, scores=pack_scores(row)))
    report = PretrainReport()
    report.gifs = {"in_pool": N_PER_POOL}
    held, fit_id, active_id = _label_and_measure(settings, engine, mv_id, report)
    return mv_id, held, (fit_id, active_id, report)


@pytest.mark.slow
def test_gifgif_head_is_not_activated_when_the_prior_orders_its_test_votes_better(
        sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from training.gifgif import _decide

    settings, engine = sqlite_settings, sqlite_engine
    mv_id, held, (fit_id, active_id, report) = _gifgif_version(
        settings, engine, lambda _pool, truth: dict(truth))  # the prior is the truth
    assert held["pair_accuracy_prior"] == 1.0 and 0.5 < held["pair_accuracy"] < 1.0
    assert active_id is None  # only the prior could stop it
    _decide(engine, mv_id, fit_id, active_id, held, activate=True, report=report)
    assert not report.activated and "does not beat the zero-shot prior" in report.decision
    with session_scope(engine) as s:
        assert s.get(ModelVersion, mv_id).status == "candidate"


@pytest.mark.slow
def test_gifgif_head_beats_the_prior_and_ranks_only_the_pools_it_orders_better(
        sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The prior is upside down on gifgif and team2, the truth on team1: the GIFGIF head is
    activated, and ranks gifgif and team2 (judged on their own votes); team1 keeps the prior."""
    from training.gifgif import _decide

    settings, engine = sqlite_settings, sqlite_engine
    mv_id, held, (fit_id, active_id, report) = _gifgif_version(
        settings, engine,
        lambda pool, truth: {s: (t if pool == "team1" else 1 - t) for s, t in truth.items()})
    assert held["pair_accuracy"] > held["pair_accuracy_prior"]
    _decide(engine, mv_id, fit_id, active_id, held, activate=True, report=report)
    assert report.activated, report.decision
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        assert mv.status == "active" and mv.config["pools"] == ["gifgif", "team2"]
        checks = mv.config["pool_checks"]
        ranked = set(s.scalars(select(Prediction.gif_sha).where(Prediction.model_version_id == mv_id)))
    assert checks["team1"]["takes_over"] is False and checks["team1"]["accuracy_prior"] == 1.0
    assert checks["team2"]["takes_over"] is True and checks["team2"]["pairs"] >= 10
    team1 = {sha for sha in ranked if sha in _pool_shas(engine, "team1")}
    assert not team1 and _pool_shas(engine, "team2") <= ranked


def _pool_shas(engine, name: str) -> set[str]:  # type: ignore[no-untyped-def]
    from training.comparisons import pooled_gifs

    return set(pooled_gifs(engine, name))


@pytest.mark.slow
def test_votes_on_half_a_pool_move_the_other_half_through_the_channels(
        sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """An ironic pool: the GIFs people find amusing are those with *sad* faces, which the
    prior's face map reads as sadness, not amusement. Votes on half the GIFs (frame features
    carry nothing here) teach the head that through the face channel, and the other half,
    never voted on, is ranked better than the prior ranks it."""
    from scorer.prior import Channel, combine, face_matrix
    from scorer.versions import prediction_matrix
    from training.evaluate import HeldOutPairs, pairwise_accuracy
    from training.retrain import run_retrain

    settings, engine = sqlite_settings, sqlite_engine
    shas = sorted(_two_pools(settings, engine, ("ironic",))["ironic"])
    rng = np.random.default_rng(7)
    amusement, sad = INDEX["amusement"], CLASSES.index("sad")
    truth, prior = {}, {}
    for sha in shas:
        classes = rng.random(N_CLASSES)
        save_channels(settings, sha, settings.scoring.sampling, channel_vector(classes, 1.0, None, 0.0))
        prior[sha] = combine(Channel(np.zeros(N_EMOTIONS), 0.0),
                             Channel(np.clip(face_matrix() @ classes, 0, 1), 1.0))[0]
        truth[sha] = np.zeros(N_EMOTIONS)
        truth[sha][amusement] = classes[sad]
    _prior(settings, engine, prior)
    voted, held = shas[::2], shas[1::2]
    rows = []
    for _ in range(1500):
        a, b = rng.choice(len(voted), 2, replace=False)
        wa, wb = truth[voted[a]][amusement], truth[voted[b]][amusement]
        rows.append(("amusement", voted[a], voted[b], "left" if wa > wb else "right"))
    import_pairs(engine, rows, source="poll")
    out = run_retrain(settings, engine, epochs=100)
    assert out.status == "activated" and out.metrics["pools"]["ironic"]["takes_over"], out.message
    # Every pair of never-voted GIFs, ordered by the truth.
    w = [x for x in held for y in held if truth[x][amusement] > truth[y][amusement]]
    lo = [y for x in held for y in held if truth[x][amusement] > truth[y][amusement]]
    pairs = HeldOutPairs(np.full(len(w), amusement, np.int64), w, lo)
    acc_prior = pairwise_accuracy(prediction_matrix(engine, _zero_shot(engine), held), held, pairs)
    acc_head = pairwise_accuracy(prediction_matrix(engine, out.model_version_id, held), held, pairs)
    assert acc_prior < 0.6 and acc_head > acc_prior + 0.2, (acc_prior, acc_head)


def _zero_shot(engine) -> int:  # type: ignore[no-untyped-def]
    from scorer.versions import zero_shot_version_id

    return zero_shot_version_id(engine)


# --- `moodgif train` reads the channels as the retrain does (issue 11) ------------------------

def test_train_reads_the_prior_channels_and_keeps_the_better_head(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The words say what each GIF is; `train_version` with no head asked for trains the
    default head and a prior-residual head on frames + channels, keeps the lower dev loss,
    and records the channel set so scoring reads the same inputs; `channels=False` (or no
    channels stored) trains on frames alone, as before."""
    from scorer.heads import load_head
    from scorer.versions import head_path
    from training.workflow import WorkflowError, train_version

    settings, engine = sqlite_settings, sqlite_engine
    truth = _two_pools(settings, engine, ("team",))["team"]
    for sha, t in truth.items():
        save_channels(settings, sha, settings.scoring.sampling, channel_vector(None, 0.0, t, 1.0))
    _sure_votes(engine, truth, 2000, seed=2)

    rep = train_version(settings, engine, epochs=20, device="cpu")
    assert rep.metrics["channels"] == CHANNELS_ID
    tried = rep.metrics["tried"]
    assert set(tried) == {"fc-maxpool-2", "prior-residual"} and rep.kind == min(tried, key=tried.get)
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, rep.model_version_id)
        assert mv.head_kind == rep.kind and mv.config["channels"] == CHANNELS_ID
        _, meta = load_head(head_path(settings, mv))
        # fitted as the retrain fits: the previews' judgements against the bar were asked for
        # (none here), so a `train --activate` fit never drops them
        fit = s.get(BTFit, mv.config["bt_fit_id"])
        assert fit.stats["ledger"]["bar_judgements"] == 0
    assert meta["channels"] == CHANNELS_ID and meta["in_dim"] == 8 + N_CHANNELS

    plain = train_version(settings, engine, head="fc-maxpool-2", epochs=5, device="cpu", channels=False)
    assert plain.metrics["channels"] is None and set(plain.metrics["tried"]) == {"fc-maxpool-2"}
    with session_scope(engine) as s:
        _, meta = load_head(head_path(settings, s.get(ModelVersion, plain.model_version_id)))
    assert "channels" not in meta and meta["in_dim"] == 8
    with pytest.raises(WorkflowError, match="prior's channels"):
        train_version(settings, engine, head="prior-residual", epochs=2, device="cpu", channels=False)


def test_train_scores_gifs_without_channels_with_the_prior_first(sqlite_settings: Settings, tmp_path: Path) -> None:
    """A pool scored without the prior (no channels stored): given the bot's text model,
    `train_version` scores it with the prior first, so the head reads the GIFs' words."""
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool
    from scorer.pool import ingest, pool_details
    from training.workflow import train_version

    settings = sqlite_settings.override(scoring__encoder="motion")
    engine = init_db(settings.db_url)
    folder = tmp_path / "team"
    folder.mkdir()
    names = ["so-happy-yay", "crying-sad", "angry-rage", "scared-fear", "lol-funny", "gross-disgust"]
    for i, name in enumerate(names * 2):
        (folder / f"{name}-{i}.gif").write_bytes(good_gif(60 + i, size=32, n=5))
    ingest(settings, engine, "team", folder)
    score_pool(settings, engine, device="cpu", workers=0)  # features only, no prior
    shas = {g["title"]: g["sha256"] for g in pool_details(engine, "team", limit=100)["first"]}
    assert not load_channels(settings, shas["so happy yay"], "sparse").any()
    rng = np.random.default_rng(0)
    ids = sorted(shas.values())
    import_pairs(engine, [(NAMES[int(rng.integers(N_EMOTIONS))], ids[i], ids[j], "left")
                          for i, j in (rng.choice(len(ids), 2, replace=False) for _ in range(300))],
                 source="poll")
    rep = train_version(settings, engine, epochs=3, device="cpu", text_model=LEXICON)
    assert rep.metrics["channels"] == CHANNELS_ID
    happy = load_channels(settings, shas["so happy yay"], "sparse")
    assert happy[-1] > 0 and happy[N_CLASSES + 1 + INDEX["happiness"]] == happy[N_CLASSES + 1:-1].max()


def test_train_activate_ranks_the_pool_with_the_new_version_and_its_fit(
        sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """`activate=True`: every pooled GIF gets the new version's predictions, and the version
    and the BT fit it was trained on become the active ones; its row names the head file."""
    from scorer.heads import load_head
    from scorer.versions import active_fit, active_version, head_path
    from training.workflow import train_version

    settings, engine = sqlite_settings, sqlite_engine
    truth = _two_pools(settings, engine, ("team",))["team"]
    _sure_votes(engine, truth, 600, seed=4)
    rep = train_version(settings, engine, head="fc-maxpool-2", epochs=3, device="cpu",
                        channels=False, activate=True)
    assert rep.activated and active_version(engine).id == rep.model_version_id
    assert list(rep.metrics)[-4:] == ["train_rmse", "dev_rmse", "test_rmse", "test_rmse_mean_only"]
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, rep.model_version_id)
        fit = active_fit(s)
        assert fit is not None and fit.id == mv.config["bt_fit_id"]
        assert mv.name.startswith("train-") and mv.path == f"{mv.name}-fc-maxpool-2-sparse-small.pt"
        _, meta = load_head(head_path(settings, mv))
        ranked = set(s.scalars(select(Prediction.gif_sha).where(Prediction.model_version_id == mv.id)))
    assert meta["kind"] == "fc-maxpool-2" and meta["in_dim"] == 8
    assert ranked == set(truth)


def test_train_refuses_an_unknown_head_before_any_work(sqlite_settings: Settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """An empty home would fail on "no GIFs": the head kind is checked first."""
    from training.workflow import WorkflowError, train_version

    with pytest.raises(WorkflowError, match=r"unknown head 'rnn-3'; expected one of fc-maxpool-2, .*prior-residual"):
        train_version(sqlite_settings, sqlite_engine, head="rnn-3", device="cpu")


def test_cli_train_heads_match_the_workflow() -> None:
    from bot.commands.train import TRAIN_HEADS as cli_heads
    from training.workflow import TRAIN_HEADS

    assert cli_heads == TRAIN_HEADS

"""The zero-shot prior: face mapping, channels, combination, and what a fresh home gets from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _h1_gifs import good_gif
from click.testing import CliRunner
from PIL import Image, ImageDraw
from shared_data import SHARED_DATA
from sqlalchemy import select

from bot.intent import IntentParser
from scorer.emotions import INDEX, N_EMOTIONS, NAMES
from scorer.faces import CLASSES, MAX_FACES, N_CLASSES, get_model, load_tfjs_weights, model_dir
from scorer.prior import (
    FACE_MAP,
    NONE,
    SD_WIDE,
    X0,
    Channel,
    combine,
    face_channel,
    face_matrix,
    gif_text,
    word_channel,
)
from scorer.settings import Settings
from scorer.store import ModelVersion, Prediction, session_scope, unpack_scores

REAL = SHARED_DATA / "real-gifs"
needs_faces = pytest.mark.skipif(model_dir() is None, reason="face-api weights not installed "
                                 "(scripts/fetch-face-model)")
LEXICON = IntentParser(use_embeddings=False).distribution  # the bot's own lexicon stage


# --- the mapping -------------------------------------------------------------------------

def test_face_map_covers_every_axis_with_known_classes() -> None:
    assert set(FACE_MAP) == set(NAMES)
    assert all(set(row) <= set(CLASSES) and all(w > 0 for w in row.values()) for row in FACE_MAP.values())
    m = face_matrix()
    assert m.shape == (N_EMOTIONS, N_CLASSES)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    # Each basic expression's own axis is the one it weighs most on.
    for axis, cls in {"happiness": "happy", "sadness": "sad", "anger": "angry", "fear": "fearful",
                      "disgust": "disgusted", "surprise": "surprised"}.items():
        col = m[:, CLASSES.index(cls)]
        assert m[INDEX[axis]].argmax() == CLASSES.index(cls)
        assert col[INDEX[axis]] == col.max(), axis


def _rows(*frames: dict[str, float], faces: int = 1) -> np.ndarray:
    out = np.zeros((len(frames), N_CLASSES + 1), np.float32)
    for i, f in enumerate(frames):
        for cls, p in f.items():
            out[i, CLASSES.index(cls)] = p
        out[i, N_CLASSES] = faces if f else 0
    return out


def test_face_channel_counts_a_brief_strong_expression() -> None:
    # Neutral wins six frames of eight; fear is strong in two: fear must lead, not neutral.
    rows = _rows(*([{"neutral": 0.95, "fearful": 0.05}] * 6), {"fearful": 0.9}, {"fearful": 0.8},
                 {})
    ch = face_channel(rows)
    assert ch.confidence == 1.0
    assert ch.evidence[INDEX["fear"]] > ch.evidence[INDEX["happiness"]]
    assert ch.evidence[INDEX["fear"]] > 0.5
    happy = face_channel(_rows({"happy": 0.9}, {"happy": 0.95}))
    assert happy.evidence[INDEX["happiness"]] > happy.evidence[INDEX["sadness"]]
    assert 0 < happy.confidence < 1  # two frames with a face: not fully sure


def test_face_channel_with_no_face_is_empty() -> None:
    assert face_channel(_rows({}, {})) is NONE
    assert face_channel(None) is NONE
    assert face_channel(np.zeros((0, N_CLASSES + 1), np.float32)) is NONE
    assert face_channel(np.zeros((3, 2), np.float32)) is NONE  # wrong shape: ignored


# --- words ---------------------------------------------------------------------------------

def test_word_channel_reads_titles_with_the_intent_model() -> None:
    ch = word_channel(gif_text("happy dance", ["yay"], "", "happy-dance"), LEXICON)
    assert ch.confidence > 0 and ch.evidence.argmax() in (INDEX["happiness"], INDEX["excitement"])
    sad = word_channel("crying so sad", LEXICON)
    assert sad.evidence[INDEX["sadness"]] == sad.evidence.max()


@pytest.mark.parametrize("text", [
    "", "   ", "x" * 100_000, "<script>alert(1)</script>", "\x00\x07\u202e", "悲しい猫", "حزين",
    "0123456789abcdef", "😂😂😂",
])
def test_word_channel_never_crashes(text: str) -> None:
    ch = word_channel(gif_text(text, [text], text, text), LEXICON)
    assert ch.evidence.shape == (N_EMOTIONS,) and 0 <= ch.confidence <= 1
    assert np.isfinite(ch.evidence).all()


def test_word_channel_survives_a_broken_model() -> None:
    def broken(_text: str):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    assert word_channel("happy", broken) is NONE
    assert word_channel("happy", lambda _t: ([float("nan")] * N_EMOTIONS, "lexicon")) is NONE
    assert word_channel("happy", None) is NONE


def test_gif_text_keeps_each_piece_once() -> None:
    assert gif_text("Happy dance", ["happy dance", "yay"], "", "happy-dance") == "Happy dance ; yay"
    # Words about the file are not read; a piece made only of them is dropped.
    assert gif_text("so happy gif", ["reaction gif", "yay", "GIF"], "", "happy-gif") == "so happy ; yay ; happy"
    assert gif_text("gif", ["meme"], "", "") == ""


# --- combination ---------------------------------------------------------------------------

def test_combination_by_confidence_and_width() -> None:
    wide_mean, wide_sd, total = combine(NONE, NONE)
    assert total == 0 and np.allclose(wide_sd, SD_WIDE)
    np.testing.assert_allclose(wide_mean, wide_mean[0])  # no evidence: flat, at the typical level
    e = np.zeros(N_EMOTIONS)
    e[INDEX["fear"]] = 1.0
    mean, sd, _ = combine(NONE, Channel(e, 1.0))
    assert (sd < wide_sd).all()
    # Evidence for fear lifts fear above the unknown GIF; other axes sink below it.
    assert mean[INDEX["fear"]] > wide_mean[0] > mean[INDEX["happiness"]]
    weak, _, _ = combine(NONE, Channel(e, 0.2))
    assert wide_mean[0] < weak[INDEX["fear"]] < mean[INDEX["fear"]]
    assert X0 > 0


# --- the face model itself -------------------------------------------------------------------

@needs_faces
def test_expression_net_loads_and_gives_probabilities() -> None:
    folder = model_dir()
    assert folder is not None and (folder / "LICENSE").is_file()
    weights = load_tfjs_weights(folder)
    assert weights["fc/weights"].shape == (256, 7)
    model = get_model(folder)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    probs = model.expressions(frame, [(10, 10, 80, 80), (0, 0, 160, 120)])
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def _text_frame() -> np.ndarray:
    img = Image.new("RGB", (320, 180), "white")
    ImageDraw.Draw(img).text((20, 80), "NOPE. NOT TODAY.", fill="black")
    return np.asarray(img)


@needs_faces
def test_bad_frames_never_crash() -> None:
    model = get_model(model_dir())  # type: ignore[arg-type]
    tiny = np.zeros((2, 8, 8, 3), np.uint8)
    assert (model.frame_expressions(tiny)[:, N_CLASSES] == 0).all()
    text = np.stack([_text_frame()] * 3)
    assert (model.frame_expressions(text)[:, N_CLASSES] == 0).all()
    assert model.frame_expressions(np.zeros((0, 10, 10, 3), np.uint8)).shape == (0, N_CLASSES + 1)
    grey = np.zeros((1, 50, 50), np.uint8)  # no colour axis
    assert model.frame_expressions(grey)[0, N_CLASSES] == 0


def _sofa_frames() -> tuple[np.ndarray, np.ndarray, object]:
    """The sampled frames of a real GIF with two people on a sofa, their face rows and the
    face model (skips when ../shared/data/real-gifs is not present)."""
    gif = REAL / "gifs" / "awkward__white-guys.gif"
    if not gif.is_file():
        pytest.skip("../shared/data/real-gifs is not present")
    from scorer.frames import decode_gif, sample_indices

    d = decode_gif(str(gif))
    frames = d.frames[sample_indices(d.n_frames, "sparse")]
    model = get_model(model_dir())  # type: ignore[arg-type]
    return frames, model.frame_expressions(frames), model


@needs_faces
def test_real_gif_faces_and_a_crowd() -> None:
    frames, rows, model = _sofa_frames()
    assert (rows[:, N_CLASSES] > 0).any()  # two people on a sofa: faces found
    ch = face_channel(rows)
    assert ch.confidence > 0
    # Dozens of faces: a 5x5 mosaic of a frame that has faces; capped, no crash.
    with_face = frames[int(np.flatnonzero(rows[:, N_CLASSES] > 0)[0] * len(frames) / len(rows))]
    crowd = np.tile(with_face, (5, 5, 1))[None]
    crowd_rows = model.frame_expressions(crowd)
    assert 0 <= crowd_rows[0, N_CLASSES] <= MAX_FACES


@needs_faces
def test_a_tiny_face_is_not_read() -> None:
    """A face shrunk below MIN_FACE_PX in a large frame: no face (its expression would be
    noise), no crash; the same frame at full size has one."""
    from scorer.faces import MIN_FACE_PX

    frames, rows, model = _sofa_frames()
    frame = frames[int(np.flatnonzero(rows[:, N_CLASSES] > 0)[0])]
    h, w = frame.shape[:2]
    small = np.asarray(Image.fromarray(frame).resize((max(1, w // 10), max(1, h // 10))))
    assert max(small.shape[:2]) < 4 * MIN_FACE_PX
    canvas = np.zeros((h, w, 3), np.uint8)
    canvas[:small.shape[0], :small.shape[1]] = small
    got = model.frame_expressions(canvas[None])
    assert got[0, N_CLASSES] == 0
    assert face_channel(got) is NONE


def test_a_pool_of_bad_input_gets_a_prior_and_no_crash(sqlite_settings: Settings, tmp_path: Path) -> None:
    """Text-only frames, no face, titles in other scripts, hostile and format-only tags, and
    a tag list of thousands: every GIF is scored, nothing hostile is stored or read, and a
    GIF with nothing readable keeps the wide prior."""
    from scorer.channels import load_channels
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool
    from scorer.pool import ingest
    from scorer.store import Gif

    settings = sqlite_settings.override(scoring__encoder="motion")
    engine = init_db(settings.db_url)
    folder = tmp_path / "bad"
    folder.mkdir()
    text = Image.fromarray(_text_frame())
    text.save(folder / "نعم-لا.gif", save_all=True, append_images=[text.rotate(1), text.rotate(2)],
              duration=100, loop=0)
    _gif_named(folder, "悲しい猫.gif", 5)  # noise frames: no face
    _gif_named(folder, "plain.gif", 6)
    manifest = tmp_path / "m.csv"
    hostile = ";".join(["<script>alert(1)</script>", "\u202eevil", "reaction gif", "GIF"]
                       + [f"t{i}" for i in range(3000)])
    manifest.write_text("path,title,tags,alt_text\n"
                        f'bad/plain.gif,"<img src=x onerror=alert(1)>gif","{hostile}",{"x" * 5000}\n')
    ingest(settings, engine, "bad", folder)
    ingest(settings, engine, "bad2", manifest)
    report = score_pool(settings, engine, device="cpu", workers=0, prior=True, text_model=LEXICON)
    assert report.prior_written == 3 and report.encoded == 3
    with session_scope(engine) as s:
        gifs = list(s.scalars(select(Gif)))
        stored = {g.sha256: unpack_scores(p.sd) for g in gifs for p in s.scalars(
            select(Prediction).where(Prediction.gif_sha == g.sha256,
                                     Prediction.model_version_id == report.prior_version_id))}
        words = {g.sha256: gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or "") for g in gifs}
    assert len(stored) == 3
    for sha, text_read in words.items():
        assert "<" not in text_read and "\u202e" not in text_read and "gif" not in text_read.lower()
        ch = load_channels(settings, sha, "sparse")
        assert ch[N_CLASSES] == 0  # no face in any of them
        assert np.isfinite(stored[sha]).all()
        if not text_read.strip():
            assert stored[sha][0] == pytest.approx(SD_WIDE)


# --- a fresh home --------------------------------------------------------------------------

def _gif_named(folder: Path, name: str, seed: int) -> None:
    (folder / name).write_bytes(good_gif(seed, size=48, n=3))


def _cli(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    from bot.cli import cli

    env = {"MOODGIF_HOME": str(settings.home), "MOODGIF_DATABASE_URL": settings.database_url,
           "MOODGIF_SCORE_WORKERS": "0"}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_fresh_home_ranks_a_real_pool_before_any_vote(sqlite_settings: Settings, tmp_path: Path) -> None:
    from bot.score_matrix import load_matrix
    from scorer.migrate import init_db

    settings = sqlite_settings
    folder = tmp_path / "team"
    folder.mkdir()
    _gif_named(folder, "so-happy-yay.gif", 1)
    _gif_named(folder, "crying-sad.gif", 2)
    _gif_named(folder, "3f9a2c1b7d8e4f60.gif", 3)  # a hash name: no words
    assert _cli(settings, "pool", "add", "team", str(folder)).exit_code == 0
    out = _cli(settings, "score", "--pool", "team", "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert "zero-shot prior" in out.output and "1 with only a wide prior" in out.output
    engine = init_db(settings.db_url)
    with session_scope(engine) as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.status == "active")).one()
        assert mv.head_kind == "prior" and mv.name.startswith("prior:words")
        assert mv.config["pools"] is None and "words" in mv.config["channels"]
        preds = {p.gif_sha: (unpack_scores(p.scores), unpack_scores(p.sd))
                 for p in s.scalars(select(Prediction).where(Prediction.model_version_id == mv.id))}
    assert len(preds) == 3
    from scorer.pool import pool_details

    titles = {g["title"]: g["sha256"] for g in pool_details(engine, "team")["first"]}
    happy, sad, unknown = titles["so happy yay"], titles["crying sad"], titles[""]
    h, s_ = INDEX["happiness"], INDEX["sadness"]
    assert preds[happy][0][h] > preds[unknown][0][h] > preds[sad][0][h]
    assert preds[sad][0][s_] > preds[unknown][0][s_] > preds[happy][0][s_]
    assert preds[unknown][1][0] == pytest.approx(SD_WIDE) and preds[happy][1][0] < SD_WIDE
    matrix = load_matrix(engine)
    assert matrix.scored and matrix.model_version_id == mv.id
    i = matrix.index[unknown]
    assert matrix.sd[h, i] == pytest.approx(SD_WIDE) and matrix.sd[h, matrix.index[happy]] < SD_WIDE
    show = _cli(settings, "pool", "show", "team")
    assert "1 of them with only a wide prior" in show.output


def test_a_head_trained_on_one_pool_never_ranks_another(sqlite_settings: Settings, tmp_path: Path) -> None:
    """The demo's head, in the same home as a real pool: the real pool gets the prior."""
    import torch

    from bot.score_matrix import load_matrix
    from scorer.encoders import get_encoder
    from scorer.heads import build_head, save_head
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool
    from scorer.pool import ingest, pool_gifs
    from scorer.store import Comparison

    settings = sqlite_settings
    engine = init_db(settings.db_url)
    demo, real = tmp_path / "demo", tmp_path / "real"
    demo.mkdir()
    real.mkdir()
    for i in range(3):
        _gif_named(demo, f"demo-face-{i}.gif", 10 + i)
    _gif_named(real, "so-happy.gif", 20)
    _gif_named(real, "sad-cry.gif", 21)
    ingest(settings, engine, "demo", demo)
    ingest(settings, engine, "real", real)
    d = pool_gifs(engine, "demo")
    with session_scope(engine) as s:  # the demo's simulated votes
        s.add(Comparison(emotion=0, winner=d[0], loser=d[1], source="vote"))
    enc = "motion"
    torch.manual_seed(0)
    head = build_head("fc-maxpool-1", get_encoder(enc, settings, "cpu").dim, hidden=8)
    path = save_head(settings.models_dir / "demo-head.pt", head, {
        "kind": "fc-maxpool-1", "in_dim": get_encoder(enc, settings, "cpu").dim, "cfg": {"hidden": 8},
        "encoder_id": enc, "sampling": "sparse"})
    with session_scope(engine) as s:  # an old demo head: no domain recorded
        mv = ModelVersion(name="demo", encoder_id=enc, sampling="sparse", head_kind="fc-maxpool-1",
                          path=path.name, status="active")
        s.add(mv)
        s.flush()
        head_id = mv.id
    report = score_pool(settings, engine, encoder_id=enc, device="cpu", workers=0, prior=True,
                        text_model=LEXICON)
    assert report.scored == 3 and report.head_skipped == 2 and report.prior_written == 5
    with session_scope(engine) as s:
        assert s.get(ModelVersion, head_id).config["pools"] == ["demo"]
        head_rows = set(s.scalars(select(Prediction.gif_sha).where(Prediction.model_version_id == head_id)))
    assert head_rows == set(d)
    # The ranker: the head for the demo pool, the zero-shot prior for the real one.
    matrix = load_matrix(engine)
    assert matrix.model_version_id == head_id
    r = pool_gifs(engine, "real")
    assert all(sha in matrix.index for sha in r)
    with session_scope(engine) as s:
        prior_id = report.prior_version_id
        want = unpack_scores(s.get(Prediction, (prior_id, r[0])).scores)
    np.testing.assert_allclose(matrix.mean[:, matrix.index[r[0]]], want, atol=1e-6)
    # Later votes on the real pool do not widen the old head's recorded domain.
    with session_scope(engine) as s:
        s.add(Comparison(emotion=0, winner=r[0], loser=r[1], source="vote"))
    again = score_pool(settings, engine, encoder_id=enc, device="cpu", workers=0)
    assert again.scored == 3




def test_retrain_judges_a_new_head_against_what_ranks_each_gif(sqlite_settings: Settings, tmp_path: Path) -> None:
    """Held-out comparison uses the active head where it predicts, the prior elsewhere."""
    from scorer.migrate import init_db
    from scorer.pool import ingest, pool_gifs
    from scorer.prior import prior_version, write_prior
    from scorer.store import pack_scores
    from training.retrain import ranked_predictions

    settings = sqlite_settings
    engine = init_db(settings.db_url)
    folder = tmp_path / "p"
    folder.mkdir()
    _gif_named(folder, "so-happy.gif", 30)
    _gif_named(folder, "crying-sad.gif", 31)
    ingest(settings, engine, "p", folder)
    a, b = pool_gifs(engine, "p")
    zs = prior_version(engine, settings.scoring.encoder, settings.scoring.sampling, with_faces=False)
    write_prior(engine, zs, [a, b], lambda _s: None, LEXICON, with_faces=False)
    with session_scope(engine) as s:
        head = ModelVersion(name="h", encoder_id=settings.scoring.encoder, sampling="sparse",
                            head_kind="fc-maxpool-1", path="h.pt", status="active",
                            config={"pools": ["elsewhere"]})
        s.add(head)
        s.flush()
        s.add(Prediction(model_version_id=head.id, gif_sha=a, scores=pack_scores(np.full(N_EMOTIONS, 0.9))))
        head_id = head.id
    got = ranked_predictions(engine, head_id, [a, b])
    np.testing.assert_allclose(got[0], 0.9)
    with session_scope(engine) as s:
        want = unpack_scores(s.get(Prediction, (zs, b)).scores)
    np.testing.assert_allclose(got[1], want, atol=1e-6)


# --- which version is active once a prior is written (an upgraded install) -----------------

def _pooled(engine, *shas: str) -> None:  # type: ignore[no-untyped-def]
    from scorer.store import Gif, Pool, PoolGif

    with session_scope(engine) as s:
        pool = Pool(name="team")
        s.add(pool)
        s.flush()
        for sha in shas:
            s.add(Gif(sha256=sha, bytes=1, width=4, height=4, n_frames=1, duration_ms=0))
            s.flush()
            s.add(PoolGif(pool_id=pool.id, gif_sha=sha))


def _version(engine, name: str, head_kind: str, shas: list[str], *, channels=("words",),  # type: ignore[no-untyped-def]
             active: bool = False, encoder: str = "enc") -> int:
    from scorer import versions
    from scorer.store import pack_scores

    with session_scope(engine) as s:
        mv = versions.create_candidate(s, name=name, encoder_id=encoder, sampling="sparse", head_kind=head_kind,
                                       config={"channels": {c: {} for c in channels}})
        for sha in shas:
            s.add(Prediction(model_version_id=mv.id, gif_sha=sha, scores=pack_scores(np.full(N_EMOTIONS, 0.5))))
        if active:
            versions.activate(s, mv.id)
        return mv.id


def _add_predictions(engine, mv_id: int, shas: list[str]) -> None:  # type: ignore[no-untyped-def]
    from scorer.store import pack_scores

    with session_scope(engine) as s:
        for sha in shas:
            s.add(Prediction(model_version_id=mv_id, gif_sha=sha, scores=pack_scores(np.full(N_EMOTIONS, 0.4))))


def test_a_new_prior_replaces_an_older_active_prior_once_it_covers_its_pools(engine) -> None:  # type: ignore[no-untyped-def]
    from scorer import versions
    from scorer.prior import activate_prior

    a, b = "a" * 64, "b" * 64
    _pooled(engine, a, b)
    old = _version(engine, "prior:words v6", "prior", [a, b], active=True)
    new = _version(engine, "prior:words v12", "prior", [a])
    # `score --pool X` wrote it for one pool only: the other would lose its scores
    held = activate_prior(engine, new)
    assert (held.active_id, held.missing) == (old, 1) and versions.active_version_id(engine) == old
    assert "1 GIF in a pool has no scores from this prior yet" in held.describe()
    _add_predictions(engine, new, [b])
    took = activate_prior(engine, new)
    assert took.active_id == new and versions.active_ids(engine) == [new]
    assert took.describe() == f"it is the active version, replacing model version {old} (prior:words v6)"
    assert activate_prior(engine, new).describe() == "it is the active version"


def test_a_prior_never_replaces_a_trained_head_or_a_prior_reading_more(engine) -> None:  # type: ignore[no-untyped-def]
    from scorer import versions
    from scorer.prior import activate_prior

    a = "a" * 64
    _pooled(engine, a)
    faces = _version(engine, "prior:words+faces v6", "prior", [a], channels=("words", "faces"), active=True)
    words = _version(engine, "prior:words v12", "prior", [a])
    kept = activate_prior(engine, words)
    assert kept.active_id == faces and kept.lacks == ("faces",) and "reads faces" in kept.describe()
    head = _version(engine, "retrain-3", "fc-maxpool-2", [a], active=True)
    newer = _version(engine, "prior:words+faces v12", "prior", [a], channels=("words", "faces"))
    kept = activate_prior(engine, newer)
    assert kept.active_id == head and versions.active_ids(engine) == [head]
    assert "a head trained on votes" in kept.describe()


def test_score_makes_its_prior_active_in_place_of_an_older_one(sqlite_settings: Settings, tmp_path: Path) -> None:
    """An install upgraded from an older prior kept ranking with it: `moodgif score` wrote the
    new prior as a candidate beside it, and said nothing about which one ranks."""
    from bot.score_matrix import load_matrix
    from scorer.migrate import init_db
    from scorer.pool import pool_gifs

    settings = sqlite_settings
    folder = tmp_path / "team"
    folder.mkdir()
    _gif_named(folder, "so-happy-yay.gif", 1)
    _gif_named(folder, "crying-sad.gif", 2)
    assert _cli(settings, "pool", "add", "team", str(folder)).exit_code == 0
    engine = init_db(settings.db_url)
    old = _version(engine, "prior:words v6 w=2 x0=0.15", "prior", pool_gifs(engine, "team"), active=True,
                   encoder=settings.scoring.encoder)
    out = _cli(settings, "score", "--device", "cpu")
    assert out.exit_code == 0, out.output
    matrix = load_matrix(engine)
    assert matrix.model_version_id != old
    assert (f"it is the active version, replacing model version {old} (prior:words v6 w=2 x0=0.15)"
            in out.output), out.output

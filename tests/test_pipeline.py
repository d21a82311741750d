"""The scoring pipeline on real databases with small GIFs made here: features, the cache,
resuming, bad GIFs, ratings, predictions under a model version, and the CLI."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from scorer.encoders import EncoderError, get_encoder
from scorer.features import feature_path, load_features
from scorer.frames import sample_indices
from scorer.heads import build_head, predict, save_head
from scorer.pipeline import ScoreError, score_pool, write_predictions
from scorer.store import Gif, ModelVersion, Pool, PoolGif, Prediction, session_scope, unpack_scores

SIZE = 64


def make_gif(seed: int, n_frames: int) -> bytes:
    """A small animated GIF: a coloured square moving over a gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    base = rng.integers(0, 200, 3)
    frames = []
    for t in range(n_frames):
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        img[...] = (base + np.stack([xx, yy, xx + yy], -1) // 2) % 256
        x0 = (8 * t + seed * 5) % (SIZE - 16)
        img[20:36, x0 : x0 + 16] = rng.integers(0, 256, 3)
        frames.append(Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=70, loop=0)
    return buf.getvalue()


def add_pool(settings, engine, name: str, gifs: list[tuple[bytes, int]], ratings: dict[int, str] | None = None) -> list[str]:
    """Store files where scorer.pool keeps them and add the rows (what `pool add` leaves)."""
    from scorer.pool import gif_path

    ratings = ratings or {}
    shas = []
    with session_scope(engine) as s:
        pool = Pool(name=name)
        s.add(pool)
        s.flush()
        for i, (data, n_frames) in enumerate(gifs):
            sha = hashlib.sha256(data).hexdigest()
            path = gif_path(settings, sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            s.add(Gif(sha256=sha, bytes=len(data), width=SIZE, height=SIZE, n_frames=n_frames,
                      rating=ratings.get(i), rating_source="manifest" if i in ratings else None))
            s.flush()
            s.add(PoolGif(pool_id=pool.id, gif_sha=sha))
            shas.append(sha)
    return shas


BROKEN = b"GIF89a" + bytes(range(40))  # a header and then nothing decodable


@pytest.fixture
def pool4(settings, engine) -> list[str]:
    gifs = [(make_gif(1, 3), 3), (make_gif(2, 35), 35), (make_gif(3, 1), 1), (BROKEN, 4)]
    return add_pool(settings, engine, "demo", gifs, ratings={2: "pg"})


def test_default_encoder_writes_features_ratings_and_marks_broken_gifs(settings, engine, pool4) -> None:
    good, broken = pool4[:3], pool4[3]
    report = score_pool(settings, engine, pool="demo", device="cpu", workers=1)
    assert (report.encoded, report.cached, report.skipped, report.scored) == (3, 0, 0, 0)
    assert report.model_version_id is None and report.encoder_id == "nsfw-resnet50thin+motion"
    assert [sha for sha, _ in report.failed] == [broken]
    enc_dim = 1024 + 1 + 11
    for sha, n in zip(good, (3, 35, 1), strict=True):
        feats = load_features(settings, sha, report.encoder_id, "sparse")
        assert feats is not None and feats.shape == (len(sample_indices(n, "sparse")), enc_dim)
    assert report.frames == sum(len(sample_indices(n, "sparse")) for n in (3, 35, 1))
    with session_scope(engine) as s:
        rows = {g.sha256: g for g in s.scalars(select(Gif))}
    assert rows[broken].score_error and rows[broken].nsfw_prob is None
    for sha in good:
        assert rows[sha].score_error is None and 0.0 <= rows[sha].nsfw_prob <= 1.0
    assert (rows[good[0]].rating, rows[good[0]].rating_source) == ("g", "nsfw-model")
    assert (rows[good[2]].rating, rows[good[2]].rating_source) == ("pg", "manifest")  # manifest wins

    again = score_pool(settings, engine, pool="demo", device="cpu", workers=1)
    assert (again.encoded, again.cached, again.skipped, again.failed) == (0, 3, 1, [])


def test_a_gif_whose_file_was_missing_is_scored_once_it_is_back(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file missing while a mount was late once failed its GIF for good: skipped by every
    later run, never ranked, though nothing was wrong with its bytes."""
    from scorer.pool import gif_path

    (sha,) = add_pool(sqlite_settings, sqlite_engine, "p", [(make_gif(7, 3), 3)])
    stored = gif_path(sqlite_settings, sha)
    aside = tmp_path / "aside.gif"
    stored.rename(aside)
    first = score_pool(sqlite_settings, sqlite_engine, pool="p", device="cpu", workers=1)
    assert [s for s, _ in first.failed] == [sha] and first.failed[0][1].startswith("cannot read")
    aside.rename(stored)
    back = score_pool(sqlite_settings, sqlite_engine, pool="p", device="cpu", workers=1)
    assert (back.encoded, back.skipped, back.failed) == (1, 0, [])
    with session_scope(sqlite_engine) as s:
        assert s.get(Gif, sha).score_error is None


def test_resume_encodes_only_what_is_missing_and_repairs_the_rating(sqlite_settings, sqlite_engine) -> None:
    settings, engine = sqlite_settings, sqlite_engine
    shas = add_pool(settings, engine, "p", [(make_gif(i, 4), 4) for i in range(3)])
    score_pool(settings, engine, pool="p", encoder_id="nsfw-resnet50thin", device="cpu", workers=0)
    before = load_features(settings, shas[0], "nsfw-resnet50thin", "sparse")
    # A run killed after one file and before its database row, and one that never got there.
    feature_path(settings, shas[1], "nsfw-resnet50thin", "sparse").unlink()
    (feature_path(settings, shas[1], "nsfw-resnet50thin", "sparse").parent / ".x.tmp").write_bytes(b"half")
    with session_scope(engine) as s:
        s.get(Gif, shas[0]).nsfw_prob = None
        s.get(Gif, shas[0]).rating = None
    report = score_pool(settings, engine, pool="p", encoder_id="nsfw-resnet50thin", device="cpu", workers=0)
    assert (report.encoded, report.cached) == (1, 2)
    np.testing.assert_array_equal(load_features(settings, shas[0], "nsfw-resnet50thin", "sparse"), before)
    with session_scope(engine) as s:
        assert s.get(Gif, shas[0]).nsfw_prob is not None and s.get(Gif, shas[0]).rating == "g"


def _make_version(settings, engine, encoder_id: str, dim: int, status: str = "active") -> tuple[int, object]:
    import torch

    torch.manual_seed(0)
    head = build_head("fc-maxpool-1", dim, hidden=8)
    path = save_head(settings.models_dir / f"head-{status}.pt", head, {
        "kind": "fc-maxpool-1", "in_dim": dim, "cfg": {"hidden": 8}, "encoder_id": encoder_id, "sampling": "sparse"})
    with session_scope(engine) as s:
        mv = ModelVersion(name="t", encoder_id=encoder_id, sampling="sparse", head_kind="fc-maxpool-1",
                          path=path.name, status=status)
        s.add(mv)
        s.flush()
        return mv.id, head.eval()


def test_active_head_writes_17_scores_per_gif(settings, engine, pool4) -> None:
    dim = get_encoder("motion", settings, "cpu").dim
    mv_id, head = _make_version(settings, engine, "motion", dim)
    report = score_pool(settings, engine, pool="demo", encoder_id="motion", workers=0)
    assert report.model_version_id == mv_id and report.scored == 3 and report.encoded == 3
    with session_scope(engine) as s:
        preds = {p.gif_sha: unpack_scores(p.scores) for p in s.scalars(select(Prediction))}
    assert set(preds) == set(pool4[:3])
    for sha, scores in preds.items():
        expected = predict(head, [load_features(settings, sha, "motion", "sparse")], "cpu")[0]
        np.testing.assert_allclose(scores, expected, atol=1e-6)
    # Rescoring (what the retrain job calls) replaces rows instead of adding more.
    assert write_predictions(settings, engine, mv_id, pool4) == 3
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 3
    # The default encoder differs from the active version's: features only, no scores.
    other = score_pool(settings, engine, pool="demo", encoder_id="nsfw-resnet50thin",
                       device="cpu", workers=0)
    assert other.model_version_id is None and other.scored == 0


def test_bad_requests_fail_before_writing_anything(sqlite_settings, sqlite_engine) -> None:
    import torch

    settings, engine = sqlite_settings, sqlite_engine
    add_pool(settings, engine, "p", [(make_gif(5, 2), 2)])
    with pytest.raises(EncoderError, match="unknown encoder"):
        score_pool(settings, engine, pool="p", encoder_id="resnet-9000")
    with pytest.raises(ScoreError, match="no pool named 'nope'"):
        score_pool(settings, engine, pool="nope", encoder_id="motion")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderError, match="CUDA"):
            score_pool(settings, engine, pool="p", encoder_id="motion", device="cuda")
    mv_id, _ = _make_version(settings, engine, "motion", 11, status="candidate")
    with pytest.raises(ScoreError, match="trained on encoder 'motion'"):
        score_pool(settings, engine, pool="p", encoder_id="nsfw-resnet50thin", model_version_id=mv_id)
    assert not settings.features_dir.exists()
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 0
        assert all(g.nsfw_prob is None and g.score_error is None for g in s.scalars(select(Gif)))


def test_decode_workers_give_the_same_features_as_in_process(sqlite_settings, sqlite_engine, tmp_path: Path) -> None:
    settings, engine = sqlite_settings, sqlite_engine
    shas = add_pool(settings, engine, "p", [(make_gif(i, 12), 12) for i in range(5)])
    score_pool(settings, engine, pool="p", encoder_id="motion", workers=2, batch_size=4)
    first = {sha: load_features(settings, sha, "motion", "sparse") for sha in shas}
    import shutil

    shutil.rmtree(settings.features_dir)
    score_pool(settings, engine, pool="p", encoder_id="motion", workers=0, batch_size=64)
    for sha in shas:
        np.testing.assert_array_equal(load_features(settings, sha, "motion", "sparse"), first[sha])


def test_cli_score(sqlite_settings, sqlite_engine) -> None:
    from bot.cli import cli

    settings, engine = sqlite_settings, sqlite_engine
    add_pool(settings, engine, "p", [(make_gif(7, 3), 3), (BROKEN, 2)])
    env = {"MOODGIF_HOME": str(settings.home)}
    runner = CliRunner()
    ok = runner.invoke(cli, ["score", "--pool", "p", "--encoder", "motion", "--workers", "0"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "1 encoded" in ok.output and "1 failed" in ok.output
    # The broken GIF gets no prior either; the good one does, and the prior is now active.
    assert "zero-shot prior (model version 1): 1 GIFs" in ok.output
    assert "the zero-shot prior ranks these GIFs" in ok.output
    bare = runner.invoke(cli, ["score", "--pool", "p", "--encoder", "motion", "--workers", "0",
                               "--no-prior"], env=env)
    assert bare.exit_code == 0 and "zero-shot" not in bare.output
    bad = runner.invoke(cli, ["score", "--encoder", "nope"], env=env)
    assert bad.exit_code == 1 and "unknown encoder 'nope'" in bad.output
    listed = runner.invoke(cli, ["score", "--list-encoders"], env=env)
    assert "nsfw-resnet50thin+motion" in listed.output.splitlines()

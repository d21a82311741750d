"""`--engine ray` (Ray Data map_batches: decode tasks, then encoder actors) gives the same
features, ratings and scores as the local engine, on a local two-CPU Ray."""

from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import delete, select

from scorer.features import load_features
from scorer.heads import build_head, save_head
from scorer.pipeline import score_pool
from scorer.store import Gif, ModelVersion, Pool, PoolGif, Prediction, session_scope, unpack_scores

pytestmark = pytest.mark.slow  # more than ~5 s: outside the `-m "not slow"` loop

ray = pytest.importorskip("ray")


def _gif(seed: int, n: int) -> bytes:
    rng = np.random.default_rng(seed)
    frames = [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).convert("P") for _ in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=60)
    return buf.getvalue()


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_engine_matches_the_local_engine(sqlite_settings, sqlite_engine, local_ray) -> None:
    import torch

    from scorer.pool import gif_path

    settings, engine = sqlite_settings, sqlite_engine
    gifs = [(_gif(i, n), n) for i, n in enumerate((2, 5, 3))] + [(b"GIF89a broken", 3)]
    with session_scope(engine) as s:
        pool = Pool(name="p")
        s.add(pool)
        s.flush()
        for data, n in gifs:
            sha = hashlib.sha256(data).hexdigest()
            gif_path(settings, sha).parent.mkdir(parents=True, exist_ok=True)
            gif_path(settings, sha).write_bytes(data)
            s.add(Gif(sha256=sha, bytes=len(data), width=48, height=48, n_frames=n))
            s.flush()
            s.add(PoolGif(pool_id=pool.id, gif_sha=sha))
    enc = "nsfw-resnet50thin+motion"
    torch.manual_seed(0)
    path = save_head(settings.models_dir / "h.pt", build_head("rnn-1", 1036, hidden=8),
                     {"kind": "rnn-1", "in_dim": 1036, "cfg": {"hidden": 8}, "encoder_id": enc, "sampling": "sparse"})
    with session_scope(engine) as s:
        s.add(ModelVersion(name="t", encoder_id=enc, sampling="sparse", head_kind="rnn-1", path=str(path), status="active"))

    local = score_pool(settings, engine, pool="p", device="cpu", workers=0)
    shas = [hashlib.sha256(d).hexdigest() for d, _ in gifs]

    def snapshot() -> tuple[dict, dict, dict]:
        feats = {sha: load_features(settings, sha, enc, "sparse") for sha in shas[:3]}
        with session_scope(engine) as s:
            preds = {p.gif_sha: unpack_scores(p.scores).copy() for p in s.scalars(select(Prediction))}
            rows = {g.sha256: (g.rating, g.nsfw_prob, bool(g.score_error)) for g in s.scalars(select(Gif))}
        return feats, preds, rows

    feats_l, preds_l, rows_l = snapshot()
    # Start again from nothing but the files and the head.
    shutil.rmtree(settings.features_dir)
    with session_scope(engine) as s:
        s.execute(delete(Prediction))
        for g in s.scalars(select(Gif)):
            g.rating = g.nsfw_prob = g.score_error = g.rating_source = None

    remote = score_pool(settings, engine, pool="p", device="cpu", engine_kind="ray", workers=1, batch_size=4)
    feats_r, preds_r, rows_r = snapshot()
    assert (remote.encoded, remote.scored, len(remote.failed)) == (local.encoded, local.scored, 1) == (3, 3, 1)
    assert remote.failed[0][0] == shas[3]
    for sha in shas[:3]:
        np.testing.assert_allclose(feats_r[sha], feats_l[sha], atol=1e-4)
        np.testing.assert_allclose(preds_r[sha], preds_l[sha], atol=1e-5)
        assert rows_r[sha][0] == rows_l[sha][0]
        assert rows_r[sha][1] == pytest.approx(rows_l[sha][1], abs=1e-5)
    assert rows_r[shas[3]][2] and rows_l[shas[3]][2]
    assert ray.is_initialized()  # the engine left the Ray it did not start alone

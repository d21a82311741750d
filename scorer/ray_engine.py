"""Pools larger than one machine: the scoring unit of work as Ray Data stages.

Stage 1 (`map_batches` tasks, CPU): `scorer.pipeline.prepare_job` — decode, sample,
resize/crop, motion features. Stage 2 (`map_batches` actors, one GPU each when the cluster
has GPUs): `scorer.pipeline.encode_stream` with an encoder built once per actor. The
features come back to the driver, which writes the cache files and the database rows
exactly as the local engine does, so both engines give the same results.

The GIF files are read by the workers from `gif_path(settings, sha)`: on a multi-host
cluster the data home must be on storage every node mounts at the same path (NFS, a
bucket mount). Ray itself is an optional extra (`pip install 'moodgif[ray]'`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from scorer.encoders import EncoderError, Preprocessor, get_encoder
from scorer.scoring_unit import GifJob, Limits, PreparedGif, encode_stream, prepare_job
from scorer.settings import Settings

if TYPE_CHECKING:
    from ray.data import Dataset

GIFS_PER_ACTOR_CALL = 16


def _to_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _prepare_batch(batch: dict[str, np.ndarray], prep: Preprocessor, scheme: str, limits: Limits) -> dict[str, list]:
    out: dict[str, list] = {"sha": [], "units": [], "extra": [], "frames": [], "error": []}
    for sha, path, n in zip(batch["sha"], batch["path"], batch["n_frames"], strict=True):
        g = prepare_job(prep, GifJob(str(sha), str(path), int(n)), scheme, limits)
        out["sha"].append(g.sha)
        # Variable-shaped arrays travel as .npy bytes: plain Arrow binary columns.
        out["units"].append(_to_bytes(g.units))
        out["extra"].append(_to_bytes(g.extra))
        out["frames"].append(g.frames)
        out["error"].append(g.error or "")
    return out


class _EncodeActor:
    def __init__(self, encoder_id: str, settings: Settings, device: str, batch_size: int) -> None:
        self.encoder = get_encoder(encoder_id, settings, device)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        gifs = [
            PreparedGif(str(sha), _from_bytes(u), _from_bytes(e), int(f), str(err) or None)
            for sha, u, e, f, err in zip(
                batch["sha"], batch["units"], batch["extra"], batch["frames"], batch["error"], strict=True
            )
        ]
        out: dict[str, list] = {"sha": [], "feats": [], "frames": [], "error": []}
        for g, feats in encode_stream(self.encoder, gifs, self.batch_size):
            out["sha"].append(g.sha)
            out["feats"].append(_to_bytes(feats) if feats is not None else b"")
            out["frames"].append(g.frames)
            out["error"].append(g.error or "")
        return out


def encode_with_ray(
    jobs: list[GifJob],
    encoder_id: str,
    settings: Settings,
    *,
    device: str = "auto",
    scheme: str = "sparse",
    limits: Limits,
    workers: int = 1,
    batch_size: int = 64,
    address: str | None = None,
) -> Iterator[tuple[str, np.ndarray | None, str | None, int]]:
    """Yield (sha, features or None, error or None, frames) for every job, in any order."""
    ray = _import_ray()
    started = _start_ray(ray, address)
    try:
        gpus = _actor_gpus(ray, device)
        prep = get_encoder(encoder_id, settings, "cpu").prep  # validated on the driver already
        items = [{"sha": j.sha, "path": j.path, "n_frames": j.n_frames} for j in jobs]
        ds = ray.data.from_items(items)
        ds = _add_prepare_stage(ds, prep, scheme, limits)
        ds = _add_encode_stage(ds, encoder_id, settings, gpus=gpus, workers=workers,
                               batch_size=batch_size)
        yield from _iter_results(ds)
    finally:
        if started:
            ray.shutdown()


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise EncoderError("--engine ray needs Ray: pip install 'moodgif[ray]'") from None
    return ray


def _start_ray(ray: ModuleType, address: str | None) -> bool:
    """Connect to Ray unless it already runs here; True when this call started it."""
    if ray.is_initialized():
        return False
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    return True


def _actor_gpus(ray: ModuleType, device: str) -> int:
    """How many GPUs the encode actors may use (0: they run on CPU)."""
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if device.startswith("cuda") and gpus < 1:
        raise EncoderError(f"--device {device} was asked for but the Ray cluster has no GPU")
    return int(gpus) if gpus >= 1 and device != "cpu" else 0


def _add_prepare_stage(ds: Dataset, prep: Preprocessor, scheme: str, limits: Limits) -> Dataset:
    """Stage 1: decode, sample and preprocess, one GIF per CPU task."""
    return ds.map_batches(
        _prepare_batch,
        fn_kwargs={"prep": prep, "scheme": scheme, "limits": limits},
        batch_size=1,
        batch_format="numpy",
        num_cpus=1,
    )


def _add_encode_stage(ds: Dataset, encoder_id: str, settings: Settings, *, gpus: int, workers: int,
                      batch_size: int) -> Dataset:
    """Stage 2: encoder actors, one GPU each when `gpus`, else up to `workers` on CPU."""
    use_gpu = gpus > 0
    return ds.map_batches(
        _EncodeActor,
        fn_constructor_kwargs={
            "encoder_id": encoder_id, "settings": settings,
            "device": "cuda" if use_gpu else "cpu", "batch_size": batch_size,
        },
        batch_size=GIFS_PER_ACTOR_CALL,
        batch_format="numpy",
        # A range lets Ray Data leave CPUs to the decode stage on small clusters.
        concurrency=(1, max(1, gpus if use_gpu else int(workers))),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )


def _iter_results(ds: Dataset) -> Iterator[tuple[str, np.ndarray | None, str | None, int]]:
    """The encode stage's rows back on the driver, features decoded."""
    for batch in ds.iter_batches(batch_size=GIFS_PER_ACTOR_CALL, batch_format="numpy"):
        for sha, feats, frames, error in zip(
            batch["sha"], batch["feats"], batch["frames"], batch["error"], strict=True
        ):
            if error:
                yield str(sha), None, str(error), int(frames)
            else:
                yield str(sha), _from_bytes(feats), None, int(frames)

"""The unit of work of scoring, shared by the local engine and Ray (`scorer.ray_engine`).

`prepare_job` decodes, samples and preprocesses one GIF on a CPU worker (optionally reading
its faces); `encode_stream` runs the encoder on batches of frames gathered across GIFs on the
device. `scorer.pipeline` drives them locally and writes the results; `scorer.ray_engine`
runs the same two functions as Ray Data stages. Kept apart so neither engine imports the
other.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from scorer.encoders import NetInput, Preprocessor, TorchEncoder
from scorer.processes import pid_alive

log = logging.getLogger("scorer.pipeline")


@dataclass
class GifJob:
    sha: str
    path: str
    n_frames: int  # from the database; 0 = unknown (decode everything, then sample)


@dataclass
class PreparedGif:
    sha: str
    units: np.ndarray
    extra: np.ndarray
    frames: int = 0
    error: str | None = None
    faces: np.ndarray | None = None  # scorer.faces rows (T', 8), when the face channel ran


@dataclass(frozen=True)
class Limits:
    max_frames: int
    max_pixels: int
    max_total_pixels: int | None = None
    face_model_dir: str = ""  # "" = no face channel in the workers


# ---------------------------------------------------------------------------------------
# worker side


def prepare_job(prep: Preprocessor, job: GifJob, scheme: str, limits: Limits) -> PreparedGif:
    """Decode, sample and preprocess one GIF; any failure becomes `error`, never a raise."""
    from scorer.frames import GifDecodeError, decode_gif, sample_indices

    empty = np.zeros((0,), np.uint8)
    try:
        kw = {"max_frames": limits.max_frames, "max_pixels": limits.max_pixels,
              "max_total_pixels": limits.max_total_pixels}
        decoded = None
        if job.n_frames > 0:
            try:
                decoded = decode_gif(job.path, indices=sample_indices(job.n_frames, scheme), **kw)
            except IndexError:
                decoded = None  # the stored frame count is stale: decode all, then sample
        if decoded is None:
            full = decode_gif(job.path, **kw)
            idx = sample_indices(full.n_frames, scheme)
            frames, durations = full.frames[idx], full.durations_ms[idx]
        else:
            frames, durations = decoded.frames, decoded.durations_ms
        prepared = prep.prepare(frames, durations)
        faces = read_faces(frames, limits.face_model_dir) if limits.face_model_dir else None
        return PreparedGif(job.sha, prepared.units, prepared.extra, int(frames.shape[0]), faces=faces)
    except GifDecodeError as exc:
        return PreparedGif(job.sha, empty, empty, error=str(exc))
    except FileNotFoundError:
        return PreparedGif(job.sha, empty, empty, error=f"file missing: {job.path}")
    except (OSError, ValueError, MemoryError) as exc:
        return PreparedGif(job.sha, empty, empty, error=f"{type(exc).__name__}: {exc}")


def read_faces(frames: np.ndarray, folder: str) -> np.ndarray | None:
    """The face channel's rows for decoded frames; None (not a failure) if it cannot run."""
    from scorer.faces import get_model

    try:
        return get_model(Path(folder)).frame_expressions(frames)
    except Exception as exc:  # the prior is a bonus: a face-model problem never loses the GIF
        log.warning("face channel skipped: %s", exc)
        return None


class _JobDataset:
    """A map-style dataset for torch's DataLoader (its workers are our decode processes)."""

    def __init__(self, jobs: list[GifJob], prep: Preprocessor, scheme: str, limits: Limits) -> None:
        self.jobs, self.prep, self.scheme, self.limits = jobs, prep, scheme, limits

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> PreparedGif:
        return prepare_job(self.prep, self.jobs[i], self.scheme, self.limits)


def _identity(x: PreparedGif) -> PreparedGif:
    return x


def _leave_ctrl_c_to_the_parent(_worker: int, parent: int | None = None) -> None:
    """A Ctrl-C reaches the whole process group. A decode worker that dies of it mid-GIF
    makes torch wait out its 5 s join timeout per worker (about 11 s with two) and print its
    tracebacks; ignoring it lets the parent stop the workers, which then exit at once.

    A parent killed outright (`kill -9`, the OOM killer) cannot stop them: torch's watchdog
    sees it gone, but a worker whose decoded frames fill the pipe then waits for ever to flush
    them (its sibling holds the pipe open), keeping the home's lock and the database open.
    So the kernel kills a worker when its parent dies (Linux); decoding writes nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)


def _die_with(parent: int | None) -> None:
    """SIGKILL this process when `parent` (the process that forked it) dies (Linux only)."""
    import sys

    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    # A worker started through a fork server has that server as its parent, not `parent`:
    # that alone is no death. Only a parent gone before the line above leaves it unsignalled.
    if os.getppid() != parent and not pid_alive(parent):
        os._exit(0)


def iter_prepared_local(
    jobs: list[GifJob], prep: Preprocessor, scheme: str, limits: Limits, workers: int
) -> Iterator[PreparedGif]:
    """Prepared GIFs in job order, decoded by `workers` processes (0 = in this process)."""
    if workers <= 0:
        for job in jobs:
            yield prepare_job(prep, job, scheme, limits)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _JobDataset(jobs, prep, scheme, limits),  # type: ignore[arg-type]
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_identity,
        worker_init_fn=partial(_leave_ctrl_c_to_the_parent, parent=os.getpid()),
        prefetch_factor=4,  # bounded read-ahead: memory stays flat with the pool's size
    )
    yield from loader


# ---------------------------------------------------------------------------------------
# device side


@dataclass
class _Pending:
    gif: PreparedGif
    next_unit: int = 0
    outs: list[np.ndarray] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return 0 if self.gif.error else len(self.gif.units)

    @property
    def done(self) -> int:
        return sum(len(o) for o in self.outs)


def encode_stream(
    encoder: TorchEncoder, prepared: Iterable[PreparedGif], batch_size: int
) -> Iterator[tuple[PreparedGif, np.ndarray | None]]:
    """(gif, (T, D) features or None on error), in input order; the network sees batches of
    `batch_size` units (frames, or clips) gathered across GIFs."""
    batch_size = max(1, int(batch_size))
    queue: deque[_Pending] = deque()

    def run(final: bool) -> Iterator[tuple[PreparedGif, np.ndarray | None]]:
        while True:
            avail = sum(p.n_units - p.next_unit for p in queue)
            if avail == 0 or (avail < batch_size and not final):
                break
            pieces: list[tuple[_Pending, int, int]] = []
            room = batch_size
            for p in queue:
                take = min(room, p.n_units - p.next_unit)
                if take > 0:
                    pieces.append((p, p.next_unit, p.next_unit + take))
                    room -= take
                if room == 0:
                    break
            units = np.concatenate([p.gif.units[a:b] for p, a, b in pieces])
            out = encoder.forward_units(units)
            offset = 0
            for p, a, b in pieces:
                p.outs.append(out[offset : offset + (b - a)])
                p.next_unit = b
                offset += b - a
        while queue and queue[0].done >= queue[0].n_units and queue[0].next_unit >= queue[0].n_units:
            p = queue.popleft()
            if p.gif.error:
                yield p.gif, None
                continue
            net_out = np.concatenate(p.outs) if p.outs else np.zeros((0, encoder.net_dim), np.float32)
            yield p.gif, encoder.finish(net_out, NetInput(p.gif.units, p.gif.extra))

    for gif in prepared:
        queue.append(_Pending(gif))
        yield from run(final=False)
    yield from run(final=True)


# ---------------------------------------------------------------------------------------
# planning: what to encode, with what, under which model version

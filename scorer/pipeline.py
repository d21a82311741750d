"""Batched scoring of a pool: decode -> sample -> encode (cached) -> head -> predictions.

The unit of work is one GIF (`scorer.scoring_unit`): `prepare_job` (decode, sample, resize/crop, motion features;
CPU, runs in worker processes) then the encoder's network on batches of frames gathered
across GIFs (`encode_stream`, on the device) then one feature file per GIF. The local engine
feeds `prepare_job` through a torch DataLoader (worker processes, bounded prefetch); the
Ray engine (`scorer.ray_engine`) runs the same two functions as Ray Data stages.

Everything streams: a GIF's frames live only between its decode and its feature file, so
peak memory depends on workers x prefetch x batch size, not on the pool's size.
Only the database writes and the feature files happen in this (the driver) process, the
files on two writer threads so that the encoder's loop does not wait on the disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from scorer import versions
from scorer.encoders import (
    EncoderError,
    TorchEncoder,
    get_encoder,
    resolve_device,
)
from scorer.features import has_features, load_features, save_features
from scorer.scoring_unit import (  # GifJob, PreparedGif re-exported for callers and tests
    GifJob,
    Limits,
    PreparedGif,
    encode_stream,
    iter_prepared_local,
    prepare_job,
    read_faces,
)
from scorer.settings import Settings
from scorer.store import Gif, ModelVersion, Pool, PoolGif, Prediction, pack_scores, session_scope
from scorer.words_ahead import WordsAhead

if TYPE_CHECKING:
    from scorer.prior import PriorStanding, TextModel

log = logging.getLogger(__name__)

DB_CHUNK = 64  # GIF rows updated per transaction


class ScoreError(RuntimeError):
    """Scoring cannot start (unknown pool, model version mismatch...) or go on (a feature file
    that cannot be written); one clear line."""


@dataclass
class ScoreReport:
    encoded: int = 0  # GIFs encoded in this run
    cached: int = 0  # GIFs whose features were already on disk
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sha, reason) of this run
    scored: int = 0  # prediction rows written
    model_version_id: int | None = None
    seconds: float = 0.0
    frames: int = 0  # frames encoded in this run
    skipped: int = 0  # GIFs skipped because an earlier run could not decode them
    encoder_id: str = ""
    sampling: str = ""
    prior_version_id: int | None = None  # the zero-shot prior written this run
    prior_written: int = 0
    prior_faces: int = 0  # GIFs where the face channel saw a face
    prior_words: int = 0  # GIFs whose words the intent model could read
    prior_wide: int = 0  # GIFs with neither: only the wide prior
    head_skipped: int = 0  # GIFs outside the active head's validated pools (the prior ranks them)
    prior_standing: PriorStanding | None = None  # which version is active after the prior ran

    def summary(self) -> str:
        """One line for people (an admin job's outcome): what was encoded and scored."""
        parts = [f"scored: {self.encoded} encoded, {self.cached} cached"
                 + (f", {len(self.failed)} failed" if self.failed else "")]
        if self.prior_version_id is not None:
            parts.append(f"zero-shot prior for {self.prior_written} GIFs ({self.prior_faces} with "
                         f"a face, {self.prior_words} with readable words)")
        if self.model_version_id is not None:
            parts.append(f"{self.scored} scored by model version {self.model_version_id}")
        return "; ".join(parts) + f" in {self.seconds:.1f} s"



def _resolve_version(
    engine: Engine, encoder_id: str | None, scheme: str, model_version_id: int | None
) -> tuple[ModelVersion | None, str | None, str]:
    with session_scope(engine) as s:
        if model_version_id is not None:
            mv = s.get(ModelVersion, model_version_id)
            if mv is None:
                raise ScoreError(f"model version {model_version_id} does not exist")
            if encoder_id and encoder_id != mv.encoder_id:
                raise ScoreError(
                    f"model version {mv.id} was trained on encoder {mv.encoder_id!r}, not "
                    f"{encoder_id!r}; leave --encoder out or pass that one"
                )
            return mv, mv.encoder_id, mv.sampling
        mv = versions.active_version(s)
        if mv is not None and (encoder_id in (None, mv.encoder_id)) and mv.sampling == scheme:
            return mv, mv.encoder_id, mv.sampling
        return None, encoder_id, scheme


def _pool_shas(engine: Engine, pool: str | None) -> list[str]:
    if pool is None:
        with session_scope(engine) as s:
            return list(s.scalars(select(Gif.sha256).order_by(Gif.created_at, Gif.sha256)))
    with session_scope(engine) as s:
        if s.scalars(select(Pool.id).where(Pool.name == pool)).first() is None:
            raise ScoreError(f"no pool named {pool!r} (see `moodgif pool list`)")
    from scorer.pool import pool_gifs

    return list(pool_gifs(engine, pool))


def _gif_rows(engine: Engine, shas: list[str]) -> dict[str, tuple[int, str | None, float | None]]:
    out: dict[str, tuple[int, str | None, float | None]] = {}
    with session_scope(engine) as s:
        for i in range(0, len(shas), 500):
            q = select(Gif.sha256, Gif.n_frames, Gif.score_error, Gif.nsfw_prob).where(
                Gif.sha256.in_(shas[i : i + 500])
            )
            for sha, n, err, prob in s.execute(q):
                out[sha] = (int(n or 0), err, prob)
    return out


def _write_gif_updates(engine: Engine, settings: Settings, updates: list[tuple[str, float | None, str | None]]) -> None:
    """(sha, nsfw_prob or None, error or None) -> gif rows, one transaction."""
    from scorer.rating import apply_rating

    if not updates:
        return
    with session_scope(engine) as s:
        # One query for the chunk: a get per GIF cost the scoring process 0.86 ms a GIF, on
        # the thread that feeds the encoder.
        wanted = {sha for sha, _, _ in updates}
        gifs = {g.sha256: g for g in s.scalars(select(Gif).where(Gif.sha256.in_(wanted)))}
        for sha, prob, error in updates:
            gif = gifs.get(sha)
            if gif is None:
                continue
            if error is not None:
                gif.score_error = error[:2000]
                continue
            gif.score_error = None
            if prob is not None:
                apply_rating(gif, prob, settings)


# ---------------------------------------------------------------------------------------
# the entry points


# Frames per encoder batch when the settings say 0 (auto). On a CPU small batches keep the
# activations in cache: batch 8 ran 1.8x faster than 64 (docs/bench/scoring.md); a GPU wants
# big ones.
CPU_BATCH_SIZE = 8
CUDA_BATCH_SIZE = 64


def auto_batch_size(device: str) -> int:
    return CUDA_BATCH_SIZE if resolve_device(device).type == "cuda" else CPU_BATCH_SIZE


# Decode workers on a GPU when the admin set none. The default, 2, suits a small CPU host,
# where the encoder needs the same cores; on a GPU decoding is the limit: on an H200 the
# pipeline gave 185-240 GIFs/s with 4 workers against 269-334 with 8-16, in one run
# (docs/bench/scoring.md).
CUDA_WORKERS = 8


def auto_workers(settings: Settings, device_type: str) -> int:
    """`score_workers` as set; when it is not set and the encoder runs on CUDA, up to
    CUDA_WORKERS (never more than the cores, never fewer than the default)."""
    if "workers" in settings.scoring.model_fields_set or device_type != "cuda":
        return settings.scoring.workers
    return max(settings.scoring.workers, min(CUDA_WORKERS, _usable_cpus()))


def _default_workers(settings: Settings, encoder: TorchEncoder, engine_kind: str) -> int:
    """Ray's workers are encoder actors, not decoders: as set; local ones by the device."""
    if engine_kind != "local":
        return settings.scoring.workers
    return auto_workers(settings, encoder.device.type)


def _usable_cpus() -> int:
    """The cores this process may run on (a container's cpuset), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


# Failures that say nothing about the GIF's bytes (a file missing while a mount was late, a
# read error, memory): the next `score` tries again. A GIF's bytes never change (its name is
# their SHA-256), so a decoding failure would only repeat and stays skipped.
_TRANSIENT = ("file missing:", "cannot read ", "OSError", "PermissionError", "FileNotFoundError",
              "MemoryError", "encoder returned nothing")


def transient_failure(error: str) -> bool:
    return error.startswith(_TRANSIENT)


def _plan_jobs(
    settings: Settings,
    engine: Engine,
    encoder: TorchEncoder,
    enc_id: str,
    scheme: str,
    shas: list[str],
    rows: dict[str, tuple[int, str | None, float | None]],
    report: ScoreReport,
) -> list[GifJob]:
    """Count cached and undecodable GIFs in `report`; return the jobs still to encode.

    A cached GIF whose NSFW probability never reached the database is finished here, so a
    run killed between writing features and the database row heals on the next one."""
    from scorer.pool import gif_path

    todo: list[GifJob] = []
    backfill: list[tuple[str, float | None, str | None]] = []
    for sha in shas:
        n_frames, err, prob = rows.get(sha, (0, None, None))
        if has_features(settings, sha, enc_id, scheme):
            report.cached += 1
            if prob is None and encoder.nsfw_index is not None:
                # Killed between the feature file and the database last time: finish it.
                feats = load_features(settings, sha, enc_id, scheme)
                if feats is not None:
                    backfill.append((sha, _nsfw(encoder, feats), None))
        elif err and not transient_failure(err):
            report.skipped += 1
        else:  # never tried, or a failure that was not the bytes' (a missing file): try again
            todo.append(GifJob(sha, str(gif_path(settings, sha)), n_frames))
    for i in range(0, len(backfill), DB_CHUNK):
        _write_gif_updates(engine, settings, backfill[i : i + DB_CHUNK])
    return todo


def score_pool(
    settings: Settings,
    engine: Engine,
    *,
    pool: str | None = None,
    encoder_id: str | None = None,
    device: str = "auto",
    model_version_id: int | None = None,
    engine_kind: str = "local",
    progress: bool = False,
    workers: int | None = None,
    batch_size: int | None = None,
    address: str | None = None,
    text_model: TextModel | None = None,
    prior: bool = False,
) -> ScoreReport:
    """Encode the GIFs of `pool` (all GIFs when None) that have no cached features, then
    write predictions under the model version (given, or the active one when it matches
    the encoder), for the GIFs of the pools that version was trained/validated on.

    With `prior` (`moodgif score`, `/gif-admin pools add`) the zero-shot prior (faces, and
    words with a `text_model`) is written as its own model version for every GIF and made
    active as `scorer.prior.activate_prior` says. A head never ranks outside its domain."""
    t0 = time.perf_counter()
    if engine_kind not in ("local", "ray"):
        raise ScoreError(f"unknown engine {engine_kind!r}; expected local or ray")
    mv, enc_id, scheme = _scoring_version(settings, engine, encoder_id, model_version_id)
    batch_size = batch_size or settings.scoring.batch_size or auto_batch_size(device)
    encoder = _checked_encoder(settings, enc_id, mv, engine_kind, device)
    workers = _default_workers(settings, encoder, engine_kind) if workers is None else workers
    shas = _pool_shas(engine, pool)
    rows = _gif_rows(engine, shas)
    report = ScoreReport(model_version_id=mv.id if mv else None, encoder_id=enc_id, sampling=scheme)
    face_dir = _face_dir(settings) if prior else ""

    todo = _plan_jobs(settings, engine, encoder, enc_id, scheme, shas, rows, report)
    # The word channel needs no pixels: it runs beside the decoding and encoding below.
    words = WordsAhead(engine, shas, text_model) if prior and text_model is not None else None

    if todo:
        _encode_todo(settings, engine, encoder, enc_id, scheme, todo, report,
                     face_dir=face_dir, engine_kind=engine_kind, device=device, workers=workers,
                     batch_size=batch_size, address=address, progress=progress)

    have = [sha for sha in shas if has_features(settings, sha, enc_id, scheme)]
    if prior:  # first: it stores the channels that a head trained with them reads
        _score_prior(settings, engine, report, have, scheme, face_dir, rows,
                     words.model() if words is not None else None)
    _predict_with_head(settings, engine, mv, have, report)
    report.seconds = time.perf_counter() - t0
    return report


def _scoring_version(
    settings: Settings, engine: Engine, encoder_id: str | None, model_version_id: int | None
) -> tuple[ModelVersion | None, str, str]:
    """(the version whose trained head runs, or None; encoder id; sampling scheme)."""
    from scorer.versions import PRIOR_HEAD_KIND

    mv, enc_id, scheme = _resolve_version(engine, encoder_id, settings.scoring.sampling, model_version_id)
    if mv is not None and mv.head_kind == PRIOR_HEAD_KIND:
        mv = None  # the prior has no head: score_pool (re)writes it from faces and words
    return mv, enc_id or settings.scoring.encoder, scheme


def _checked_encoder(settings: Settings, enc_id: str, mv: ModelVersion | None, engine_kind: str,
                     device: str) -> TorchEncoder:
    """The encoder, built (and so validated), and the head file checked, before anything is
    written: unknown id, missing weights, a missing head and absent CUDA all stop here."""
    # Ray actors build their own on their devices.
    encoder = get_encoder(enc_id, settings, "cpu" if engine_kind == "ray" else device)
    if mv is not None:
        _head_path(settings, mv)
    return encoder


def _predict_with_head(settings: Settings, engine: Engine, mv: ModelVersion | None, shas: list[str],
                       report: ScoreReport) -> None:
    """Write the trained head's predictions for `shas` (those in its domain); count them in `report`."""
    if mv is not None:
        report.scored = write_predictions(settings, engine, mv.id, shas)
        report.head_skipped = len(shas) - report.scored
    else:
        log.info("no trained head for encoder %s (%s)", report.encoder_id, report.sampling)


def _encode_todo(settings: Settings, engine: Engine, encoder: TorchEncoder, enc_id: str, scheme: str,
                 todo: list, report: ScoreReport, *, face_dir: str, engine_kind: str,
                 device: str, workers: int, batch_size: int, address: str | None,
                 progress: bool) -> None:
    """Decode, encode and store the GIFs that have no cached features (local or Ray)."""
    # Ray's stages return features only: its GIFs get their faces later, in the driver
    # (`_score_prior` -> `_face_rows`); the local workers find them while decoding.
    limits = Limits(settings.fetch.max_gif_frames, settings.fetch.max_gif_pixels,
                    settings.fetch.max_gif_total_pixels,
                    face_dir if engine_kind == "local" else "")
    if engine_kind == "ray":
        from scorer.ray_engine import encode_with_ray

        results: Iterable[tuple[str, np.ndarray | None, str | None, int]] = encode_with_ray(
            todo, enc_id, settings, device=device, scheme=scheme, limits=limits,
            workers=workers, batch_size=batch_size, address=address,
        )
    else:
        stream = encode_stream(encoder, iter_prepared_local(todo, encoder.prep, scheme, limits, workers), batch_size)
        results = _keep_faces(settings, scheme, stream)
    _consume(settings, engine, encoder, enc_id, scheme, results, report, len(todo), progress)


def _face_dir(settings: Settings) -> str:
    """The face model folder as a string for the workers, or "" when the channel is off."""
    from scorer.faces import model_dir

    if not settings.scoring.face_channel:
        return ""
    found = model_dir(settings.scoring.face_model_dir or None)
    if found is None:
        log.warning("face channel off: no face-api weights (run scripts/fetch-face-model)")
        return ""
    return str(found)


def _keep_faces(settings: Settings, scheme: str, stream: Iterable[tuple[PreparedGif, np.ndarray | None]]
                ) -> Iterator[tuple[str, np.ndarray | None, str | None, int]]:
    from scorer.prior import FACE_FEATURES_ID

    for g, f in stream:
        if g.faces is not None and g.error is None and f is not None:
            save_features(settings, g.sha, FACE_FEATURES_ID, scheme, g.faces)
        yield g.sha, f, g.error, g.frames


def _face_rows(settings: Settings, scheme: str, face_dir: str,
               rows: dict[str, tuple[int, str | None, float | None]]):  # type: ignore[no-untyped-def]
    """sha -> the face channel's cached rows; computed here (and cached) when missing, as for
    GIFs encoded before the face channel existed or by the Ray engine."""
    from scorer.frames import decode_gif, sample_indices
    from scorer.pool import gif_path
    from scorer.prior import FACE_FEATURES_ID

    def get(sha: str) -> np.ndarray | None:
        cached = load_features(settings, sha, FACE_FEATURES_ID, scheme)
        if cached is not None or not face_dir:
            return cached
        n = rows.get(sha, (0, None, None))[0]
        kw = {"max_frames": settings.fetch.max_gif_frames, "max_pixels": settings.fetch.max_gif_pixels}
        try:
            if n > 0:
                frames = decode_gif(str(gif_path(settings, sha)), indices=sample_indices(n, scheme), **kw).frames
            else:
                full = decode_gif(str(gif_path(settings, sha)), **kw)
                frames = full.frames[sample_indices(full.n_frames, scheme)]
        except Exception as exc:  # the GIF was encoded before: a failure here loses only faces
            log.warning("gif %s: no face channel (%s)", sha[:12], exc)
            return None
        out = read_faces(frames, face_dir)
        if out is not None:
            save_features(settings, sha, FACE_FEATURES_ID, scheme, out)
        return out

    return get


def _score_prior(settings: Settings, engine: Engine, report: ScoreReport, shas: list[str],
                 scheme: str, face_dir: str, rows: dict, text_model: TextModel | None) -> None:
    from scorer.channels import save_channels
    from scorer.prior import activate_prior, prior_version, write_prior

    mv_id = prior_version(engine, report.encoder_id, scheme, with_faces=bool(face_dir))
    stats = write_prior(engine, mv_id, shas, _face_rows(settings, scheme, face_dir, rows),
                        text_model, with_faces=bool(face_dir),
                        keep_channels=lambda sha, vec: save_channels(settings, sha, scheme, vec))
    report.prior_standing = activate_prior(engine, mv_id)
    report.prior_version_id = mv_id
    report.prior_written, report.prior_faces = stats.written, stats.faces
    report.prior_words, report.prior_wide = stats.words, stats.wide
    if text_model is None:
        log.info("no text model given: the prior's word channel was off this run")


def _nsfw(encoder: TorchEncoder, feats: np.ndarray) -> float | None:
    from scorer.rating import gif_nsfw_prob

    if encoder.nsfw_index is None or feats.shape[1] <= encoder.nsfw_index:
        return None
    return gif_nsfw_prob(feats[:, encoder.nsfw_index])


# Feature files are written on these threads, beside the encoder's loop: a write (mkstemp,
# np.save, os.replace) cost that loop 0.82 ms a GIF, mostly waiting on the disk.
WRITER_THREADS = 2


@dataclass
class _Stored:
    """A GIF of this run waiting for its gif row: (sha, nsfw_prob, error) once `write`, its
    feature file on the writer's threads (None for a GIF that failed), has finished."""

    sha: str
    prob: float | None
    error: str | None
    write: Future[Path] | None = None


def _consume(
    settings: Settings, engine: Engine, encoder: TorchEncoder, enc_id: str, scheme: str,
    results: Iterable[tuple[str, np.ndarray | None, str | None, int]], report: ScoreReport,
    total: int, progress: bool,
) -> None:
    """Store each result: its feature file (queued on the writer), then its gif row.

    A row is written only once its file is on disk (a kill in between is repaired by the
    next run, `_plan_jobs`). The writer is drained and shut down on every way out, and the
    rows of the files that reached the disk are written; a write that failed stops the run
    with a ScoreError naming the GIF, whose row is left untouched (the next run retries it)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="gif", desc="encoding", disable=None if progress else True,
               dynamic_ncols=True)
    writer = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="moodgif-features")
    waiting: list[_Stored] = []
    try:
        for sha, feats, error, n_frames in results:
            waiting.append(_queue_result(settings, writer, encoder, enc_id, scheme, report,
                                         sha, feats, error, n_frames))
            # Rows go one chunk behind the encoder: the oldest chunk's files are written by
            # now, so this rarely waits; it does when the disk falls behind, which bounds
            # the features held in memory to two chunks.
            if len(waiting) >= 2 * DB_CHUNK:
                failed_writes = _record_stored(engine, settings, waiting[:DB_CHUNK])
                del waiting[:DB_CHUNK]  # after: a Ctrl-C while recording leaves them to finally
                _stop_on_failed_writes(failed_writes)
            bar.update(1)
            bar.set_postfix(frames=report.frames, failed=len(report.failed), refresh=False)
    finally:
        writer.shutdown(wait=True)
        failed_writes = _record_stored(engine, settings, waiting)
        bar.close()
    _stop_on_failed_writes(failed_writes)


def _queue_result(settings: Settings, writer: ThreadPoolExecutor, encoder: TorchEncoder,
                  enc_id: str, scheme: str, report: ScoreReport, sha: str,
                  feats: np.ndarray | None, error: str | None, n_frames: int) -> _Stored:
    """One GIF out of the encoder, counted in `report`: its features queued on `writer`, or
    its failure, as the row it waits to get."""
    if error is not None or feats is None:
        reason = error or "encoder returned nothing"
        report.failed.append((sha, reason))
        log.warning("gif %s skipped: %s", sha[:12], reason)
        return _Stored(sha, None, reason)
    report.encoded += 1
    report.frames += n_frames
    write = writer.submit(save_features, settings, sha, enc_id, scheme, feats)
    return _Stored(sha, _nsfw(encoder, feats), None, write)


def _record_stored(engine: Engine, settings: Settings,
                   stored: list[_Stored]) -> list[tuple[str, BaseException]]:
    """Write the rows of `stored` whose feature file is on disk (waiting for its write), in
    one transaction; return the (sha, exception) of the writes that failed, rows untouched."""
    updates: list[tuple[str, float | None, str | None]] = []
    failed: list[tuple[str, BaseException]] = []
    for item in stored:
        exc = item.write.exception() if item.write is not None else None
        if exc is None:
            updates.append((item.sha, item.prob, item.error))
        else:
            failed.append((item.sha, exc))
            log.error("gif %s: features not written: %s", item.sha[:12], exc)
    _write_gif_updates(engine, settings, updates)
    return failed


def _stop_on_failed_writes(failed: list[tuple[str, BaseException]]) -> None:
    """A feature file that cannot be written (a full disk, a read-only folder) would fail
    every GIF after it too: stop the run, in one line, rather than encode for nothing."""
    if not failed:
        return
    sha, exc = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    raise ScoreError(
        f"cannot write the features of gif {sha}{more}: {type(exc).__name__}: {exc}; the GIFs "
        "whose features were written are recorded: the next `moodgif score` goes on from there"
    ) from exc


def _head_path(settings: Settings, mv: ModelVersion) -> Path:
    """The version's head file (scorer.versions.head_path), as a ScoreError when missing."""
    try:
        return versions.head_path(settings, mv)
    except versions.MissingHead as exc:
        raise ScoreError(str(exc)) from exc


def write_predictions(
    settings: Settings, engine: Engine, model_version_id: int, shas: Iterable[str], device: str = "cpu"
) -> int:
    """Run the version's head on the cached features of `shas` and (re)write their
    Prediction rows; GIFs without features are left out. Returns the rows written."""
    from scorer.channels import head_channels, head_features
    from scorer.heads import load_head, predict

    with session_scope(engine) as s:
        mv = s.get(ModelVersion, model_version_id)
        if mv is None:
            raise ScoreError(f"model version {model_version_id} does not exist")
        enc_id, scheme = mv.encoder_id, mv.sampling
    head = _head_path(settings, mv)
    shas = in_domain(engine, model_version_id, list(shas))
    module, meta = load_head(head, device)
    channels = head_channels(meta)  # a head trained with the prior's channels reads them too
    written = 0
    for i in range(0, len(shas), 512):  # bounded: 512 GIFs' features at a time
        got = [(sha, head_features(settings, sha, enc_id, scheme, channels))
               for sha in shas[i : i + 512]]
        got = [(sha, f) for sha, f in got if f is not None and len(f)]
        if not got:
            continue
        scores = predict(module, [f for _, f in got], device)
        keys = [sha for sha, _ in got]
        with session_scope(engine) as s:
            s.execute(delete(Prediction).where(
                Prediction.model_version_id == model_version_id, Prediction.gif_sha.in_(keys)
            ))
            s.execute(insert(Prediction), [
                {"model_version_id": model_version_id, "gif_sha": sha, "scores": pack_scores(row)}
                for sha, row in zip(keys, scores, strict=True)
            ])
        written += len(got)
    return written


def pools_with_votes(engine: Engine) -> list[str]:
    """Pools holding a GIF somebody compared: the domain of a head trained on the ledger."""
    from scorer.store import Comparison

    with session_scope(engine) as s:
        voted = select(Comparison.winner).union(select(Comparison.loser)).subquery()
        return sorted(s.scalars(
            select(Pool.name).join(PoolGif, PoolGif.pool_id == Pool.id)
            .where(PoolGif.gif_sha.in_(select(voted.c[0]))).distinct()))


def version_pools(engine: Engine, model_version_id: int) -> list[str] | None:
    """The pools a trained head may rank: those whose votes it was trained on.

    Recorded in the version's config as "pools"; a version from before this was recorded
    gets the pools holding GIFs with comparisons now, written into its config once (so a
    pool that gets votes later is not silently added). None = any pool (the zero-shot
    prior, trained on no pool; or a head in a home with no votes at all)."""
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, model_version_id)
        if mv is None:
            raise ScoreError(f"model version {model_version_id} does not exist")
        config = dict(mv.config or {})
        if "pools" in config:
            return None if config["pools"] is None else list(config["pools"])
    pools = pools_with_votes(engine)
    if not pools:
        return None  # no votes anywhere: nothing says which domain it was trained on
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, model_version_id)
        assert mv is not None
        mv.config = {**(mv.config or {}), "pools": pools}
    return pools


def in_domain(engine: Engine, model_version_id: int, shas: list[str]) -> list[str]:
    """`shas` that are in a pool the version was trained/validated on (order kept)."""
    pools = version_pools(engine, model_version_id)
    if pools is None:
        return shas
    with session_scope(engine) as s:
        ok = set(s.scalars(select(PoolGif.gif_sha).join(Pool, Pool.id == PoolGif.pool_id)
                           .where(Pool.name.in_(pools))))
    return [sha for sha in shas if sha in ok]


__all__ = [
    "EncoderError",
    "GifJob",
    "Limits",
    "PreparedGif",
    "ScoreError",
    "ScoreReport",
    "encode_stream",
    "in_domain",
    "iter_prepared_local",
    "pools_with_votes",
    "prepare_job",
    "score_pool",
    "version_pools",
    "write_predictions",
]

"""`moodgif pretrain gifgif`: the paper's experiment on the real GIFGIF data, as a prior.

Steps (each resumable; a rerun skips what is done):

1. **Files**: the comparison CSV (`metric,left,right,choice`, gzipped) and, optionally, the
   tar of `<giphy_id>.gif`; local paths, or URLs downloaded with HTTP Range resume and an
   optional SHA-256 check (`scorer.download`), into `$MOODGIF_HOME/gifgif/`.
2. **GIFs** into the pool `gifgif`, each with `external_id = "giphy:<id>"`: read straight
   from the tar (never unpacked to disk; a GIF already stored is skipped without being
   decoded), or, without a tar (or with `--giphy-ids`), fetched from GIPHY by id
   (`giphy:id:`, with the admin's key).
3. **Comparisons**: the CSV's rows go into the ledger through the same import as
   `moodgif import-votes` (GIFs named by GIPHY id), tagged `platform="gifgif"`; a rerun
   with the same CSV and the same GIFs skips this step, a changed one replaces the
   previous GIFGIF rows whole (never doubles them).
4. **Train**: Bradley-Terry on the GIFGIF comparisons alone (no model prior), a head on
   the pool's features (`training.workflow.train_version`), and, unless `table=False`, the
   paper's Table 1 (`evaluate_table`) as a Markdown report.
5. **Activate** the new version when its ranking of held-out comparisons (between test
   GIFs it never trained on) beats chance, the active version's, if any, and the zero-shot
   prior's (`scorer.prior`), where that has scored the GIFs; its config records
   `trained_on = {"pool": "gifgif", "domain": "real", ...}`. It ranks the `gifgif` pool and
   each other pool with votes where it orders that pool's comparisons (none of which it
   trained on) better than the zero-shot prior does (`_real_pools`); every other pool keeps
   the zero-shot prior.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tarfile
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from scorer.download import obtain, sha256_file
from scorer.fetch import too_large
from scorer.giphy import GIPHY_ID, GiphyGif
from scorer.giphy_import import import_gifs, join_known, list_gifs, record_giphy_gifs, run_coroutine
from scorer.pool import (
    AcceptedGif,
    IngestReport,
    SourceItem,
    get_or_create_pool,
    record_refusals,
    validate_gif,
    validation_workers,
)
from scorer.settings import Settings
from scorer.store import Comparison, Gif, ModelVersion, session_scope

if TYPE_CHECKING:
    from tqdm import tqdm

    from scorer.prior import TextModel

POOL = "gifgif"
DOMAIN = "real"
DATASET = "GIFGIF (MIT Media Lab), comparisons until 2015-01-21"
_BATCH = 64


class PretrainError(RuntimeError):
    """An expected stop; the message says what to do."""


@dataclass
class PretrainReport:
    csv: str = ""
    images: str = ""
    gifs: dict = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)
    model_version_id: int | None = None
    head: str = ""  # the kind kept (fc-maxpool-2, or prior-residual when it had the lower dev loss)
    channels: str | None = None  # the prior's channels the head reads (scorer.channels), if any
    metrics: dict = field(default_factory=dict)
    table_report: str = ""
    activated: bool = False
    decision: str = ""
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _giphy_ids_known(engine: Engine) -> dict[str, str]:
    """external_id -> sha256 for every GIPHY GIF already stored."""
    with session_scope(engine) as s:
        return dict(s.execute(select(Gif.external_id, Gif.sha256)
                              .where(Gif.external_id.like("giphy:%"))).all())


def _tar_gif(gid: str) -> GiphyGif:
    return GiphyGif(id=gid, giphy_url=f"https://giphy.com/gifs/{gid}")


def ingest_tar(settings: Settings, engine: Engine, tar_path: Path, *, pool: str = POOL,
               wanted: Collection[str] | None = None, progress: bool = False) -> IngestReport:
    """Every `<giphy_id>.gif` of the tar (or those in `wanted`) into the pool, streamed."""
    pool_id = get_or_create_pool(engine, pool)
    run = _TarIngest(settings, engine, pool_id, IngestReport(pool=pool),
                     known=_giphy_ids_known(engine),
                     wanted=set(wanted) if wanted is not None else None)
    tf = _open_tar_stream(tar_path)
    with (tf, ThreadPoolExecutor(max_workers=validation_workers()) as executor,
          _progress_bar(progress) as bar):
        run.read_members(tf, tar_path, executor, bar)
        run.flush(executor)
    return run.finish()


@dataclass
class _TarIngest:
    """What one `ingest_tar` run carries from the tar's members to the database."""

    settings: Settings
    engine: Engine
    pool_id: int
    report: IngestReport
    known: dict[str, str]  # external_id -> sha256 of the GIPHY GIFs stored before this run
    wanted: set[str] | None
    # Shared by the batches and the joins, so a GIF met twice counts once as added.
    seen: set[str] = field(default_factory=set)
    refused: list[tuple[str, str]] = field(default_factory=list)
    joins: list[tuple[GiphyGif, str]] = field(default_factory=list)
    batch: list[tuple[GiphyGif, bytes]] = field(default_factory=list)

    def read_members(self, tf: tarfile.TarFile, tar_path: Path, executor: ThreadPoolExecutor,
                     bar: tqdm) -> None:
        """Queue each wanted GIF of the tar, validating and recording every full batch."""
        members = iter(tf)
        while True:
            try:
                member = next(members, None)
                if member is None:
                    return
                gid = _giphy_id_of(member)
                if gid is None or not self._wants(gid):
                    continue
                bar.update(1)
                self._take(tf, member, gid)
            except (tarfile.TarError, OSError, EOFError) as exc:
                # What came before the damage is kept; the tar itself is the refusal.
                self.refused.append((str(tar_path), f"the tar ends early or is damaged: {exc}"))
                return
            if len(self.batch) >= _BATCH:
                # Outside the tar's handler: a failure to record is not a damaged tar.
                self.flush(executor)

    def _wants(self, gid: str) -> bool:
        return self.wanted is None or gid in self.wanted

    def _take(self, tf: tarfile.TarFile, member: tarfile.TarInfo, gid: str) -> None:
        """Set a stored GIF aside to join, refuse an oversized one, or queue its bytes to validate."""
        g = _tar_gif(gid)
        if g.external_id in self.known:
            # Membership only: a GIF stored before is neither read nor decoded again.
            self.joins.append((g, self.known[g.external_id]))
            return
        cap = self.settings.fetch.max_gif_bytes
        if member.size > cap:
            # The header's size is enough: a huge member is never read into memory.
            self.refused.append((g.external_id, too_large(member.size, cap)))
            return
        fh = tf.extractfile(member)
        if fh is not None:
            self.batch.append((g, fh.read()))

    def flush(self, executor: ThreadPoolExecutor) -> None:
        """Validate the queued GIFs in parallel and record the accepted ones in one go."""
        accepted = []
        for g, outcome in executor.map(self._validate, self.batch):
            if isinstance(outcome, str):
                self.refused.append((g.external_id, outcome))
            else:
                accepted.append((g, outcome))
        if accepted:
            record_giphy_gifs(self.engine, self.pool_id, accepted, self.seen, self.report)
        self.batch.clear()

    def _validate(self, item: tuple[GiphyGif, bytes]) -> tuple[GiphyGif, AcceptedGif | str]:
        g, data = item
        return g, validate_gif(self.settings, SourceItem(ref=g.external_id), data)

    def finish(self) -> IngestReport:
        """Join the GIFs stored before and record every refusal; the finished report."""
        join_known(self.engine, self.pool_id, self.joins, self.seen, self.report)
        self.report.refused = self.refused
        record_refusals(self.engine, self.pool_id, self.refused)
        return self.report


def _open_tar_stream(tar_path: Path) -> tarfile.TarFile:
    try:
        # A stream: the 5.3 GB tar is read once, in order; the caller's `with` closes it.
        return tarfile.open(tar_path, "r|*")
    except (tarfile.TarError, OSError) as exc:
        raise PretrainError(f"{tar_path}: not a readable tar ({exc})") from None


def _progress_bar(progress: bool) -> tqdm:
    from tqdm import tqdm

    return tqdm(desc="gifgif GIFs", unit="gif", disable=None if progress else True,
                file=sys.stderr)


def _giphy_id_of(member: tarfile.TarInfo) -> str | None:
    """The GIPHY id a member's name gives, or None when the member is not a GIFGIF image."""
    if not member.isfile():
        return None  # folders, links and devices are never followed or written
    stem, _, ext = PurePosixPath(member.name).name.rpartition(".")
    if ext.lower() != "gif" or not GIPHY_ID.match(stem):
        return None  # not a GIFGIF image (a README, "._" metadata files)
    return stem


def ingest_ids(settings: Settings, engine: Engine, ids: list[str], *, pool: str = POOL,
               progress: bool = False, trusted_endpoints: Collection[tuple[str, int]] = (),
               backoff_s: float = 1.0) -> IngestReport:
    """The GIFs by GIPHY id through GIPHY's API (`giphy:id:`); ids already stored cost nothing."""
    from scorer.giphy_import import GiphySource

    known = _giphy_ids_known(engine)
    todo = [i for i in ids if f"giphy:{i}" not in known]
    gifs = []
    if todo:
        gifs = run_coroutine(list_gifs(settings, GiphySource("ids", ids=tuple(todo)), limit=len(todo),
                              rating=None, backoff_s=backoff_s))
    got = {g.id for g in gifs}
    missing = [(f"giphy:{i}", "GIPHY has no GIF with this id (removed, private or mistyped)")
               for i in todo if i not in got]
    stored = [_tar_gif(i) for i in ids if f"giphy:{i}" in known]
    report = import_gifs(settings, engine, pool, gifs, progress=progress,
                         trusted_endpoints=trusted_endpoints, refused=missing)
    if stored:  # already stored: pool membership only
        pool_id = get_or_create_pool(engine, pool)
        join_known(engine, pool_id, [(g, known[g.external_id]) for g in stored],
                    set(report.added), report)
    return report


def _state_path(settings: Settings) -> Path:
    return settings.home / "gifgif" / "state.json"


def _read_state(settings: Settings) -> dict:
    try:
        return json.loads(_state_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(settings: Settings, state: dict) -> None:
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".state.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def import_comparisons(settings: Settings, engine: Engine, csv_path: Path, data) -> dict:  # type: ignore[no-untyped-def]
    """The dump's rows into the ledger (replacing earlier GIFGIF rows); skipped when unchanged."""
    from scorer.emotions import NAMES
    from training.bt_csv import LEFT, RIGHT
    from training.comparisons import import_pairs, pooled_gifs

    key = {"csv_sha256": sha256_file(csv_path), "gifs": len(pooled_gifs(engine, POOL))}
    state = _read_state(settings)
    if state.get("comparisons_key") == key:
        return {**state.get("comparisons", {}), "skipped_step": "already imported"}
    words = {LEFT: "left", RIGHT: "right"}
    rows = ((NAMES[int(e)], data.gif_ids[int(a)], data.gif_ids[int(b)], words.get(int(c), "neither"))
            for e, a, b, c in zip(data.emotion, data.left, data.right, data.choice, strict=True))
    with session_scope(engine) as s:
        s.execute(delete(Comparison).where(Comparison.platform == "gifgif",
                                           Comparison.source == "import"))
    rep = import_pairs(engine, rows, source="import", platform="gifgif")
    skipped = {k: v for k, v in data.skipped.items() if v}
    skipped.update(rep.skipped)
    out = {"rows": data.rows, "added": rep.added, "neither": rep.ties, "skipped": skipped}
    _write_state(settings, {**state, "comparisons_key": key, "comparisons": out})
    return out


def _held_out_accuracy(engine: Engine, mv_id: int, other_id: int | None, seed: int) -> dict:
    """Pair accuracy on comparisons between test GIFs, of the new version and another one."""
    import numpy as np

    from scorer.versions import prediction_matrix
    from training.comparisons import load_ledger, pooled_gifs
    from training.dataset import split_of
    from training.evaluate import held_out_pairs, pairwise_accuracy

    gifs = sorted(pooled_gifs(engine, POOL))
    split = split_of(gifs, seed)
    test = sorted(s for s in gifs if split[s] == "test")
    ledger, _ = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    pairs = held_out_pairs(ledger, set(test))
    new = pairwise_accuracy(prediction_matrix(engine, mv_id, test), test, pairs)

    def accuracy(version: int | None) -> float:
        pred = prediction_matrix(engine, version, test) if version is not None else None
        if pred is None or np.isnan(pred).all():
            return math.nan  # it has not scored these GIFs: nothing to beat
        return pairwise_accuracy(np.nan_to_num(pred, nan=0.5), test, pairs)

    from scorer.versions import zero_shot_version_id

    return {"held_out_pairs": len(pairs), "pair_accuracy": new,
            "pair_accuracy_active": accuracy(other_id),
            "pair_accuracy_prior": accuracy(zero_shot_version_id(engine))}


def pretrain_gifgif(settings: Settings, engine: Engine, *, csv: str, images: str | None = None,
                    giphy_ids: bool = False, csv_sha256: str | None = None,
                    images_sha256: str | None = None, head: str | None = None,
                    epochs: int = 100, table: bool = True, activate: bool = True,
                    text_model: TextModel | None = None,
                    device: str = "auto", progress: bool = False,
                    trusted_endpoints: Collection[tuple[str, int]] = (),
                    backoff_s: float = 1.0) -> PretrainReport:
    """Steps 1-5 of the module doc; raises PretrainError (or DownloadError, GiphyError)."""
    report = PretrainReport()
    fetch = {"progress": progress, "backoff_s": backoff_s}
    t = time.perf_counter()
    csv_path, data = _obtain_comparisons(settings, csv, csv_sha256, fetch, report)
    ids = [i for i in data.gif_ids if GIPHY_ID.match(i)]
    report.seconds["files"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    refused = _store_gifs(settings, engine, ids, images=images, giphy_ids=giphy_ids,
                          images_sha256=images_sha256, fetch=fetch,
                          trusted_endpoints=trusted_endpoints, report=report)
    report.seconds["gifs"] = round(time.perf_counter() - t, 2)
    if not report.gifs["in_pool"]:
        raise PretrainError("no GIFGIF GIF could be stored; see the refusals: "
                            + "; ".join(f"{r}: {w}" for r, w in refused[:3]))

    t = time.perf_counter()
    report.comparisons = import_comparisons(settings, engine, csv_path, data)
    report.seconds["comparisons"] = round(time.perf_counter() - t, 2)

    # Votes alone: the GIFGIF fit must not lean on whatever model happens to be active.
    votes_only = settings.override(training__bt_prior_strength=0.0)
    mv_id = _train(votes_only, engine, head=head, epochs=epochs, device=device,
                   progress=progress, table=table, report=report, text_model=text_model)

    t = time.perf_counter()
    held, fit_id, active_id = _label_and_measure(settings, engine, mv_id, report)
    _decide(engine, mv_id, fit_id, active_id, held, activate=activate, report=report)
    report.seconds["activate"] = round(time.perf_counter() - t, 2)
    return report


def _obtain_comparisons(settings: Settings, csv: str, csv_sha256: str | None, fetch: dict,
                        report: PretrainReport):
    """Step 1: the comparisons file, downloaded once and checked; returns (path, parsed)."""
    from training.bradley_terry import read_gifgif_csv

    csv_path = obtain(settings, csv, settings.home / "gifgif", sha256=csv_sha256, **fetch)
    report.csv = str(csv_path)
    try:
        data = read_gifgif_csv(csv_path)
    except (OSError, ValueError, EOFError) as exc:
        raise PretrainError(f"{csv_path}: cannot read the comparisons: {exc}") from None
    if data.kept == 0:
        raise PretrainError(f"{csv_path}: no usable comparisons (header metric,left,right,choice)")
    return csv_path, data


def _store_gifs(settings: Settings, engine: Engine, ids: list[str], *, images: str | None,
                giphy_ids: bool, images_sha256: str | None, fetch: dict,
                trusted_endpoints: Collection[tuple[str, int]],
                report: PretrainReport) -> list[tuple[str, str]]:
    """Step 2: the GIFs, from the images tar or else GIPHY by id; returns the refusals."""
    from training.comparisons import pooled_gifs

    if images and not giphy_ids:
        tar_path = obtain(settings, images, settings.home / "gifgif", sha256=images_sha256,
                          **fetch)
        report.images = str(tar_path)
        gifs = ingest_tar(settings, engine, tar_path, wanted=set(ids), progress=fetch["progress"])
    else:
        report.images = "GIPHY API (giphy:id:)"
        gifs = ingest_ids(settings, engine, ids, progress=fetch["progress"],
                          trusted_endpoints=trusted_endpoints, backoff_s=fetch["backoff_s"])
    report.gifs = {"added": len(gifs.added), "already": len(gifs.duplicates),
                   "refused": len(gifs.refused), "first_refusals": gifs.refused[:5],
                   "in_pool": len(pooled_gifs(engine, POOL)) if gifs.added or gifs.duplicates else 0}
    return gifs.refused


def _train(votes_only: Settings, engine: Engine, *, head: str | None, epochs: int, device: str,
           progress: bool, table: bool, report: PretrainReport,
           text_model: TextModel | None = None) -> int:
    """Step 4: train a version on the GIFGIF pool (and, if asked, the comparison table); the
    head reads the prior's channels as the retrain's do (`training.workflow.train_version`)."""
    from training.workflow import evaluate_table, train_version

    t = time.perf_counter()
    trained = train_version(votes_only, engine, pool=POOL, head=head, epochs=epochs,
                            device=device, progress=progress, text_model=text_model)
    report.head = trained.kind
    report.channels = trained.metrics.get("channels")
    report.model_version_id = trained.model_version_id
    report.metrics = {k: v for k, v in trained.metrics.items()
                      if k in {"train_rmse", "dev_rmse", "test_rmse", "test_rmse_mean_only"}}
    report.seconds["train"] = round(time.perf_counter() - t, 2)
    if table:
        t = time.perf_counter()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        _table, path = evaluate_table(votes_only, engine,
                                      votes_only.home / "reports" / f"gifgif-{stamp}",
                                      pool=POOL, epochs=epochs, device=device, progress=progress)
        report.table_report = str(path)
        report.seconds["table"] = round(time.perf_counter() - t, 2)
    return trained.model_version_id


def _label_and_measure(settings: Settings, engine: Engine, mv_id: int,
                       report: PretrainReport) -> tuple[dict, int | None, int | None]:
    """Score every pooled GIF, measure held-out accuracy against the active version, and
    label the new version with its domain; returns (held-out metrics, fit id, active id)."""
    from scorer.pipeline import write_predictions
    from scorer.versions import active_version
    from training.comparisons import pooled_gifs

    active = active_version(engine)
    pools, per_pool = _real_pools(settings, engine, mv_id)
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        assert mv is not None
        mv.config = {**(mv.config or {}), "pools": pools, "pool_checks": per_pool}
    write_predictions(settings, engine, mv_id, sorted(pooled_gifs(engine)))
    held = _held_out_accuracy(engine, mv_id, active.id if active else None, settings.training.seed)
    report.metrics.update(held)
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        assert mv is not None
        mv.name = f"gifgif-{mv.name}"
        mv.config = {**(mv.config or {}), "domain": DOMAIN,
                     "trained_on": {"pool": POOL, "domain": DOMAIN, "dataset": DATASET,
                                    "comparisons": report.comparisons.get("added", 0),
                                    "gifs": report.gifs["in_pool"]}}
        mv.metrics = {**(mv.metrics or {}), **{k: v for k, v in held.items()
                                               if not (isinstance(v, float) and math.isnan(v))}}
        fit_id = (mv.config or {}).get("bt_fit_id")
    return held, fit_id, active.id if active else None


MIN_POOL_PAIRS = 10  # comparisons of a pool needed before the GIFGIF head may rank it


def _real_pools(settings: Settings, engine: Engine, mv_id: int) -> tuple[list[str], dict]:
    """The pools the GIFGIF head may rank: its own, and each other pool with votes where it
    orders that pool's comparisons (all held out: it never trained on them) better than the
    zero-shot prior does, or than chance where the prior has not scored the pool."""
    import numpy as np

    from scorer.channels import head_channels, head_features
    from scorer.heads import load_head, predict
    from scorer.pipeline import pools_with_votes
    from scorer.versions import head_path, prediction_matrix, zero_shot_version_id
    from training.comparisons import load_ledger, pooled_gifs
    from training.evaluate import held_out_pairs, pairwise_accuracy

    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        assert mv is not None
        module, meta = load_head(head_path(settings, mv))
        enc, scheme = mv.encoder_id, mv.sampling
    zero_shot = zero_shot_version_id(engine)
    pools, per = [POOL], {}
    for pool in pools_with_votes(engine):
        if pool == POOL:
            continue
        gifs = sorted(pooled_gifs(engine, pool))
        ledger, _ = load_ledger(engine, known_gifs=set(gifs), items=gifs)
        pairs = held_out_pairs(ledger, set(gifs))
        got = [(g, head_features(settings, g, enc, scheme, head_channels(meta))) for g in gifs]
        got = [(g, f) for g, f in got if f is not None and len(f)]
        shas = [g for g, _ in got]
        new = pairwise_accuracy(predict(module, [f for _, f in got]), shas, pairs) if got else math.nan
        prior = math.nan
        if zero_shot is not None and shas:
            pm = prediction_matrix(engine, zero_shot, shas)
            if not np.isnan(pm).all():
                prior = pairwise_accuracy(np.nan_to_num(pm, nan=0.5), shas, pairs)
        bar = 0.5 if math.isnan(prior) else prior
        takes = len(pairs) >= MIN_POOL_PAIRS and not math.isnan(new) and new > bar
        per[pool] = {"pairs": len(pairs), "takes_over": takes,  # JSON has no NaN: None
                     "accuracy": None if math.isnan(new) else new,
                     "accuracy_prior": None if math.isnan(prior) else prior}
        if takes:
            pools.append(pool)
    return pools, per


def _decide(engine: Engine, mv_id: int, fit_id: int | None, active_id: int | None, held: dict,
            *, activate: bool, report: PretrainReport) -> None:
    """Step 5: activate only a version that beats chance and the active one on held-out pairs."""
    from training.workflow import activate_version

    new, old, prior = held["pair_accuracy"], held["pair_accuracy_active"], held["pair_accuracy_prior"]
    if not activate:
        report.decision = "not activated (--no-activate)"
    elif math.isnan(new) or new <= 0.5:
        report.decision = (f"not activated: held-out pair accuracy {new:.3f} is no better than "
                           "chance (too few comparisons between test GIFs?)")
    elif not math.isnan(old) and new <= old:
        report.decision = (f"not activated: held-out pair accuracy {new:.3f} does not beat the "
                           f"active version v{active_id if active_id is not None else '?'} ({old:.3f})")
    elif not math.isnan(prior) and new <= prior:
        report.decision = (f"not activated: held-out pair accuracy {new:.3f} does not beat the "
                           f"zero-shot prior ({prior:.3f}), which keeps ranking every pool")
    else:
        activate_version(engine, mv_id, fit_id)
        report.activated = True
        report.decision = (f"activated v{mv_id}: held-out pair accuracy {new:.3f}"
                           + (f" (active was {old:.3f})" if not math.isnan(old) else ""))


__all__ = ["POOL", "PretrainError", "PretrainReport", "ingest_ids", "ingest_tar",
           "pretrain_gifgif"]

"""Model versions and Bradley-Terry fits: the one owner of "which is active".

Before this module the active model version was read in six places with three different
tie-breaks (max id, newest activated_at, an unordered first row) and activation was written
in three. Every reader and writer now asks here, so there is ONE rule:

- the active version is the newest `activated_at` among rows with status "active", ties
  (and rows without a timestamp, which sort last) broken by the highest id;
- the zero-shot prior (scorer/prior.py) is the newest version whose head_kind is "prior";
- the active BT fit is the highest id with `active` set;
- a new version is created only by `create_candidate` (status "candidate");
- activating a version retires every other active one in the same transaction;
- a version's stored predictions are read here (`prediction_matrix`, `ranked_predictions`
  filling from the zero-shot prior, `VersionPredictions` once per retrain run);
- a fit's scale (`fit_scale_spreads`) and its evidence per GIF and emotion (`fit_counts`)
  are read as the refit stored them, not re-derived by their readers.

Readers take an `Engine`, an ORM `Session` or a Core `Connection` (`load_matrix` reads on a
connection); writers take a `Session` so the caller decides the transaction.

It sits in scorer/ (imports only scorer.store, scorer.emotions and scorer.settings) so that scorer, training
and bot can all import it without an upward import.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from scorer.emotions import N_EMOTIONS
from scorer.store import BTFit, ModelVersion, Prediction, session_scope, unpack_scores, utcnow

if TYPE_CHECKING:
    from scorer.settings import Settings

# The zero-shot prior's head kind: a version with no head file (scorer/prior.py writes it).
PRIOR_HEAD_KIND = "prior"
# The heads `moodgif train` fits from frame features (the paper's Table 1 decoders; built by
# scorer.heads.build_head). Here, torch-free, so the CLI's choices need no torch import.
HEAD_KINDS = ("fc-maxpool-2", "fc-maxpool-4", "rnn-2", "rnn-4", "rnn-8")

# The one tie-break: newest activation first; a row activated without a timestamp sorts
# last (explicit because PostgreSQL and SQLite disagree on where NULLs go), then highest id.
ACTIVE_ORDER = (ModelVersion.activated_at.desc().nulls_last(), ModelVersion.id.desc())


class MissingHead(FileNotFoundError):
    """A model version whose head file is not where its row says."""


Db = Engine | Session | Connection


@contextmanager
def _reader(db: Db) -> Iterator[Session | Connection]:
    """A session for an Engine (closed after), or the caller's own session/connection."""
    if isinstance(db, Engine):
        with session_scope(db) as s:
            yield s
    else:
        yield db


# ---------------------------------------------------------------------------------------
# model versions: queries


def active_id_query() -> Any:
    """A scalar subquery of the active version's id (for statements built elsewhere)."""
    return (select(ModelVersion.id).where(ModelVersion.status == "active")
            .order_by(*ACTIVE_ORDER).limit(1).scalar_subquery())


def active_version_id(db: Db) -> int | None:
    """The active version's id, or None when nothing is active yet."""
    with _reader(db) as s:
        return s.scalar(select(ModelVersion.id).where(ModelVersion.status == "active")
                        .order_by(*ACTIVE_ORDER).limit(1))


def active_version(db: Engine | Session) -> ModelVersion | None:
    """The active ModelVersion row (usable after an Engine's session closes)."""
    with _reader(db) as s:
        assert isinstance(s, Session)
        return s.scalars(select(ModelVersion).where(ModelVersion.status == "active")
                         .order_by(*ACTIVE_ORDER).limit(1)).first()


def active_ids(db: Db) -> list[int]:
    """Every id marked active, in tie-break order (more than one only after a race)."""
    with _reader(db) as s:
        return list(s.scalars(select(ModelVersion.id).where(ModelVersion.status == "active")
                              .order_by(*ACTIVE_ORDER)))


def zero_shot_version_id(db: Db) -> int | None:
    """The newest zero-shot prior version's id: it ranks the GIFs the active head does not."""
    with _reader(db) as s:
        return s.scalar(select(ModelVersion.id).where(ModelVersion.head_kind == PRIOR_HEAD_KIND)
                        .order_by(ModelVersion.id.desc()).limit(1))


def zero_shot_version(db: Engine | Session) -> ModelVersion | None:
    with _reader(db) as s:
        assert isinstance(s, Session)
        return s.scalars(select(ModelVersion).where(ModelVersion.head_kind == PRIOR_HEAD_KIND)
                         .order_by(ModelVersion.id.desc()).limit(1)).first()


# ---------------------------------------------------------------------------------------
# model versions: writes (the caller's session = the caller's transaction)


def activate(s: Session, version_id: int, fit_id: int | None = None) -> ModelVersion:
    """Make `version_id` the active version (retiring the others), and `fit_id` the active
    BT fit when given, in the caller's transaction."""
    mv = s.get(ModelVersion, version_id)
    if mv is None:
        raise LookupError(f"model version {version_id} does not exist")
    s.execute(update(ModelVersion).where(ModelVersion.status == "active",
                                         ModelVersion.id != version_id).values(status="retired"))
    mv.status, mv.activated_at = "active", utcnow()
    if fit_id:
        activate_fit(s, fit_id)
    return mv


def finite_metrics(metrics: dict | None) -> dict:
    """A version's metrics as its row keeps them: a NaN or infinite figure (no dev set, nothing
    to compare) is left out rather than stored as null, so "absent" means "not measured"."""
    return {k: v for k, v in (metrics or {}).items()
            if not (isinstance(v, float) and not math.isfinite(v))}


def create_candidate(s: Session, *, name: str, encoder_id: str, sampling: str, head_kind: str,
                     config: dict, metrics: dict | None = None, path: str = "",
                     parent_id: int | None = None) -> ModelVersion:
    """A new `candidate` version in the caller's transaction (flushed, so it has an id).

    The one creator of model-version rows: the retrain, `moodgif train`, the zero-shot prior
    and the simulator's v0 all come here, so a new version always starts inactive and only
    `activate` makes it serve. Non-finite metrics are dropped (`finite_metrics`)."""
    metrics = finite_metrics(metrics)
    mv = ModelVersion(name=name, encoder_id=encoder_id, sampling=sampling, head_kind=head_kind,
                      path=path, status="candidate", config=config, metrics=metrics,
                      parent_id=parent_id)
    s.add(mv)
    s.flush()
    return mv


# ---------------------------------------------------------------------------------------
# Bradley-Terry fits


def active_fit_id_query() -> Any:
    return (select(BTFit.id).where(BTFit.active.is_(True))
            .order_by(BTFit.id.desc()).limit(1).scalar_subquery())


def active_fit(db: Engine | Session) -> BTFit | None:
    """The active BT fit (the highest id marked active), or None."""
    with _reader(db) as s:
        assert isinstance(s, Session)
        return s.scalars(select(BTFit).where(BTFit.active.is_(True))
                         .order_by(BTFit.id.desc()).limit(1)).first()


def fit_scale_spreads(params: dict | None) -> np.ndarray | None:
    """The (17,) spreads of a fit's logistic scale, ``scaled = expit((theta - centre) /
    spread)`` (training/refit.py stores them in ``BTFit.params``), so d scaled / d theta is
    ``scaled (1 - scaled) / spread``; None for a fit stored without them."""
    params = params or {}
    try:
        if params.get("scale") != "robust":
            return None
        spread = np.asarray(params["scale_params"]["spread"], np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError):
        return None
    ok = spread.shape == (N_EMOTIONS,) and bool(np.all(np.isfinite(spread) & (spread > 0)))
    return spread if ok else None


def fit_counts(blobs: list[bytes | None]) -> np.ndarray | None:
    """A fit's stored evidence per GIF and emotion, (len(blobs), 17), one row per
    ``BTScore.counts``: its comparisons summed with the weights the fit gave them
    (training/refit.comparison_counts; fits stored before the weighing hold head counts);
    None when any row lacks them (a fit stored before they were)."""
    if not blobs or any(b is None for b in blobs):
        return None
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, N_EMOTIONS).astype(np.float64)


def activate_fit(s: Session, fit_id: int) -> None:
    """Make `fit_id` the one active BT fit; a fit id that does not exist deactivates all."""
    s.execute(update(BTFit).where(BTFit.active.is_(True)).values(active=False))
    f = s.get(BTFit, fit_id)
    if f is not None:
        f.active = True


# ---------------------------------------------------------------------------------------
# a version's stored predictions


def prediction_matrix(engine: Engine, model_version_id: int, shas: list[str]) -> np.ndarray:
    """(N, 17) stored predictions of a model version, NaN rows for GIFs it has not scored."""
    out = np.full((len(shas), N_EMOTIONS), np.nan)
    row = {s: i for i, s in enumerate(shas)}
    with session_scope(engine) as s:
        q = select(Prediction.gif_sha, Prediction.scores).where(
            Prediction.model_version_id == model_version_id)
        for sha, blob in s.execute(q):
            if sha in row:
                out[row[sha]] = unpack_scores(blob)
    return out


def ranked_predictions(engine: Engine, model_version_id: int, shas: list[str]) -> np.ndarray:
    """`prediction_matrix` of the version, its NaN rows filled from the newest zero-shot
    prior (scorer.prior), as the ranker does for pools outside a head's domain."""
    return _fill_from_zero_shot(engine, model_version_id, shas,
                                prediction_matrix(engine, model_version_id, shas))


def _fill_from_zero_shot(engine: Engine, model_version_id: int, shas: list[str],
                         out: np.ndarray) -> np.ndarray:
    missing = np.flatnonzero(np.isnan(out).any(axis=1))
    if len(missing) == 0:
        return out
    zero_shot = zero_shot_version_id(engine)
    if zero_shot is not None and zero_shot != model_version_id:
        out[missing] = prediction_matrix(engine, zero_shot, [shas[i] for i in missing])
    return out


class VersionPredictions:
    """A version's stored predictions, read once per retrain run for every GIF it needs, and
    the zero-shot prior's for the rows the version lacks. The refit's prior (`raw`), the
    distillation targets and the evaluation against the active version (`ranked`) all slice
    this one read; a sha outside it is read when first asked for."""

    def __init__(self, engine: Engine, model_version_id: int, shas: list[str]) -> None:
        self.engine, self.model_version_id = engine, model_version_id
        self._index: dict[str, int] = {}
        self._raw = np.zeros((0, N_EMOTIONS))
        self._filled = np.zeros((0, N_EMOTIONS))
        self._read(shas)

    def _read(self, shas: list[str]) -> None:
        new = [s for s in dict.fromkeys(shas) if s not in self._index]
        if not new:
            return
        self._index.update({s: len(self._index) + i for i, s in enumerate(new)})
        raw = prediction_matrix(self.engine, self.model_version_id, new)
        filled = _fill_from_zero_shot(self.engine, self.model_version_id, new, raw.copy())
        self._raw, self._filled = np.vstack([self._raw, raw]), np.vstack([self._filled, filled])

    def _rows(self, shas: list[str]) -> np.ndarray:
        self._read(shas)
        return np.asarray([self._index[s] for s in shas], np.int64)

    def raw(self, shas: list[str]) -> np.ndarray:
        """`prediction_matrix` of these shas (NaN rows where the version has not scored)."""
        return self._raw[self._rows(shas)].copy()

    def ranked(self, shas: list[str]) -> np.ndarray:
        """`ranked_predictions` of these shas (the zero-shot prior where the version has none)."""
        return self._filled[self._rows(shas)].copy()


# ---------------------------------------------------------------------------------------
# head files


def head_file(settings: Settings, path: str) -> Path:
    """Where a version's head file `path` lives: absolute as is; relative under models_dir,
    else under the home (older versions stored it relative to the home). When it is in
    neither, the models_dir path (for the caller's error or `is_file` check)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    for base in (settings.models_dir, settings.home):
        if (base / p).is_file():
            return base / p
    return settings.models_dir / p


def head_path(settings: Settings, mv: ModelVersion) -> Path:
    """The version's head file; MissingHead (a clear message) when it has none on disk."""
    if not mv.path:
        raise MissingHead(f"model version {mv.id} ({mv.head_kind}) has no head file")
    p = head_file(settings, mv.path)
    if not p.is_file():
        raise MissingHead(f"model version {mv.id} has no head file at {mv.path!r} "
                          f"(looked in {settings.models_dir} and {settings.home})")
    return p

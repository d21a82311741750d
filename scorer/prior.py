"""What moodgif knows before anyone votes: a zero-shot prior from faces and words.

Two channels, each a 17-axis evidence vector in [0, 1] with a confidence in [0, 1]:

* **faces** (`scorer.faces`): per sampled frame, the expression classes of the faces found;
  per class, the mean of its two highest frames (a strong expression held for a few frames
  counts; "neutral" winning most frames does not hide it); then `FACE_MAP` spreads the
  7 classes over the 17 axes (each axis a weighted mean of classes; documented and tested).
  Confidence grows with the number of frames that show a face.
* **words**: the GIF's title, tags, alt text and URL slug through the same intent model the
  bot uses for requests (lexicon + MiniLM), given to this module as a function
  `text -> (17 probabilities, path)`: `scorer` must not import `bot`, so whoever can import
  both (the `moodgif score` command, the benchmark) passes `bot.intent`'s parser in.
  Confidence depends on how the text was read: the lexicon is surer than the embedding.
  The model's probabilities are softened (a square root relative to the top) so a GIF's
  second and third readings still rank it; words of the GIF-title reaction vocabulary
  (`scorer.reactions`: "slow clap", "facepalm", "thumbs up", and reaction situations like
  "slips", "caught", "head down") are read too and merged in; the merged reading then spreads
  by WORD_SPREAD to the emotions that usually come with it (`AFFINITY`, by meaning).

Combination: mean_e = BASE + SPAN * (W0 * X0 + sum_c W_c * conf_c * x_c,e) / (W0 + sum_c W_c * conf_c):
shrinkage towards X0, the evidence a typical GIF has on an axis. A GIF with no evidence sits
at that typical level with the widest spread (SD_WIDE), above GIFs whose face or words
point elsewhere and below those that point at the axis; the width is
SD_WIDE / sqrt(1 + sum_c W_c * conf_c). The prior is stored as a model version named after
its channels and weights (`prior:words+faces w=2,1`); its per-GIF width goes into
`predictions.sd` so the ranker explores GIFs it knows little about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from scorer import versions
from scorer.emotions import N_EMOTIONS, NAMES
from scorer.faces import CLASSES, FACE_API_VERSION, N_CLASSES
from scorer.store import Gif, ModelVersion, PoolGif, Prediction, pack_scores, session_scope
from scorer.versions import PRIOR_HEAD_KIND

log = logging.getLogger(__name__)

TextModel = Callable[[str], tuple[Sequence[float], str]]

FACE_FEATURES_ID = f"faces-haar-faceapi-{FACE_API_VERSION}-v2"  # cache id of the per-frame rows

# Each axis as a weighted mean of face-api's 7 classes. Why these: the classes are Ekman's
# basic expressions; an axis takes the classes whose faces people make when they feel it
# (amusement and pride smile; guilt and shame look sad and a little afraid; contempt is a
# deadpan face: FER models trained on the 7 basic classes read AffectNet's contempt faces
# mostly as neutral, then disgust/anger). Axes with no face of their own (relief, satisfaction) lean on
# happy + neutral. Rows need not sum to 1 (normalised).
FACE_MAP: dict[str, dict[str, float]] = {
    "amusement": {"happy": 1.0, "surprised": 0.2},
    "anger": {"angry": 1.0, "disgusted": 0.2},
    "contempt": {"neutral": 0.5, "disgusted": 0.3, "angry": 0.2},
    "contentment": {"happy": 0.7, "neutral": 0.3},
    "disgust": {"disgusted": 1.0, "angry": 0.3},
    "embarrassment": {"sad": 0.4, "fearful": 0.3, "happy": 0.3},
    "excitement": {"happy": 0.7, "surprised": 0.5},
    "fear": {"fearful": 1.0, "surprised": 0.3},
    "guilt": {"sad": 0.8, "fearful": 0.2},
    "happiness": {"happy": 1.0},
    "pleasure": {"happy": 0.9, "neutral": 0.1},
    "pride": {"happy": 0.7, "neutral": 0.3},
    "relief": {"happy": 0.6, "neutral": 0.4},
    "sadness": {"sad": 1.0},
    "satisfaction": {"happy": 0.7, "neutral": 0.3},
    "shame": {"sad": 0.7, "fearful": 0.2, "disgusted": 0.1},
    "surprise": {"surprised": 1.0, "fearful": 0.3},
}

# Channel weights and the scale of the stored scores. Tuned on ../shared/data/real-gifs only
# (docs/benchmarks.md, "Real GIFs (issue 11)"); real-gifs-more is the held-out check.
W_WORDS = 2.0
W_FACES = 1.0
W0 = 1.0  # pseudo-evidence of "no idea": keeps one weak channel from reaching the extremes
X0 = 0.15  # what "no idea" means on an axis: about the mean evidence of a GIF with a channel
BASE = 0.3
SPAN = 0.6
SD_WIDE = 0.3  # a GIF with no face and no words: explored like a fresh one
# How far each way of reading a title is trusted: its top emotion's precision, relative to the
# lexicon's, measured on real-gifs (the tuning set; docs/benchmarks.md "Real GIFs"): the
# lexicon's top emotion was the label for 15 of 19 titles (79 %), a blend's for 5 of 9 (56 %:
# 0.7 of the lexicon's), the sentence model's alone for 3 of 20 (15 %: 0.2). The sentence
# model answers a title of nouns ("hair", "popcorn eating") with one emotion at 0.9+: its
# softmax was tuned for requests, which always mean a feeling; a title often does not.
WORD_CONF = {"lexicon": 1.0, "blend": 0.7, "embedding": 0.2, "": 0.0}
# How the intent model's probabilities become evidence: p ** (1 / T) relative to the top.
# T = 2 (a square root) on a sweep over 1-5 on real-gifs (docs/benchmarks.md, "realwords");
# a floor added to every axis was tried and rejected there.
WORD_TEMPERATURE = 2.0
# How far a words reading spreads to the emotions that usually come with it (a GIF read as
# amusement is often also happiness; one read as guilt, shame): evidence' = (1 - a) * e +
# a * (e @ A), A = `affinity_matrix()`. a = 0.3 chosen on the tune split of the titles set
# (benchmarks/bench_titles.py; tune 0.845 -> 0.857, holdout 0.831 -> 0.859): a title names
# one feeling, the GIF usually carries two, and GIFGIF's raters tick the co-occurring ones.
WORD_SPREAD = 0.3
# Emotion affinities by meaning (symmetric; weight = how often one feeling comes with the
# other in a reaction, 1 = nearly always, .5 = often): the positive-arousal family, the calm
# positive family, the self-conscious family, the hostile family, alarm.
AFFINITY: dict[tuple[str, str], float] = {
    ("amusement", "happiness"): 1.0, ("amusement", "excitement"): 0.5,
    ("amusement", "embarrassment"): 0.5, ("amusement", "contempt"): 0.5,
    ("happiness", "excitement"): 1.0, ("happiness", "contentment"): 0.5,
    ("happiness", "pleasure"): 0.5, ("happiness", "pride"): 0.5, ("happiness", "relief"): 0.5,
    ("excitement", "pride"): 0.5, ("excitement", "surprise"): 0.5,
    ("contentment", "pleasure"): 1.0, ("contentment", "satisfaction"): 1.0,
    ("contentment", "relief"): 0.5, ("pleasure", "satisfaction"): 1.0,
    ("satisfaction", "pride"): 1.0, ("satisfaction", "relief"): 0.5,
    ("pride", "contempt"): 0.5,
    ("embarrassment", "shame"): 1.0, ("embarrassment", "guilt"): 0.5,
    ("guilt", "shame"): 1.0, ("shame", "sadness"): 0.5, ("guilt", "sadness"): 0.5,
    ("guilt", "fear"): 0.5, ("embarrassment", "fear"): 0.5,
    ("anger", "contempt"): 1.0, ("anger", "disgust"): 0.5, ("contempt", "disgust"): 1.0,
    ("anger", "sadness"): 0.5,
    ("fear", "surprise"): 1.0, ("fear", "disgust"): 0.5,
}


def affinity_matrix(pairs: dict[tuple[str, str], float] | None = None) -> np.ndarray:
    """(17, 17) symmetric affinities from `pairs` (default AFFINITY), zero diagonal, each row
    normalised to sum 1 (a reading passes on at most its own strength)."""
    from scorer.emotions import INDEX

    m = np.zeros((N_EMOTIONS, N_EMOTIONS))
    for (a, b), w in (AFFINITY if pairs is None else pairs).items():
        m[INDEX[a], INDEX[b]] = m[INDEX[b], INDEX[a]] = w
    s = m.sum(axis=1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m), where=s > 0)


WORD_AFFINITY_M = affinity_matrix()


def spread(evidence: np.ndarray) -> np.ndarray:
    """`evidence` passed on to its affine emotions by WORD_SPREAD, capped at its own top."""
    if WORD_SPREAD <= 0 or evidence.max() <= 0:
        return evidence
    out = (1.0 - WORD_SPREAD) * evidence + WORD_SPREAD * (evidence @ WORD_AFFINITY_M)
    return np.clip(out, 0.0, float(evidence.max()))


# The GIF-title reaction vocabulary (scorer/data/reaction_words.tsv) is hand-written like the
# lexicon, so it is trusted like the lexicon.
REACTION_CONF = 1.0
FACE_TOP_K = 2  # frames averaged per class
FACE_FULL_FRAMES = 3  # frames with a face at which the face channel is fully confident


def face_matrix() -> np.ndarray:
    """(17, 7): row e is axis e's weights over the classes, normalised to sum 1."""
    m = np.zeros((N_EMOTIONS, N_CLASSES), np.float64)
    for e, name in enumerate(NAMES):
        for cls, w in FACE_MAP[name].items():
            m[e, CLASSES.index(cls)] = w
    return m / m.sum(axis=1, keepdims=True)


_FACE_M = face_matrix()


@dataclass
class Channel:
    evidence: np.ndarray  # (17,) in [0, 1]
    confidence: float  # in [0, 1]; 0 = the channel saw nothing


NONE = Channel(np.zeros(N_EMOTIONS), 0.0)


def face_classes(rows: np.ndarray | None) -> tuple[np.ndarray, float]:
    """(7 class evidences, confidence) from `scorer.faces` rows ((T, 8): 7 class
    probabilities + face count per frame); zeros and 0 when no frame shows a face."""
    if rows is None or rows.ndim != 2 or rows.shape[1] != N_CLASSES + 1:
        return np.zeros(N_CLASSES), 0.0
    with_face = rows[rows[:, N_CLASSES] > 0, :N_CLASSES]
    if len(with_face) == 0:
        return np.zeros(N_CLASSES), 0.0
    k = min(FACE_TOP_K, len(with_face))
    # Each class by its own evidence: the mean of its k strongest frames.
    per_class = np.sort(with_face, axis=0)[-k:].mean(axis=0).astype(np.float64)
    return per_class, min(1.0, len(with_face) / FACE_FULL_FRAMES)


def face_channel(rows: np.ndarray | None) -> Channel:
    """The face channel on the 17 axes (FACE_MAP over `face_classes`)."""
    per_class, conf = face_classes(rows)
    if conf == 0:
        return NONE
    return Channel(np.clip(_FACE_M @ per_class, 0.0, 1.0), conf)


def gif_text(title: str, tags: Iterable[str], alt_text: str, slug: str) -> str:
    """The words of one GIF as one line, each piece once (a slug often repeats the title),
    without words about the file format ("gif", "reaction": `scorer.words.FORMAT_WORDS`)."""
    from scorer.words import reading_text, words_from_name

    parts: list[str] = []
    for piece in [title, *list(tags or [])[:20], alt_text[:300], words_from_name(slug or "")]:
        piece = reading_text(piece or "")
        if piece and piece.lower() not in (p.lower() for p in parts):
            parts.append(piece)
    return " ; ".join(parts)


def intent_reading(text: str, model: TextModel) -> Channel:
    """The intent model's reading of a GIF's words: evidence per axis relative to its top
    emotion, softened by WORD_TEMPERATURE; NONE when it read nothing or failed."""
    try:
        probs, path = model(text)
    except Exception:  # a text model bug must not stop scoring: no words, wide prior
        log.exception("word channel failed on %r", text[:80])
        return NONE
    p = np.clip(np.asarray(probs, np.float64).reshape(-1)[:N_EMOTIONS], 0.0, 1.0)
    conf = WORD_CONF.get(path, 0.0)
    if p.shape[0] != N_EMOTIONS or not np.isfinite(p).all() or p.sum() <= 0 or conf == 0:
        return NONE
    # Relative to the GIF's own top emotion: a confident lexicon hit on one axis reaches 1
    # there, a blurred reading spreads lower. The root (temperature 2) keeps the second and
    # third readings in the ranking: the prior is compared across GIFs per emotion, and a
    # reading of 0.9 / 0.01 / 0.001 otherwise puts every GIF's second reading near zero,
    # under the faces of GIFs that have none.
    soft = (p / p.max()) ** (1.0 / WORD_TEMPERATURE)
    return Channel(soft * min(1.0, float(p.max()) * 2), conf)


def word_channel(text: str, model: TextModel | None) -> Channel:
    """The words channel: the intent model's reading merged with the GIF-title reaction
    vocabulary (`scorer.reactions`: "slow clap", "facepalm"), each weighted by its
    confidence; a title with a reaction term is read with the vocabulary's confidence."""
    if model is None or not isinstance(text, str) or not text.strip():
        return NONE
    from scorer.reactions import reading

    intent = intent_reading(text, model)
    react = reading(text)
    if react is None:
        return intent if intent.confidence == 0 else Channel(spread(intent.evidence), intent.confidence)
    c_i, c_r = intent.confidence, REACTION_CONF
    merged = (c_r * react + c_i * intent.evidence) / (c_r + c_i)
    return Channel(spread(np.clip(merged, 0.0, 1.0)), max(c_i, c_r))


# The combination's constants in order, for a head that computes the prior itself
# (scorer.heads.PriorResidual keeps them in its file, so a later change here is a new head).
COMBINE_CONSTANTS = (W_WORDS, W_FACES, W0, X0, BASE, SPAN)


def prior_mean(word_ev, word_conf, face_ev, face_conf, constants=COMBINE_CONSTANTS):  # type: ignore[no-untyped-def]
    """The combination's mean; plain arithmetic, so it runs on floats and (17,) arrays
    (combine) as on (B, 1) / (B, 17) torch tensors (PriorResidual)."""
    w_words, w_faces, w0, x0, base, span = constants
    ww, wf = w_words * word_conf, w_faces * face_conf
    return base + span * (w0 * x0 + ww * word_ev + wf * face_ev) / (w0 + ww + wf)


def combine(words: Channel, faces: Channel, *, w_words: float = W_WORDS,
            w_faces: float = W_FACES) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (17,), sd (17,), total weight) of the prior for one GIF."""
    ww, wf = w_words * words.confidence, w_faces * faces.confidence
    total = ww + wf
    mean = prior_mean(words.evidence, words.confidence, faces.evidence, faces.confidence,
                      (w_words, w_faces, W0, X0, BASE, SPAN))
    sd = np.full(N_EMOTIONS, SD_WIDE / np.sqrt(1.0 + total))
    return mean.astype(np.float32), sd.astype(np.float32), float(total)


# Bump when FACE_MAP, the aggregation or the reading of words changes: a new model version.
# 7: sentences (titles of four words or more) read by MiniLM fine-tuned on the grown bank.
# 8: ... whose no-feeling class turns a flat title's reading into doubt (a wider prior).
# 9: the bank's tenth round (4,953 lines) and 1,673 flat lines retrain that model.
# 10: ... and its encoder is read with int8 weights.
# 11: the bank's eleventh round (6,385 lines) and 2,254 flat lines retrain that model.
# 12: the bank's word model counts a long title's evidence as 8 features' worth at most.
REVISION = 12


def version_name(with_faces: bool) -> str:
    """Names the channels and their weights; a change of weights is a new version."""
    if with_faces:
        return f"prior:words+faces v{REVISION} w={W_WORDS:g},{W_FACES:g} x0={X0:g}"
    return f"prior:words v{REVISION} w={W_WORDS:g} x0={X0:g}"


def prior_config(with_faces: bool) -> dict:
    channels: dict = {"words": {"weight": W_WORDS, "model": "bot.intent (lexicon + all-MiniLM-L6-v2, fine-tuned on the bank for sentences)",
                                "confidence": WORD_CONF, "temperature": WORD_TEMPERATURE,
                                "spread": WORD_SPREAD, "affinity": "scorer.prior.AFFINITY",
                                "reactions": {"vocabulary": "scorer/data/reaction_words.tsv",
                                              "confidence": REACTION_CONF}}}
    if with_faces:
        channels["faces"] = {"weight": W_FACES, "detector": "opencv haarcascade_frontalface_default",
                             "model": f"@vladmandic/face-api {FACE_API_VERSION} face_expression_model",
                             "top_k_frames": FACE_TOP_K, "map": FACE_MAP}
    # "pools": None means zero-shot: no pool's votes went into it, so it may rank any pool.
    return {"kind": PRIOR_HEAD_KIND, "channels": channels, "w0": W0, "x0": X0, "base": BASE, "span": SPAN,
            "sd_wide": SD_WIDE, "pools": None}


def prior_version(engine: Engine, encoder_id: str, sampling: str, with_faces: bool) -> int:
    """The id of this prior's model version (created once per name, encoder and sampling)."""
    name = version_name(with_faces)
    with session_scope(engine) as s:
        mv = s.scalars(select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.head_kind == PRIOR_HEAD_KIND,
            ModelVersion.encoder_id == encoder_id, ModelVersion.sampling == sampling)).first()
        if mv is None:
            mv = versions.create_candidate(s, name=name, encoder_id=encoder_id, sampling=sampling,
                                           head_kind=PRIOR_HEAD_KIND,
                                           config=prior_config(with_faces))
        return mv.id


@dataclass(frozen=True)
class PriorStanding:
    """Which version is active once a prior has been written, and why (`activate_prior`)."""

    prior_id: int  # the prior just written
    active_id: int
    active_name: str
    active_kind: str
    replaced: str = ""  # "id (name)" of the prior it took over from
    missing: int = 0  # pooled GIFs the older active prior scores and this one does not yet
    lacks: tuple[str, ...] = ()  # channels the older active prior reads and this one does not

    def describe(self) -> str:
        if self.active_id == self.prior_id:
            took_over = f", replacing model version {self.replaced}" if self.replaced else ""
            return f"it is the active version{took_over}"
        where = f"the active version is model version {self.active_id} ({self.active_name})"
        if self.active_kind != PRIOR_HEAD_KIND:
            return f"{where}, a head trained on votes; this prior ranks the GIFs outside its pools"
        if self.lacks:
            return (f"{where}: it reads {', '.join(self.lacks)}, which this prior lacks "
                    "(scripts/fetch-face-model, then moodgif score, to replace it)")
        gifs = "1 GIF in a pool has" if self.missing == 1 else f"{self.missing} GIFs in pools have"
        return (f"{where}: {gifs} no scores from this prior yet "
                "(moodgif score without --pool scores them and replaces it)")


def activate_prior(engine: Engine, mv_id: int) -> PriorStanding:
    """The rule for a prior just written: it becomes the active version when none is, or when
    the active one is another prior that it can stand in for: it reads every channel that one
    reads and scores every pooled GIF that one scores (a `score --pool X` alone must not leave
    the other pools unranked). The prior written last wins (an install upgraded from an older
    prior kept ranking with it). A head trained on votes is never replaced by a prior: only a
    retrain decides that."""
    with session_scope(engine) as s:
        new = s.get(ModelVersion, mv_id)
        assert new is not None
        active = versions.active_version(s)
        if active is None:
            versions.activate(s, mv_id)
            return PriorStanding(mv_id, mv_id, new.name, new.head_kind)
        standing = PriorStanding(mv_id, active.id, active.name, active.head_kind)
        if active.id == mv_id or active.head_kind != PRIOR_HEAD_KIND:
            return standing
        lacks = tuple(sorted(set(_channels(active)) - set(_channels(new))))
        missing = 0 if lacks else _pooled_gifs_only_in(s, active.id, mv_id)
        if lacks or missing:
            return PriorStanding(mv_id, active.id, active.name, active.head_kind,
                                 missing=missing, lacks=lacks)
        versions.activate(s, mv_id)
        return PriorStanding(mv_id, mv_id, new.name, new.head_kind, replaced=f"{active.id} ({active.name})")


def _channels(mv: ModelVersion) -> list[str]:
    return list(((mv.config or {}).get("channels") or {}).keys())


def _pooled_gifs_only_in(s: Session, old_id: int, new_id: int) -> int:
    """How many GIFs of any pool version `old_id` scores and `new_id` does not."""
    newer = aliased(Prediction)
    covered = exists().where(newer.model_version_id == new_id, newer.gif_sha == Prediction.gif_sha)
    return s.scalar(select(func.count(func.distinct(Prediction.gif_sha)))
                    .join(PoolGif, PoolGif.gif_sha == Prediction.gif_sha)
                    .where(Prediction.model_version_id == old_id, ~covered)) or 0


@dataclass
class PriorStats:
    written: int = 0
    faces: int = 0
    words: int = 0
    wide: int = 0


def write_prior(engine: Engine, mv_id: int, shas: Sequence[str],
                face_rows: Callable[[str], np.ndarray | None], text_model: TextModel | None,
                *, with_faces: bool,
                keep_channels: Callable[[str, np.ndarray], None] | None = None) -> PriorStats:
    """Compute and (re)write the prior's predictions (with per-GIF sd) for `shas`;
    `keep_channels(sha, vector)` stores each GIF's channels as head inputs
    (`scorer.channels`), so a head trained on votes reads them without recomputing."""
    from scorer.channels import channel_vector

    stats = PriorStats()
    for i in range(0, len(shas), 256):
        chunk = list(shas[i:i + 256])
        with session_scope(engine) as s:
            words = {g.sha256: gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or "")
                     for g in s.scalars(select(Gif).where(Gif.sha256.in_(chunk)))}
        rows = []
        for sha in chunk:
            w = word_channel(words.get(sha, ""), text_model)
            classes, face_conf = face_classes(face_rows(sha)) if with_faces else (None, 0.0)
            f = NONE if classes is None or face_conf == 0 else Channel(
                np.clip(_FACE_M @ classes, 0.0, 1.0), face_conf)
            if keep_channels is not None:
                keep_channels(sha, channel_vector(classes, face_conf, w.evidence, w.confidence))
            mean, sd, total = combine(w, f)
            stats.faces += f.confidence > 0
            stats.words += w.confidence > 0
            stats.wide += total == 0
            rows.append({"model_version_id": mv_id, "gif_sha": sha, "scores": pack_scores(mean),
                         "sd": pack_scores(sd)})
        with session_scope(engine) as s:
            s.execute(delete(Prediction).where(Prediction.model_version_id == mv_id,
                                               Prediction.gif_sha.in_(chunk)))
            if rows:
                s.execute(insert(Prediction), rows)
        stats.written += len(rows)
    return stats


def prior_summary(engine: Engine, shas: Sequence[str]) -> dict:
    """For `pool show` and the admin page: the prior version that scores these GIFs before
    any vote, and how many of `shas` have only its wide prior (no face, no words). That is
    the active version when it is a prior (it ranks first: bot.score_matrix), else the newest."""
    from scorer.store import unpack_scores

    with session_scope(engine) as s:
        active = versions.active_version(s)
        mv = (active if active is not None and active.head_kind == PRIOR_HEAD_KIND
              else versions.zero_shot_version(s))
        if mv is None:
            return {"version": None, "wide": 0, "scored": 0}
        wide = scored = 0
        want = set(shas)
        for sha, sd in s.execute(select(Prediction.gif_sha, Prediction.sd)
                                 .where(Prediction.model_version_id == mv.id)):
            if sha not in want or sd is None:
                continue
            scored += 1
            wide += bool(unpack_scores(sd)[0] >= SD_WIDE - 1e-6)
        return {"version": mv.name, "version_id": mv.id, "scored": scored, "wide": wide}


__all__ = [
    "FACE_MAP",
    "PRIOR_HEAD_KIND",
    "Channel",
    "PriorStanding",
    "TextModel",
    "activate_prior",
    "combine",
    "face_channel",
    "face_classes",
    "face_matrix",
    "gif_text",
    "prior_summary",
    "prior_version",
    "version_name",
    "word_channel",
    "write_prior",
]

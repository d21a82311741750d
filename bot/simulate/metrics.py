"""What is measured against the truth: NDCG@5, P@1, the first GIF's true percentile,
Spearman and pair accuracy of the ranking the bot would show, and how much each virtual voter counts in the retrain's fit.

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.simulate.config import SIM_PLATFORM
from bot.simulate.truth import Truth
from scorer.emotions import N_EMOTIONS
from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.simulate.population import Population


def _ndcg_at(scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, kind="stable")[:k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((gains[top] * disc[: len(top)]).sum())
    ideal = np.sort(gains)[::-1][:k]
    idcg = float((ideal * disc[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """`training.evaluate.spearman`, with 0 (no order learned) where it is undefined."""
    from training.evaluate import spearman

    rho = spearman(a, b)
    return 0.0 if math.isnan(rho) else rho


def measure(matrix: Any, truth: Truth, rng: np.random.Generator) -> dict[str, Any]:
    """What the bot would show (deterministic top 5 of the posterior, no exploration) against
    the truth, per emotion and averaged over emotions."""
    n = len(truth.shas)
    cols = np.full(n, -1, dtype=np.int64)
    for k, sha in enumerate(truth.shas):
        cols[k] = matrix.index.get(sha, -1)
    per: dict[str, list[float]] = {"ndcg5": [], "p1": [], "top_pct": [], "spearman": [],
                                   "pair_acc": []}
    for e in range(N_EMOTIONS):
        if matrix.scored:
            post = np.where(cols >= 0, matrix.mean[e][np.maximum(cols, 0)], -np.inf)
            post = post.astype(np.float64)
        else:  # nothing scored: the bot shows GIFs in random order
            post = rng.random(n)
        # ties (e.g. many GIFs with the same prior) broken at random, not by sha order
        jitter = rng.random(n) * 1e-9
        score = post + jitter
        gains = truth.values[:, e]
        per["ndcg5"].append(_ndcg_at(score, gains, 5))
        first = int(np.argmax(score))
        per["p1"].append(float(truth.relevant[e][first]))
        per["top_pct"].append(top_percentile(gains, first))
        finite = np.isfinite(post)
        per["spearman"].append(_spearman(post[finite], gains[finite]) if matrix.scored else 0.0)
        a, b = truth.pairs[e]
        diff = score[a] - score[b]
        per["pair_acc"].append(float(np.mean((diff > 0) + 0.5 * (diff == 0))) if len(a) else 0.5)
    out: dict[str, Any] = {k: float(np.mean(v)) for k, v in per.items()}
    out["per_emotion"] = {k: [round(x, 4) for x in v] for k, v in per.items()}
    return out


def top_percentile(gains: np.ndarray, k: int) -> float:
    """Where GIF `k` stands in the pool by its true score: the share of the other GIFs it
    beats (ties half), 1.0 = the truly best GIF, 0.5 = a median one.

    P@1 says only whether the first GIF is in the true top 1 % (0 or 1 per emotion, so a
    17-emotion mean moves in steps of 1/17 per seed); this says how near the top it is, so
    two runs whose first GIFs sit at the 98.9th and 99.1st percentile are not 0 and 1 apart.
    """
    others = len(gains) - 1
    if others <= 0:
        return 1.0
    below = float((gains < gains[k]).sum())
    tied = float((gains == gains[k]).sum()) - 1.0
    return (below + 0.5 * tied) / others


def voter_weights(engine: Any, settings: Settings, pop: Population) -> dict[str, float]:
    """How the retrain weighs each kind of virtual person (training/reliability.py): their
    mean trust; the share of the judgements *against* the truly best GIFs (the true top 1 %
    losing to the send bar or the thumbs reference) that adversarial people made; and how
    much of the weight of those adversarial judgements, and of normal people's judgements
    on the same GIFs, the weighing keeps. The fit never sees the kinds: this only measures."""
    from training.comparisons import is_reference, load_ledger, user_hash
    from training.judgements import preview_judgements, weigh_ledger_people, with_judgements

    truth = pop.truth
    known = set(truth.shas)
    ledger, _ = load_ledger(engine, known_gifs=known, items=truth.shas)
    if not len(ledger):
        return {}
    raw = with_judgements(ledger, preview_judgements(engine, known), weigh_people=False)
    weighed, report = weigh_ledger_people(raw)
    kind = {user_hash(engine, settings, SIM_PLATFORM, u.user_id): u.kind for u in pop.users}
    out: dict[str, float] = {}
    for k in ("normal", "noisy", "adversarial"):
        trust = [t for who, t in report.trust.items() if kind.get(who) == k]
        if trust:
            out[f"trust_{k}"] = float(np.mean(trust))
    ref = np.asarray([is_reference(i) for i in raw.ids], dtype=bool)
    top = np.zeros((len(raw.ids), N_EMOTIONS), dtype=bool)
    for e in range(N_EMOTIONS):
        top[np.flatnonzero(truth.relevant[e]), e] = True  # ids lead with truth.shas
    e = raw.emotion.astype(np.int64)
    lost = ref[raw.winner] & top[raw.loser, e]
    on_top = lost | (ref[raw.loser] & top[raw.winner, e])
    kinds = np.asarray([kind.get(w, "") for w in raw.who], dtype=object)
    adv, normal = kinds == "adversarial", kinds == "normal"
    total = float(raw.weight[lost].sum())
    out["adv_share_top_losses"] = float(raw.weight[lost & adv].sum()) / total if total else 0.0
    for label, rows in (("adv_kept_top_losses", lost & adv), ("normal_kept_top", on_top & normal)):
        before = float(raw.weight[rows].sum())
        if before:
            out[label] = float(weighed[rows].sum()) / before
    return out

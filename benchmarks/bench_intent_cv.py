"""Issue 15: other ways to read a chat sentence, each measured by 5-fold cross-validation on
the TUNE sentences, then on the held-out sets once.

    .venv/bin/python benchmarks/bench_intent_cv.py             # CV, then held-out once
    .venv/bin/python benchmarks/bench_intent_cv.py --cv-only   # never reads a held-out row
    .venv/bin/python benchmarks/bench_intent_cv.py --fresh NEW.csv   # only: every method,
        # fitted on the tune rows, on a new set (text,accepted[,split]) nobody has tuned on

The rows: the tune split of tests/data/intent_sentences.csv plus the tune split's sentences
(more than 3 words) of tests/data/intent_eval.csv. Each fold's free choices (regularisation,
weights) are made on the other four folds only, and every method is scored by the whole
parser (lexicon, blend, sarcasm, threshold) with only its sentence model swapped. Methods:

- ``current``: the kNN vote over the bank + the bank's word model (shipped for sentences until
  2026-11-29, still for one to three words; the regression + word model reads sentences now);
- ``knn+words+logreg``: the same plus a multinomial logistic regression on the bank's
  MiniLM embeddings (L2 by the bank's own 5-fold CV), its weight chosen on the four folds;
- ``words+logreg``: the regression and the word model without the kNN vote;
- ``bank+tune lines``: the kNN vote and word model over the bank plus the four folds' lines
  (would more lines in the chat register help?);
- ``stacked``: the kNN, word and regression evidence mixed with weights fitted by log-loss
  on the four folds.

The held-out pass fits each method's choices on all the tune rows and reads each held-out
set once. Nothing here changes the parser; results are in docs/bench/intent.md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_intent as bench  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from bot.sentence_logreg import fit_softmax_regression, one_hot  # noqa: E402
from bot.situation_words import WordModel  # noqa: E402
from scorer.emotions import N_EMOTIONS, NAMES  # noqa: E402

Row = tuple[str, set[str], str]
SentenceModel = Callable[[str], list[float]]
FOLDS = 5
SEED = 1
L2_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
CURRENT = {"T": intent_mod.EMBED_TEMPERATURE, "ww": intent_mod.WORD_WEIGHT}


def snippet(text: str) -> str:
    """What the parser hands its sentence model (see IntentParser._distribution)."""
    cleaned = intent_mod._clean(intent_mod._coerce(text)[: intent_mod.MAX_CHARS])
    return " ".join(cleaned[: intent_mod.EMBED_CHARS].split())


class Vectors:
    """MiniLM vectors of every text, computed once (batched) and looked up after."""

    def __init__(self, texts: list[str]) -> None:
        self.model = intent_mod._EMBEDDER._model
        keys = sorted({snippet(t) for t in texts})
        vecs = self.model.encode(keys, normalize_embeddings=True, batch_size=64)
        self.vec = dict(zip(keys, vecs, strict=True))

    def __call__(self, snip: str) -> np.ndarray:
        v = self.vec.get(snip)
        if v is None:
            v = self.vec[snip] = self.model.encode([snip], normalize_embeddings=True)[0]
        return v


def soft_targets(rows: list[Row]) -> np.ndarray:
    """An accepted set shares its row's weight among its emotions."""
    y = np.zeros((len(rows), N_EMOTIONS))
    for i, (_, accepted, _) in enumerate(rows):
        for e in accepted:
            y[i, NAMES.index(e)] = 1.0 / len(accepted)
    return y


class Evidence:
    """A sentence's three kinds of evidence: kNN vote, word model, regression logits."""

    def __init__(self, vectors: Vectors, bank: np.ndarray, owner: np.ndarray, words: WordModel,
                 logreg: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.vectors, self.bank, self.owner, self.words, self.logreg = vectors, bank, owner, words, logreg

    def __call__(self, snip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v = self.vectors(snip)
        knn = intent_mod.knn_scores(np.einsum("ij,j->i", self.bank, v), self.owner,
                                    intent_mod.PROTOTYPE_TOP_K).astype(float)
        words = np.asarray(self.words.log_likelihood(snip))
        logits = v @ self.logreg[0] + self.logreg[1] if self.logreg is not None else np.zeros(N_EMOTIONS)
        return knn, words, logits


def mixed(evidence: Evidence, knn_w: float, words_w: float, logreg_w: float) -> SentenceModel:
    def model(snip: str) -> list[float]:
        knn, words, logits = evidence(snip)
        z = knn_w * knn + words_w * words + logreg_w * logits
        p = np.exp(z - z.max())
        return list(p / p.sum())
    return model


def score(parser: IntentParser, model: SentenceModel, rows: list[Row]) -> dict[str, float]:
    parser._sentence_probs = model  # type: ignore[method-assign]
    try:
        return bench.evaluate(parser, rows)
    finally:
        del parser._sentence_probs


def objective(m: dict[str, float]) -> float:
    return m["top1"] + m["top3"]


class Setup:
    def __init__(self, parser: IntentParser, vectors: Vectors) -> None:
        texts, owner = intent_mod.bank_texts()
        self.parser, self.vectors = parser, vectors
        self.texts, self.owner = texts, np.asarray(owner)
        self.bank = intent_mod._EMBEDDER._protos
        self.words = intent_mod._EMBEDDER.words
        self.l2 = self._bank_cv_l2()
        self.logreg = fit_softmax_regression(self.bank, one_hot(self.owner), self.l2)

    def _bank_cv_l2(self) -> float:
        fold = np.random.default_rng(0).permutation(len(self.texts)) % FOLDS
        y = one_hot(self.owner)
        best = (-1.0, L2_GRID[0])
        for l2 in L2_GRID:
            right = 0
            for f in range(FOLDS):
                w, b = fit_softmax_regression(self.bank[fold != f], y[fold != f], l2)
                right += int(((self.bank[fold == f] @ w + b).argmax(1) == self.owner[fold == f]).sum())
            print(f"  logreg L2 {l2:g}: bank 5-fold CV accuracy {right / len(self.texts):.3f}", flush=True)
            best = max(best, (right / len(self.texts), l2))
        return best[1]

    # Each method: fit its choices on `train` rows, return the sentence model.
    def current(self, train: list[Row]) -> SentenceModel:
        ev = Evidence(self.vectors, self.bank, self.owner, self.words)
        return mixed(ev, 1 / CURRENT["T"], CURRENT["ww"], 0.0)

    def _grid(self, train: list[Row], ev: Evidence, grid: list[tuple[float, float, float]]) -> SentenceModel:
        best = max(grid, key=lambda g: objective(score(self.parser, mixed(ev, *g), train)))
        return mixed(ev, *best)

    def knn_words_logreg(self, train: list[Row]) -> SentenceModel:
        ev = Evidence(self.vectors, self.bank, self.owner, self.words, self.logreg)
        return self._grid(train, ev, [(1 / CURRENT["T"], ww, a)
                                      for ww, a in itertools.product((0.25, 0.5), (0.25, 0.5, 1.0))])

    def words_logreg(self, train: list[Row]) -> SentenceModel:
        ev = Evidence(self.vectors, self.bank, self.owner, self.words, self.logreg)
        return self._grid(train, ev, [(0.0, ww, a) for ww, a in itertools.product((0.25, 0.5), (0.5, 1.0, 2.0))])

    def bank_plus_tune(self, train: list[Row]) -> SentenceModel:
        extra_texts, extra_owner = [], []
        for text, accepted, _ in train:
            for e in sorted(accepted):  # every accepted emotion owns a copy of the line
                extra_texts.append(snippet(text))
                extra_owner.append(NAMES.index(e))
        bank = np.concatenate([self.bank, np.stack([self.vectors(t) for t in extra_texts])])
        owner = np.concatenate([self.owner, np.asarray(extra_owner)])
        words = WordModel(zip(self.texts + extra_texts, owner.tolist(), strict=True))
        return mixed(Evidence(self.vectors, bank, owner, words), 1 / CURRENT["T"], CURRENT["ww"], 0.0)

    def stacked(self, train: list[Row]) -> SentenceModel:
        from scipy.optimize import minimize

        ev = Evidence(self.vectors, self.bank, self.owner, self.words, self.logreg)
        feats = [ev(snippet(t)) for t, _, _ in train]
        accepted = [np.array([NAMES.index(e) for e in acc]) for _, acc, _ in train]

        def nll(w: np.ndarray) -> float:
            total = 0.0
            for (knn, words, logits), acc in zip(feats, accepted, strict=True):
                z = w[0] * knn + w[1] * words + w[2] * logits
                z = z - z.max()
                total -= float(np.log(np.exp(z[acc]).sum() / np.exp(z).sum()))
            return total / len(feats)

        w = minimize(nll, np.array([1 / CURRENT["T"], CURRENT["ww"], 0.0]), method="Powell").x
        return mixed(ev, *w)


METHODS: dict[str, Callable[[Setup, list[Row]], SentenceModel]] = {
    "current": Setup.current, "knn+words+logreg": Setup.knn_words_logreg,
    "words+logreg": Setup.words_logreg, "bank+tune lines": Setup.bank_plus_tune,
    "stacked": Setup.stacked,
}


def fmt(m: dict[str, float]) -> str:
    return (f"n={m['n']:<4} top1 {m['top1']:.3f}  best-guess {m['best_guess']:.3f}  top3 {m['top3']:.3f}  "
            f"answered {m['answered']:.3f}  nll {m['nll']:.3f}")


def pooled(parts: list[dict[str, float]]) -> dict[str, float]:
    n = sum(p["n"] for p in parts)
    out = {k: sum(p[k] * p["n"] for p in parts) / n for k in ("top1", "best_guess", "top3", "answered", "nll")}
    out["n"] = n
    return out


def load_fresh(path: Path) -> list[Row]:
    """A new evaluation set: a CSV with `text` and `accepted` (emotions joined by |)."""
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"], set(r["accepted"].split("|")), "holdout") for r in csv.DictReader(fh)]
    unknown = sorted({e for _, acc, _ in rows for e in acc} - set(NAMES))
    if unknown or not rows:
        sys.exit(f"{path}: no rows, or emotions that are not among the 17: {unknown}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cv-only", action="store_true", help="never read a held-out row")
    ap.add_argument("--fresh", type=Path, metavar="CSV",
                    help="skip the CV and the held-out sets: read only this new set, once")
    args = ap.parse_args()
    rows = bench.load_rows()
    sentences = bench.load_rows(bench.SENTENCES)
    extra = bench.load_rows(bench.EXTRA)
    tune = [r for r in sentences if r[2] == "tune"] + [r for r in rows if r[2] == "tune" and not bench.is_short(r[0])]
    held = {
        "chat sentences holdout": [r for r in sentences if r[2] == "holdout"],
        "own extra set (holdout)": extra,
        "eval-set sentences holdout": [r for r in rows if r[2] == "holdout" and not bench.is_short(r[0])],
        "short requests holdout": [r for r in rows if r[2] == "holdout" and bench.is_short(r[0])],
    }
    if args.fresh is not None:
        held = {args.fresh.name: [(t, a, "holdout") for t, a, _ in load_fresh(args.fresh)]}
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    t0 = time.perf_counter()
    texts = [t for t, _, _ in tune] + ([] if args.cv_only else [t for rs in held.values() for t, _, _ in rs])
    setup = Setup(parser, Vectors(texts))
    print(f"logreg L2 {setup.l2:g} (bank CV); setup {time.perf_counter() - t0:.0f} s")
    fold = np.random.default_rng(SEED).permutation(len(tune)) % FOLDS
    for name, method in ({} if args.fresh is not None else METHODS).items():
        parts = []
        for f in range(FOLDS):
            train = [r for r, k in zip(tune, fold, strict=True) if k != f]
            test = [r for r, k in zip(tune, fold, strict=True) if k == f]
            parts.append(score(parser, method(setup, train), test))
        print(f"{name:18} tune {FOLDS}-fold CV  {fmt(pooled(parts))}", flush=True)
    if args.cv_only:
        return
    print("held out, read once (each method fitted on all the tune rows):")
    for name, method in METHODS.items():
        model = method(setup, tune)
        for set_name, rs in held.items():
            print(f"{name:18} {set_name:27} {fmt(score(parser, model, rs))}", flush=True)


if __name__ == "__main__":
    main()

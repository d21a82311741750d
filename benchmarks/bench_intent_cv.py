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
from bot.sentence_logreg import L2, fit_softmax_regression, one_hot  # noqa: E402
from bot.situation_words import WordModel  # noqa: E402
from scorer.emotions import N_EMOTIONS, NAMES  # noqa: E402

Row = tuple[str, set[str], str]
SentenceModel = Callable[[str], list[float]]
FOLDS = 5
SEED = 1
WIDE_A = (0.5, 0.75, 1.0, 1.5, 2.0)  # regression weight (shipped 2.0)
WIDE_WW = (0.5, 0.75, 1.0, 1.5, 2.0)  # word-model weight beside it (shipped 0.5)
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
    """The whole parser with `model` for its sentence model. (A lower commit threshold for
    sentences was measured on a branch and not adopted: docs/bench/intent.md.)"""
    parser._sentence_probs = model  # type: ignore[method-assign]
    try:
        return bench.evaluate(parser, rows)
    finally:
        del parser._sentence_probs


def objective(m: dict[str, float]) -> float:
    return m["top1"] + m["top3"]


class Setup:
    def __init__(self, parser: IntentParser, vectors: Vectors, skip_l2_cv: bool = False,
                 bank_fraction: float = 1.0) -> None:
        texts, owner = intent_mod.bank_texts()
        self.parser, self.vectors = parser, vectors
        self.texts, self.owner = texts, np.asarray(owner)
        self.bank = intent_mod._EMBEDDER._protos
        self.words = intent_mod._EMBEDDER.words
        self.shipped_logreg = intent_mod._EMBEDDER.logreg
        if bank_fraction < 1.0:
            # How the choices move with the bank's size: keep this share of every emotion's
            # lines and refit everything on them (a smaller bank stands in for the bigger one
            # we do not have yet: a choice that holds from 60 % to 100 % should hold at 150 %).
            keep = np.random.default_rng(0).random(len(texts)) < bank_fraction
            self.texts = [t for t, k in zip(texts, keep, strict=True) if k]
            self.owner, self.bank = self.owner[keep], self.bank[keep]
            self.words = WordModel(zip(self.texts, self.owner.tolist(), strict=True))
            self.shipped_logreg = fit_softmax_regression(self.bank.astype(np.float64), one_hot(self.owner), L2)
        self.l2 = self._bank_cv_l2() if not skip_l2_cv else L2
        self.logreg = fit_softmax_regression(self.bank, one_hot(self.owner), self.l2)
        # What the parser loaded (bot.sentence_logreg.cached_regression at its constant L2).
        self.shipped_l2 = L2
        self.balanced_logreg: tuple[np.ndarray, np.ndarray] | None = None
        self.picked: list[tuple[float, ...]] = []  # what each fold's choice was

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


    # --- the shipped sentence model and changes to it (issue 15, fourth round) ---------------
    def _switched(self, logreg: tuple[np.ndarray, np.ndarray], sharpen: float = 1.0,
                  logreg_w: float = intent_mod.LOGREG_WEIGHT, words_w: float = intent_mod.LOGREG_WORD_WEIGHT,
                  knn_w: float = 0.0, knn_max_words: int = 0) -> SentenceModel:
        """IntentParser._sentence_probs with its parts exposed: on LOGREG_MIN_WORDS words or
        more the regression plus the word model (times `sharpen`; plus `knn_w` of the kNN
        vote up to `knn_max_words` words), on fewer the kNN vote plus the word model."""
        ev = Evidence(self.vectors, self.bank, self.owner, self.words, logreg)

        def model(snip: str) -> list[float]:
            knn, words, logits = ev(snip)
            n = len(snip.split())
            if n >= intent_mod.LOGREG_MIN_WORDS:
                z = logreg_w * logits + words_w * words
                if n <= knn_max_words:
                    z = z + knn_w * knn / CURRENT["T"]
                z = sharpen * z
            else:
                z = knn / CURRENT["T"] + CURRENT["ww"] * words
            p = np.exp(z - z.max())
            return list(p / p.sum())
        return model

    def _pick(self, train: list[Row], models: dict[tuple[float, ...], SentenceModel]) -> SentenceModel:
        scored = {k: objective(score(self.parser, m, train)) for k, m in models.items()}
        best = max(scored, key=lambda k: scored[k])
        self.picked.append(best)
        return models[best]

    def shipped(self, train: list[Row]) -> SentenceModel:
        """The bank regression as shipped (the fallback while the tuned model is built)."""
        return self._switched(self.shipped_logreg)

    def before_fourth_round(self, train: list[Row]) -> SentenceModel:
        """The sentence model shipped before this round: regression 2.0, word model 0.5,
        the parser's whole threshold for sentences too."""
        return self._switched(self.shipped_logreg, logreg_w=2.0, words_w=0.5)

    def shipped_grid(self, train: list[Row]) -> SentenceModel:
        """The shipped constants' own choice rule, made on the four folds: word weight
        (0.25, 0.5) x regression weight (0.5, 1, 2). `shipped` was chosen on all 204 lines,
        so its CV figure is flattered; this one is the fair baseline for a re-chosen grid."""
        return self._pick(train, {(a, ww): self._switched(self.shipped_logreg, logreg_w=a, words_w=ww)
                                  for a, ww in itertools.product((0.5, 1.0, 2.0), (0.25, 0.5))})

    def sharpened(self, train: list[Row]) -> SentenceModel:
        """(a) One temperature on the sentence model's log-odds, chosen on the four folds:
        only the commit rate and the lexicon blend move, never the model's own ranking."""
        return self._pick(train, {(s,): self._switched(self.shipped_logreg, sharpen=s)
                                  for s in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)})

    def regrid(self, train: list[Row]) -> SentenceModel:
        """(a) The regression and word-model weights re-chosen on the four folds over a wider
        grid than the shipped one (whose best, 2.0, was its edge)."""
        return self._pick(train, {(a, ww): self._switched(self.shipped_logreg, logreg_w=a, words_w=ww)
                                  for a, ww in itertools.product((1.0, 2.0, 3.0, 4.0, 6.0), (0.25, 0.5, 1.0))})

    def _with_tune(self, train: list[Row], weight: float) -> SentenceModel:
        """(b) The regression refitted on the bank plus the four folds' lines (soft targets:
        a line with several accepted emotions shares its weight), each line counting
        `weight` bank lines."""
        x = np.concatenate([self.bank, np.stack([self.vectors(snippet(t)) for t, _, _ in train])])
        y = np.concatenate([one_hot(self.owner), soft_targets(train)])
        sw = np.concatenate([np.ones(len(self.owner)), np.full(len(train), weight)])
        fit = fit_softmax_regression(x, y, self.shipped_l2, sample_weight=sw, start=self.shipped_logreg)
        return self._switched(fit)

    def tune_lines_1(self, train: list[Row]) -> SentenceModel:
        return self._with_tune(train, 1.0)

    def tune_lines_3(self, train: list[Row]) -> SentenceModel:
        return self._with_tune(train, 3.0)

    def balanced(self, train: list[Row]) -> SentenceModel:
        """(c) The regression with class-balanced sample weights (each emotion's lines weigh
        as much in all as any other's), so a big emotion does not win by its size."""
        if self.balanced_logreg is None:
            counts = np.bincount(self.owner, minlength=N_EMOTIONS).astype(float)
            sw = (len(self.owner) / (N_EMOTIONS * counts))[self.owner]
            self.balanced_logreg = fit_softmax_regression(self.bank, one_hot(self.owner), self.shipped_l2,
                                                          sample_weight=sw, start=self.shipped_logreg)
        return self._switched(self.balanced_logreg)

    def bank_cv_l2(self, train: list[Row]) -> SentenceModel:
        """(c) The regression at the L2 the bank's own 5-fold CV picks today (the shipped
        constant was picked the same way on an earlier bank)."""
        return self._switched(self.logreg)

    def knn_short_sentences(self, train: list[Row]) -> SentenceModel:
        """(d) On 4-6 words the kNN vote added to the regression, its weight chosen on the
        four folds (0 keeps the shipped model)."""
        return self._pick(train, {(b, m): self._switched(self.shipped_logreg, knn_w=b, knn_max_words=m)
                                  for b, m in itertools.product((0.0, 0.25, 0.5, 1.0), (6, 8))})

    def regrid_wide(self, train: list[Row]) -> SentenceModel:
        """(a) `regrid` over a grid centred on its choice, (1, 1), so no fold picks an edge."""
        return self._pick(train, {(a, ww): self._switched(self.shipped_logreg, logreg_w=a, words_w=ww)
                                  for a, ww in itertools.product(WIDE_A, WIDE_WW)})

    def regrid_tune_lines(self, train: list[Row]) -> SentenceModel:
        """(a)+(b) The weights chosen as in `regrid_wide` with the bank's regression (choosing
        them with a regression that has seen the four folds would flatter it), then the
        regression refitted on the bank plus those lines at x3."""
        self._pick(train, {(a, ww): self._switched(self.shipped_logreg, logreg_w=a, words_w=ww)
                           for a, ww in itertools.product(WIDE_A, WIDE_WW)})
        a, ww = self.picked[-1]
        x = np.concatenate([self.bank, np.stack([self.vectors(snippet(t)) for t, _, _ in train])])
        y = np.concatenate([one_hot(self.owner), soft_targets(train)])
        sw = np.concatenate([np.ones(len(self.owner)), np.full(len(train), 3.0)])
        fit = fit_softmax_regression(x, y, self.shipped_l2, sample_weight=sw, start=self.shipped_logreg)
        return self._switched(fit, logreg_w=a, words_w=ww)

    def regrid_knn(self, train: list[Row]) -> SentenceModel:
        """(a)+(d) Regression, word-model and 4-8-word kNN weights chosen together."""
        return self._pick(train, {(a, ww, b): self._switched(self.shipped_logreg, logreg_w=a, words_w=ww,
                                                             knn_w=b, knn_max_words=8)
                                  for a, ww, b in itertools.product((0.75, 1.0, 1.5, 2.0), (0.5, 0.75, 1.0, 1.5),
                                                                    (0.0, 0.25, 0.5))})


METHODS: dict[str, Callable[[Setup, list[Row]], SentenceModel]] = {
    "current": Setup.current, "knn+words+logreg": Setup.knn_words_logreg,
    "words+logreg": Setup.words_logreg, "bank+tune lines": Setup.bank_plus_tune,
    "stacked": Setup.stacked,
    "2.0/0.5 (before)": Setup.before_fourth_round, "shipped": Setup.shipped,
    "shipped grid": Setup.shipped_grid, "sharpened": Setup.sharpened, "regrid": Setup.regrid,
    "tune lines x1": Setup.tune_lines_1, "tune lines x3": Setup.tune_lines_3,
    "balanced": Setup.balanced, "bank-CV L2": Setup.bank_cv_l2,
    "knn 4-8 words": Setup.knn_short_sentences,
    "regrid wide": Setup.regrid_wide, "regrid+tune x3": Setup.regrid_tune_lines,
    "regrid+knn": Setup.regrid_knn,
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
    ap.add_argument("--seed", type=int, default=SEED, help="the fold assignment's seed")
    ap.add_argument("--bank-fraction", type=float, default=1.0,
                    help="keep this share of the bank (each line by chance) and refit on it")
    ap.add_argument("--methods", help="comma-separated method names (default: all)")
    ap.add_argument("--skip-l2-cv", action="store_true",
                    help="skip the bank's own L2 sweep (then 'bank-CV L2' is the shipped L2)")
    args = ap.parse_args()
    methods = METHODS if not args.methods else {m: METHODS[m] for m in args.methods.split(",")}
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
    setup = Setup(parser, Vectors(texts), skip_l2_cv=args.skip_l2_cv,
                  bank_fraction=args.bank_fraction)
    print(f"logreg L2 {setup.l2:g} (bank CV); setup {time.perf_counter() - t0:.0f} s")
    fold = np.random.default_rng(args.seed).permutation(len(tune)) % FOLDS
    for name, method in ({} if args.fresh is not None else methods).items():
        parts = []
        setup.picked = []
        for f in range(FOLDS):
            train = [r for r, k in zip(tune, fold, strict=True) if k != f]
            test = [r for r, k in zip(tune, fold, strict=True) if k == f]
            parts.append(score(parser, method(setup, train), test))
        chosen = f"  chosen per fold {setup.picked}" if setup.picked else ""
        print(f"{name:18} tune {FOLDS}-fold CV  {fmt(pooled(parts))}{chosen}", flush=True)
    if args.cv_only:
        return
    print("held out, read once (each method fitted on all the tune rows):")
    for name, method in methods.items():
        model = method(setup, tune)
        for set_name, rs in held.items():
            print(f"{name:18} {set_name:27} {fmt(score(parser, model, rs))}", flush=True)


if __name__ == "__main__":
    main()

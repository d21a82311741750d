"""The forty-first round: all-mpnet-base-v2 fine-tuned whole on a lent GPU, as a teacher for
the shipped MiniLM (rule in docs/bench/eleventh-round-rule.md, outcome in docs/bench/intent.md).

    .venv/bin/python benchmarks/gpu_teacher.py pack --mpnet DIR          # here: .gpu1/ and .gpu2/
    python3 benchmarks/gpu_teacher.py teach --out OUT                    # on the GPU machine
    .venv/bin/python benchmarks/gpu_teacher.py shipped                   # here: the shipped head's top-1

A device call carries 64 MiB, and mpnet's float weights are 420 MB, so `pack` writes them as
int8 rows with a float scale each, in two folders (the token embeddings only for the tokens
that the round's lines use: nothing else is ever looked up), and the round's lines already
tokenized. `teach` needs only torch, transformers, numpy and scipy: it restores the weights in
float32, fine-tunes all twelve layers and an 18-class head with the shipped recipe (the head
started from a regression on the frozen vectors, as bench_distill.py's K=4 teacher), prints
gate G2 (the teacher's head alone on the selection pool) and writes U2's readings as
`bot.sentence_tuning --taught` reads them. DIR: see benchmarks/bench_second_encoder.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CLASSES = 18  # the 17 GIFGIF emotions, then no feeling
MAX_TOKENS = 64  # the recipe's
FIRST_HALF = 6  # layers 0-5 travel with the embeddings, 6-11 in the second call
U2 = REPO / "docs" / "bench" / "round40-chat-lines.txt"
PARTS = (REPO / ".gpu1", REPO / ".gpu2")


def _quantized(name: str, w: np.ndarray, into: dict[str, np.ndarray]) -> None:
    if w.ndim == 2:
        scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-12) / 127.0
        into[name + ".q"] = np.round(w / scale).astype(np.int8)
        into[name + ".s"] = scale.astype(np.float32)
    else:
        into[name] = w.astype(np.float32)


def _u2_lines() -> list[str]:
    return [x.strip() for x in U2.read_text(encoding="utf-8").splitlines()
            if x.strip() and not x.startswith("#")]


def pack(mpnet: Path) -> None:
    from bench_distill import selection_rows, training_lines
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from scorer.emotions import NAMES

    tok = Tokenizer.from_file(str(mpnet / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    texts, labels = training_lines()
    rows = selection_rows()
    names = [*NAMES, "no feeling"]
    accepted = np.asarray([[n in acc for n in names] for _, acc in rows], dtype=bool)
    groups = {"train": texts, "select": [t for t, _ in rows], "u2": _u2_lines()}
    lines: dict[str, np.ndarray] = {"train_labels": np.asarray(labels, dtype=np.int64),
                                    "select_accepted": accepted}
    used: set[int] = set()
    for key, group in groups.items():
        encoded = [e.ids for e in tok.encode_batch(group)]
        ids = np.full((len(encoded), MAX_TOKENS), 1, dtype=np.uint16)  # 1 is mpnet's padding
        for i, e in enumerate(encoded):
            ids[i, :len(e)] = e
            used.update(e)
        lines[key + "_ids"] = ids
        lines[key + "_len"] = np.asarray([len(e) for e in encoded], dtype=np.int16)
    weights = load_file(str(mpnet / "model.safetensors"))
    halves: list[dict[str, np.ndarray]] = [{}, {}]
    rows_used = np.asarray(sorted(used), dtype=np.int32)
    for name, w in weights.items():
        if name == "embeddings.position_ids" or name.startswith("pooler."):  # mean pooling instead
            continue
        if name == "embeddings.word_embeddings.weight":
            halves[0]["word_rows"] = rows_used
            _quantized(name, w[rows_used], halves[0])
            continue
        second = name.startswith("encoder.layer.") and int(name.split(".")[2]) >= FIRST_HALF
        _quantized(name, w, halves[int(second)])
    for folder, half in zip(PARTS, halves, strict=True):
        folder.mkdir(exist_ok=True)
        np.savez(folder / "weights.npz", **half)
    np.savez_compressed(PARTS[1] / "lines.npz", **lines)
    (PARTS[1] / "config.json").write_text((mpnet / "config.json").read_text())
    for folder in PARTS:
        mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        print(f"{folder.name}: {mb:.1f} MiB")
    print(f"{len(texts)} training lines, {len(rows)} selection lines, {len(groups['u2'])} U2 lines, "
          f"{len(used)} of {weights['embeddings.word_embeddings.weight'].shape[0]} tokens used")


def _restore(parts: list[Path]) -> Any:
    import torch
    from transformers import MPNetConfig, MPNetModel

    config = MPNetConfig(**json.loads((parts[1] / "config.json").read_text()))
    model = MPNetModel(config, add_pooling_layer=False)
    state: dict[str, Any] = {}
    for folder in parts:
        with np.load(folder / "weights.npz") as z:
            for key in z.files:
                if key.endswith(".q"):
                    state[key[:-2]] = torch.from_numpy(z[key].astype(np.float32) * z[key[:-2] + ".s"])
                elif not key.endswith(".s") and key != "word_rows":
                    state[key] = torch.from_numpy(z[key])
            if "word_rows" in z.files:
                rows = torch.from_numpy(z["word_rows"].astype(np.int64))
    words = torch.zeros(config.vocab_size, config.hidden_size)
    words[rows] = state.pop("embeddings.word_embeddings.weight")
    state["embeddings.word_embeddings.weight"] = words
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        sys.exit(f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


class _Batches:
    def __init__(self, ids: np.ndarray, lengths: np.ndarray, device: Any) -> None:
        import torch

        self.torch, self.ids, self.lengths, self.device = torch, ids.astype(np.int64), lengths, device

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: Any) -> dict[str, Any]:
        longest = int(self.lengths[idx].max())
        ids = self.torch.from_numpy(self.ids[idx, :longest]).to(self.device)
        mask = (self.torch.arange(longest)[None, :] < self.torch.from_numpy(
            self.lengths[idx].astype(np.int64))[:, None]).long().to(self.device)
        return {"input_ids": ids, "attention_mask": mask}


def _pool(model: Any, batch: dict[str, Any]) -> Any:
    import torch

    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _vectors(model: Any, data: _Batches, batch: int = 256) -> Any:
    import torch

    model.eval()
    with torch.inference_mode():
        return torch.cat([_pool(model, data.batch(np.arange(s, min(s + batch, len(data)))))
                          for s in range(0, len(data), batch)])


def _fine_tune(model: Any, data: _Batches, labels: np.ndarray) -> tuple[Any, Any, float]:
    """bench_distill.teach's loop with all twelve layers trainable (token embeddings frozen)."""
    import torch

    from bot.sentence_logreg import fit_softmax_regression
    from bot.sentence_tuning import Recipe, optimiser

    recipe = Recipe()
    torch.manual_seed(recipe.seed)
    base = _vectors(model, data).float().cpu().numpy().astype(np.float64)
    targets = np.zeros((len(labels), CLASSES))
    targets[np.arange(len(labels)), labels] = 1.0
    t0 = time.perf_counter()
    w0, b0 = fit_softmax_regression(base, targets)
    print(f"starting head: regression on {len(labels)} frozen vectors in {time.perf_counter() - t0:.0f} s", flush=True)
    dev = next(model.parameters()).device
    head_w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32, device=dev))
    head_b = torch.nn.Parameter(torch.tensor(b0, dtype=torch.float32, device=dev))
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt, sched, steps = optimiser(trainable, (head_w, head_b), len(labels), recipe)
    weight = torch.ones(CLASSES, device=dev)
    weight[CLASSES - 1] = recipe.no_feeling_weight
    y = torch.tensor(labels, dtype=torch.int64, device=dev)
    rng = np.random.default_rng(recipe.seed)
    model.train()
    step, t1 = 0, time.perf_counter()
    while step < steps:
        order = rng.permutation(len(labels))
        for first in range(0, len(labels), recipe.batch):
            if step >= steps:
                break
            idx = order[first:first + recipe.batch]
            logits = _pool(model, data.batch(idx)) @ head_w + head_b
            loss = torch.nn.functional.cross_entropy(logits, y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 200 == 0 or step == steps:
                print(f"step {step}/{steps} loss {loss.item():.3f}", flush=True)
    model.eval()
    return head_w.detach(), head_b.detach(), time.perf_counter() - t1


def teach(out: Path, parts: list[Path], smoke: int = 0) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 as on the CPU: the recipe's numbers
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {dev} ({torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    model = _restore(parts).to(dev)
    with np.load(parts[1] / "lines.npz") as z:
        lines = {k: z[k] for k in z.files}
    if smoke:  # a few lines of each group, to try the whole path on a CPU before a device call
        lines = {k: v[:smoke] for k, v in lines.items()}
    train = _Batches(lines["train_ids"], lines["train_len"], dev)
    head_w, head_b, seconds = _fine_tune(model, train, lines["train_labels"])
    print(f"teacher T12 fine-tuned on {len(train)} lines in {seconds:.0f} s", flush=True)
    select = _Batches(lines["select_ids"], lines["select_len"], dev)
    z_sel = (_vectors(model, select) @ head_w + head_b).cpu().numpy()
    accepted = lines["select_accepted"]
    hit = accepted[np.arange(len(z_sel)), z_sel.argmax(1)]  # as bench_distill.top1 counts
    top1 = float(hit.mean())
    print(f"gate G2: teacher T12 head alone, selection pool n={len(z_sel)}: top-1 {top1:.4f} "
          f"(K=4 teacher 0.8294: {top1 - 0.8294:+.4f}, needs >= +0.01)", flush=True)
    u2 = _Batches(lines["u2_ids"], lines["u2_len"], dev)
    p = torch.softmax(_vectors(model, u2) @ head_w + head_b, dim=-1).cpu().numpy()
    texts = _u2_lines()[:smoke] if smoke else _u2_lines()
    if len(texts) != len(p):
        sys.exit(f"U2 has {len(texts)} lines here but {len(p)} were packed")
    from scorer.emotions import NAMES

    out.mkdir(parents=True, exist_ok=True)
    with (out / "t12-u2.tsv").open("w", encoding="utf-8") as fh:
        fh.write("# the teacher's probabilities: " + " ".join([*NAMES, "none"]) + "\n")
        for text, row in zip(texts, p, strict=True):
            fh.write(text.replace("\t", " ") + "\t" + " ".join(f"{v:.4f}" for v in row) + "\n")
    np.save(out / "t12-select-logits.npy", z_sel.astype(np.float32))
    flat = float((p.argmax(1) == CLASSES - 1).mean())
    print(f"U2: {len(p)} lines read, {flat:.3f} as no feeling, mean top probability {p.max(1).mean():.2f}; "
          f"whole run {time.perf_counter() - t0:.0f} s", flush=True)


def shipped() -> None:
    """The shipped tuned MiniLM's head alone on the same selection lines (gate G2's other side)."""
    from bench_distill import selection_rows, shipped_head_logits, top1

    rows = selection_rows()
    print(f"shipped MiniLM head alone, selection pool n={len(rows)}: top-1 "
          f"{top1(shipped_head_logits([t for t, _ in rows]), rows):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["pack", "teach", "shipped"])
    ap.add_argument("--mpnet", type=Path, help="all-mpnet-base-v2's folder (pack)")
    ap.add_argument("--out", type=Path, help="where teach writes the readings")
    ap.add_argument("--smoke", type=int, default=0, help="only this many lines of each group (teach)")
    ap.add_argument("--parts", type=Path, nargs=2, default=list(PARTS), help="the two packed folders (teach)")
    args = ap.parse_args()
    if args.what == "pack":
        if args.mpnet is None:
            ap.error("--mpnet is needed")
        pack(args.mpnet)
    elif args.what == "teach":
        if args.out is None:
            ap.error("--out is needed")
        teach(args.out, list(args.parts), args.smoke)
    else:
        shipped()


if __name__ == "__main__":
    main()

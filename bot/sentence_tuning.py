"""MiniLM fine-tuned on the situation bank: the model that reads sentences (four words or more).

The bank regression (`bot.sentence_logreg`) learns a linear boundary in an embedding space that
was trained for topic similarity, not feeling: "the retro turned into a shouting match" sits
next to the amusement lines about the retro. Fine-tuning the encoder itself on the bank (every
layer, a classification head started from that regression, three epochs) moves sentences by
what they feel. Chosen on issue 15's third fresh set under a rule fixed before it was read
(top-1 0.787 against 0.755, top-3 0.935 against 0.912; docs/bench/intent.md). An 18th class,
"no feeling", is trained on flat chat lines (`bot/data/no_feeling.txt`: logistics, plain
questions, other languages, code and filler), so "can you send me the link" reads as doubt
rather than as the nearest feeling: on 218 flat lines nobody tuned on, the parser commits to a
feeling for 23 % of them instead of 74 % (since the tenth round; 29 % before it).

The tuned encoder is built once per bank (10-15 min of CPU on two cores; `scripts/setup`
does it, `python -m bot.sentence_tuning` does it by hand) and kept under the cache folder as an
ONNX file plus the head, keyed by a hash of the base model, every bank line and the recipe,
so an edit to the bank builds it again. Torch is needed only for the build, which runs in a
child process: the chat process reads the ONNX file with ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bot.situation_bank import bank_cache_dir, bank_texts
from scorer.emotions import N_EMOTIONS

log = logging.getLogger(__name__)

RECIPE_VERSION = 2  # bump when the training code changes what a recipe builds (2: no-feeling class)
BUILD_TIMEOUT_S = 3600.0
NO_FEELING_FILE = "no_feeling.txt"


def load_no_feeling() -> list[str]:
    """Chat lines that carry no feeling (logistics, questions, code, other languages,
    filler): an 18th class in the fine-tune, so that such a line reads as doubt rather than
    as the nearest feeling (`bot/data/no_feeling.txt`, one line each, # for comments)."""
    from importlib import resources

    text = resources.files("bot").joinpath("data", NO_FEELING_FILE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class Recipe:
    """How the encoder is fine-tuned. Chosen on the 204 tune sentences (3 or 6 epochs, label
    smoothing 0 or 0.1, seeds 0-2 all within 0.02 top-1 of each other); see the module doc."""

    epochs: float = 3.0
    lr: float = 3e-5  # the encoder's layers
    head_lr: float = 1e-3  # the classification head, started from the bank regression
    batch: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps with a rising learning rate
    max_tokens: int = 64  # bank lines are short; longer ones are cut in training only
    seed: int = 0
    threads: int = 2
    # The no-feeling class's weight in the loss: at 1.0 flat lines, a quarter of the training
    # lines, were still read as a feeling a third of the time once the bank grew to ~5,000
    # lines; 1.3 was chosen by the rule in docs/bench/intent.md (tenth round).
    no_feeling_weight: float = 1.5
    # int8 weights in the exported encoder (ONNX Runtime's dynamic quantisation): a sentence
    # read about 4x faster on two cores, at -0.009 top-1 on the selection set (bench/intent.md).
    int8: bool = True


@dataclass(frozen=True)
class TunedFiles:
    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def head(self) -> Path:
        return self.folder / "head.npz"

    @property
    def meta(self) -> Path:
        return self.folder / "build.json"

    def complete(self) -> bool:
        return self.onnx.is_file() and self.head.is_file() and self.meta.is_file()


def cache_root() -> Path:
    """Beside the bank's vectors: shared by every home on the machine."""
    return bank_cache_dir()


def bank_key(texts: Sequence[str], owner: Sequence[int], recipe: Recipe,
             no_feeling: Sequence[str] = ()) -> str:
    """A hash of what the build depends on: the base model's files, the bank, the no-feeling
    lines, the recipe."""
    from bot.embedder import model_dir

    h = hashlib.sha256(f"v{RECIPE_VERSION}".encode())
    for f in sorted(model_dir().glob("*.safetensors")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    what = {k: v for k, v in asdict(recipe).items() if k != "threads"}  # same model either way
    h.update(json.dumps(what, sort_keys=True).encode())
    for text, k in zip(texts, owner, strict=True):
        h.update(f"{k}\t{text}\n".encode())
    for text in no_feeling:
        h.update(f"none\t{text}\n".encode())
    return h.hexdigest()[:24]


def tuned_files(texts: Sequence[str], owner: Sequence[int], recipe: Recipe = Recipe(),
                root: Path | None = None, no_feeling: Sequence[str] = ()) -> TunedFiles:
    return TunedFiles((root or cache_root()) / f"tuned-{bank_key(texts, owner, recipe, no_feeling)}")


# ---------------------------------------------------------------------------------------
# The build (torch; a child process of the chat process, or scripts/setup)
# ---------------------------------------------------------------------------------------
def _pool(model: Any, batch: Any) -> Any:
    """Mean over the tokens, then unit length: sentence-transformers' pipeline for MiniLM."""
    import torch

    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def fine_tune(texts: Sequence[str], owner: Sequence[int], out: TunedFiles,
              recipe: Recipe = Recipe(), progress: Callable[[int, int, float], None] | None = None,
              no_feeling: Sequence[str] = ()) -> TunedFiles:
    """Fine-tune MiniLM on the bank (cross-entropy over the 17 emotions, plus an 18th class
    for the no-feeling lines when there are any), export the encoder to ONNX and write the
    head; the folder appears whole or not at all."""
    import torch

    if len(texts) != len(owner) or not texts:
        raise ValueError("the bank is empty or its owners do not match its lines")
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(max(1, recipe.threads))
    data = _Lines([*texts, *no_feeling], [*owner, *([N_EMOTIONS] * len(no_feeling))],
                  recipe.max_tokens)
    model = data.encoder()
    head = _starting_head(model, data, N_EMOTIONS + 1 if no_feeling else N_EMOTIONS)
    steps, last_loss = _train(model, head, data, recipe, progress)
    _write(out, model, head, {"recipe": asdict(recipe), "recipe_version": RECIPE_VERSION,
                              "lines": len(texts), "no_feeling_lines": len(no_feeling),
                              "steps": steps, "last_loss": last_loss}, int8=recipe.int8)
    return out


class _Lines:
    """The training lines, their classes and the tokenizer that batches them."""

    def __init__(self, texts: list[str], labels: list[int], max_tokens: int) -> None:
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from bot.embedder import model_dir

        hf_logging.disable_progress_bar()  # our own progress lines say where the build is
        self.texts, self.max_tokens = texts, max_tokens
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.int64)
        self.tok = AutoTokenizer.from_pretrained(str(model_dir()))

    def __len__(self) -> int:
        return len(self.texts)

    def encoder(self) -> Any:
        from transformers import AutoModel

        from bot.embedder import model_dir

        return AutoModel.from_pretrained(str(model_dir()))

    def batch(self, idx: Sequence[int]) -> Any:
        return self.tok([self.texts[i] for i in idx], padding=True, truncation=True,
                        max_length=self.max_tokens, return_tensors="pt")


def _starting_head(model: Any, data: _Lines, classes: int) -> tuple[Any, Any]:
    """The head starts where a regression on the plain vectors ends, so training refines a
    good reader rather than first learning one from noise. (A no-feeling column started flat
    did not learn in three epochs: it needs the same start.)"""
    import torch

    from bot.sentence_logreg import fit_softmax_regression

    model.eval()
    with torch.no_grad():
        base = torch.cat([_pool(model, data.batch(range(s, min(s + 64, len(data)))))
                          for s in range(0, len(data), 64)]).numpy().astype(np.float64)
    targets = np.zeros((len(data), classes))
    targets[np.arange(len(data)), data.labels.numpy()] = 1.0
    w0, b0 = fit_softmax_regression(base, targets)
    return (torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32)),
            torch.nn.Parameter(torch.tensor(b0, dtype=torch.float32)))


def optimiser(encoder_params: list[Any], head: tuple[Any, Any], lines: int,
              recipe: Recipe) -> tuple[Any, Any, int]:
    """The recipe's AdamW (encoder and head at their own rates), warm-up then linear decay:
    (optimiser, scheduler, steps). benchmarks/bench_distill.py trains its teacher by it too."""
    import torch

    opt = torch.optim.AdamW([{"params": encoder_params, "lr": recipe.lr},
                             {"params": list(head), "lr": recipe.head_lr, "weight_decay": 0.0}],
                            weight_decay=recipe.weight_decay)
    steps = max(1, int(-(-lines // recipe.batch) * recipe.epochs))
    warm = max(1.0, recipe.warmup * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps))
    return opt, sched, steps


def _train(model: Any, head: tuple[Any, Any], data: _Lines, recipe: Recipe,
           progress: Callable[[int, int, float], None] | None) -> tuple[int, float]:
    """AdamW over the encoder and the head, warm-up then linear decay, shuffled batches;
    (steps, last loss)."""
    import torch

    head_w, head_b = head
    opt, sched, steps = optimiser(list(model.parameters()), head, len(data), recipe)
    rng = np.random.default_rng(recipe.seed)
    weight = torch.ones(head_b.shape[0])
    if len(weight) > N_EMOTIONS:
        weight[N_EMOTIONS] = recipe.no_feeling_weight
    model.train()
    step, loss_value = 0, float("nan")
    while step < steps:
        order = rng.permutation(len(data))
        for first in range(0, len(data), recipe.batch):
            if step >= steps:
                break
            idx = order[first:first + recipe.batch]
            logits = _pool(model, data.batch(idx)) @ head_w + head_b
            loss = torch.nn.functional.cross_entropy(logits, data.labels[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_value = float(loss.item())
            if progress is not None:
                progress(step, steps, loss_value)
    model.eval()
    return steps, loss_value


def _quantize(src: Path, out: Path) -> None:
    """int8 weights, activations quantised at run time: no calibration set needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to pre-process is for static quantisation
    try:
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _write(out: TunedFiles, model: Any, head: tuple[Any, Any], meta: dict[str, Any],
           int8: bool = True) -> None:
    """The ONNX encoder, the head and build.json, written aside and renamed into place."""
    import warnings

    from bot.embedder import export_onnx

    out.folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.folder.with_name(f"{out.folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        hf = tmp / "hf"
        model.save_pretrained(str(hf))
        with warnings.catch_warnings():  # the ONNX tracer's notes on the attention mask
            warnings.simplefilter("ignore")
            export_onnx(tmp / "fp32.onnx", source=hf)
        shutil.rmtree(hf)
        if int8:
            _quantize(tmp / "fp32.onnx", TunedFiles(tmp).onnx)
            (tmp / "fp32.onnx").unlink()
        else:
            (tmp / "fp32.onnx").rename(TunedFiles(tmp).onnx)
        np.savez(TunedFiles(tmp).head, weights=head[0].detach().numpy(),
                 bias=head[1].detach().numpy())
        TunedFiles(tmp).meta.write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, out.folder)  # atomic: a reader never sees half a model
        except OSError:
            if not out.complete():  # another process finished first: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Reading it (the chat process: ONNX Runtime, no torch)
# ---------------------------------------------------------------------------------------
class TunedReader:
    """The tuned encoder and its head: 17 logits for a sentence, and an 18th for "no feeling"
    when the build had no-feeling lines (`no_feeling`)."""

    def __init__(self, files: TunedFiles) -> None:
        from bot.embedder import OnnxMiniLM

        with np.load(files.head) as kept:
            self.weights = kept["weights"].astype(np.float32)
            self.bias = kept["bias"].astype(np.float32)
        classes = self.weights.shape[1] if self.weights.ndim == 2 else 0
        if classes not in (N_EMOTIONS, N_EMOTIONS + 1) or self.bias.shape != (classes,):
            raise ValueError(f"{files.head}: a head of the wrong shape {self.weights.shape}")
        self.no_feeling = classes == N_EMOTIONS + 1
        self.encoder = OnnxMiniLM(files.onnx)
        self.files = files

    def vectors(self, texts: list[str]) -> np.ndarray:
        """The tuned encoder's unit vectors, which the head reads."""
        return self.encoder.encode(texts, normalize_embeddings=True)

    def logits(self, texts: list[str]) -> np.ndarray:
        return self.vectors(texts) @ self.weights + self.bias


def load_reader(files: TunedFiles) -> TunedReader | None:
    """The tuned reader if its files are there and whole; None (and a log line) if not."""
    if not files.complete():
        return None
    try:
        return TunedReader(files)
    except ImportError as exc:  # no ONNX Runtime here: the files are fine, keep them
        log.warning("intent: the tuned sentence model needs ONNX Runtime (%s); sentences use "
                    "the bank regression", exc)
        return None
    except Exception as exc:  # a damaged file: rebuild rather than crash the bot
        log.warning("intent: the tuned sentence model in %s cannot be read (%s: %s); "
                    "removing it so it is built again", files.folder, type(exc).__name__, exc)
        shutil.rmtree(files.folder, ignore_errors=True)
        return None


class BackgroundBuild:
    """Builds the tuned model in a child process (torch stays out of the chat process) and
    calls `done` with the reader when it is ready. One build per process at a time."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _running: ClassVar[set[Path]] = set()

    def __init__(self, files: TunedFiles, done: Callable[[TunedReader], None]) -> None:
        self.files, self.done = files, done
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True until the build has ended (`done` has been called by then if it worked)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        with self._lock:
            if self.files.folder in self._running:
                return False
            self._running.add(self.files.folder)
        self._thread = threading.Thread(target=self._run, name="intent-fine-tune", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            log.info("intent: fine-tuning the sentence model on the bank in the background "
                     "(10-15 min of CPU on two cores); sentences use the bank regression meanwhile")
            proc = subprocess.run([sys.executable, "-m", "bot.sentence_tuning", "--quiet",
                                   "--threads", "1", "--exit-with", str(os.getpid())],
                                  capture_output=True, timeout=BUILD_TIMEOUT_S, check=False)
            reader = load_reader(self.files)
            if proc.returncode != 0 or reader is None:
                tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                log.warning("intent: fine-tuning failed (%s); sentences stay on the bank "
                            "regression", tail[0])
                return
            log.info("intent: tuned sentence model ready after %.0f s", time.monotonic() - t0)
            self.done(reader)
        except Exception as exc:
            log.warning("intent: fine-tuning failed (%s: %s)", type(exc).__name__, exc)
        finally:
            with self._lock:
                self._running.discard(self.files.folder)


def _arguments() -> Any:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m bot.sentence_tuning",
        description="fine-tune the intent sentence model on the situation bank (once per bank)")
    ap.add_argument("--force", action="store_true", help="build even if this bank's model exists")
    ap.add_argument("--threads", type=int, default=Recipe.threads, help="torch threads")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--seed", type=int, default=Recipe.seed, help="a candidate's seed (with --out)")
    ap.add_argument("--no-feeling-weight", type=float, default=Recipe.no_feeling_weight,
                    help="the no-feeling class's loss weight (a candidate, with --out)")
    ap.add_argument("--fp32", action="store_true", help="keep float weights (a candidate, with --out)")
    ap.add_argument("--epochs", type=float, default=Recipe.epochs, help="passes over the lines (a candidate, with --out)")
    ap.add_argument("--lr", type=float, default=Recipe.lr, help="the encoder's learning rate (a candidate, with --out)")
    ap.add_argument("--out", type=Path, help="build a candidate into this folder, not the cache "
                    "(benchmarks/bench_candidates.py scores it)")
    ap.add_argument("--exit-with", type=int, metavar="PID",
                    help="stop when process PID has gone (a bot's background build)")
    return ap


def _exit_with(pid: int) -> None:
    """A background build is its bot's: when the bot has gone (it stopped, or it was a
    one-off command) the build stops too, instead of taking the CPU for 15 minutes unowned."""
    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(2.0)
        os._exit(1)  # abandoned; its partial NAME.PID.tmp is cleared by the next build (build_lock)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextmanager
def build_lock(files: TunedFiles, quiet: bool = False) -> Iterator[None]:
    """One build of a model per machine at a time: the cache is shared by every home, and two
    builds at once on two cores each take twice as long (four were seen at once). Blocks
    until the running build has finished; then clears what builds that were stopped left."""
    import fcntl

    files.folder.parent.mkdir(parents=True, exist_ok=True)
    with open(files.folder.with_name(files.folder.name + ".lock"), "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another build of this sentence model is running: waiting for it")
            if not quiet:
                print("  another build of this sentence model is running on this machine: "
                      "waiting for it", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        for left in files.folder.parent.glob(files.folder.name + ".*.tmp"):  # no build runs now
            shutil.rmtree(left, ignore_errors=True)
        yield


def _progress(quiet: bool) -> Callable[[int, int, float], None]:
    """A progress line at most every 10 s, and the last step's."""
    t0, last = time.monotonic(), [0.0]

    def report(step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if not quiet and (now - last[0] > 10 or step == steps):
            last[0] = now
            print(f"  fine-tuning the sentence model: step {step}/{steps}, loss {loss:.3f}, "
                  f"{now - t0:.0f} s", flush=True)

    return report


def main(argv: list[str] | None = None) -> int:
    ap = _arguments()
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    texts, owner = bank_texts()
    recipe = Recipe(seed=args.seed, no_feeling_weight=args.no_feeling_weight, int8=not args.fp32,
                    epochs=args.epochs, lr=args.lr)
    if args.out is None and recipe != Recipe():
        ap.error("--seed, --no-feeling-weight, --fp32, --epochs and --lr build a candidate: "
                 "give --out as well")
    none = load_no_feeling()
    files = TunedFiles(args.out) if args.out else tuned_files(texts, owner, recipe, no_feeling=none)
    if args.exit_with:
        _exit_with(args.exit_with)
    if files.complete() and not args.force:
        print(f"tuned sentence model already built: {files.folder}")
        return 0
    with build_lock(files, quiet=args.quiet):
        if files.complete() and not args.force:  # the build we waited for made it
            print(f"tuned sentence model built meanwhile: {files.folder}")
            return 0
        return _build(args, texts, owner, recipe, none, files)


def _build(args: Any, texts: list[str], owner: list[int], recipe: Recipe, none: list[str],
           files: TunedFiles) -> int:
    t0 = time.monotonic()
    if not args.quiet:
        print(f"==> fine-tuning the sentence model on {len(texts)} bank lines and {len(none)} "
              f"no-feeling lines "
              f"(10-15 min of CPU on two cores, once per bank)", flush=True)
    from dataclasses import replace

    fine_tune(texts, owner, files, replace(recipe, threads=args.threads), progress=_progress(args.quiet),
              no_feeling=none)
    print(f"tuned sentence model: {files.folder} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

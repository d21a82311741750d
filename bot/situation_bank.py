"""The situation bank: every line a request's sentence is compared with, where its caches live
and its embeddings on disk.

Its own module so that the parser (`bot.intent`) and the fine-tune (`bot.sentence_tuning`)
both read the one bank without importing each other. The lines themselves are hand-written
data: the prototype sentences and `load_situations` (`bot/data/situations.tsv`) stay in
`bot.intent_lexicon` beside the rest of the hand-written words.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.intent_lexicon import PROTOTYPES, load_situations
from scorer.emotions import INDEX, NAMES

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


def bank_texts() -> tuple[list[str], list[int]]:
    """Every sentence the request is compared with, and the emotion index owning each."""
    texts, owner = [], []
    for name in NAMES:
        for phrase in PROTOTYPES[name]:
            texts.append(phrase)
            owner.append(INDEX[name])
    for name, sentence in load_situations():
        texts.append(sentence)
        owner.append(INDEX[name])
    return texts, owner


# Words the bank quotes that are not English: placeholder Latin ("the email went out with
# lorem ipsum in it"). Counted as English they let pasted filler text read as a sentence.
QUOTED_FOREIGN = frozenset({"lorem", "ipsum", "dolor", "amet"})


@functools.cache
def bank_vocabulary() -> frozenset[str]:
    """Every word of the bank's lines, lower case: the English that chat requests are made of
    (`bot.intent` tells another language by how few of a request's words are here)."""
    words = frozenset(w for text in bank_texts()[0] for w in re.findall(r"[a-z]+", text.lower()))
    return words - QUOTED_FOREIGN


def bank_cache_dir() -> Path:
    """Where the bank's vectors, its regression and its tuned model are kept (one folder for
    every home on the machine: they depend on the bank, not on a workspace)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "moodgif"


def cached_bank_vectors(model: Any, model_path: Path, texts: list[str]) -> np.ndarray:
    """The bank's embeddings, computed once and kept on disk: the file name is a hash of
    the model files' identity and every bank line, so an edit to the bank re-embeds it.
    A cache that cannot be read or written only costs the few seconds of embedding."""
    import numpy as np

    h = hashlib.sha256()
    h.update(type(model).__name__.encode())  # ONNX and torch agree only to ~1e-6
    for f in sorted(Path(model_path).glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}".encode())
    h.update("\n".join(texts).encode("utf-8"))
    path = bank_cache_dir() / f"bank-{h.hexdigest()[:24]}.npy"
    try:
        vecs = np.load(path)
        if vecs.shape[0] == len(texts):
            return vecs.astype(np.float32)
    except Exception:  # missing or corrupt: embed again
        pass
    vecs = model.encode(texts, normalize_embeddings=True, batch_size=64,
                        show_progress_bar=False).astype(np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("intent: bank embeddings not cached on disk (%s)", exc)
    return vecs

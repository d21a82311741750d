"""A workspace's learned words, found by likeness: a teammate who says it differently.

`bot.learned_phrases` reads a request the way people here sent the *same* words. "prod went
down AGAIN" after "prod is down again" was sent as amusement is other words, so it used to get
the parser's reading. The book keeps, per workspace, the words its recent Sends were made for
(their keys) with a vector each from the tuned sentence encoder. A request with no Sends of its
own is read as its nearest key if the two are at least `LIKENESS` alike **and** the parser reads
them alike (`reads_alike`: the same first choice, read for each key in the background). The gate is what keeps a team's pick for its
own situation: "prod is back up" is 0.77 like "prod is down again", but the parser reads one as
relief and the other as sadness, so the first never takes the second's amusement.

Why (docs/bench/intent.md, `benchmarks/bench_phrase_likeness.py`): chosen on 136 groups of a
source, three paraphrases and two same-topic lines of other feelings
(`tests/data/phrase_paraphrases.csv`) and judged once on 102 new groups: where a team meant its
own feeling, 32 % of paraphrases now get it (none before); where it meant the usual one, 84 %
against 82 %; same-topic lines of another feeling lose 0.5-1.3 points. Plain MiniLM, the first
choice, is the likeness of topics and costs 9-17 ms more a request; the tuned encoder runs for
every sentence's reading anyway.

Kept off the request path: a workspace's shelf is loaded from the database and embedded by one
background thread when a request wants it and it is missing, older than `REFRESH_S`, or older
than a Send there. A request reads what the shelf holds now (nothing the first time), so a cold
book never slows a reply; its own vector costs one encoding (about 5 ms, then cached). The book
holds at most `MAX_VECTORS` keys over all workspaces (the least recently asked shelves go
first): 38 MB at most.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.intent import Intent

log = logging.getLogger(__name__)

LIKENESS = 0.55  # the tuned encoder's cosine from which a key may stand in for the request
REFRESH_S = 60.0  # a shelf older than this is reloaded (a forgotten key goes within a minute)
SHELF_KEYS = 2_000  # the newest keys of a workspace
MAX_VECTORS = 25_000  # over all shelves: 25,000 x 384 float32 is 38 MB

Workspace = tuple[str, str]  # (platform, workspace)
Embedded = tuple[np.ndarray, object]  # unit vectors (n, D), and the encoder that made them


def first_choice(intent: Intent) -> str | None:
    """The parser's first choice: its feeling, else its first "did you mean"."""
    return intent.choices[0] if intent.choices else None


def reads_alike(asked: Intent, learned: str | None) -> bool:
    """Whether the parser reads a request as it reads the learned words (`learned`: their
    `first_choice`). Then what people here sent for theirs is what the asker most likely
    means by theirs."""
    return learned is not None and first_choice(asked) == learned


@dataclass(frozen=True)
class Near:
    """The learned words most like a request."""

    key: str
    likeness: float
    first: str | None  # the parser's first choice for the key (`reads_alike`)


@dataclass
class _Shelf:
    keys: list[str]
    vectors: np.ndarray  # (len(keys), D) float32 unit vectors
    firsts: list[str | None]  # the parser's first choice for each key, read in the background
    space: object  # the encoder they came from: a rebuilt one makes them stale
    loaded_at: float


class PhraseBook:
    """`load_keys(platform, workspace)`: the workspace's learned keys, newest first;
    `embed(texts)`: their unit vectors and the encoder's identity, or None while there is no
    encoder; `read(text)`: the parser's reading of a key."""

    def __init__(self, load_keys: Callable[[str, str], list[str]],
                 embed: Callable[[list[str]], Embedded | None], read: Callable[[str], Intent], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load_keys = load_keys
        self._embed = embed
        self._read = read
        self._clock = clock
        self._shelves: OrderedDict[Workspace, _Shelf] = OrderedDict()
        self._lock = threading.Lock()
        self._wanted: set[Workspace] = set()
        self._queue: queue.Queue[Workspace] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the request path
    def nearest(self, platform: str, workspace: str, vector: Callable[[], Embedded | None],
                exclude: str = "") -> Near | None:
        """The shelf's key most like the request at `LIKENESS` or more (never `exclude`, the
        request's own key); asks for a (re)load when the shelf is missing or old. `vector()`
        gives the request's vector, asked only when the shelf holds keys to compare with."""
        at = (platform, workspace)
        with self._lock:
            shelf = self._shelves.get(at)
            if shelf is not None:
                self._shelves.move_to_end(at)
        if shelf is None or self._clock() - shelf.loaded_at > REFRESH_S:
            self.refresh_soon(platform, workspace)
        if shelf is None or not shelf.keys or (asked := vector()) is None:
            return None
        if asked[1] is not shelf.space:  # the encoder was rebuilt since the shelf was loaded
            self.refresh_soon(platform, workspace)
            return None
        # einsum: one thread for a matrix-vector product (see bot.intent.evidence)
        likeness = np.einsum("ij,j->i", shelf.vectors, asked[0][0])
        for i in np.argsort(-likeness)[:2]:
            if shelf.keys[i] != exclude and likeness[i] >= LIKENESS:
                return Near(shelf.keys[i], float(likeness[i]), shelf.firsts[i])
        return None

    def stale(self, platform: str, workspace: str) -> None:
        """A Send there taught words: the next request reloads the shelf (by then the Send's
        transaction has committed, which a reload started now might not see)."""
        with self._lock:
            shelf = self._shelves.get((platform, workspace))
            if shelf is not None:
                shelf.loaded_at = float("-inf")

    def refresh_soon(self, platform: str, workspace: str) -> None:
        """Reload this workspace's shelf in the background."""
        at = (platform, workspace)
        with self._lock:
            if at in self._wanted:
                return
            self._wanted.add(at)
            self._idle.clear()
            self._queue.put(at)  # under the lock: a worker about to stop sees it
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="phrase-book", daemon=True)
                self._thread.start()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Until every asked-for reload is done (tests and benchmarks)."""
        return self._idle.wait(timeout_s)

    def keys(self, platform: str, workspace: str) -> list[str]:
        """What the shelf holds now (the admin's view and tests)."""
        with self._lock:
            shelf = self._shelves.get((platform, workspace))
            return list(shelf.keys) if shelf else []

    # ------------------------------------------------------------------ the background
    def _work(self) -> None:
        while True:
            try:
                at = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._reload(*at)
            except Exception:  # a busy database: the next request asks again
                log.warning("phrase book: reloading %s/%s failed", *at, exc_info=True)
            finally:
                with self._lock:
                    self._wanted.discard(at)
                    if not self._wanted:
                        self._idle.set()

    def _reload(self, platform: str, workspace: str) -> None:
        keys = list(dict.fromkeys(k for k in self._load_keys(platform, workspace) if k))[:SHELF_KEYS]
        at = (platform, workspace)
        with self._lock:
            old = self._shelves.get(at)
        space: object = None
        vectors = np.zeros((0, 1), np.float32)
        firsts: list[str | None] = []
        if keys:
            probe = self._embed(keys[:1])  # which encoder is in use (one text: cached)
            if probe is None:  # none yet: nothing can be alike
                return
            space = probe[1]
            known = ({k: (v, f) for k, v, f in zip(old.keys, old.vectors, old.firsts, strict=True)}
                     if old is not None and old.space is space else {})
            new = [k for k in keys if k not in known]
            if new:
                fresh = self._embed(new)
                if fresh is None or fresh[1] is not space:
                    return  # rebuilt meanwhile: the next request asks again
                for k, v in zip(new, np.asarray(fresh[0], np.float32), strict=True):
                    known[k] = (v, first_choice(self._read(k)))
            vectors = np.stack([known[k][0] for k in keys])
            firsts = [known[k][1] for k in keys]
        with self._lock:
            self._shelves[at] = _Shelf(keys, vectors, firsts, space, self._clock())
            self._shelves.move_to_end(at)
            total = sum(len(s.keys) for s in self._shelves.values())
            while total > MAX_VECTORS and len(self._shelves) > 1:
                _, gone = self._shelves.popitem(last=False)
                total -= len(gone.keys)


__all__ = ["LIKENESS", "MAX_VECTORS", "REFRESH_S", "SHELF_KEYS", "Near", "PhraseBook", "first_choice",
           "reads_alike"]

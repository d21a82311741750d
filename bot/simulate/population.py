"""The virtual users: who asks for which emotion, what they type, how they judge a
preview against the truth, and which of them are adversarial.

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.simulate.config import POPULARITY, WORDS, UserModel
from scorer.emotions import N_EMOTIONS, NAMES

if TYPE_CHECKING:
    from bot.simulate.truth import Truth


# ---------------------------------------------------------------------------------------
# virtual users


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class VirtualUser:
    user_id: str
    kind: str  # normal | noisy | adversarial
    accept_q: float
    channel: str


class Population:
    """The team: who asks, what for, and how each person judges a GIF."""

    def __init__(self, model: UserModel, truth: Truth, *, adversarial: float, seed: int,
                 parser: Any) -> None:
        self.m = model
        self.truth = truth
        self.rng = np.random.default_rng(seed)
        rng = np.random.default_rng(seed + 1)  # the team itself is the same for every strategy
        kinds = np.array(["normal"] * model.n_users, dtype=object)
        order = rng.permutation(model.n_users)
        n_adv = round(adversarial * model.n_users)
        n_noisy = round(model.noisy_share * model.n_users)
        # The noisy people are the same with or without adversarial ones, so `both` and
        # `both@adv` differ only in normal people turned adversarial (a paired comparison).
        kinds[order[:n_noisy]] = "noisy"
        kinds[order[n_noisy:n_noisy + n_adv]] = "adversarial"
        lo, hi = model.accept_quantile
        self.users = [
            VirtualUser(f"u{i:04d}", str(kinds[i]), float(rng.uniform(lo, hi)),
                        f"c{int(rng.integers(model.n_channels)):02d}")
            for i in range(model.n_users)
        ]
        by_channel: dict[str, list[int]] = {}
        for i, u in enumerate(self.users):
            by_channel.setdefault(u.channel, []).append(i)
        self.by_channel = by_channel
        # how much each person asks: a few people ask a lot
        w = rng.pareto(1.5, model.n_users) + 1.0
        self.user_p = w / w.sum()
        ranks = np.array([POPULARITY.index(name) + 1 for name in NAMES], dtype=np.float64)
        p = ranks ** -model.zipf_s
        self.emotion_p = p / p.sum()
        self._cdfs: tuple[np.ndarray, ...] | None = None
        # per emotion: truth quantiles (what "good" means to a person asking for it)
        self.q_grid = np.linspace(0.0, 1.0, 201)
        self.quant = np.quantile(truth.values, self.q_grid, axis=0)  # (201, 17)
        self.words = {e: [w for w in WORDS[NAMES[e]] if _maps_to(parser, w, NAMES[e])] or [NAMES[e]]
                      for e in range(N_EMOTIONS)}
        self.posted: dict[str, list[tuple[float, int]]] = {}  # channel -> (time, truth row)

    def columns(self, matrix: Any) -> np.ndarray:
        """Each truth row's column in `matrix` (-1: not in it); cached per snapshot."""
        if getattr(self, "_cols_for", None) is not matrix:
            self._cols = np.asarray([matrix.index.get(s, -1) for s in self.truth.shas], np.int64)
            self._cols_for = matrix
        return self._cols

    def allowed(self, matrix: Any, ceiling: str) -> np.ndarray:
        """Per truth row: in the snapshot and allowed by the rating ceiling; cached per
        snapshot (read only: copy before changing it)."""
        key = (id(matrix), ceiling)
        if getattr(self, "_allowed_key", None) != key or self._allowed_for is not matrix:
            pen, _ = matrix.penalty(None, ceiling)
            cols = self.columns(matrix)
            self._allowed = np.isfinite(pen[np.maximum(cols, 0)]) & (cols >= 0)
            self._allowed_key, self._allowed_for = key, matrix
        return self._allowed

    def record_post(self, channel: str, sha: str, at: float) -> None:
        """A GIF reached `channel` at simulated time `at` (what the core keeps as an
        impression: the ranker does not offer it there again within the repeat window)."""
        k = self.truth.index.get(sha)
        if k is not None:
            self.posted.setdefault(channel, []).append((at, k))

    def posted_since(self, channel: str, since: float) -> list[int]:
        """Truth rows of the GIFs posted in `channel` at or after `since`."""
        posts = self.posted.get(channel)
        if not posts:
            return []
        while posts and posts[0][0] < since:  # posts arrive in time order: drop the old
            posts.pop(0)
        return [k for _at, k in posts]

    def level(self, e: int, q: float) -> float:
        return float(np.interp(q, self.q_grid, self.quant[:, e]))

    def t(self, sha: str, e: int) -> float:
        k = self.truth.index.get(sha)
        return float(self.truth.values[k, e]) if k is not None else 0.0

    def draw_request(self) -> tuple[VirtualUser, int, str]:
        # rng.choice(n, p=p)'s own draw (one uniform, searchsorted on p's cumulative sum),
        # without re-checking and re-summing p on every call
        if self._cdfs is None:
            self._cdfs = tuple(_cdf(p) for p in (self.user_p, self.emotion_p))
        u = self.users[int(self._cdfs[0].searchsorted(self.rng.random(), side="right"))]
        e = int(self._cdfs[1].searchsorted(self.rng.random(), side="right"))
        words = self.words[e]
        return u, e, words[int(self.rng.integers(len(words)))]

    def voters(self, u: VirtualUser) -> list[VirtualUser]:
        mates = [self.users[i] for i in self.by_channel[u.channel] if self.users[i] is not u]
        out = []
        for _ in range(2):
            if mates and self.rng.random() < self.m.vote_prob:
                out.append(mates[int(self.rng.integers(len(mates)))])
        return list({v.user_id: v for v in out}.values())

    def wants(self, u: VirtualUser, sha: str, e: int) -> bool:
        """Send (True) or shuffle on: a BT choice of the GIF against the person's bar."""
        if u.kind == "noisy":
            return bool(self.rng.random() < 0.5)
        if u.kind == "adversarial":
            return bool(self.rng.random() < 0.4)  # sends whatever, at random
        p = _expit(self.m.choice_k * (self.t(sha, e) - self.level(e, u.accept_q)))
        return bool(self.rng.random() < p)

    def settle(self, u: VirtualUser, best: float, e: int) -> bool:
        """Out of shuffles: send the best one seen (True) or cancel."""
        if u.kind != "normal":
            return bool(self.rng.random() < 0.5)
        margin = 0.1
        p = _expit(self.m.choice_k * (best - self.level(e, u.accept_q) + margin))
        return bool(self.rng.random() < p)

    def thumb(self, v: VirtualUser, sha: str, e: int) -> bool:
        if v.kind == "adversarial":
            return False
        if v.kind == "noisy":
            return bool(self.rng.random() < 0.5)
        p = _expit(self.m.choice_k * (self.t(sha, e) - self.level(e, self.m.vote_quantile)))
        return bool(self.rng.random() < p)

    def poll_answer(self, u: VirtualUser, left: str, right: str, e: int) -> str | None:
        if self.rng.random() >= self.m.answer_poll_prob:
            return None
        if u.kind == "noisy":
            return ("left", "right", "neither")[int(self.rng.integers(3))]
        tl, tr = self.t(left, e), self.t(right, e)
        if abs(tl - tr) < self.m.poll_tie:
            return "neither"
        left_wins = self.rng.random() < _expit(self.m.poll_k * (tl - tr))
        if u.kind == "adversarial":
            left_wins = not left_wins  # answers against what they see
        return "left" if left_wins else "right"


def _maps_to(parser: Any, word: str, emotion: str) -> bool:
    try:
        r = parser.parse(word)
    except Exception:  # a parser hiccup must not stop the simulation: fall back to the name
        return False
    return r.kind == "match" and r.emotion == emotion


def _cdf(p: np.ndarray) -> np.ndarray:
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf


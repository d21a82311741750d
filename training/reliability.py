"""How much each person's judgements count in the Bradley-Terry fit: caps and reliability.

Every judgement a person makes (a preview decision against the send bar, a 👍/👎 against
the reference item, a poll answer, a "sent beats skipped" pair) enters the fit as one
comparison. Two things let a few people pull the top of a ranking down
(docs/learning-loop.md, "Adversarial users"):

1. **Repetition.** A person who asks for the same feeling fifty times judges the same GIFs
   again and again; their taste, or their spite, would count fifty times. Each person's
   judgements on one GIF against one reference item (or on one pair of GIFs) count at most
   `REPEAT_CAP` judgements together, whichever way they went.
2. **Judgements against everyone else's.** A person who skips the GIF everyone else sends
   and sends the ones everyone skips carries no information about what the team likes (or
   carries its opposite). Each person gets a reliability: a one-coin model in which their
   judgement follows the others' consensus with weight `r` and is a coin flip otherwise,
   P(winner) = 1/2 + r (c - 1/2), where `c` is the consensus (leave-that-person-out) that
   the winner beats the loser. `r` is its least-squares estimate over the person's
   judgements, shrunk toward 1 by `PRIOR_JUDGEMENTS` pseudo-judgements, so a newcomer and a
   person who only judged GIFs nobody else judged count fully. People with `r` of
   `FULL_TRUST` or more count fully; below it their weight falls linearly to 0 at `r` = 0
   (random and contrarian voters). Two rounds: the consensus of the second round is built
   from the first round's weights, so the contrarians do not shape it.

Nothing here knows what an adversary does: the weights come only from how a person's
judgements agree with the other people's on the same GIFs. Rows without a person (imports)
are left as they are and count in every consensus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REPEAT_CAP = 2.0  # one person's judgements on one GIF vs one reference (or one pair), together
PRIOR_JUDGEMENTS = 3.0  # pseudo-judgements in agreement every person starts with
# What one pseudo-judgement weighs: a judgement on a GIF the others judge 70 : 30.
_PRIOR_UNIT = 2.0 * 0.2 ** 2
FULL_TRUST = 0.5  # reliability from which a person counts fully
ROUNDS = 2


@dataclass
class ReliabilityReport:
    """What the weighing did: per person their reliability and trust (the weight factor)."""

    people: int = 0
    capped_rows: int = 0
    muted: int = 0  # people whose trust is under 0.5
    reliability: dict[str, float] = field(default_factory=dict)
    trust: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"people": self.people, "capped_rows": self.capped_rows, "muted": self.muted}


def _codes(*cols: np.ndarray) -> tuple[np.ndarray, int]:
    """One group code per row for the combination of the non-negative integer columns
    (one mixed-radix int64 key, so a ledger of millions of rows groups in a fraction of a
    second; np.unique over rows when the key would overflow)."""
    arrays = [np.asarray(c, np.int64) for c in cols]
    key = np.zeros(len(arrays[0]), np.int64)
    span = 1
    for a in arrays:
        radix = int(a.max()) + 2 if len(a) else 1  # +2: room for -1 ("nobody")
        if span * radix >= 2 ** 62:
            uniq, inv = np.unique(np.stack(arrays, axis=1), axis=0, return_inverse=True)
            return inv.reshape(-1), len(uniq)
        key = key * radix + (a + 1)
        span *= radix
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.reshape(-1), len(uniq)


def cap_repeats(weight: np.ndarray, person: np.ndarray, emotion: np.ndarray,
                winner: np.ndarray, loser: np.ndarray, cap: float = REPEAT_CAP) -> int:
    """Scale each person's rows on one (emotion, unordered pair) to at most `cap` in all.

    `person` is a code per row, -1 for rows without a person (left alone). Works in place;
    returns how many rows were scaled down.
    """
    rows = np.flatnonzero(person >= 0)
    if not len(rows):
        return 0
    lo = np.minimum(winner[rows], loser[rows])
    hi = np.maximum(winner[rows], loser[rows])
    group, n = _codes(person[rows], emotion[rows], lo, hi)
    total = np.bincount(group, weights=weight[rows], minlength=n)
    scale = np.minimum(1.0, cap / np.maximum(total, 1e-12))[group]
    weight[rows] *= scale
    return int((scale < 1.0).sum())


def _consensus(weight: np.ndarray, person: np.ndarray, emotion: np.ndarray,
               winner: np.ndarray, loser: np.ndarray, is_ref: np.ndarray) -> np.ndarray:
    """Per row with a person: the others' consensus (leave this row's person out) that its
    winner wins (0.5 elsewhere: only people's own rows are scored).

    Against a reference item: the others' weighted share of wins of that GIF against that
    reference (Laplace-smoothed). Between two GIFs: a Bradley-Terry guess from each GIF's
    share of wins against anything.
    """
    m = len(weight)
    c = np.full(m, 0.5)
    ref_w, ref_l = is_ref[winner], is_ref[loser]
    ref_code = np.cumsum(is_ref) - 1  # item -> 0.. among the reference items
    one_ref = ref_w ^ ref_l
    if one_ref.any():
        r = np.flatnonzero(one_ref)
        gif = np.where(ref_l[r], winner[r], loser[r])
        ref = ref_code[np.where(ref_l[r], loser[r], winner[r])]
        won = ref_l[r].astype(np.float64)
        share = _others_share(weight[r], person[r], won, emotion[r], gif, ref)
        c[r] = np.where(ref_l[r], share, 1.0 - share)
    # Every person's row is scored, whatever its weight: in the second round a person the
    # first muted has weight 0 here, and skipping their rows gave them the 0.5 of nobody's
    # consensus, so the muted contrarian came back with full trust.
    pairs = np.flatnonzero(~ref_w & ~ref_l & (person >= 0))
    if len(pairs):
        # every row as two sides: the winner's win and the loser's loss
        side_item = np.concatenate([winner, loser])
        side_won = np.concatenate([np.ones(m), np.zeros(m)])
        share = _others_share(np.concatenate([weight, weight]), np.concatenate([person, person]),
                              side_won, np.concatenate([emotion, emotion]), side_item,
                              np.zeros(2 * m, np.int64))
        logit = np.log(share) - np.log1p(-share)
        d = logit[pairs] - logit[m + pairs]
        c[pairs] = 1.0 / (1.0 + np.exp(-d))
    return c


def _dense_key(*cols: np.ndarray) -> tuple[np.ndarray, int]:
    """A mixed-radix key of non-negative integer columns and its span (no sorting)."""
    key = np.zeros(len(cols[0]), np.int64)
    span = 1
    for col in cols:
        radix = int(col.max()) + 1 if len(col) else 1
        key = key * radix + col
        span *= radix
    return key, span


def _others_share(w: np.ndarray, person: np.ndarray, won: np.ndarray, emotion: np.ndarray,
                  item: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per row: (wins + 1) / (judgements + 2) of `item` vs `ref` by everyone but the row's
    person, weighted (only rows with a person get their own share taken out)."""
    key, span = _dense_key(np.asarray(emotion, np.int64), np.asarray(item, np.int64),
                           np.asarray(ref, np.int64))
    if span > 1 << 26:  # too many cells for dense counts: number the groups that occur
        key, span = _codes(key)
    wins = np.bincount(key, weights=w * won, minlength=span)[key]
    total = np.bincount(key, weights=w, minlength=span)[key]
    own = np.flatnonzero(person >= 0)
    if len(own):
        mine_key, k = _codes(key[own], person[own])
        wins[own] -= np.bincount(mine_key, weights=(w * won)[own], minlength=k)[mine_key]
        total[own] -= np.bincount(mine_key, weights=w[own], minlength=k)[mine_key]
    return (np.maximum(wins, 0.0) + 1.0) / (np.maximum(total, 0.0) + 2.0)


def reliability(weight: np.ndarray, person: np.ndarray, consensus: np.ndarray, n_people: int
                ) -> np.ndarray:
    """Per person: the one-coin reliability r (1 = follows the consensus, 0 = a coin,
    negative = against it), shrunk toward 1 by PRIOR_JUDGEMENTS."""
    own = person >= 0
    d = consensus[own] - 0.5
    w = weight[own]
    num = np.bincount(person[own], weights=w * d, minlength=n_people)
    den = np.bincount(person[own], weights=2.0 * w * d * d, minlength=n_people)
    prior = PRIOR_JUDGEMENTS * _PRIOR_UNIT
    return (num + prior) / (den + prior)


def weigh_people(weight: np.ndarray, who: np.ndarray, emotion: np.ndarray, winner: np.ndarray,
                 loser: np.ndarray, is_ref: np.ndarray) -> tuple[np.ndarray, ReliabilityReport]:
    """The ledger's weights after the repeat cap and each person's trust (a new array).

    `who`: the person per row ("" for none); `is_ref`: per item, whether it is a reference
    item (the thumbs reference or the send bar) rather than a GIF.
    """
    report = ReliabilityReport()
    who = np.asarray(who, dtype=object)
    has = who != ""
    out = np.asarray(weight, dtype=np.float64).copy()
    if not has.any():
        return out, report
    names, codes = np.unique(who[has].astype(str), return_inverse=True)
    person = np.full(len(who), -1, np.int64)
    person[has] = codes
    report.people = len(names)
    report.capped_rows = cap_repeats(out, person, emotion, winner, loser)
    trust = np.ones(len(names))
    for _ in range(ROUNDS):
        scaled = out * np.where(person >= 0, trust[np.maximum(person, 0)], 1.0)
        c = _consensus(scaled, person, emotion, winner, loser, is_ref)
        r = reliability(out, person, c, len(names))
        trust = np.clip(r / FULL_TRUST, 0.0, 1.0)
    out *= np.where(person >= 0, trust[np.maximum(person, 0)], 1.0)
    report.muted = int((trust < 0.5).sum())
    report.reliability = {str(n): float(x) for n, x in zip(names, r, strict=True)}
    report.trust = {str(n): float(x) for n, x in zip(names, trust, strict=True)}
    return out, report

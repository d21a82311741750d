"""Bounded exploration and the active-sorting poll picker (bot.ranking), on designed matrices."""

from __future__ import annotations

import numpy as np

from bot.ranking import cooling, poll_pair, rank
from bot.score_matrix import PRIOR_SD, FitPosterior, build_matrix
from scorer.emotions import INDEX, N_EMOTIONS

HAPPY = INDEX["happiness"]


def _shas(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


def _matrix(mean: np.ndarray, sd: np.ndarray | None = None, evidence: float = 0.0):
    """A matrix whose happiness column has the given means (and standard deviations)."""
    n = len(mean)
    prior = np.full((n, N_EMOTIONS), 0.5, np.float32)
    prior[:, HAPPY] = mean
    bt_sd = np.full((n, N_EMOTIONS), PRIOR_SD, np.float32)
    voted = np.zeros((n, N_EMOTIONS), bool)
    if sd is not None:
        bt_sd[:, HAPPY] = sd
        voted[:, HAPPY] = np.asarray(sd) < PRIOR_SD
    ev = np.zeros(N_EMOTIONS)
    ev[HAPPY] = evidence
    fit = FitPosterior(prior.copy(), bt_sd, voted, ev, has_prior=True)
    return build_matrix(_shas(n), ["g"] * n, {"p": np.ones(n, bool)}, prior=prior, fit=fit)


def test_the_first_gif_is_the_best_known_one_and_shuffles_explore_near_the_top() -> None:
    # 0: best mean, known; 1: a bit lower but unknown (its upper bound beats 0); 2..: the tail
    mean = np.array([0.80, 0.75] + [0.20] * 48, np.float32)
    sd = np.array([0.01, PRIOR_SD] + [PRIOR_SD] * 48, np.float32)
    m = _matrix(mean, sd)
    rng = np.random.default_rng(0)
    # Thompson over everything shows the unknown GIF first about 40 % of the time ...
    thompson = [rank(m, HAPPY, 1, rng=rng, exploration="thompson").shas[0] for _ in range(300)]
    assert thompson.count(_shas(50)[1]) > 60
    # ... bounded never does: a new request's first GIF is the best posterior mean
    firsts = {rank(m, HAPPY, 1, rng=rng, exploration="bounded").shas[0] for _ in range(100)}
    assert firsts == {_shas(50)[0]}
    # a shuffle explores, but only among GIFs whose upper bound beats the best remaining one:
    # with 0 shown, 1 is the best left and the tail (0.2 + 1.5 * 0.2 < 0.75) is never drawn
    shuffles = {rank(m, HAPPY, 1, rng=rng, exploration="bounded", exclude=[_shas(50)[0]]).shas[0]
                for _ in range(100)}
    assert shuffles == {_shas(50)[1]}
    # three per preview: the best first, then exploration among the near-top
    three = rank(m, HAPPY, 3, rng=rng, exploration="bounded")
    assert three.shas[0] == _shas(50)[0] and len(set(three.shas)) == 3


def test_exploration_cools_as_the_emotion_gets_evidence() -> None:
    mean = np.array([0.80] + [0.60] * 30, np.float32)  # the rest: within 1.5 sd of the best
    fresh, taught = _matrix(mean), _matrix(mean, evidence=5000.0)
    assert cooling(fresh, HAPPY) == 1.0 and cooling(taught, HAPPY) < 0.2
    rng = np.random.default_rng(1)

    def shuffled_away(m) -> float:  # second slot: how often not the next-best mean
        got = [rank(m, HAPPY, 2, rng=rng, exploration="bounded").shas[1] for _ in range(200)]
        return float(np.mean([s != _shas(31)[1] for s in got]))

    # 30 GIFs tie at 0.6: exploring among them is all there is; with evidence the
    # candidate set shrinks to those whose cooled upper bound still reaches the best left
    assert shuffled_away(fresh) > 0.8
    lone = np.array([0.80, 0.70] + [0.40] * 29, np.float32)
    assert {rank(_matrix(lone, evidence=5000.0), HAPPY, 2, rng=rng,
                 exploration="bounded").shas[1] for _ in range(50)} == {_shas(31)[1]}


def test_a_tie_everywhere_is_truly_unsure_so_even_the_first_slot_explores() -> None:
    m = _matrix(np.full(20, 0.5, np.float32))
    firsts = {rank(m, HAPPY, 1, rng=np.random.default_rng(s), exploration="bounded").shas[0]
              for s in range(40)}
    assert len(firsts) > 5


def test_bounded_keeps_filters_and_channel_repeats() -> None:
    mean = np.linspace(0.9, 0.1, 10).astype(np.float32)
    m = _matrix(mean)
    everything = _shas(10)
    rng = np.random.default_rng(2)
    soft = rank(m, HAPPY, 1, rng=rng, exploration="bounded", soft_exclude=[everything[0]])
    assert soft.shas == [everything[1]]
    relaxed = rank(m, HAPPY, 2, rng=rng, exploration="bounded", soft_exclude=everything)
    assert relaxed.relaxed_repeats and relaxed.shas[0] == everything[0]
    assert rank(m, HAPPY, 2, rng=rng, exploration="bounded", exclude=everything,
                soft_exclude=everything).shas == []


def test_polls_ask_about_uncertain_pairs_at_the_top() -> None:
    # 0..5: the top (the 5 a person sees and one more), 2 and 3 unknown and close;
    # 6..: a clearly worse tail
    mean = np.array([0.90, 0.85, 0.80, 0.80, 0.75, 0.74] + [0.30] * 44, np.float32)
    sd = np.array([0.02, 0.02, PRIOR_SD, PRIOR_SD, 0.02, 0.02] + [0.02] * 44, np.float32)
    m = _matrix(mean, sd)
    rng = np.random.default_rng(3)
    pairs = [poll_pair(m, HAPPY, rng=rng) for _ in range(300)]
    top = set(_shas(50)[:6])
    assert all(p is not None and p[0] != p[1] for p in pairs)
    assert all(set(p) <= top for p in pairs)  # never the tail
    # the pair nobody is sure about is the most asked; the settled pair (0 vs 1) rarely
    key = [frozenset(p) for p in pairs]
    unsure = key.count(frozenset(_shas(50)[2:4]))
    settled = key.count(frozenset(_shas(50)[:2]))
    assert unsure > 3 * max(settled, 1)
    # a recently asked pair is skipped while others are left
    avoid = [(_shas(50)[2], _shas(50)[3])]
    again = [frozenset(poll_pair(m, HAPPY, rng=rng, avoid=avoid)) for _ in range(100)]
    assert frozenset(_shas(50)[2:4]) not in again
    # both sides are used: no position bias
    lefts = {p[0] for p in pairs}
    assert len(lefts) >= 3
    assert poll_pair(_matrix(np.array([0.5], np.float32)), HAPPY, rng=rng) is None

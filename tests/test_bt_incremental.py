"""The retrain's incremental Bradley-Terry refit: unchanged emotions reused, changed ones
refitted warm, and the answers those of a cold refit of everything."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update
from test_retrain import make_pool, simulate_votes

from scorer.emotions import NAMES
from scorer.store import BTFit, session_scope
from training import bradley_terry as bt
from training import bt_incremental
from training.comparisons import import_pairs, load_ledger, pooled_gifs
from training.retrain import refit_bt


def votes(rng, n_items: int, m: int, emotions: list[int]):
    e = rng.choice(emotions, m)
    w = rng.integers(0, n_items, m)
    lo = (w + rng.integers(1, n_items, m)) % n_items
    return e, w, lo, rng.random(m) < 0.1


def test_only_changed_emotions_are_refitted_and_agree_with_a_cold_fit() -> None:
    rng = np.random.default_rng(3)
    n = 300
    e, w, lo, t = votes(rng, n, 20000, list(range(17)))
    first, digests, refitted = bt_incremental.fit_all_incremental(
        n, e, w, lo, t, None, previous=None, ties="half", alpha=0.1)
    assert all(refitted)
    prev = bt_incremental.Previous(
        1, digests, np.stack([r.theta for r in first], 1), np.stack([r.se for r in first], 1))
    # Nothing new: every emotion is reused as it was.
    same, digests2, refitted = bt_incremental.fit_all_incremental(
        n, e, w, lo, t, None, previous=prev, ties="half", alpha=0.1)
    assert digests2 == digests and not any(refitted)
    assert all(np.array_equal(a.theta, b.theta) for a, b in zip(same, first, strict=True))
    # New votes on two emotions only.
    e2, w2, lo2, t2 = votes(rng, n, 120, [NAMES.index("fear"), NAMES.index("relief")])  # ~5%
    E, W, L, T = (np.concatenate(x) for x in ((e, e2), (w, w2), (lo, lo2), (t, t2)))
    inc, _, refitted = bt_incremental.fit_all_incremental(
        n, E, W, L, T, None, previous=prev, ties="half", alpha=0.1)
    assert [NAMES[i] for i, r in enumerate(refitted) if r] == ["fear", "relief"]
    cold = bt.fit_all(n, E, W, L, T, ties="half", alpha=0.1)
    for a, b in zip(inc, cold, strict=True):
        assert np.abs(a.theta - b.theta).max() < 1e-6
        assert np.abs(a.se - b.se).max() < 1e-6
        assert np.array_equal(a.n_compared, b.n_compared)
    # The refitted emotions started warm: fewer Newton iterations than cold.
    fear = NAMES.index("fear")
    assert inc[fear].iterations < cold[fear].iterations


def test_retrain_refit_reuses_the_active_fit(settings, engine) -> None:  # type: ignore[no-untyped-def]
    truth = make_pool(settings, engine)
    simulate_votes(engine, truth, 2000)

    def refit():  # type: ignore[no-untyped-def]
        gifs = sorted(pooled_gifs(engine))
        ledger, _ = load_ledger(engine, known_gifs=set(gifs), items=gifs)
        return refit_bt(settings, engine, ledger, gifs, prior_version=None, ledger_info={})

    first = refit()
    with session_scope(engine) as s:
        s.execute(update(BTFit).where(BTFit.id == first.fit_id).values(active=True))
    shas = sorted(truth)
    import_pairs(engine, [("fear", shas[i], shas[i + 1], "left") for i in range(10)],
                 source="poll")
    second = refit()
    with session_scope(engine) as s:
        stats = s.scalars(select(BTFit.stats).where(BTFit.id == second.fit_id)).one()
    assert [NAMES[i] for i, r in enumerate(stats["refitted"]) if r] == ["fear"]
    # Reused emotions carry the stored (float32) scores; all agree with a cold refit.
    with session_scope(engine) as s:
        s.execute(update(BTFit).values(active=False))
    cold = refit()
    with session_scope(engine) as s:
        cold_stats = s.scalars(select(BTFit.stats).where(BTFit.id == cold.fit_id)).one()
    assert all(cold_stats["refitted"])
    # Only fear was fitted again, warm from the active fit: fewer iterations than cold.
    fear = NAMES.index("fear")
    assert sum(stats["iterations"]) == stats["iterations"][fear]
    assert stats["iterations"][fear] < cold_stats["iterations"][fear]
    assert np.nanmax(np.abs(second.theta - cold.theta)) < 1e-4
    assert np.nanmax(np.abs(second.scaled - cold.scaled)) < 1e-4

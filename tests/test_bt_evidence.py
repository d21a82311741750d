"""The ranker reads a fit's scale and evidence as the refit stored them (issue 13 point 1):
the logistic spreads from `BTFit.params`, the comparisons per GIF and emotion from
`BTScore.counts`; fits stored without counts still get the ledger recount."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, update
from test_retrain import make_pool, simulate_votes

from bot import ranking
from scorer import versions
from scorer.emotions import N_EMOTIONS
from scorer.store import BTFit, BTScore, Comparison, pack_scores, session_scope
from training import bradley_terry as bt
from training.comparisons import load_ledger, pooled_gifs
from training.refit import refit_bt


def _active_refit(settings, engine):  # type: ignore[no-untyped-def]
    gifs = sorted(pooled_gifs(engine))
    ledger, _ = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    fit = refit_bt(settings, engine, ledger, gifs, prior_version=None, ledger_info={})
    with session_scope(engine) as s:
        versions.activate_fit(s, fit.fit_id)
    return fit


def test_refit_stores_counts_and_the_ranker_reads_them(settings, engine) -> None:  # type: ignore[no-untyped-def]
    truth = make_pool(settings, engine)
    simulate_votes(engine, truth, 600)
    fit = _active_refit(settings, engine)
    with session_scope(engine) as s:
        stored = dict(s.query(BTScore.gif_sha, BTScore.counts).filter_by(fit_id=fit.fit_id))
    counts = versions.fit_counts([stored[g] for g in fit.items])
    assert counts is not None
    # Unweighted counts of the fitted ledger: what the ranker used to recount.
    with engine.connect() as conn:
        index = {g: i for i, g in enumerate(fit.items)}
        recount = ranking.evidence_counts(conn, index, len(fit.items), None)
    assert np.array_equal(counts, recount)
    assert np.allclose(counts, fit.counts)  # all weights are 1 here

    before = ranking.load_matrix(engine)
    assert np.allclose(before.evidence, recount.sum(axis=0))
    # The ledger can no longer say what the fit saw: the ranker must not ask it.
    with session_scope(engine) as s:
        s.execute(delete(Comparison))
    after = ranking.load_matrix(engine)
    assert np.allclose(after.evidence, before.evidence)
    assert after.evidence.sum() > 0

    # A fit stored before the counts column: the ledger recount, as before.
    with session_scope(engine) as s:
        s.execute(update(BTScore).values(counts=None))
    assert ranking.load_matrix(engine).evidence.sum() == 0


def test_the_fits_stored_spread_gives_the_scaled_sd() -> None:
    rng = np.random.default_rng(0)
    n = 200
    theta = rng.normal(size=(n, N_EMOTIONS))
    se = rng.uniform(0.1, 0.5, size=(n, N_EMOTIONS))
    centre, spread = rng.normal(size=N_EMOTIONS), rng.uniform(0.5, 2.0, size=N_EMOTIONS)
    scaled = np.stack([bt.robust_scale(theta[:, e], params=(centre[e], spread[e]))
                       for e in range(N_EMOTIONS)], axis=1)
    rows = [(f"g{i}", pack_scores(theta[i]), pack_scores(se[i]), pack_scores(scaled[i]), None)
            for i in range(n)]
    index = {f"g{i}": i for i in range(n)}
    counts = np.ones((n, N_EMOTIONS))
    params = {"scale": "robust", "scale_params": {"centre": centre.tolist(),
                                                  "spread": spread.tolist()}}
    spreads = versions.fit_scale_spreads(params)
    assert spreads is not None and np.allclose(spreads, spread)
    got_scaled, got_sd, mask = ranking._bt_posterior(rows, index, n, counts, spreads)
    assert np.allclose(got_scaled, scaled, atol=1e-6)
    p = scaled.astype(np.float32).astype(np.float64)
    expected = se.astype(np.float32) * p * (1 - p) / spread
    assert mask.all()
    assert np.allclose(got_sd, expected, rtol=1e-5)
    # On a clean logistic the data-recognised map agrees (the fallback for older fits).
    _, old_sd, _ = ranking._bt_posterior(rows, index, n, counts, None)
    assert np.allclose(old_sd, got_sd, rtol=1e-3)
    # Anything but a stored logistic scale: no spreads.
    assert versions.fit_scale_spreads({"scale": "minmax"}) is None
    assert versions.fit_scale_spreads({"scale": "robust", "scale_params": {"spread": [1.0]}}) is None
    assert versions.fit_scale_spreads(None) is None


def test_fit_counts_needs_every_row() -> None:
    one = pack_scores(np.arange(N_EMOTIONS))
    assert versions.fit_counts([one, None]) is None
    assert versions.fit_counts([]) is None
    assert np.array_equal(versions.fit_counts([one, one])[1], np.arange(N_EMOTIONS))


def test_stored_fit_params_carry_the_spread(settings, engine) -> None:  # type: ignore[no-untyped-def]
    truth = make_pool(settings, engine)
    simulate_votes(engine, truth, 300)
    fit = _active_refit(settings, engine)
    with session_scope(engine) as s:
        params = s.get(BTFit, fit.fit_id).params
    assert np.allclose(versions.fit_scale_spreads(params), fit.scale_params["spread"])

"""The ranker reads a fit's scale and evidence as the refit stored them (issue 13 point 1):
the logistic spreads from `BTFit.params`, the comparisons per GIF and emotion from
`BTScore.counts`; fits stored without counts still get the ledger recount."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, update
from test_retrain import make_pool, simulate_votes

from bot import score_matrix
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
        recount = score_matrix.evidence_counts(conn, index, len(fit.items), None)
    assert np.array_equal(counts, recount)
    assert np.allclose(counts, fit.counts)  # all weights are 1 here

    before = score_matrix.load_matrix(engine)
    assert np.allclose(before.evidence, recount.sum(axis=0))
    # The ledger can no longer say what the fit saw: the ranker must not ask it.
    with session_scope(engine) as s:
        s.execute(delete(Comparison))
    after = score_matrix.load_matrix(engine)
    assert np.allclose(after.evidence, before.evidence)
    assert after.evidence.sum() > 0

    # A fit stored before the counts column: the ledger recount, as before.
    with session_scope(engine) as s:
        s.execute(update(BTScore).values(counts=None))
    assert score_matrix.load_matrix(engine).evidence.sum() == 0


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
    got_scaled, got_sd, mask = score_matrix._bt_posterior(rows, index, n, counts, spreads)
    assert np.allclose(got_scaled, scaled, atol=1e-6)
    p = scaled.astype(np.float32).astype(np.float64)
    expected = se.astype(np.float32) * p * (1 - p) / spread
    assert mask.all()
    assert np.allclose(got_sd, expected, rtol=1e-5)
    # On a clean logistic the data-recognised map agrees (the fallback for older fits).
    _, old_sd, _ = score_matrix._bt_posterior(rows, index, n, counts, None)
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


def _person(k: int) -> str:
    return f"{k:064x}"  # the shape of a user_hash (the ledger keeps nothing else)


def _votes_with_a_contrarian(engine, truth: dict[str, np.ndarray]) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Three honest people and one contrarian answer polls on emotion 0 over the same pairs;
    the contrarian alone also judges four GIFs nobody else did. Returns (contrarian, those)."""
    from training.comparisons import record_poll

    shas = sorted(truth)
    shared, lonely = shas[:30], shas[30:34]
    contrarian = _person(99)
    rng = np.random.default_rng(1)
    for _ in range(120):
        i, j = rng.choice(len(shared), 2, replace=False)
        left, right = shared[i], shared[j]
        better = "left" if truth[left][0] > truth[right][0] else "right"
        for k in range(3):
            record_poll(engine, emotion=0, left=left, right=right, answer=better, who=_person(k))
        record_poll(engine, emotion=0, left=left, right=right,
                    answer="right" if better == "left" else "left", who=contrarian)
    for a in range(4):
        for b in range(a + 1, 4):
            for _ in range(2):
                record_poll(engine, emotion=0, left=lonely[a], right=lonely[b], answer="left",
                            who=contrarian)
    return contrarian, lonely


def test_a_muted_persons_votes_do_not_narrow_a_posterior(settings, engine) -> None:  # type: ignore[no-untyped-def]
    """The evidence the ranker narrows a posterior with is the fit's weighted evidence: the
    refit stores each GIF's comparisons weighted as the fit weighed them (a person the
    reliability weighing mutes adds nothing), and GIFs only such a person judged keep their
    prior and its width. Counting rows instead, the contrarian's votes narrowed those GIFs
    without moving them (docs/learning-loop.md, "Adversarial users")."""
    from _bot_pool import add_model_version

    from training.judgements import weigh_ledger_people, with_judgements
    from training.refit import comparison_counts

    truth = make_pool(settings, engine)
    contrarian, lonely = _votes_with_a_contrarian(engine, truth)
    gifs = sorted(pooled_gifs(engine))
    add_model_version(engine, gifs, np.full((len(gifs), N_EMOTIONS), 0.5, np.float32))
    raw, _ = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    _, report = weigh_ledger_people(raw)
    assert report.trust[contrarian] == 0.0
    assert min(report.trust[_person(k)] for k in range(3)) > 0.9

    def fit_and_read(weigh: bool):  # type: ignore[no-untyped-def]
        ledger = with_judgements(raw, [], weigh_people=weigh)
        fit = refit_bt(settings, engine, ledger, gifs, prior_version=None, ledger_info={})
        with session_scope(engine) as s:
            versions.activate_fit(s, fit.fit_id)
            stored = dict(s.query(BTScore.gif_sha, BTScore.counts).filter_by(fit_id=fit.fit_id))
        counts = versions.fit_counts([stored[g] for g in gifs])
        expected = comparison_counts(ledger, len(ledger.ids), ledger.weight)[:len(gifs)]
        assert np.allclose(counts, expected, atol=1e-4)  # stored as weighed, read back
        return counts, score_matrix.load_matrix(engine)

    counts, matrix = fit_and_read(weigh=True)
    cols = [matrix.index[g] for g in lonely]
    assert np.all(counts[[gifs.index(g) for g in lonely], 0] == 0)
    assert np.allclose(matrix.sd[0, cols], score_matrix.PRIOR_SD)  # the prior, untouched
    assert np.allclose(matrix.mean[0, cols], 0.5)
    assert np.isclose(matrix.evidence[0], counts[:, 0].sum())
    assert counts[:30, 0].sum() > 0
    assert (matrix.sd[0, [matrix.index[g] for g in gifs[:30]]] < score_matrix.PRIOR_SD).any()

    # The same votes without the weighing: the contrarian's judgements are evidence.
    unweighed, plain = fit_and_read(weigh=False)
    assert np.all(unweighed[[gifs.index(g) for g in lonely], 0] > 0)
    assert not np.allclose(plain.sd[0, cols], score_matrix.PRIOR_SD)
    assert plain.evidence[0] > matrix.evidence[0]

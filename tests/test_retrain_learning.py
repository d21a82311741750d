"""What the retrain job learns: one scale for predictions and fits, rehearsal of unvoted GIFs,
judging a candidate on held-out comparisons, and no crash when an emotion has no votes."""

from __future__ import annotations

import numpy as np
from test_retrain import active_ids, make_pool, simulate_votes

from scorer.emotions import N_EMOTIONS, NAMES
from scorer.store import ModelVersion, session_scope
from training.comparisons import LedgerArrays, import_pairs, load_ledger, pooled_gifs
from training.evaluate import held_out_pairs
from training.retrain import (
    DISTILL_WEIGHT,
    BTFitOutput,
    column_means,
    distilled_targets,
    evidence_weights,
    prediction_matrix,
    refit_bt,
    run_retrain,
)


def test_column_means_skip_an_emotion_without_weight() -> None:
    targets = np.array([[0.2, 0.9], [0.6, 0.1]])
    weights = np.array([[1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(column_means(targets, weights), [0.5, 0.5])
    np.testing.assert_allclose(column_means(targets, None), [0.4, 0.5])


def test_votes_on_one_emotion_only_do_not_crash_the_run(settings, engine) -> None:  # type: ignore[no-untyped-def]
    # Regression: the mean-only baseline raised ZeroDivisionError (np.average over an
    # emotion whose weights are all zero) when an emotion had no comparisons.
    truth = make_pool(settings, engine)
    rng = np.random.default_rng(3)
    shas = sorted(truth)
    rows = []
    for _ in range(600):
        i, j = rng.choice(len(shas), 2, replace=False)
        rows.append((NAMES[0], shas[i], shas[j],
                     "left" if truth[shas[i]][0] > truth[shas[j]][0] else "right"))
    import_pairs(engine, rows, source="poll")
    out = run_retrain(settings, engine, epochs=5)
    assert out.status == "activated", out.message
    assert np.isfinite(out.metrics["dev_rmse_mean_only"])


def test_fit_with_a_model_prior_uses_that_models_scale(settings, engine) -> None:  # type: ignore[no-untyped-def]
    truth = make_pool(settings, engine)
    simulate_votes(engine, truth, 2000)
    first = run_retrain(settings, engine, epochs=10)
    assert first.status == "activated", first.message
    shas = sorted(truth)
    import_pairs(engine, [(NAMES[1], shas[0], shas[1], "left")], source="poll")
    settings.training.bt_prior_strength = 2.0
    gifs = sorted(pooled_gifs(engine))
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, first.model_version_id)
        assert mv is not None
        s.expunge(mv)
    ledger, info = load_ledger(engine, known_gifs=set(gifs), items=gifs)
    fit = refit_bt(settings, engine, ledger, gifs, prior_version=mv, ledger_info=info, store=False)
    np.testing.assert_allclose(fit.scale_params["centre"], mv.config["scale_params"]["centre"])
    np.testing.assert_allclose(fit.scale_params["spread"], mv.config["scale_params"]["spread"])
    # The collapse this replaces: every emotion's scores squeezed to one value.
    assert float(np.std(fit.scaled, axis=0).min()) > 0.05


def test_distilled_targets_keep_unvoted_predictions() -> None:
    counts = np.zeros((3, N_EMOTIONS))
    counts[0, 0] = 2  # evidence weight 0.5
    scaled = np.full((3, N_EMOTIONS), 0.9)
    pred = np.full((3, N_EMOTIONS), 0.3)
    pred[2] = np.nan  # never scored: no rehearsal target
    fit = BTFitOutput(0, ["a", "b", "c"], scaled, scaled, scaled, counts, {}, np.zeros(N_EMOTIONS))
    targets, weights = distilled_targets(fit, pred)
    assert weights[1, 0] == np.float32(DISTILL_WEIGHT) and targets[1, 0] == np.float32(0.3)
    assert weights[0, 0] == np.float32(0.5 + DISTILL_WEIGHT)
    np.testing.assert_allclose(targets[0, 0], (0.5 * 0.9 + DISTILL_WEIGHT * 0.3) / (0.5 + DISTILL_WEIGHT),
                               rtol=1e-6)
    assert (weights[2] == 0).all()
    # Without an active version: the votes alone, as before.
    _t0, w0 = distilled_targets(fit, None)
    np.testing.assert_array_equal(w0, evidence_weights(counts))


def test_heldout_pairs_only_count_decisive_pairs_inside_dev() -> None:
    ids = ["a", "b", "c", "d"]
    ledger = LedgerArrays(ids, np.array([0, 0, 1, 0], np.int16), np.array([0, 1, 0, 2]),
                          np.array([1, 0, 1, 0]), np.array([False, False, True, False]),
                          np.ones(4), 4)
    pairs = held_out_pairs(ledger, ["b", "a"])  # c and d are not in dev; row 2 is a tie
    assert len(pairs) == 2
    pred = np.zeros((2, N_EMOTIONS))
    pred[1, 0] = 1.0  # a (row 1) above b (row 0): pair 1 right, pair 2 wrong
    acc, used = pairs.accuracy(pred, ["b", "a"])
    assert used == 2 and acc == 0.5


def test_second_run_rehearses_the_pool_and_is_judged_on_heldout_pairs(settings, engine) -> None:  # type: ignore[no-untyped-def]
    truth = make_pool(settings, engine)
    simulate_votes(engine, truth, 3000)
    first = run_retrain(settings, engine, epochs=10)
    assert first.status == "activated", first.message
    # New votes on one emotion only: the others are kept by rehearsal.
    shas = sorted(truth)
    import_pairs(engine, [(NAMES[2], shas[i], shas[i + 1], "left") for i in range(0, 20, 2)],
                 source="poll")
    second = run_retrain(settings, engine, epochs=10)
    assert second.status in ("activated", "rejected"), second.message
    m = second.metrics
    assert m["dataset"]["distill_weight"] == DISTILL_WEIGHT
    assert m["judged_by"] == "held-out comparisons" and m["heldout_pairs"] >= 30
    assert (m["heldout_accuracy_new"] >= m["heldout_accuracy_active"]) == (second.status == "activated")
    expected = second.model_version_id if second.status == "activated" else first.model_version_id
    assert active_ids(engine) == [expected]
    # The candidate's predictions exist for every pooled GIF either way.
    pred = prediction_matrix(engine, second.model_version_id, shas)
    assert np.isfinite(pred).all()

"""The paper's Table 1, its measures, plots and report on tiny synthetic data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _train_data import synthetic

from training.dataset import assemble
from training.evaluate import (
    TABLE_MODELS,
    HeldOutPairs,
    explained_variance,
    pairwise_accuracy,
    rmse,
    run_table,
    spearman_per_emotion,
    write_report,
)
from training.fit import HeadConfig


def test_measures_on_known_values() -> None:
    y = np.tile(np.linspace(0, 1, 5)[:, None], (1, 17))
    assert rmse(y, y) == 0.0
    assert rmse(y + 0.1, y) == pytest.approx(0.1)
    w = np.zeros_like(y)
    w[0] = 1.0
    assert rmse(y + np.arange(5)[:, None], y, w) == 0.0  # only row 0 counts, and it is exact
    assert explained_variance(y, y) == pytest.approx(1.0)
    assert explained_variance(np.full_like(y, 0.5), y) == pytest.approx(0.0)
    assert np.allclose(spearman_per_emotion(y ** 2, y), 1.0)
    assert np.all(np.isnan(spearman_per_emotion(np.full_like(y, 0.3), y)))
    pred = np.asarray([[0.9] * 17, [0.1] * 17])
    pairs = HeldOutPairs(np.asarray([0, 1, 2]), ["a", "a", "b"], ["b", "b", "a"])
    assert pairwise_accuracy(pred, ["a", "b"], pairs) == pytest.approx(2 / 3)
    assert math.isnan(pairwise_accuracy(pred, ["a", "b"], HeldOutPairs(np.zeros(0, int), [], [])))


@pytest.mark.slow
def test_table_one_report_and_plots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    feats, targets, frames = synthetic(80, dim=6, seed=2)
    splits = assemble(targets, feats.get, seed=0, n_frames=frames)
    test_shas = splits.test.shas
    # Every ordered pair of test GIFs on every emotion, by the truth: a constant prediction
    # ties them all (0.5 exactly), a model that learned the targets orders more right.
    y = np.stack([targets[s] for s in test_shas])
    order = [(e, a, b) for e in range(17) for a in range(len(test_shas)) for b in range(len(test_shas))
             if y[a, e] > y[b, e]]
    pairs = HeldOutPairs(np.asarray([e for e, _, _ in order]), [test_shas[a] for _, a, _ in order],
                         [test_shas[b] for _, _, b in order])
    configs = {k: HeadConfig(kind=k, hidden=16, lr=3e-3, batch_size=32, epochs=4, patience=None)
               for k in ("fc-maxpool-2", "fc-maxpool-4", "rnn-2", "rnn-4", "rnn-8")}
    table = run_table(splits, pairs=pairs, configs=configs, device="cpu")
    assert [e.label for e in table.evals] == [v[0] for v in TABLE_MODELS.values()]
    mean_only = table.get("mean-only")
    assert np.allclose(mean_only.pred_std, 0.0, atol=1e-6)  # the mean hugs the mean
    assert mean_only.spread_ratio == pytest.approx(0.0, abs=1e-5)
    for ev in table.evals:
        assert set(ev.rmse) == {"train", "dev", "test"}
        assert all(0 <= v < 1 for v in ev.rmse.values())
        assert 0 <= ev.pair_accuracy <= 1  # the heads train 4 epochs here: no level to hold
    assert mean_only.pair_accuracy == 0.5  # ties every pair
    assert table.get("lin-reg").pair_accuracy > 0.55  # closed form on near-linear targets (0.58)
    assert len(table.get("rnn-8").train_loss) == 4
    report = write_report(table, tmp_path, all_targets=np.stack(list(targets.values())))
    text = report.read_text()
    assert "| FC-MaxPool-2 |" in text and "| RNN-8 |" in text and "spread ratio" in text
    for png in ("scores.png", "losses.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    saved = json.loads((tmp_path / "table.json").read_text())
    assert len(saved["models"]) == 7


def test_search_rows_reach_the_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    feats, targets, frames = synthetic(40, dim=4, seed=3)
    splits = assemble(targets, feats.get, seed=0, n_frames=frames)
    table = run_table(splits, models=("mean-only", "fc-maxpool-2"), search_trials=2, epochs=2)
    assert len(table.trials["fc-maxpool-2"]) == 2
    text = write_report(table, tmp_path).read_text()
    assert "## Search" in text and "dev@50" in text

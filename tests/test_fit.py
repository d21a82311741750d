"""Head training on tiny synthetic features (CPU, a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_data import synthetic

from training.dataset import assemble
from training.evaluate import predict, rmse
from training.fit import (
    BATCH_CHOICES,
    HIDDEN_CHOICES,
    HeadConfig,
    fit_baseline,
    random_config,
    search,
    train_head,
)


@pytest.fixture(scope="module")
def splits():  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    feats, targets, frames = synthetic(120, dim=8, seed=0)
    return assemble(targets, feats.get, seed=0, n_frames=frames)


def test_fc_maxpool_learns_and_beats_the_mean(splits) -> None:  # type: ignore[no-untyped-def]
    cfg = HeadConfig(kind="fc-maxpool-2", hidden=32, dropout=0.0, weight_decay=0.0, lr=3e-3,
                     batch_size=32, epochs=60, patience=15)
    res = train_head(splits.train, splits.dev, cfg, device="cpu")
    assert res.train_loss[-1] < res.train_loss[0]
    assert 1 <= res.best_epoch <= len(res.dev_loss)
    assert res.best_dev_loss == pytest.approx(min(res.dev_loss))
    head = rmse(predict(res.module, splits.test), splits.test.targets)
    mean = rmse(predict(fit_baseline("mean", splits.train), splits.test), splits.test.targets)
    assert head < 0.8 * mean


def test_early_stopping_keeps_best_weights(splits) -> None:  # type: ignore[no-untyped-def]
    # A huge learning rate makes dev loss blow up after the first epochs.
    cfg = HeadConfig(kind="fc-maxpool-2", hidden=32, lr=0.5, batch_size=16, epochs=40, patience=3)
    res = train_head(splits.train, splits.dev, cfg, device="cpu")
    from training.fit import _Tensors, eval_loss

    now = eval_loss(res.module, _Tensors(splits.dev, torch.device("cpu")))
    assert now == pytest.approx(res.best_dev_loss, rel=1e-5)
    if res.stopped_early:
        assert len(res.dev_loss) < 40


def test_a_diverged_head_is_the_worst_dev_loss_not_a_missing_one(splits) -> None:  # type: ignore[no-untyped-def]
    from training.fit import HeadFit, _BestWeights, _Tensors, eval_loss

    class Diverged(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 17), float("nan")) + self.w

    dev = _Tensors(splits.dev, torch.device("cpu"))
    assert eval_loss(Diverged(), dev) == float("inf")
    assert np.isnan(eval_loss(Diverged(), _Tensors(splits.dev.subset([]), torch.device("cpu"))))
    module = Diverged()
    result = HeadFit(config=HeadConfig(kind="fc-maxpool-2", patience=2), module=module)
    best = _BestWeights(state={}, since_best=0)
    result.best_dev_loss, result.best_epoch = 0.1, 1
    assert not best.observe(module, result, 2, float("inf"))
    assert best.observe(module, result, 3, float("inf"))  # patience runs out
    assert result.best_epoch == 1 and best.state == {}  # the diverged weights were never kept


def test_warm_start_continues_from_init(splits) -> None:  # type: ignore[no-untyped-def]
    cfg = HeadConfig(kind="rnn-2", hidden=16, lr=3e-3, batch_size=32, epochs=8, patience=None)
    first = train_head(splits.train, splits.dev, cfg, device="cpu")
    before = {k: v.clone() for k, v in first.module.state_dict().items()}
    cold_start_loss = first.dev_loss[0]
    warm = train_head(splits.train, splits.dev, HeadConfig(**{**cfg.to_dict(), "epochs": 2}),
                      device="cpu", init=first.module)
    # init is copied, not trained in place; and training resumes near where it was.
    for k, v in first.module.state_dict().items():
        assert torch.equal(v, before[k])
    assert warm.dev_loss[0] < cold_start_loss


def test_empty_dev_set_keeps_the_last_epochs_weights(splits) -> None:  # type: ignore[no-untyped-def]
    # Dev evaluation does not touch the training trajectory, so a run whose dev loss last
    # improved at its final epoch holds exactly the weights an empty-dev run must keep.
    cfg = HeadConfig(kind="fc-maxpool-2", hidden=16, dropout=0.0, lr=3e-3, batch_size=32,
                     epochs=3, patience=1)
    judged = train_head(splits.train, splits.dev, cfg, device="cpu")
    assert judged.best_epoch == 3  # precondition: the last epoch was the best one
    blind = train_head(splits.train, splits.dev.subset([]), cfg, device="cpu")
    assert all(np.isnan(blind.dev_loss)) and len(blind.dev_loss) == 3
    assert blind.best_epoch == 3 and blind.best_dev_loss == float("inf")
    assert not blind.stopped_early  # NaN dev losses never count against patience
    assert blind.train_loss == judged.train_loss
    for k, v in judged.module.state_dict().items():
        assert torch.equal(blind.module.state_dict()[k], v), k


def test_weights_zero_out_unmeasured_targets(splits) -> None:  # type: ignore[no-untyped-def]
    train = splits.train.subset(range(len(splits.train)))
    train.targets = train.targets.copy()
    train.weights = np.ones_like(train.targets)
    half = len(train) // 2
    clean_mean = float(train.targets[half:, 3].mean())
    train.targets[:half, 3] = 1.0  # garbage on emotion 3 for half the GIFs ...
    train.weights[:half, 3] = 0.0  # ... that carries no weight
    mean = fit_baseline("mean", train)
    assert mean.means[3].item() == pytest.approx(clean_mean, rel=1e-5)
    assert mean.means[0].item() == pytest.approx(float(train.targets[:, 0].mean()), rel=1e-5)
    cfg = HeadConfig(kind="fc-maxpool-2", hidden=32, dropout=0.0, lr=3e-3, batch_size=32,
                     epochs=30, patience=None)
    weighted = predict(train_head(train, splits.dev, cfg, device="cpu").module, splits.test)
    train.weights = None
    unweighted = predict(train_head(train, splits.dev, cfg, device="cpu").module, splits.test)
    # Without weights the garbage pulls emotion 3 towards 1; with them it does not.
    assert abs(weighted[:, 3].mean() - clean_mean) < abs(unweighted[:, 3].mean() - clean_mean)


def test_random_config_draws_the_papers_space() -> None:
    rng = np.random.default_rng(0)
    cfgs = [random_config(rng, "rnn-4") for _ in range(300)]
    assert {c.hidden for c in cfgs} == set(HIDDEN_CHOICES)
    assert {c.batch_size for c in cfgs} == set(BATCH_CHOICES)
    zero_dropout = sum(c.dropout == 0 for c in cfgs) / len(cfgs)
    zero_wd = sum(c.weight_decay == 0 for c in cfgs) / len(cfgs)
    assert 0.38 < zero_dropout < 0.62 and 0.38 < zero_wd < 0.62
    assert all(0 <= c.dropout <= 0.5 for c in cfgs)
    lrs = np.log10([c.lr for c in cfgs])
    assert lrs.min() >= -4 and lrs.max() <= -2 and abs(np.median(lrs) + 3) < 0.2


def test_search_logs_dev_loss_at_50_and_100(splits) -> None:  # type: ignore[no-untyped-def]
    small = splits.train.subset(range(40))
    res = search(small, splits.dev, "fc-maxpool-2", 2, seed=1, epochs=100, device="cpu")
    assert len(res.trials) == 2
    for row in res.trials:
        assert row["dev_loss@50"] is not None and row["dev_loss@100"] is not None
    assert res.best.best_dev_loss == min(r["best_dev_loss"] for r in res.trials)


def test_training_and_encoding_choose_the_device_by_one_rule(splits) -> None:  # type: ignore[no-untyped-def]
    # training.fit uses scorer.encoders.resolve_device: the same answer and the same errors.
    from scorer import encoders
    from training import fit

    assert fit.resolve_device is encoders.resolve_device
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert encoders.resolve_device("auto").type == want
    cfg = HeadConfig(kind="fc-maxpool-2", hidden=8, batch_size=32, epochs=1, patience=1)
    res = train_head(splits.train, splits.dev, cfg, device="auto")
    assert next(res.module.parameters()).device.type == want
    with pytest.raises(encoders.EncoderError, match="unknown device"):
        train_head(splits.train, splits.dev, cfg, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(encoders.EncoderError, match="CUDA is not available"):
            train_head(splits.train, splits.dev, cfg, device="cuda")

"""Train a decoder head on (cached features, fitted scores), as the paper did.

Loss: mean squared error over the 17 emotions (optionally weighted per target by how well
the score is measured). Optimiser: Adam (beta1 0.9, beta2 0.999) with weight decay; dropout
inside the head; early stopping on the dev loss, keeping the best weights. The whole loop is
`train_head` below.

`search` is the paper's random search: learning rate log-uniform, hidden units from
{32, 64, 128, 256, 512}, dropout uniform in [0, 0.5] and weight decay log-uniform (each zero
with probability 0.5), batch size from {64, 128, 256}; the dev loss is logged at 50 and 100
epochs.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

# One owner for the device choice: 'cuda' without CUDA is a clear error, as for encoding.
from scorer.encoders import resolve_device
from training.dataset import Dataset

log = logging.getLogger("moodgif.training.fit")

HIDDEN_CHOICES = (32, 64, 128, 256, 512)
BATCH_CHOICES = (64, 128, 256)
LOG_EPOCHS = (50, 100)


@dataclass
class HeadConfig:
    kind: str = "fc-maxpool-2"
    hidden: int = 128
    dropout: float = 0.2
    weight_decay: float = 1e-5
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 100
    patience: int | None = 20  # epochs without a better dev loss before stopping; None = never
    seed: int = 0

    def head_kwargs(self) -> dict:
        return {"hidden": self.hidden, "dropout": self.dropout}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class HeadFit:
    module: nn.Module
    config: HeadConfig
    train_loss: list[float] = field(default_factory=list)  # per epoch (training mode)
    dev_loss: list[float] = field(default_factory=list)  # per epoch
    best_epoch: int = 0  # 1-based; 0 = the initial weights were never beaten
    best_dev_loss: float = math.inf
    stopped_early: bool = False

    def dev_at(self, epoch: int) -> float | None:
        return self.dev_loss[epoch - 1] if len(self.dev_loss) >= epoch else None

    def summary(self) -> dict:
        out = {"best_epoch": self.best_epoch, "best_dev_loss": self.best_dev_loss,
               "epochs_run": len(self.train_loss), "stopped_early": self.stopped_early}
        for e in LOG_EPOCHS:
            out[f"dev_loss@{e}"] = self.dev_at(e)
        return out


def build(kind: str, in_dim: int, cfg: HeadConfig) -> nn.Module:
    from scorer.heads import build_head

    return build_head(kind, in_dim, **cfg.head_kwargs())


class _Tensors:
    """A dataset padded once and kept on the device: the loop then only slices."""

    def __init__(self, data: Dataset, device: torch.device) -> None:
        x, lengths = data.padded()
        self.x = torch.from_numpy(x).to(device)
        self.lengths = torch.from_numpy(lengths).to(device)
        self.y = torch.from_numpy(np.asarray(data.targets, np.float32)).to(device)
        w = data.weights if data.weights is not None else np.ones_like(data.targets)
        self.w = torch.from_numpy(np.asarray(w, np.float32)).to(device)
        self.n = len(data)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Trim padding to the longest item of the batch: RNN cost follows T.
        lengths = self.lengths[idx]
        t = int(lengths.max().item()) if len(idx) else 1
        return self.x[idx, :t], lengths, self.y[idx], self.w[idx]


def weighted_mse(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    total = w.sum()
    if total.item() <= 0:
        return ((pred - y) ** 2).mean()
    return (w * (pred - y) ** 2).sum() / total


@torch.no_grad()
def eval_loss(module: nn.Module, data: _Tensors, batch_size: int = 512) -> float:
    if data.n == 0:
        return math.nan
    module.eval()
    num = 0.0
    den = 0.0
    for start in range(0, data.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, data.n), device=data.x.device)
        x, lengths, y, w = data.batch(idx)
        pred = module(x, lengths)
        num += float((w * (pred - y) ** 2).sum())
        den += float(w.sum())
    if den <= 0:
        return math.nan  # nothing to judge by: no example with weight
    # A diverged head (NaN or inf predictions) is the worst possible, never "no dev set":
    # NaN would make train_head keep its latest weights, the broken ones.
    return num / den if math.isfinite(num) else math.inf


def _initial_module(train: Dataset, cfg: HeadConfig, init: nn.Module | None) -> nn.Module:
    """A copy of `init` (never trained in place), else a fresh head fitted to the input scale."""
    if init is not None:
        return copy.deepcopy(init)
    module = build(cfg.kind, train.dim, cfg)
    if hasattr(module, "fit_input_norm"):
        # The default encoder mixes 1024-d CNN features with small motion features.
        module.fit_input_norm(train.feats)
    return module


def _adam(module: nn.Module, cfg: HeadConfig) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                            weight_decay=cfg.weight_decay)


def _train_one_epoch(module: nn.Module, tr: _Tensors, opt: torch.optim.Optimizer,
                     batch_size: int, gen: torch.Generator, device: torch.device) -> float:
    """One shuffled pass over the training set; returns its example-weighted mean loss."""
    module.train()
    # The permutation is drawn on the CPU generator so a seed gives the same order anywhere.
    perm = torch.randperm(tr.n, generator=gen).to(device)
    total = 0.0
    for start in range(0, tr.n, batch_size):
        x, lengths, y, w = tr.batch(perm[start:start + batch_size])
        loss = weighted_mse(module(x, lengths), y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(x)
    return total / tr.n


def _record_epoch(result: HeadFit, epoch: int, train_loss: float, dev_loss: float,
                  on_epoch: Callable[[int, float, float], None] | None) -> None:
    result.train_loss.append(train_loss)
    result.dev_loss.append(dev_loss)
    if on_epoch is not None:
        on_epoch(epoch, train_loss, dev_loss)
    if epoch in LOG_EPOCHS:
        log.info("%s epoch %d: train %.5f dev %.5f", result.config.kind, epoch, train_loss,
                 dev_loss)


@dataclass
class _BestWeights:
    """The weights train_head will return, and the epochs since the dev loss last improved."""

    state: dict[str, torch.Tensor]
    since_best: int = 0

    @classmethod
    def of_initial(cls, module: nn.Module, dv: _Tensors, result: HeadFit) -> _BestWeights:
        # The untrained weights are the bar to beat, so epoch 0 can win (best_epoch stays 0).
        best = cls(copy.deepcopy(module.state_dict()))
        initial = eval_loss(module, dv)
        result.best_dev_loss = initial if not math.isnan(initial) else math.inf
        return best

    def observe(self, module: nn.Module, result: HeadFit, epoch: int, dev_loss: float) -> bool:
        """Keep this epoch's weights if they are the best yet; True when patience runs out."""
        if math.isnan(dev_loss):
            # Nothing to judge by (no dev examples, or none with weight): keep the latest.
            self._keep(module, result, epoch)
            return False
        if dev_loss < result.best_dev_loss - 1e-9:
            result.best_dev_loss = dev_loss
            self._keep(module, result, epoch)
            self.since_best = 0
            return False
        self.since_best += 1
        patience = result.config.patience
        return patience is not None and self.since_best >= patience

    def _keep(self, module: nn.Module, result: HeadFit, epoch: int) -> None:
        self.state = copy.deepcopy(module.state_dict())
        result.best_epoch = epoch


def train_head(train: Dataset, dev: Dataset, cfg: HeadConfig, *, device: str = "auto",
               init: nn.Module | None = None,
               on_epoch: Callable[[int, float, float], None] | None = None) -> HeadFit:
    """Train one head; returns it with its best-on-dev weights and the loss curves.

    `init` warm-starts from an existing module (copied, not modified). With an empty dev
    set the last epoch's weights are kept.
    """
    if len(train) == 0:
        raise ValueError("no training examples")
    dev_ = resolve_device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    module = _initial_module(train, cfg, init)
    module.to(dev_)
    tr = _Tensors(train, dev_)
    dv = _Tensors(dev, dev_)
    opt = _adam(module, cfg)
    result = HeadFit(module=module, config=cfg)
    best = _BestWeights.of_initial(module, dv, result)
    for epoch in range(1, cfg.epochs + 1):
        train_loss = _train_one_epoch(module, tr, opt, cfg.batch_size, gen, dev_)
        dev_loss = eval_loss(module, dv)
        _record_epoch(result, epoch, train_loss, dev_loss, on_epoch)
        if best.observe(module, result, epoch, dev_loss):
            result.stopped_early = True
            break
    module.load_state_dict(best.state)
    module.eval()
    return result


def random_config(rng: np.random.Generator, kind: str, *, epochs: int = 100,
                  patience: int | None = None, seed: int = 0) -> HeadConfig:
    """One draw of the paper's search space."""
    dropout = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.5))
    wd = 0.0 if rng.random() < 0.5 else float(10 ** rng.uniform(-6, -2))
    return HeadConfig(
        kind=kind,
        hidden=int(rng.choice(HIDDEN_CHOICES)),
        dropout=dropout,
        weight_decay=wd,
        lr=float(10 ** rng.uniform(-4, -2)),
        batch_size=int(rng.choice(BATCH_CHOICES)),
        epochs=epochs,
        patience=patience,
        seed=seed,
    )


def fit_baseline(kind: str, train: Dataset) -> nn.Module:
    """The paper's baselines, fitted in closed form: "mean" (Mean-only), "linear-first" (Lin-Reg)."""
    from scorer.heads import LinearFirstFrame, MeanOnly

    if kind == "mean":
        module = MeanOnly(train.dim).fit(train.targets)
        if train.weights is not None:
            w = np.asarray(train.weights, np.float64)
            means = (w * train.targets).sum(0) / np.maximum(w.sum(0), 1e-12)
            module.means.copy_(torch.from_numpy(means.astype(np.float32)))
        return module.eval()
    if kind == "linear-first":
        return LinearFirstFrame(train.dim).fit(train.feats, train.targets).eval()
    raise ValueError(f"unknown baseline {kind!r}; expected mean or linear-first")


@dataclass
class SearchResult:
    best: HeadFit
    trials: list[dict]  # one row per trial: config + dev losses


def search(train: Dataset, dev: Dataset, kind: str, n_trials: int, *, seed: int = 0,
           epochs: int = 100, patience: int | None = None, device: str = "auto",
           on_trial: Callable[[int, dict], None] | None = None) -> SearchResult:
    """Random search over the paper's space; the best trial by dev loss wins.

    Patience defaults to None so every trial runs its full epochs and the dev losses at 50
    and 100 epochs are comparable between trials (the best weights are still kept).
    """
    rng = np.random.default_rng(seed)
    best: HeadFit | None = None
    trials: list[dict] = []
    for t in range(n_trials):
        cfg = random_config(rng, kind, epochs=epochs, patience=patience, seed=seed + t)
        res = train_head(train, dev, cfg, device=device)
        row = {"trial": t, **cfg.to_dict(), **res.summary()}
        trials.append(row)
        if on_trial is not None:
            on_trial(t, row)
        log.info("search %s trial %d: dev %.5f (lr %.2e hidden %d dropout %.2f wd %.1e bs %d)",
                 kind, t, res.best_dev_loss, cfg.lr, cfg.hidden, cfg.dropout,
                 cfg.weight_decay, cfg.batch_size)
        if best is None or res.best_dev_loss < best.best_dev_loss:
            best = res
    if best is None:
        raise ValueError("search needs at least one trial")
    return SearchResult(best, trials)

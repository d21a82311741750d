"""The paper's evaluation, repeatable: Table 1 plus the measures that show *why* a model fails.

For every model — Lin-Reg, Mean-only, FC-MaxPool-2, FC-MaxPool-4, RNN-2, RNN-4, RNN-8 —
trained on the same split:

- train, dev and test RMSE and the test explained variance (the paper's Table 1);
- Spearman correlation per emotion between predicted and fitted scores on test GIFs;
- accuracy on held-out pairwise comparisons (decisive comparisons between two test GIFs:
  does the model score the winner higher?);
- the prediction spread versus the true spread per emotion (standard deviations on test):
  the paper's heads hugged the mean, which a low RMSE hides and a ratio near 0 shows;
- PNG plots: the score distribution per emotion (the paper's Figure 1) and the train/dev
  loss curves (Figure 3); and a Markdown report tying them together.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from torch import nn

from scorer.emotions import N_EMOTIONS, NAMES
from scorer.encoders import resolve_device
from scorer.versions import HEAD_KINDS
from training.comparisons import LedgerArrays
from training.dataset import Dataset, Splits
from training.fit import (
    HeadConfig,
    HeadFit,
    fit_baseline,
    search,
    train_head,
)

log = logging.getLogger("moodgif.training.evaluate")

# Table-1 rows: our name -> (the paper's label, head kind)
TABLE_MODELS: dict[str, tuple[str, str]] = {
    "lin-reg": ("Lin-Reg", "linear-first"),
    "mean-only": ("Mean-only", "mean"),
    "fc-maxpool-2": ("FC-MaxPool-2", "fc-maxpool-2"),
    "fc-maxpool-4": ("FC-MaxPool-4", "fc-maxpool-4"),
    "rnn-2": ("RNN-2", "rnn-2"),
    "rnn-4": ("RNN-4", "rnn-4"),
    "rnn-8": ("RNN-8", "rnn-8"),
}
BASELINES = ("lin-reg", "mean-only")


# ---------------------------------------------------------------------------------------
# measures


def predict(module: nn.Module, data: Dataset, device: str = "cpu") -> np.ndarray:
    from scorer.heads import predict as head_predict

    if len(data) == 0:
        return np.zeros((0, N_EMOTIONS), np.float32)
    return head_predict(module, data.feats, resolve_device(device))


def rmse(pred: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Root mean squared error over all GIFs and emotions (weighted when `w` is given)."""
    if len(y) == 0:
        return math.nan
    err = (np.asarray(pred, np.float64) - np.asarray(y, np.float64)) ** 2
    if w is None:
        return float(np.sqrt(err.mean()))
    w = np.asarray(w, np.float64)
    return float(np.sqrt((w * err).sum() / w.sum())) if w.sum() > 0 else math.nan


def explained_variance(pred: np.ndarray, y: np.ndarray) -> float:
    """1 - Var(y - pred) / Var(y) per emotion, averaged over emotions (sklearn's default)."""
    if len(y) < 2:
        return math.nan
    y = np.asarray(y, np.float64)
    resid = y - np.asarray(pred, np.float64)
    var_y = y.var(axis=0)
    ok = var_y > 1e-12
    if not ok.any():
        return math.nan
    return float(np.mean(1.0 - resid.var(axis=0)[ok] / var_y[ok]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two score vectors; NaN when either is constant or shorter than 3.
    The one Spearman-vs-truth: Table 1, the demo's ranking quality and the simulator's."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    rho = float(spearmanr(a, b).statistic)
    return rho if math.isfinite(rho) else math.nan


def spearman_per_emotion(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(17,) Spearman rho between predictions (rows, 17) and targets; NaN where either is constant."""
    return np.asarray([spearman(pred[:, e], y[:, e]) for e in range(N_EMOTIONS)])


@dataclass
class HeldOutPairs:
    """Decisive ledger comparisons whose two GIFs are both in one held-out split: emotion,
    winner sha, loser sha and the comparison's weight. The one held-out-pairs type: the
    retrain's judgement, `moodgif train`'s Table 1 and the GIFGIF pretraining all use it."""

    emotion: np.ndarray  # (P,)
    winner: list[str]
    loser: list[str]
    weight: np.ndarray | None = None  # (P,); None = every pair counts once

    def __len__(self) -> int:
        return len(self.winner)

    def rows(self, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(winner row, loser row, both present) of each pair in a matrix whose rows are `shas`."""
        row = {s: i for i, s in enumerate(shas)}
        w = np.asarray([row.get(s, -1) for s in self.winner], np.int64)
        lo = np.asarray([row.get(s, -1) for s in self.loser], np.int64)
        return np.maximum(w, 0), np.maximum(lo, 0), (w >= 0) & (lo >= 0)

    def accuracy(self, pred: np.ndarray, shas: Sequence[str],
                 usable: np.ndarray | None = None) -> tuple[float, int]:
        """(weighted share ordered right, ties half; pairs used) for `pred` (rows = `shas`),
        on the pairs whose GIFs both have a row (and that `usable` keeps, when given)."""
        w, lo, ok = self.rows(shas)
        if usable is not None:
            ok = ok & usable
        e = self.emotion.astype(np.int64)
        pw, pl = pred[w[ok], e[ok]], pred[lo[ok], e[ok]]
        score = (pw > pl) + 0.5 * (pw == pl)
        weight = np.ones(len(self)) if self.weight is None else self.weight
        total = weight[ok].sum()
        return (float((weight[ok] * score).sum() / total) if total > 0 else math.nan), int(ok.sum())


def held_out_pairs(ledger: LedgerArrays, shas: Collection[str]) -> HeldOutPairs:
    """The ledger's decisive, weighted comparisons of two different GIFs both in `shas`."""
    inside = set(shas)
    ids = ledger.ids
    member = np.asarray([item in inside for item in ids], bool)
    if len(ledger) == 0:
        return HeldOutPairs(np.zeros(0, np.int64), [], [], np.zeros(0))
    keep = np.flatnonzero(member[ledger.winner] & member[ledger.loser] & ~ledger.tie.astype(bool)
                          & (ledger.weight > 0) & (ledger.winner != ledger.loser))
    return HeldOutPairs(ledger.emotion[keep].astype(np.int64),
                        [ids[ledger.winner[k]] for k in keep], [ids[ledger.loser[k]] for k in keep],
                        ledger.weight[keep].astype(np.float64))


def pairwise_accuracy(pred: np.ndarray, shas: Sequence[str], pairs: HeldOutPairs) -> float:
    """Share of held-out comparisons where the winner scores higher (a tie in score = 0.5)."""
    return pairs.accuracy(pred, shas)[0]


# ---------------------------------------------------------------------------------------
# Table 1


@dataclass
class ModelEval:
    name: str
    label: str
    kind: str
    rmse: dict[str, float]  # train / dev / test
    explained_variance: float  # test
    spearman: np.ndarray  # (17,) on test
    pair_accuracy: float  # held-out comparisons between test GIFs
    pred_std: np.ndarray  # (17,) on test
    true_std: np.ndarray  # (17,) on test
    config: dict = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    dev_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    test_pred: np.ndarray | None = None

    @property
    def spread_ratio(self) -> float:
        """Median over emotions of pred std / true std: 1 = full spread, 0 = the mean only."""
        ok = self.true_std > 1e-12
        return float(np.median(self.pred_std[ok] / self.true_std[ok])) if ok.any() else math.nan

    def row(self) -> dict:
        return {
            "model": self.label, "train_rmse": self.rmse["train"], "dev_rmse": self.rmse["dev"],
            "test_rmse": self.rmse["test"], "test_explained_variance": self.explained_variance,
            "mean_spearman": float(np.nanmean(self.spearman)) if np.isfinite(self.spearman).any() else math.nan,
            "pair_accuracy": self.pair_accuracy, "spread_ratio": self.spread_ratio,
            "best_epoch": self.best_epoch, "config": self.config,
        }


def score_model(name: str, module: nn.Module, splits: Splits, pairs: HeldOutPairs | None,
                fit: HeadFit | None = None, device: str = "cpu") -> ModelEval:
    label, kind = TABLE_MODELS.get(name, (name, name))
    preds = {part: predict(module, getattr(splits, part), device) for part in ("train", "dev", "test")}
    test = splits.test
    y = test.targets
    return ModelEval(
        name=name, label=label, kind=kind,
        rmse={part: rmse(preds[part], getattr(splits, part).targets) for part in preds},
        explained_variance=explained_variance(preds["test"], y),
        spearman=spearman_per_emotion(preds["test"], y),
        pair_accuracy=pairwise_accuracy(preds["test"], test.shas, pairs) if pairs else math.nan,
        pred_std=preds["test"].std(axis=0) if len(y) else np.full(N_EMOTIONS, np.nan),
        true_std=y.std(axis=0) if len(y) else np.full(N_EMOTIONS, np.nan),
        config=fit.config.to_dict() if fit is not None else {},
        train_loss=list(fit.train_loss) if fit else [],
        dev_loss=list(fit.dev_loss) if fit else [],
        best_epoch=fit.best_epoch if fit else 0,
        test_pred=preds["test"],
    )


@dataclass
class Table:
    splits_summary: str
    evals: list[ModelEval]
    info: dict = field(default_factory=dict)
    trials: dict[str, list[dict]] = field(default_factory=dict)  # per kind, when searched
    test_shas: list[str] = field(default_factory=list)  # row order of each test_pred

    def best_head(self) -> ModelEval:
        heads = [e for e in self.evals if e.name not in BASELINES]
        return min(heads, key=lambda e: (e.rmse["dev"] if not math.isnan(e.rmse["dev"]) else math.inf))

    def get(self, name: str) -> ModelEval:
        return next(e for e in self.evals if e.name == name)


def run_table(splits: Splits, *, models: Sequence[str] = tuple(TABLE_MODELS),
              pairs: HeldOutPairs | None = None, configs: dict[str, HeadConfig] | None = None,
              search_trials: int = 0, epochs: int = 100, seed: int = 0, device: str = "cpu",
              on_model: Callable[[str], None] | None = None) -> Table:
    """Train and score every model on one split; heads use `configs[kind]`, a search, or defaults."""
    if len(splits.train) == 0:
        raise ValueError("no training examples: score the pool and fit some comparisons first")
    evals: list[ModelEval] = []
    trials: dict[str, list[dict]] = {}
    for name in models:
        if name not in TABLE_MODELS:
            raise ValueError(f"unknown model {name!r}; expected one of {', '.join(TABLE_MODELS)}")
        if on_model is not None:
            on_model(name)
        _, kind = TABLE_MODELS[name]
        if kind in ("mean", "linear-first"):
            evals.append(score_model(name, fit_baseline(kind, splits.train), splits, pairs,
                                     device=device))
            continue
        assert kind in HEAD_KINDS
        if search_trials > 0:
            res = search(splits.train, splits.dev, kind, search_trials, seed=seed, epochs=epochs,
                         device=device)
            fit_res, trials[kind] = res.best, res.trials
        else:
            cfg = (configs or {}).get(kind) or HeadConfig(kind=kind, epochs=epochs, seed=seed)
            fit_res = train_head(splits.train, splits.dev, cfg, device=device)
        evals.append(score_model(name, fit_res.module, splits, pairs, fit_res, device=device))
        log.info("%s: dev rmse %.4f test rmse %.4f", name, evals[-1].rmse["dev"], evals[-1].rmse["test"])
    return Table(splits.summary(), evals, dict(splits.info), trials, list(splits.test.shas))


# ---------------------------------------------------------------------------------------
# report


def _f(x: float, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def plot_distributions(targets: np.ndarray, out: Path, pred: np.ndarray | None = None,
                       pred_label: str = "predicted") -> Path:
    """The paper's Figure 1: the fitted score distribution of each emotion (17 panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 6, figsize=(16, 8), sharex=True)
    bins = np.linspace(0, 1, 21)
    for e, ax in enumerate(axes.flat):
        if e >= N_EMOTIONS:
            ax.axis("off")
            continue
        ax.hist(targets[:, e], bins=bins, color="#4477aa", alpha=0.8, label="fitted (all GIFs)",
                density=True)
        if pred is not None and len(pred):
            ax.hist(pred[:, e], bins=bins, color="#ee6677", alpha=0.5, label=pred_label, density=True)
        ax.set_title(NAMES[e], fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Score distribution per emotion")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_losses(evals: Sequence[ModelEval], out: Path) -> Path:
    """The paper's Figure 3: train and dev loss per epoch for every trained head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [e for e in evals if e.train_loss]
    fig, axes = plt.subplots(1, max(1, len(heads)), figsize=(3.2 * max(1, len(heads)), 3),
                             squeeze=False)
    for ax, ev in zip(axes[0], heads, strict=False):
        ax.plot(range(1, len(ev.train_loss) + 1), ev.train_loss, label="train")
        ax.plot(range(1, len(ev.dev_loss) + 1), ev.dev_loss, label="dev")
        if ev.best_epoch:
            ax.axvline(ev.best_epoch, color="grey", ls=":", lw=1)
        ax.set_title(ev.label, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("MSE", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_report(table: Table, out_dir: Path, *, all_targets: np.ndarray | None = None,
                 title: str = "moodgif evaluation", notes: Sequence[str] = ()) -> Path:
    """report.md, table.json, scores.png (Fig. 1) and losses.png (Fig. 3) in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = table.best_head()
    _plot_figures(table, best, out_dir, all_targets)
    # Every section ends with a blank line, so they join as they are.
    lines = [*_header_section(table, title, notes), *_table_one_section(table, best),
             *_per_emotion_section(table), *_plots_section(best, out_dir),
             *_search_section(table.trials), *_data_section(table.info)]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    _write_table_json(table, out_dir / "table.json")
    return report


def _plot_figures(table: Table, best: ModelEval, out_dir: Path,
                  all_targets: np.ndarray | None) -> None:
    """scores.png (only with targets to draw) with the best head's test predictions, losses.png."""
    if all_targets is not None and len(all_targets):
        plot_distributions(all_targets, out_dir / "scores.png", best.test_pred,
                           f"{best.label} on test")
    plot_losses(table.evals, out_dir / "losses.png")


def _header_section(table: Table, title: str, notes: Sequence[str]) -> list[str]:
    lines = [f"# {title}", "", f"_{dt.datetime.now().isoformat(timespec='seconds')}_ — "
             f"{table.splits_summary}", ""]
    return lines + ([*notes, ""] if notes else [])


_SPREAD_RATIO_NOTE = (
    "Spread ratio: median over emotions of (std of predictions) / (std of fitted "
    "scores) on test. Near 0 means the model predicts the mean for every GIF — the "
    "paper's failure mode — even when its RMSE looks fine.")


def _table_one_section(table: Table, best: ModelEval) -> list[str]:
    """The paper's Table 1, one row per model, then the best head and what the spread ratio is."""
    lines = ["## Table 1", "",
             "| model | train RMSE | dev RMSE | test RMSE | test explained var. | mean Spearman (test) | pair accuracy (test) | spread ratio |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [_table_one_row(ev) for ev in table.evals]
    return [*lines, "", *_best_head_lines(table, best), "", _SPREAD_RATIO_NOTE, ""]


def _table_one_row(ev: ModelEval) -> str:
    r = ev.row()
    return (f"| {r['model']} | {_f(r['train_rmse'])} | {_f(r['dev_rmse'])} | "
            f"{_f(r['test_rmse'])} | {_f(r['test_explained_variance'], 3)} | "
            f"{_f(r['mean_spearman'], 3)} | {_f(r['pair_accuracy'], 3)} | "
            f"{_f(r['spread_ratio'], 2)} |")


def _best_head_lines(table: Table, best: ModelEval) -> list[str]:
    """The best head by dev RMSE and, when Mean-only has a test RMSE, how far below it it is."""
    lines = [f"Best head by dev RMSE: **{best.label}**."]
    mean_only = next((e for e in table.evals if e.name == "mean-only"), None)
    if mean_only is not None and not math.isnan(mean_only.rmse["test"]):
        margin = mean_only.rmse["test"] - best.rmse["test"]
        lines.append(f"Test RMSE {best.label} {_f(best.rmse['test'])} vs Mean-only "
                     f"{_f(mean_only.rmse['test'])}: margin {_f(margin)} "
                     f"({_f(100 * margin / mean_only.rmse['test'], 1)} % lower).")
    return lines


def _per_emotion_section(table: Table) -> list[str]:
    """One row per emotion: the true spread on test, then each model's spread and Spearman rho."""
    lines = ["## Per emotion (test)", "",
             "| emotion | true std | " + " | ".join(f"{e.label} std / ρ" for e in table.evals) + " |",
             "|---|---|" + "---|" * len(table.evals)]
    for k in range(N_EMOTIONS):
        cells = [f"{_f(float(e.pred_std[k]), 3)} / {_f(float(e.spearman[k]), 2)}" for e in table.evals]
        lines.append(f"| {NAMES[k]} | {_f(float(table.evals[0].true_std[k]), 3)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _plots_section(best: ModelEval, out_dir: Path) -> list[str]:
    lines = ["## Plots", ""]
    # scores.png is drawn only when there were targets; link whichever one is in out_dir.
    if (out_dir / "scores.png").exists():
        lines += ["Score distribution per emotion (paper Fig. 1), fitted scores of all GIFs with "
                  f"the {best.label} test predictions overlaid:", "", "![scores](scores.png)", ""]
    return [*lines, "Train / dev loss per epoch (paper Fig. 3); the dotted line is the kept epoch:",
            "", "![losses](losses.png)", ""]


def _search_section(trials: dict[str, list[dict]]) -> list[str]:
    """One table of trials per searched head kind; nothing when no search ran."""
    if not trials:
        return []
    lines = ["## Search", ""]
    for kind, rows in trials.items():
        lines += [f"### {kind}", "", "| trial | lr | hidden | dropout | weight decay | batch | dev@50 | dev@100 | best dev |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [_search_trial_row(r) for r in rows]
        lines.append("")
    return lines


def _search_trial_row(r: dict) -> str:
    return (f"| {r['trial']} | {r['lr']:.2e} | {r['hidden']} | {r['dropout']:.2f} | "
            f"{r['weight_decay']:.1e} | {r['batch_size']} | {_f(r['dev_loss@50'], 5)} | "
            f"{_f(r['dev_loss@100'], 5)} | {_f(r['best_dev_loss'], 5)} |")


def _data_section(info: dict) -> list[str]:
    return ["## Data", "", "```", json.dumps(info, indent=1, default=str), "```", ""]


def _write_table_json(table: Table, out: Path) -> None:
    """Table 1's rows with the per-emotion arrays (NaN rho as null), the split and the trials."""
    out.write_text(json.dumps(
        {"splits": table.splits_summary, "info": table.info,
         "models": [e.row() | {"spearman": [None if math.isnan(x) else float(x) for x in e.spearman],
                               "pred_std": e.pred_std.tolist(), "true_std": e.true_std.tolist()}
                    for e in table.evals],
         "trials": table.trials}, indent=1, default=str))

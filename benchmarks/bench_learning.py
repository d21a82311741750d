"""The learning loop on the demo pool, whose true scores are known.

1. A demo pool (cartoon faces with known scores per emotion), ingested and encoded with the
   default offline encoder (cached in --home, so a rerun skips this).
2. Simulated votes: "which is more X?" answers between random pairs that follow
   Bradley-Terry on the true scores, P(left wins) = expit(k * (truth_left - truth_right)).
3. The paper's Table 1 on those votes: Bradley-Terry fit -> min-max targets -> Lin-Reg,
   Mean-only and the five heads, 80/10/10 split by GIF.
4. Printed: the best head's test RMSE against Mean-only and Lin-Reg (ratios from this one
   run), and Spearman against the *true* scores on the test GIFs — for the heads and for
   the Bradley-Terry fit itself (how good the targets are).

    .venv/bin/python benchmarks/bench_learning.py            # 200 GIFs, 20k votes, 50 epochs
    .venv/bin/python benchmarks/bench_learning.py --count 400 --votes 40000 --epochs 150
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scorer.emotions import NAMES  # noqa: E402
from scorer.migrate import init_db  # noqa: E402
from scorer.settings import load_settings  # noqa: E402


def simulate(truth: dict[str, np.ndarray], n: int, k: float, seed: int) -> list[tuple[str, str, str, str]]:
    rng = np.random.default_rng(seed)
    shas = sorted(truth)
    t = np.stack([truth[s] for s in shas])
    i = rng.integers(0, len(shas), n)
    j = (i + rng.integers(1, len(shas), n)) % len(shas)
    e = rng.integers(0, len(NAMES), n)
    p = 1 / (1 + np.exp(-k * (t[i, e] - t[j, e])))
    left = rng.random(n) < p
    return [(NAMES[a], shas[b], shas[c], "left" if w else "right")
            for a, b, c, w in zip(e, i, j, left, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=None, help="data dir (kept: features are reused)")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--votes", type=int, default=20000)
    ap.add_argument("--k", type=float, default=6.0, help="vote sharpness on the [0, 1] truth scale")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--search", type=int, default=0, help="random-search trials per head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="lin-reg,mean-only,fc-maxpool-2,fc-maxpool-4,rnn-2,rnn-4,rnn-8")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sets", default="", help="also compare training sets with one head, e.g. "
                    "sparse-small,dense-small,sparse-aug (encodes dense / augmented copies once)")
    ap.add_argument("--sets-head", default="fc-maxpool-2")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    home = args.home or Path(tempfile.gettempdir()) / f"moodgif-bench-learning-{args.count}-{args.seed}"
    os.environ["MOODGIF_HOME"] = str(home)
    settings = load_settings(env={"MOODGIF_HOME": str(home)}, training__seed=args.seed)
    # A fresh ledger each run: the database is rebuilt, the pool files and features are kept.
    db = home / "moodgif.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    engine = init_db(settings.db_url)

    from scorer.demo_pool import make_demo_pool, read_truth
    from scorer.pipeline import score_pool
    from scorer.pool import ingest

    t0 = time.perf_counter()
    pool_dir = home / "demo-pool"
    manifest = pool_dir / "manifest.csv"
    if not manifest.is_file():
        make_demo_pool(pool_dir, args.count, args.seed)
    ingest(settings, engine, "demo", manifest)
    rep = score_pool(settings, engine, pool="demo", device=args.device, progress=sys.stderr.isatty())
    print(f"pool: {args.count} demo GIFs; encoded {rep.encoded}, cached {rep.cached} "
          f"({time.perf_counter() - t0:.1f} s)")

    from training.comparisons import import_pairs

    truth = read_truth(manifest)
    imp = import_pairs(engine, simulate(truth, args.votes, args.k, args.seed), source="poll")
    print(f"votes: {imp.added} simulated poll answers following Bradley-Terry on the truth (k={args.k})")

    from training.workflow import evaluate_table, ledger_fit

    fit, _, _ = ledger_fit(settings, engine, with_prior=False)
    from scipy.stats import spearmanr

    bt_rho = np.nanmean([spearmanr(fit.theta[:, e], [truth[s][e] for s in fit.items]).statistic
                         for e in range(len(NAMES))])
    t1 = time.perf_counter()
    out = home / "report"
    table, report = evaluate_table(
        settings, engine, out, set_name="sparse-small", scale="minmax", epochs=args.epochs,
        search_trials=args.search, models=tuple(args.models.split(",")), device=args.device,
        truth=truth, on_model=lambda m: print(f"  training {m} ...", file=sys.stderr),
    )
    print(f"Table 1 trained in {time.perf_counter() - t1:.1f} s; {table.splits_summary}")
    print(f"{'model':<14} {'train':>7} {'dev':>7} {'test':>7} {'expl.var':>8} {'rho(fit)':>8} "
          f"{'rho(truth)':>10} {'pairs':>6} {'spread':>6}")
    test = table.evals[0]
    from training.evaluate import spearman_per_emotion

    y = np.stack([truth[s] for s in table.test_shas])
    for ev in table.evals:
        r = ev.row()
        rho_truth = float(np.nanmean(spearman_per_emotion(ev.test_pred, y))) if ev.name != "mean-only" else float("nan")
        ev.config["rho_truth"] = rho_truth
        print(f"{r['model']:<14} {r['train_rmse']:7.4f} {r['dev_rmse']:7.4f} {r['test_rmse']:7.4f} "
              f"{r['test_explained_variance']:8.3f} {r['mean_spearman']:8.3f} {rho_truth:10.3f} "
              f"{r['pair_accuracy']:6.3f} {r['spread_ratio']:6.2f}")
    best = table.best_head()
    mean = table.get("mean-only") if any(e.name == "mean-only" for e in table.evals) else test
    lin = table.get("lin-reg") if any(e.name == "lin-reg" for e in table.evals) else None
    print()
    print(f"best head by dev RMSE: {best.label}")
    print(f"test RMSE {best.label} / Mean-only = {best.rmse['test']:.4f} / {mean.rmse['test']:.4f} "
          f"= {best.rmse['test'] / mean.rmse['test']:.3f} "
          f"({100 * (1 - best.rmse['test'] / mean.rmse['test']):.1f} % lower)")
    if lin is not None:
        print(f"test RMSE {best.label} / Lin-Reg   = {best.rmse['test']:.4f} / {lin.rmse['test']:.4f} "
              f"= {best.rmse['test'] / lin.rmse['test']:.3f}")
    print(f"mean Spearman vs true scores on test GIFs: {best.label} {best.config['rho_truth']:.3f}"
          + (f", Lin-Reg {lin.config['rho_truth']:.3f}" if lin is not None else "")
          + f"; the Bradley-Terry fit itself (all GIFs) {bt_rho:.3f}")
    print(f"report: {report}")
    if args.sets:
        compare_sets(settings, engine, fit, args, truth)


def compare_sets(settings, engine, fit, args, truth) -> None:  # type: ignore[no-untyped-def]
    """One head on each of the paper's training sets, same GIF split, same min-max targets."""
    from training.dataset import training_set
    from training.evaluate import predict, rmse, spearman_per_emotion
    from training.fit import HeadConfig, fit_baseline, train_head
    from training.workflow import build_splits, ensure_features, targets_from

    targets, _ = targets_from(fit, "minmax")
    print()
    print(f"training sets, {args.sets_head}, {args.epochs} epochs:")
    print(f"{'set':<14} {'train n':>7} {'test RMSE':>9} {'mean-only':>9} {'rho(truth)':>10} {'seconds':>8}")
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        ts = training_set(name)
        ensure_features(settings, engine, list(targets), pool="demo", encoder_id=settings.scoring.encoder,
                        sampling=ts.sampling, device=args.device, progress=sys.stderr.isatty())
        splits = build_splits(settings, engine, targets, None, encoder_id=settings.scoring.encoder,
                              set_name=name, device=args.device, progress=sys.stderr.isatty())
        res = train_head(splits.train, splits.dev, HeadConfig(kind=args.sets_head, epochs=args.epochs,
                                                               seed=args.seed), device=args.device)
        pred = predict(res.module, splits.test, args.device)
        mean = predict(fit_baseline("mean", splits.train), splits.test)
        y = np.stack([truth[s] for s in splits.test.shas])
        rho = float(np.nanmean(spearman_per_emotion(pred, y)))
        print(f"{name:<14} {len(splits.train):7d} {rmse(pred, splits.test.targets):9.4f} "
              f"{rmse(mean, splits.test.targets):9.4f} {rho:10.3f} {time.perf_counter() - t0:8.1f}")


if __name__ == "__main__":
    main()

"""`moodgif simulate`: the closed-loop benchmark (virtual users -> ledger -> retrain -> ranking)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.simulate import SimConfig

DEFAULT_CACHE = Path("bench-out/sim-cache")


def register(group: click.Group) -> None:
    group.add_command(simulate_cmd)


def _shown(path: Path) -> str:
    """The path as the reader of the docs would type it: relative to here when inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _strategies(raw: str) -> tuple[str, ...]:
    from bot.simulate import STRATEGIES

    names = tuple(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise click.BadParameter(f"unknown strategy {', '.join(bad) or '(none)'}; "
                                 f"choose from {', '.join(STRATEGIES)}", param_hint="--strategies")
    return names


def _sim_config(strategies: str, *, pool_size: int, n_requests: int, retrain_every: int,
                adversarial: float, seed: int, seeds: int, pool_seed: int, seed_pool_size: int,
                workers: int, fast: bool) -> SimConfig:
    """The run as asked, smaller with `fast`, plus the shipped strategy under attack when
    `adversarial` is set."""
    from bot.simulate import SimConfig

    names = _strategies(strategies)
    if fast:
        pool_size, seed_pool_size = min(pool_size, 300), min(seed_pool_size, 200)
        n_requests, retrain_every = min(n_requests, 600), min(retrain_every, 150)
    if adversarial > 0:
        # The adversarial check runs on the product as shipped: polls only when they are on.
        from bot.simulate import product_strategy

        product = product_strategy()
        if product in names:
            names = (*names, f"{product}@adv")
    return SimConfig(pool_size=pool_size, requests=n_requests, retrain_every=retrain_every,
                     strategies=names, adversarial=adversarial, seed=seed, seeds=seeds,
                     pool_seed=pool_seed, seed_pool_size=seed_pool_size, workers=workers,
                     extra_checkpoints=(1000,) if n_requests >= 1000 else ())


def _command(cfg: SimConfig, strategies: str, out_dir: Path) -> str:
    """The command line that reproduces this run, for the report."""
    return " ".join([
        "moodgif simulate", f"--pool-size {cfg.pool_size}", f"--requests {cfg.requests}",
        f"--retrain-every {cfg.retrain_every}", f"--strategies {shlex.quote(strategies)}",
        f"--adversarial {cfg.adversarial:g}", f"--seed {cfg.seed}", f"--seeds {cfg.seeds}",
        f"--pool-seed {cfg.pool_seed}", f"--seed-pool-size {cfg.seed_pool_size}",
        f"--out {shlex.quote(_shown(out_dir))}"])


@click.command("simulate")
@click.option("--pool-size", type=click.IntRange(min=20), default=2000, show_default=True,
              help="GIFs in the evaluation pool")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=5000,
              show_default=True, help="/gif requests per strategy")
@click.option("--retrain-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="run the scheduled retrain job every K requests (simulated clock)")
@click.option("--strategies", default="prior,feedback,both,both+polls,random", show_default=True,
              help="comma-separated: prior, feedback, both, both+polls, random")
@click.option("--adversarial", type=click.FloatRange(0.0, 0.9), default=0.1, show_default=True,
              help="share of adversarial users in one more run of the product as shipped "
                   "(`both`, or `both+polls` when polls are on by default; 0 = skip it)")
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of the virtual users and the bot's random draws")
@click.option("--seeds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="run each strategy with this many user seeds (seed, seed+1, ...) and average")
@click.option("--pool-seed", type=int, default=0, show_default=True,
              help="seed of the two demo pools (a new one is drawn and encoded: minutes)")
@click.option("--seed-pool-size", type=click.IntRange(min=20), default=800, show_default=True,
              help="GIFs of the separate pool the shipped scorer (v0) is trained on")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="strategies run side by side in this many processes")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("docs"),
              show_default=True, help="where learning-loop.md and learning-curve.png go")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE,
              show_default=True, help="pools, features, v0 and templates (reused across runs)")
@click.option("--fast", is_flag=True,
              help="a quick look: 300-GIF pool, 200-GIF seed pool, 600 requests, retrain every 150")
@click.option("--json", "as_json", is_flag=True, help="print the whole result as JSON on stdout")
@click.pass_obj
def simulate_cmd(settings: Settings, pool_size: int, n_requests: int, retrain_every: int,
                 strategies: str, adversarial: float, seed: int, seeds: int,
                 pool_seed: int,
                 seed_pool_size: int,
                 workers: int, out_dir: Path, cache_dir: Path, fast: bool, as_json: bool) -> None:
    """Prove that suggestions get better with use: virtual users on a demo pool with known
    true scores drive the real bot core; the real retrain job runs every K requests; the
    ranking is measured against the truth after every retrain, for each strategy.

    Writes OUT/learning-loop.md (table, adversarial comparison, the command) and
    OUT/learning-curve.png (NDCG@5 vs requests per strategy).
    """
    from bot.simulate import simulate, write_report

    cfg = _sim_config(strategies, pool_size=pool_size, n_requests=n_requests,
                      retrain_every=retrain_every, adversarial=adversarial, seed=seed, seeds=seeds,
                      pool_seed=pool_seed, seed_pool_size=seed_pool_size, workers=workers, fast=fast)
    started = time.perf_counter()
    click.echo(f"simulate: {len(cfg.strategies)} strategies x {seeds} seeds x {cfg.requests} requests on a "
               f"{cfg.pool_size}-GIF pool, retrain every {cfg.retrain_every}; cache {cache_dir}", err=True)

    def done(name: str, run: dict) -> None:
        last = run["curve"][-1]
        name = f"{name} (seed {run['seed']})"
        click.echo(f"  {name:<24} NDCG@5 {last['ndcg5']:.3f}  P@1 {last['p1']:.2f}  "
                   f"Spearman {last['spearman']:.3f}  ({run['seconds']:.0f} s)", err=True)

    try:
        result = simulate(settings, cfg, cache_dir=cache_dir, on_done=done)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"simulation failed: {exc}") from exc
    raw = cache_dir / "learning-loop.json"
    md, png = write_report(result, out_dir, command=_command(cfg, strategies, out_dir), json_path=raw)
    click.echo(f"simulate: done in {time.perf_counter() - started:.0f} s; wrote {md}, {png} "
               f"and the raw curves {raw}", err=True)
    if as_json:
        import dataclasses

        click.echo(json.dumps(dataclasses.asdict(result), default=str))

"""`moodgif simulate`: the closed loop with virtual users, proving suggestions improve with use.

A demo pool whose true 17 scores are known stands in for a team's GIF pool. Virtual users
send `/gif` requests through the same `BotCore` the adapters use; the scheduled retrain job
(`training.retrain.scheduled_job`, called directly every K requests on a simulated clock)
turns their clicks into a new Bradley-Terry fit, head and scores; the ranker picks the new
version up through its own refresh. After every retrain the ranking the bot would show is
measured against the truth.

**The truth is used only to drive the virtual users and to measure.** The ranker sees the
model's predictions and the votes, never the manifest's truth columns.

Where the scorer prior comes from: the product ships a scorer trained elsewhere (the paper
trained on GIFGIF). The simulation does the same honestly: a separate *seed* demo pool (its
own random seed, so other GIFs) gets GIFGIF-style crowd comparisons drawn from its truth with
Bradley-Terry noise; the real training code fits Bradley-Terry and trains a head on them
(model version "v0"); v0 scores the evaluation pool, and that is the prior.

Strategies, each in its own fresh database and home (sharing one feature cache):

- ``prior``       the scorer prior only: v0 ranks, no retrain ever runs;
- ``feedback``    no scorer prior: the pool starts unscored (random order), Bradley-Terry
  with prior strength 0; everything the bot knows comes from the users (the heads the
  retrain trains on their votes included);
- ``both``        the product: v0 as prior plus the retrain loop, no polls;
- ``both+polls``  the product with "which is more X?" polls (`settings.ranking.poll_share`);
- ``random``      nothing scored, nothing learned: uniform random suggestions.

Everything heavy is cached under `cache_dir` (default `bench-out/sim-cache`): the demo pools,
the GIF files and their features (shared by every strategy and every run), v0 and the
template databases, so only the first run pays for encoding.

The package, one module per part: `config` (strategies, `SimConfig`, the users' model),
`cache` (`prepare`: pools, v0, template databases), `population` (the virtual users),
`metrics` (measured against the truth), `run` (one request, one strategy, the whole run:
`simulate`), `report` (tables, plot, JSON, markdown). It lives in bot/, not training/,
because it drives `bot.core.BotCore` and training/ may not import bot/.
"""

from __future__ import annotations

from bot.simulate.cache import Prepared, crowd_rows, prepare
from bot.simulate.config import (
    SIM_PLATFORM,
    STRATEGIES,
    SimConfig,
    StrategySpec,
    UserModel,
    product_strategy,
    strategy_spec,
)
from bot.simulate.metrics import measure
from bot.simulate.population import Population
from bot.simulate.report import (
    check_targets,
    first_reaching,
    markdown_table,
    plot_curves,
    write_report,
)
from bot.simulate.run import SimResult, Window, one_request, run_strategy, simulate
from bot.simulate.truth import Truth

__all__ = [
    "SIM_PLATFORM",
    "STRATEGIES",
    "Population",
    "Prepared",
    "SimConfig",
    "SimResult",
    "StrategySpec",
    "Truth",
    "UserModel",
    "Window",
    "check_targets",
    "crowd_rows",
    "first_reaching",
    "markdown_table",
    "measure",
    "one_request",
    "plot_curves",
    "prepare",
    "product_strategy",
    "run_strategy",
    "simulate",
    "strategy_spec",
    "write_report",
]

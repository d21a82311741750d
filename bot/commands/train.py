"""`moodgif train`, `evaluate`, `retrain` and `import-votes`: learning from the ledger."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from scorer.settings import Settings
from scorer.versions import HEAD_KINDS

SETS = ("sparse-small", "dense-small", "sparse-aug")
# training.workflow.TRAIN_HEADS, spelled out so that the CLI starts without importing torch
# (a test checks they agree).
TRAIN_HEADS = (*HEAD_KINDS, "prior-residual", "channels-linear")


def register(group: click.Group) -> None:
    group.add_command(train_cmd)
    group.add_command(evaluate_cmd)
    group.add_command(retrain_group)
    group.add_command(import_votes_cmd)
    group.add_command(model_group)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from scorer.migrate import init_db

    return init_db(settings.db_url)


def _device(settings: Settings, device: str | None) -> str:
    return device or settings.scoring.device


def _text_model(settings: Settings):  # type: ignore[no-untyped-def]
    """The word channel's model: the bot's own intent parser (scorer and training never
    import bot, so the command hands it down, as `moodgif score` does)."""
    from bot.intent import text_model

    return text_model(settings, notify=lambda line: click.echo(line, err=True))


@click.command("train")
@click.option("--pool", default=None, help="train on this pool's GIFs (default: every pool)")
@click.option("--head", type=click.Choice(TRAIN_HEADS), default=None,
              help="head kind (default: fc-maxpool-2, and with the prior's channels also "
                   "prior-residual; the lower dev loss is kept)")
@click.option("--search", "search_n", type=click.IntRange(min=0), default=0,
              help="random search with N trials (the paper's space) instead of one config")
@click.option("--set", "set_name", type=click.Choice(SETS), default="sparse-small", show_default=True,
              help="training set: sparse/dense sampling, or sparse plus augmented copies")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--activate", is_flag=True, help="rescore the pool and make this version active")
@click.option("--channels/--no-channels", default=True, show_default=True,
              help="the head also reads the zero-shot prior's channels (faces, words), as the "
                   "retrain's heads do; GIFs without them are scored with the prior first")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.pass_obj
def train_cmd(settings: Settings, pool: str | None, head: str | None, search_n: int, set_name: str,
              epochs: int, activate: bool, channels: bool, device: str | None) -> None:
    """Fit Bradley-Terry on the ledger and train a head on the fitted scores.

    Stores a new model version (a candidate unless --activate). Missing features are
    encoded first; augmented copies (--set sparse-aug) are encoded once and cached.
    """
    from tqdm import tqdm

    from training.workflow import WorkflowError, train_version

    engine = _engine(settings)
    tty = sys.stderr.isatty()
    bar = tqdm(total=epochs * max(1, search_n), unit="epoch", desc=f"training {head or 'heads'}",
               disable=not tty, file=sys.stderr)
    try:
        report = train_version(
            settings, engine, pool=pool, head=head, search_trials=search_n, set_name=set_name,
            epochs=epochs, activate=activate, device=_device(settings, device), progress=tty,
            channels=channels, text_model=_text_model(settings) if channels else None,
            on_epoch=lambda e, tr, dv: (bar.update(1), bar.set_postfix(train=f"{tr:.4f}", dev=f"{dv:.4f}")),
            on_trial=lambda t, row: bar.update(epochs),
        )
    except (WorkflowError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    m = report.metrics
    click.echo(f"{report.splits}" + (f" (with the prior's channels {m['channels']})" if m.get("channels") else ""))
    if len(m.get("tried", {})) > 1:
        click.echo("dev loss: " + ", ".join(f"{k} {v:.5f}" for k, v in m["tried"].items())
                   + f": {report.kind} kept")
    click.echo(f"{report.kind}: best epoch {m['best_epoch']}, RMSE train {m['train_rmse']:.4f} "
               f"dev {m['dev_rmse']:.4f} test {m['test_rmse']:.4f} "
               f"(mean-only test {m['test_rmse_mean_only']:.4f})")
    for e in (50, 100):
        if m.get(f"dev_loss@{e}") is not None:
            click.echo(f"dev loss at epoch {e}: {m[f'dev_loss@{e}']:.5f}")
    if report.trials:
        click.echo(f"search: {len(report.trials)} trials, best dev loss {m['best_dev_loss']:.5f}")
    state = "active" if report.activated else "candidate (use --activate, or `moodgif retrain --once`)"
    click.echo(f"model version {report.model_version_id}: {state}")


@click.command("evaluate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="report folder (default: <home>/reports/evaluate-<time>)")
@click.option("--pool", default=None, help="evaluate on this pool's GIFs (default: every pool)")
@click.option("--set", "set_name", type=click.Choice(SETS), default="sparse-small", show_default=True)
@click.option("--scale", type=click.Choice(["minmax", "product"]), default="minmax", show_default=True,
              help="targets: min-max scaled (the paper) or the product's robust scale")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--search", "search_n", type=click.IntRange(min=0), default=0,
              help="random search with N trials per head")
@click.option("--models", default=",".join(["lin-reg", "mean-only", *HEAD_KINDS]), show_default=True,
              help="comma-separated subset of the Table-1 models")
@click.option("--truth", "truth_manifest", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="demo manifest with truth_* columns: also report Spearman vs truth")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.pass_obj
def evaluate_cmd(settings: Settings, out_dir: Path | None, pool: str | None, set_name: str,
                 scale: str, epochs: int, search_n: int, models: str,
                 truth_manifest: Path | None, device: str | None) -> None:
    """The paper's Table 1 (Lin-Reg, Mean-only, FC-MaxPool-2/4, RNN-2/4/8) as a Markdown report.

    Also per-emotion Spearman, accuracy on held-out comparisons, prediction spread vs true
    spread, and PNG plots of the score distributions (Fig. 1) and loss curves (Fig. 3).
    """
    from scorer.store import utcnow
    from training.workflow import WorkflowError, evaluate_table

    names = _table_models(models)
    engine = _engine(settings)
    out_dir = out_dir or settings.home / "reports" / f"evaluate-{utcnow():%Y%m%d-%H%M%S}"
    try:  # before minutes of training, not after
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    truth = None
    if truth_manifest is not None:
        from scorer.demo_pool import read_truth

        try:
            truth = read_truth(truth_manifest)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        table, report = evaluate_table(
            settings, engine, out_dir, pool=pool, set_name=set_name, scale=scale, epochs=epochs,
            search_trials=search_n, models=names, device=_device(settings, device),
            progress=sys.stderr.isatty(), truth=truth,
            on_model=lambda name: click.echo(f"training {name} ...", err=True),
        )
    except (WorkflowError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    _echo_table(table)
    click.echo(f"report: {report}")


def _table_models(models: str) -> tuple[str, ...]:
    """`--models`, checked: known names, and at least one head to compare with the baselines."""
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    if unknown := [n for n in names if n not in ("lin-reg", "mean-only", *HEAD_KINDS)]:
        raise click.BadParameter(f"unknown model {unknown[0]!r}; the models are lin-reg, mean-only, "
                                 f"{', '.join(HEAD_KINDS)}", param_hint="--models")
    if not set(names) & set(HEAD_KINDS):  # the report is the heads against the baselines
        raise click.BadParameter(f"name at least one head ({', '.join(HEAD_KINDS)}) besides the "
                                 "baselines: the report compares the heads with them", param_hint="--models")
    return names


def _cell(value: float | None, width: int, digits: int) -> str:
    """A table figure; "–" where it is undefined (rho of Mean-only: a constant has no rank),
    as report.md writes it."""
    ok = value is not None and math.isfinite(value)
    return f"{value:{width}.{digits}f}" if ok else f"{'–':>{width}}"


def _echo_table(table: Any) -> None:
    """The Table-1 rows on the terminal, one line per model."""
    click.echo(table.splits_summary)
    click.echo(f"{'model':<14} {'train':>7} {'dev':>7} {'test':>7} {'expl.var':>8} {'rho':>6} {'pairs':>6} {'spread':>6}")
    for ev in table.evals:
        r = ev.row()
        click.echo(f"{r['model']:<14} {_cell(r['train_rmse'], 7, 4)} {_cell(r['dev_rmse'], 7, 4)} "
                   f"{_cell(r['test_rmse'], 7, 4)} {_cell(r['test_explained_variance'], 8, 3)} "
                   f"{_cell(r['mean_spearman'], 6, 3)} {_cell(r['pair_accuracy'], 6, 3)} "
                   f"{_cell(r['spread_ratio'], 6, 2)}")


@click.group("retrain", invoke_without_command=True)
@click.option("--once", is_flag=True, help="run the retrain job now, once")
@click.option("--schedule", is_flag=True,
              help="run as a worker: retrain on MOODGIF_RETRAIN_CRON / _INTERVAL_MIN until stopped")
# Only --once reads these: a scheduled run (the worker's, or serve's) trains its head for
# 100 epochs on the CPU whatever is given, so the help must not promise more.
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True,
              help="--once: epochs of the head's training (a scheduled run uses 100)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="--once: where the head trains (default: MOODGIF_DEVICE; a scheduled run "
                   "trains on the CPU)")
@click.pass_context
def retrain_group(ctx: click.Context, once: bool, schedule: bool, epochs: int, device: str | None) -> None:
    """Refit Bradley-Terry from the ledger, retrain the head, rescore, activate if not worse."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    if once == schedule:
        raise click.UsageError("give exactly one of --once, --schedule (or the `history` subcommand)")
    given = [f"--{name}" for name in ("epochs", "device")
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    if schedule and given:  # silently ignored before: the operator believed the GPU was used
        raise click.UsageError(f"{' and '.join(given)} apply to --once only: a scheduled run trains "
                               "its head for 100 epochs on the CPU (a small head on stored features)")
    if once:
        from bot.home_lock import HomeBusy, home_lock
        from training.retrain import run_retrain

        engine = _engine(settings)
        try:  # a restore must not swap the database under the run
            with home_lock(settings.home, exclusive=False, doing="retrain"):
                out = run_retrain(settings, engine, trigger="manual", epochs=epochs,
                                  device=_device(settings, device),
                                  on_step=lambda step: click.echo(f"  {step} ...", err=True))
        except HomeBusy as exc:
            raise click.ClickException(str(exc)) from None
        if out.status == "busy":
            click.echo(f"moodgif: {out.message}", err=True)
            sys.exit(3)
        if out.status == "failed":
            raise click.ClickException(f"retrain run {out.run_id} failed: {out.message}")
        click.echo(f"retrain run {out.run_id}: {out.status}: {out.message}")
        return
    _run_schedule(settings)


def _run_schedule(settings: Settings) -> None:
    import signal
    import threading

    from bot.flows.jobs import drain_scheduled
    from bot.home_lock import HomeBusy, home_lock
    from training.retrain import make_scheduler

    engine = _engine(settings)
    sched = make_scheduler(settings, kind="background")
    if sched is None:
        raise click.ClickException("scheduling is off: set MOODGIF_RETRAIN_CRON or "
                                   "MOODGIF_RETRAIN_INTERVAL_MIN")
    # Admin jobs (pool adds, "retrain now") a bot queued and could not run (it stopped, its
    # child died): this worker runs them too, as the bot's own scheduled child does.
    sched.add_job(drain_scheduled, "interval", args=[settings, engine], minutes=1, id="moodgif-admin-jobs",
                  name="moodgif admin jobs", max_instances=1, coalesce=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with home_lock(settings.home, exclusive=False, doing="run the retrain worker"):
            sched.start()
            job = sched.get_job("moodgif-retrain")  # not the admin-jobs poll, due every minute
            click.echo(f"retrain worker: next run at {job.next_run_time:%Y-%m-%d %H:%M:%S %Z} "
                       f"({job.trigger}); Ctrl-C to stop", err=True)
            stop.wait()
            sched.shutdown(wait=True)
    except HomeBusy as exc:
        raise click.ClickException(str(exc)) from None


@retrain_group.command("history")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def retrain_history(settings: Settings, limit: int, as_json: bool) -> None:
    """The last retrain runs: status, step reached, model version and dev RMSE."""
    from training.comparisons import stats
    from training.run_history import history  # no torch: a plain read

    engine = _engine(settings)
    runs = history(engine, limit)
    if as_json:
        click.echo(json.dumps({"runs": runs, "ledger": stats(engine)}, default=str, indent=1))
        return
    st = stats(engine)
    click.echo(f"ledger: {st['total']} comparisons ({', '.join(f'{k} {v}' for k, v in st['by_source'].items()) or 'none'})")
    if not runs:
        click.echo("no retrain runs yet")
        return
    for r in runs:
        m = r["metrics"] or {}
        dev = m.get("dev_rmse_new")
        old = m.get("dev_rmse_active")
        rm = (f" dev RMSE {dev:.4f}" + (f" (active {old:.4f})" if old is not None else "")) if dev is not None else ""
        mv = f" v{r['model_version_id']}" if r["model_version_id"] else ""
        when = f"{r['started_at']:%Y-%m-%d %H:%M:%S}"
        detail = r["error"] if r["status"] == "failed" else m.get("message", "")
        click.echo(f"#{r['id']} {when} {r['trigger']:<8} {r['status']:<9}{mv}{rm}  {detail or ''}".rstrip())


@click.command("import-votes")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--source", type=click.Choice(["import", "poll", "vote"]), default="import",
              show_default=True, help="source recorded on each comparison")
@click.option("--again", is_flag=True, help="import a file whose very bytes were imported before")
@click.pass_obj
def import_votes_cmd(settings: Settings, csv_file: Path, source: str, again: bool) -> None:
    """Add GIFGIF-format comparisons (metric,left,right,choice) to the ledger.

    GIFs are named by SHA-256 or by their pooled file name without extension (the GIFGIF
    images are `<giphy_id>.gif`). Malformed rows, unknown emotions, empty ids and GIFs in no
    pool are counted and skipped. A file is imported once: the same bytes again are refused
    (they would count every vote twice) unless `--again`.
    """
    import hashlib

    from scorer.emotions import NAMES
    from scorer.store import Meta, session_scope, utcnow
    from training.bradley_terry import read_gifgif_csv
    from training.bt_csv import LEFT, RIGHT
    from training.comparisons import import_pairs

    engine = _engine(settings)
    key = "import:" + hashlib.sha256(csv_file.read_bytes()).hexdigest()[:40]
    with session_scope(engine) as s:
        before = s.get(Meta, key)
        if before is not None and not again:
            raise click.ClickException(f"{csv_file}: these very rows were imported already ({before.value}); "
                                       "importing them again counts every vote twice (`--again` does)")
    try:
        data = read_gifgif_csv(csv_file)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{csv_file}: {exc}") from None
    words = {LEFT: "left", RIGHT: "right"}
    rows = ((NAMES[int(e)], data.gif_ids[int(a)], data.gif_ids[int(b)], words.get(int(c), "neither"))
            for e, a, b, c in zip(data.emotion, data.left, data.right, data.choice, strict=True))
    report = import_pairs(engine, rows, source=source)
    skipped = {k: v for k, v in data.skipped.items() if v}
    skipped.update(report.skipped)
    total_skipped = sum(skipped.values())
    click.echo(f"{data.rows} rows read, {report.added} comparisons added ({report.ties} 'neither'), "
               f"{total_skipped} skipped" + (f": {', '.join(f'{n} {k}' for k, n in sorted(skipped.items()))}"
                                             if skipped else ""))
    if not report.added:  # the wrong file, or GIFs not pooled yet: a script must notice
        raise click.ClickException(f"{csv_file}: no comparisons imported (rows need metric,left,right,"
                                   "choice with an emotion and two GIFs in a pool)")
    with session_scope(engine) as s:
        s.merge(Meta(key=key, value=f"{report.added} comparisons on {utcnow():%Y-%m-%d %H:%M} UTC"))


@click.group("model")
def model_group() -> None:
    """Model versions: list them, or make an earlier one rank again (a rollback)."""


@model_group.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def model_list(settings: Settings, limit: int, as_json: bool) -> None:
    """The newest versions first: id, status, kind, name, when made and activated."""
    from sqlalchemy import select

    from scorer.store import ModelVersion, session_scope

    with session_scope(_engine(settings)) as s:
        rows = [{"id": mv.id, "status": mv.status, "kind": mv.head_kind, "name": mv.name,
                 "created_at": mv.created_at.isoformat(timespec="seconds") if mv.created_at else None,
                 "activated_at": mv.activated_at.isoformat(timespec="seconds") if mv.activated_at else None}
                for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit))]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no model versions yet: `moodgif score` makes the first (the zero-shot prior)")
        return
    for r in rows:
        click.echo(f"{r['id']:>4}  {r['status']:<9} {r['kind']:<16} {r['name'][:40]:<40} "
                   f"made {r['created_at'] or '-'}" + (f", active since {r['activated_at']}"
                                                       if r["status"] == "active" else ""))


@model_group.command("activate")
@click.argument("version_id", type=click.IntRange(min=1))
@click.pass_obj
def model_activate(settings: Settings, version_id: int) -> None:
    """Make VERSION_ID rank again (a rollback after a retrain you do not like): its head
    scores the GIFs pooled since, the votes are fitted again with it as the prior, and both
    become active at once. Running bots pick it up within a minute (their housekeeping)."""
    from bot.home_lock import HomeBusy, home_lock
    from training.workflow import WorkflowError, reactivate_version

    engine = _engine(settings)
    try:
        with home_lock(settings.home, exclusive=False, doing="activate a model version"):
            written, fit_id = reactivate_version(settings, engine, version_id)
    except (WorkflowError, HomeBusy) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"model version {version_id} is active ({written} predictions written; "
               + (f"votes fitted again as fit {fit_id})" if fit_id else "no votes to fit yet)"))

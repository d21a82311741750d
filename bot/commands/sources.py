"""`moodgif pool starter` (a GIPHY starter pool) and `moodgif pretrain gifgif`."""

from __future__ import annotations

import json
import sys
import time

import click

from scorer.settings import Settings
from scorer.versions import HEAD_KINDS


def _text_model(settings: Settings):  # type: ignore[no-untyped-def]
    """The bot's intent parser as the prior's word channel (training never imports bot)."""
    from bot.intent import text_model

    return text_model(settings, notify=lambda line: click.echo(line, err=True))


def register(group: click.Group) -> None:
    pool = group.commands.get("pool")
    if isinstance(pool, click.Group):
        pool.add_command(pool_starter)
    group.add_command(pretrain_group)


@click.command("starter")
@click.option("--per-emotion", type=click.IntRange(min=1, max=200), default=8, show_default=True,
              help="GIFs per emotion (17 emotions)")
@click.option("--name", default="starter", show_default=True, help="the pool's name")
@click.option("--rating", type=click.Choice(["g", "pg", "pg-13", "r"]), default=None,
              help="rating ceiling of the import [default: setting rating_ceiling]")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_obj
def pool_starter(settings: Settings, per_emotion: int, name: str, rating: str | None,
                 as_json: bool) -> None:
    """A starter pool for the 17 emotions from GIPHY (needs GIPHY_API_KEY).

    Searches GIPHY with a few reaction phrases per emotion (scorer/starter_phrases.py:
    "facepalm", "phew", "mic drop" ...), takes PER_EMOTION GIFs each with no duplicates,
    and downloads them. Stopped (quota, network), the same command resumes. Then:
    moodgif score, moodgif serve.
    """
    from scorer.giphy import GiphyError
    from scorer.giphy_starter import build_starter
    from scorer.migrate import init_db
    from scorer.pool import PoolError

    start = time.perf_counter()
    try:
        report, counts = build_starter(settings, init_db(settings.db_url), name,
                                       per_emotion=per_emotion, rating=rating,
                                       progress=not as_json)
    except PoolError as exc:
        raise click.UsageError(str(exc)) from None
    except GiphyError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "planned_per_emotion": counts,
                               "seconds": round(time.perf_counter() - start, 2)}, indent=2))
    else:
        short = [f"{e} {n}" for e, n in counts.items() if n < per_emotion]
        click.echo(f"{report.summary()} in {time.perf_counter() - start:.1f} s")
        if short:
            click.echo("fewer GIFs than asked for: " + ", ".join(short))
        for ref, reason in report.refused:
            click.echo(f"  refused {ref}: {reason}")
        click.echo(f"next: moodgif score --pool {name}, then moodgif serve")
    sys.exit(1 if report.refused and not report.added else 0)


@click.group("pretrain")
def pretrain_group() -> None:
    """Train the scorer on a public comparison dataset before anyone votes."""


@pretrain_group.command("gifgif")
@click.option("--csv", "csv_src", required=True, metavar="PATH|URL",
              help="the comparisons (metric,left,right,choice; .csv or .csv.gz)")
@click.option("--images", "images_src", default=None, metavar="PATH|URL",
              help="the tar of <giphy_id>.gif; without it the GIFs come from GIPHY by id")
@click.option("--giphy-ids", is_flag=True,
              help="fetch the GIFs from GIPHY by id (needs GIPHY_API_KEY) even if --images is given")
@click.option("--csv-sha256", default=None, help="expected SHA-256 of the CSV file")
@click.option("--images-sha256", default=None, help="expected SHA-256 of the tar")
@click.option("--head", type=click.Choice(HEAD_KINDS), default=None,
              help="head kind (default: fc-maxpool-2, and with the prior's channels also "
                   "prior-residual; the lower dev loss is kept)")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--table/--no-table", default=True, show_default=True,
              help="also train the paper's seven models and write Table 1")
@click.option("--activate/--no-activate", default=True, show_default=True,
              help="activate the result when it beats chance and the active version on "
                   "held-out comparisons")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_obj
def pretrain_gifgif_cmd(settings: Settings, csv_src: str, images_src: str | None, giphy_ids: bool,
                        csv_sha256: str | None, images_sha256: str | None, head: str | None,
                        epochs: int, table: bool, activate: bool, device: str | None,
                        as_json: bool) -> None:
    """Pretrain the scorer on GIFGIF's 2.7M comparisons (the paper's experiment).

    Takes local copies or downloads (resumable, checksum checked) of the dump, stores its
    GIFs in the pool "gifgif" by GIPHY id (from the tar, or from GIPHY with --giphy-ids),
    imports the comparisons, fits Bradley-Terry, trains and evaluates the heads, and
    activates the result as the prior for real pools when it is better on held-out
    comparisons. Every step resumes when run again.
    """
    from scorer.download import DownloadError
    from scorer.giphy import GiphyError
    from scorer.migrate import init_db
    from training.gifgif import PretrainError, pretrain_gifgif
    from training.workflow import WorkflowError

    start = time.perf_counter()
    try:
        report = pretrain_gifgif(settings, init_db(settings.db_url), csv=csv_src,
                                 images=images_src, giphy_ids=giphy_ids, csv_sha256=csv_sha256,
                                 images_sha256=images_sha256, head=head, epochs=epochs,
                                 table=table, activate=activate, device=device or settings.scoring.device,
                                 progress=not as_json, text_model=_text_model(settings))
    except (PretrainError, DownloadError, GiphyError, WorkflowError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    g, c, m = report.gifs, report.comparisons, report.metrics
    click.echo(f"GIFs: {g['added']} added, {g['already']} already stored, {g['refused']} refused "
               f"({g['in_pool']} in pool gifgif; images from {report.images})")
    for ref, why in g.get("first_refusals", []):
        click.echo(f"  refused {ref}: {why}")
    click.echo(f"comparisons: {c.get('added', 0)} imported ({c.get('neither', 0)} neither) from "
               f"{c.get('rows', 0)} rows" + (f", {c['skipped_step']}" if c.get("skipped_step") else ""))
    click.echo(f"model v{report.model_version_id} ({report.head}"
               + (f", with the prior's channels {report.channels}" if report.channels else "")
               + f"): test RMSE {m.get('test_rmse', float('nan')):.4f} "
               f"(mean-only {m.get('test_rmse_mean_only', float('nan')):.4f}), held-out pair "
               f"accuracy {m.get('pair_accuracy', float('nan')):.3f} on {m.get('held_out_pairs', 0)} pairs")
    if report.table_report:
        click.echo(f"Table 1: {report.table_report}")
    click.echo(f"{report.decision}; {time.perf_counter() - start:.1f} s in all")

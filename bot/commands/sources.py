"""`moodgif pool starter` (a GIPHY starter pool) and `moodgif pretrain gifgif`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from scorer.settings import Settings


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
    from scorer.pool import PoolError
    from scorer.store import init_db

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


def _unused(_: Path) -> None:  # keeps Path imported for the pretrain command below
    return None

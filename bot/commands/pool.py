"""`moodgif demo-pool` and `moodgif pool add|list|show|remove`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(demo_pool_cmd)
    group.add_command(pool_group)


@click.command("demo-pool")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", "-n", default=200, show_default=True, type=click.IntRange(min=1),
              help="number of GIFs")
@click.option("--seed", "-s", default=0, show_default=True, type=int, help="random seed")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="worker processes (default: CPU count, at most 8)")
def demo_pool_cmd(directory: Path, count: int, seed: int, workers: int | None) -> None:
    """Draw COUNT animated cartoon-face GIFs with known emotion scores into DIRECTORY.

    Writes DIRECTORY/gifs/*.gif and DIRECTORY/manifest.csv (path, title, tags, rating,
    sha256 and the true score per emotion, truth_<emotion>). The same seed gives
    byte-identical files. Add them with: moodgif pool add demo DIRECTORY/manifest.csv
    """
    from tqdm import tqdm

    from scorer.demo_pool import make_demo_pool

    start = time.perf_counter()
    with tqdm(total=count, desc="demo-pool", unit="gif", file=sys.stderr, disable=None) as bar:
        manifest = make_demo_pool(directory, count, seed, workers=workers, on_progress=bar.update)
    click.echo(f"wrote {count} GIFs and {manifest} in {time.perf_counter() - start:.1f} s")


def _safe(text: str) -> str:
    """File names and titles come from strangers: no terminal escape codes reach the screen."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in str(text))


@click.group("pool")
def pool_group() -> None:
    """GIF pools: add files, folders, URL lists or manifests; list, show, remove."""


@pool_group.command("add")
@click.argument("name")
@click.argument("source")
@click.option("--limit", type=click.IntRange(min=1, max=5000), default=None,
              help="giphy:QUERY / giphy:trending: how many GIFs at most [default: 25]")
@click.option("--rating", type=click.Choice(["g", "pg", "pg-13", "r"]), default=None,
              help="giphy:...: rating ceiling of this import [default: setting rating_ceiling]")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.pass_obj
def pool_add(settings: Settings, name: str, source: str, limit: int | None, rating: str | None,
             as_json: bool) -> None:
    """Add the GIFs of SOURCE to pool NAME (created if new).

    SOURCE is a folder (its *.gif/*.webp files), a manifest (.csv, .jsonl or .json with
    path|url, title, tags, rating), a text file of URLs, one GIF file or one URL; or
    giphy:QUERY, giphy:trending, giphy:id:ID,ID,... with GIPHY_API_KEY set.
    Exit code 0 when every file was added or already there, 1 when some were refused or
    nothing was added to a new pool (so it was not kept: `pool add && score --pool` stops).
    With --json an error is a JSON object too ({"error": ...}).
    """
    from bot.home_lock import HomeBusy, home_lock
    from scorer.giphy import GiphyError
    from scorer.migrate import init_db
    from scorer.pool import PoolError, ingest

    giphy = source.lower().startswith("giphy:")
    if not giphy and (limit is not None or rating is not None):
        raise click.UsageError("--limit and --rating apply to giphy: sources only")
    options = {"limit": limit, "rating": rating} if giphy else {}
    engine = init_db(settings.db_url)
    try:  # a restore must not swap the database and the pool files under the ingest
        with home_lock(settings.home, exclusive=False, doing="add to a pool"):
            report = ingest(settings, engine, name, source, progress=not as_json, **options)
    except (PoolError, GiphyError, HomeBusy) as exc:
        if as_json:  # a script still reads an answer
            click.echo(json.dumps({"pool": name, "error": str(exc)}))
        if isinstance(exc, PoolError):
            raise click.UsageError(str(exc)) from None
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(report.summary())
        if report.refused:
            click.echo("refused:")
            for ref, reason in report.refused:
                click.echo(f"  {_safe(ref)}: {_safe(reason)}")
            if any(word in reason for _, reason in report.refused
                   for word in ("loopback address", "private address", "link-local address")):
                click.echo("note: GIFs are never fetched from private addresses; for a test "
                           "server on this machine set MOODGIF_ALLOW_PRIVATE_URLS=1 (docs/pools.md)")
    sys.exit(1 if report.refused or report.pool_dropped else 0)


@pool_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def pool_list(settings: Settings, as_json: bool) -> None:
    """Every pool, how many GIFs it holds and whose it is (a chat workspace's, else shared)."""
    from scorer.migrate import init_db
    from scorer.pool import list_pools
    from scorer.pool_owners import owner_label

    pools = list_pools(init_db(settings.db_url))
    if as_json:
        click.echo(json.dumps(pools, indent=2))
        return
    if not pools:
        click.echo("no pools yet: moodgif pool add NAME SOURCE")
        return
    width = max(len(p["name"]) for p in pools)
    for p in pools:
        click.echo(f"{p['name']:<{width}}  {p['gifs']:>7} GIFs  created {p['created_at']}  "
                   f"owner {owner_label(p['owner'])}")


@pool_group.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              help="how many GIFs to list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def pool_show(settings: Settings, name: str, limit: int, as_json: bool) -> None:
    """Totals, ratings and formats of pool NAME and its first GIFs."""
    from scorer.migrate import init_db
    from scorer.pool import UnknownPoolError, pool_details

    try:
        info = pool_details(init_db(settings.db_url), name, limit=limit)
    except UnknownPoolError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    ratings = ", ".join(f"{k} {v}" for k, v in sorted(info["ratings"].items())) or "-"
    formats = ", ".join(f"{k} {v}" for k, v in sorted(info["formats"].items())) or "-"
    click.echo(f"pool {info['name']} (created {info['created_at']})")
    click.echo(f"  GIFs      {info['gifs']}  ({info['bytes'] / 1e6:.1f} MB, {info['frames']} frames)")
    click.echo(f"  ratings   {ratings}")
    click.echo(f"  formats   {formats}")
    _echo_refusals(info)
    if "prior" in info:
        click.echo(f"  prior     {_prior_line(info['prior'])}")
    for g in info["first"]:
        click.echo(
            f"  {g['sha256'][:12]}  {g['width']:>4}x{g['height']:<4} {g['frames']:>4} fr "
            f"{g['rating'] or '-':<6} {_safe(g['title'] or g['source_url'] or '')}"
        )
        words = _words_line(g)
        if words:
            click.echo(f"                {words}")
    if info["gifs"] > len(info["first"]):
        click.echo(f"  ... and {info['gifs'] - len(info['first'])} more")


def _echo_refusals(info: dict) -> None:
    """How many files are refused now (a file added since counts no more), and the latest
    reasons: what to fix first."""
    n = info["refusals_recorded"]
    if not n:
        click.echo("  refusals  none")
        return
    latest = info["refusals_latest"]
    click.echo(f"  refusals  {n}" + (f"; the latest {len(latest)}:" if n > len(latest) else ":"))
    for r in latest:
        click.echo(f"            {_safe(r['source'])}: {_safe(r['reason'])}")


def _words_line(g: dict) -> str:
    """The GIF's other words (tags, alt text, slug) on one short line."""
    parts = []
    if g.get("tags"):
        parts.append("tags: " + ", ".join(g["tags"][:8]))
    if g.get("alt_text"):
        parts.append("alt: " + g["alt_text"][:80])
    if g.get("slug"):
        parts.append("slug: " + g["slug"][:60])
    return "  ".join(parts)


def _prior_line(p: dict) -> str:
    if not p.get("version"):
        return "none yet (run `moodgif score`)"
    return (f"{p['version']}: {p['scored']} GIFs scored before any vote, {p['wide']} of them "
            "with only a wide prior (no face, no words: explored more)")


@pool_group.command("owner")
@click.argument("name")
@click.argument("owner")
@click.pass_obj
def pool_owner(settings: Settings, name: str, owner: str) -> None:
    """Give pool NAME to OWNER: `shared` (every workspace ranks it), or one chat workspace,
    slack:TEAM_ID or discord:SERVER_ID (only it ranks, lists and adds to the pool).

    For a pool whose owner is wrong, such as one a workspace's admin added from chat before
    pools had owners (it became shared). A running bot follows within seconds.
    """
    from bot.scoped_settings import scopes_limited_to
    from scorer.migrate import init_db
    from scorer.pool import UnknownPoolError, set_pool_owner
    from scorer.pool_owners import may_see, owner_label, parse_owner

    try:
        new = parse_owner(owner)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="OWNER") from None
    engine = init_db(settings.db_url)
    try:
        before = set_pool_owner(engine, name, new)
    except UnknownPoolError as exc:
        raise click.ClickException(str(exc)) from None
    if before == new:
        click.echo(f"pool {name} already belongs to {owner_label(new)}; nothing changed")
        return
    who = "every workspace ranks it" if new == "" else "only that workspace ranks, lists and adds to it"
    click.echo(f"pool {name} now belongs to {owner_label(new)} (was {owner_label(before)}): {who}")
    cut = [scope for scope in scopes_limited_to(engine, name) if not may_see(_scope_viewer(scope), new)]
    if cut:
        click.echo(f"warning: {len(cut)} channel(s) or workspace(s) of other workspaces were limited "
                   f"to pools that included {name}, and no longer see it: {', '.join(cut[:10])}"
                   f"{' ...' if len(cut) > 10 else ''}", err=True)


def _scope_viewer(scope: str) -> str:
    """`Actor.pool_owner` of a "platform/workspace[/channel]" scope (`scopes_limited_to`)."""
    from bot.events import OPERATOR_PLATFORMS

    platform, _, rest = scope.partition("/")
    return "" if platform in OPERATOR_PLATFORMS else f"{platform}:{rest.split('/')[0]}"


@pool_group.command("remove")
@click.argument("name")
@click.pass_obj
def pool_remove(settings: Settings, name: str) -> None:
    """Remove pool NAME: its memberships only; GIF files, scores and comparisons stay."""
    from bot.scoped_settings import scopes_limited_to
    from scorer.migrate import init_db
    from scorer.pool import UnknownPoolError, remove_pool

    engine = init_db(settings.db_url)
    try:
        n = remove_pool(engine, name)
    except UnknownPoolError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed pool {name} ({n} memberships; the GIFs themselves stay)")
    if limited := scopes_limited_to(engine, name):  # they keep the name: never "every pool" now
        click.echo(f"warning: {len(limited)} channel(s) or workspace(s) are limited to pools that "
                   f"included {name}: {', '.join(limited[:10])}{' ...' if len(limited) > 10 else ''}; "
                   "with no other pool left they offer nothing until an admin sets `/gif-admin "
                   "channel pools NAME` (or `reset`) there", err=True)

"""Add GIPHY GIFs to a pool: `giphy:QUERY`, `giphy:trending` and `giphy:id:ID,ID,...`.

`moodgif pool add NAME giphy:happy dance --limit 40 --rating pg`, the admin page's pool form
and `/gif-admin pools add NAME giphy:...` all end here (through `scorer.pool.ingest`).

1. Ask GIPHY (`scorer.giphy`) for the GIFs, following its pagination up to `limit`.
2. Refuse, with one reason each, GIFs rated above the ceiling and GIFs whose every GIF
   rendition is over `max_gif_bytes`; pick the original when it fits, else the largest
   smaller rendition (downsized, fixed_height, ...).
3. A GIPHY id already stored (`gifs.external_id = "giphy:<id>"`) only joins the pool: its
   rendition is not downloaded again. So an interrupted import, rerun, resumes.
4. The others are downloaded by the SSRF-safe fetcher, checked and stored once under their
   SHA-256 like every other file (`scorer.pool_storage`); identical bytes under two GIPHY ids are
   one GIF (a duplicate in the report).
5. Rows are written a chunk per transaction, each GIF complete (file on disk first, then
   its row with GIPHY's title, slug, alt text, rating and attribution): nothing
   half-written survives an interruption.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer.fetch import fetch_urls
from scorer.giphy import GIPHY_ID, GiphyClient, GiphyError, GiphyGif, check_ceiling
from scorer.pool_owners import OPERATOR
from scorer.pool_storage import (
    AcceptedGif,
    IngestReport,
    SourceItem,
    check_pool_name,
    get_or_create_pool,
    record_refusals,
    validate_gif,
    validation_workers,
)
from scorer.settings import RATINGS, Settings
from scorer.store import Gif, PoolGif, session_scope

PREFIX = "giphy:"
DEFAULT_LIMIT = 25
_CHUNK = 100


class GiphyEmpty(GiphyError):
    """GIPHY answered, with no GIF to add."""


@dataclass(frozen=True)
class GiphySource:
    kind: str  # "search", "trending" or "ids"
    query: str = ""
    ids: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "search":
            return f"GIPHY search {self.query!r}"
        if self.kind == "trending":
            return "GIPHY trending"
        return f"{len(self.ids)} GIPHY id(s)"


def is_giphy_source(source: object) -> bool:
    return str(source).lower().startswith(PREFIX)


def parse_giphy_source(source: str) -> GiphySource:
    """`giphy:QUERY`, `giphy:trending` or `giphy:id:ID,ID,...`; GiphyError when unusable."""
    rest = str(source)[len(PREFIX):].strip()
    if rest.lower() == "trending":
        return GiphySource("trending")
    if rest.lower().startswith("id:"):
        ids = [x for x in re.split(r"[,\s]+", rest[3:]) if x]
        bad = [x for x in ids if not GIPHY_ID.match(x)]
        if bad:
            raise GiphyError(f"not a GIPHY id: {bad[0][:80]!r} (letters and digits only)")
        if not ids:
            raise GiphyError("giphy:id: needs at least one id, e.g. giphy:id:abc123,def456")
        return GiphySource("ids", ids=tuple(dict.fromkeys(ids)))
    query = " ".join(rest.split())
    if not query:
        raise GiphyError("giphy: needs search words, e.g. giphy:happy dance (or giphy:trending)")
    if len(query) > 50:  # GIPHY's own cap on a search query
        raise GiphyError(f"GIPHY search words are at most 50 characters, not {len(query)}")
    return GiphySource("search", query=query)


def run_coroutine(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from sync code, also from a thread that already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def list_gifs(settings: Settings, spec: GiphySource, *, limit: int, rating: str | None,
                    backoff_s: float = 1.0) -> list[GiphyGif]:
    async with GiphyClient(settings, backoff_s=backoff_s) as client:
        if spec.kind == "ids":
            return await client.by_ids(list(spec.ids))
        return await client.collect(spec.kind, spec.query, limit=limit, rating=rating)


def ingest_giphy(settings: Settings, engine: Engine, pool_name: str, source: str, *,
                 limit: int | None = None, rating: str | None = None, progress: bool = False,
                 trusted_endpoints: Collection[tuple[str, int]] = (),
                 backoff_s: float = 1.0, owner: str = OPERATOR) -> IngestReport:
    """Search (or trending, or ids) and import; raises GiphyError for a whole-import failure.
    `owner`: whose the pool is if new (PoolError when it exists and is another's).

    `rating` is the ceiling for this import (default: `settings.chat.rating_ceiling` for search
    and trending; none for explicit ids, whose ratings are still stored and applied by the
    workspace ceiling at ranking time).
    """
    spec = parse_giphy_source(source)
    check_ceiling(rating)
    if limit is not None and limit < 1:
        raise GiphyError("--limit must be at least 1")
    ceiling = rating or (settings.chat.rating_ceiling if spec.kind != "ids" else None)
    check_pool_name(pool_name)  # a bad name fails before any API call
    gifs = run_coroutine(list_gifs(settings, spec, limit=limit or DEFAULT_LIMIT, rating=ceiling,
                          backoff_s=backoff_s))
    missing: list[tuple[str, str]] = []
    if spec.kind == "ids":
        got = {g.id for g in gifs}
        missing = [(f"giphy:{i}", "GIPHY has no GIF with this id (removed, private or mistyped)")
                   for i in spec.ids if i not in got]
    if not gifs and not missing:
        shown = f" at or below rating {ceiling}" if ceiling else ""
        raise GiphyEmpty(f"{spec.describe()} found no GIFs{shown}: try other words"
                         + (" or a higher --rating" if ceiling and ceiling != "r" else ""))
    return import_gifs(settings, engine, pool_name, gifs, ceiling=ceiling, progress=progress,
                       trusted_endpoints=trusted_endpoints, refused=missing, owner=owner)


def _known(engine: Engine, ext_ids: list[str]) -> dict[str, str]:
    """external_id -> sha256 of the GIPHY GIFs already stored."""
    out: dict[str, str] = {}
    with session_scope(engine) as s:
        for start in range(0, len(ext_ids), 500):
            chunk = ext_ids[start : start + 500]
            out.update(s.execute(select(Gif.external_id, Gif.sha256)
                                 .where(Gif.external_id.in_(chunk))).all())
    return out


def import_gifs(settings: Settings, engine: Engine, pool_name: str, gifs: Sequence[GiphyGif], *,
                ceiling: str | None = None, progress: bool = False,
                trusted_endpoints: Collection[tuple[str, int]] = (),
                refused: Sequence[tuple[str, str]] = (), owner: str = OPERATOR) -> IngestReport:
    """Store these GIPHY GIFs in the pool (see the module doc); never raises for one GIF.
    An unknown `ceiling` raises GiphyError before anything is stored."""
    check_ceiling(ceiling)
    pool_id = get_or_create_pool(engine, pool_name, owner)
    report = IngestReport(pool=pool_name)
    errors: list[tuple[str, str]] = list(refused)
    seen: set[str] = set()
    joins, new = _split_known(engine, gifs)
    todo = _pick_renditions(settings, new, ceiling, errors)
    join_known(engine, pool_id, joins, seen, report)
    downloads = _download_renditions(settings, pool_name, todo, progress=progress,
                                     trusted_endpoints=trusted_endpoints, errors=errors)
    _validate_and_record(settings, engine, pool_id, downloads, seen=seen, report=report,
                         errors=errors)
    report.refused = errors
    refused = {ref for ref, _ in errors}
    record_refusals(engine, pool_id, errors,
                    accepted=[g.external_id for g in gifs if g.external_id not in refused])
    return report


def _split_known(engine: Engine, gifs: Sequence[GiphyGif]
                 ) -> tuple[list[tuple[GiphyGif, str]], list[GiphyGif]]:
    """(GIFs already stored, with their sha256; the others), each GIPHY id once."""
    unique = list({g.id: g for g in gifs}.values())
    known = _known(engine, [g.external_id for g in unique])
    joins = [(g, known[g.external_id]) for g in unique if g.external_id in known]
    return joins, [g for g in unique if g.external_id not in known]


def _pick_renditions(settings: Settings, gifs: list[GiphyGif], ceiling: str | None,
                     errors: list[tuple[str, str]]) -> list[tuple[GiphyGif, str]]:
    """(gif, rendition url) to download; GIFs above the ceiling or the size cap go to `errors`."""
    todo: list[tuple[GiphyGif, str]] = []
    for g in gifs:
        if ceiling and g.rating and RATINGS.index(g.rating) > RATINGS.index(ceiling):
            errors.append((g.external_id, f"rated {g.giphy_rating} by GIPHY, above the ceiling {ceiling}"))
            continue
        choice = g.pick(settings.fetch.max_gif_bytes)
        if isinstance(choice, str):
            errors.append((g.external_id, choice))
        else:
            todo.append((g, choice.url))
    return todo


def _download_renditions(settings: Settings, pool_name: str, todo: list[tuple[GiphyGif, str]], *,
                         progress: bool, trusted_endpoints: Collection[tuple[str, int]],
                         errors: list[tuple[str, str]]) -> list[tuple[GiphyGif, str, bytes]]:
    """(gif, url, bytes) of the renditions that downloaded; failures go to `errors`."""
    from tqdm import tqdm

    disable = None if progress else True  # None: tqdm shows itself on a terminal only
    results = []
    if todo:
        with tqdm(total=len(todo), desc=f"giphy {pool_name}", unit="gif", disable=disable,
                  file=sys.stderr) as bar:
            results = fetch_urls(settings, [u for _, u in todo], trusted=trusted_endpoints,
                                 on_done=lambda _r: bar.update(1))
    fetched = [(g, url, r) for (g, url), r in zip(todo, results, strict=True)]
    for g, _url, r in fetched:
        if r.data is None:
            errors.append((g.external_id, r.error or "download failed"))
    return [(g, url, r.data) for g, url, r in fetched if r.data is not None]


def _validate_and_record(settings: Settings, engine: Engine, pool_id: int,
                         downloads: list[tuple[GiphyGif, str, bytes]], *, seen: set[str],
                         report: IngestReport, errors: list[tuple[str, str]]) -> None:
    """Check the files side by side; record the accepted ones a chunk per transaction."""
    def validate(item: tuple[GiphyGif, str, bytes]) -> tuple[GiphyGif, AcceptedGif | str]:
        g, url, data = item
        src = SourceItem(ref=g.external_id, url=url, title=g.title, rating=g.rating)
        return g, validate_gif(settings, src, data)

    pending: list[tuple[GiphyGif, AcceptedGif]] = []
    with ThreadPoolExecutor(max_workers=validation_workers()) as pool:
        for g, outcome in pool.map(validate, downloads):
            if isinstance(outcome, str):
                errors.append((g.external_id, outcome))
                continue
            pending.append((g, outcome))
            if len(pending) >= _CHUNK:
                record_giphy_gifs(engine, pool_id, pending, seen, report)
                pending = []
    if pending:
        record_giphy_gifs(engine, pool_id, pending, seen, report)


def join_known(engine: Engine, pool_id: int, joins: list[tuple[GiphyGif, str]], seen: set[str],
                report: IngestReport) -> None:
    """GIFs stored by an earlier import: membership only, no download."""
    if not joins:
        return
    with session_scope(engine) as s:
        members = set(s.scalars(select(PoolGif.gif_sha).where(
            PoolGif.pool_id == pool_id, PoolGif.gif_sha.in_([sha for _, sha in joins]))))
        for g, sha in joins:
            report.sources.setdefault(sha, g.external_id)
            if sha in members or sha in seen:
                report.duplicates.append(sha)
                continue
            s.add(PoolGif(pool_id=pool_id, gif_sha=sha, source_ref=g.external_id))
            seen.add(sha)
            report.added.append(sha)


def record_giphy_gifs(engine: Engine, pool_id: int, chunk: list[tuple[GiphyGif, AcceptedGif]],
            seen: set[str], report: IngestReport) -> None:
    """The gifs rows (with GIPHY's words) and memberships of one chunk, one transaction."""
    shas = list({a.sha for _, a in chunk})
    with session_scope(engine) as s:
        rows = {g.sha256: g for g in s.scalars(select(Gif).where(Gif.sha256.in_(shas)))}
        taken = set(s.scalars(select(Gif.external_id).where(
            Gif.external_id.in_([g.external_id for g, _ in chunk]))))
        members = set(s.scalars(select(PoolGif.gif_sha).where(
            PoolGif.pool_id == pool_id, PoolGif.gif_sha.in_(shas))))
        for g, a in chunk:
            row = rows.get(a.sha)
            if row is None:
                row = Gif(sha256=a.sha, bytes=a.size, format=a.info.format, width=a.info.width,
                          height=a.info.height, n_frames=a.info.n_frames,
                          duration_ms=a.info.duration_ms, title=g.title, tags=[],
                          alt_text=g.alt_text, slug=g.slug,
                          external_id=None if g.external_id in taken else g.external_id,
                          attribution=g.attribution(), source_url=a.item.url,
                          rating=g.rating, rating_source="giphy" if g.rating else None)
                s.add(row)
                rows[a.sha] = row
                taken.add(g.external_id)
            else:
                # The same bytes under another name or GIPHY id: fill what is unknown only.
                if row.external_id is None and g.external_id not in taken:
                    row.external_id = g.external_id
                    taken.add(g.external_id)
                for attr in ("title", "alt_text", "slug"):
                    if not getattr(row, attr) and getattr(g, attr):
                        setattr(row, attr, getattr(g, attr))
                if not row.attribution:
                    row.attribution = g.attribution()
                if g.rating in RATINGS and (row.rating not in RATINGS
                                            or RATINGS.index(g.rating) > RATINGS.index(row.rating)):
                    # never more permissive than GIPHY rates it, whoever rated it first
                    row.rating, row.rating_source = g.rating, "giphy"
                if row.source_url is None:
                    row.source_url = a.item.url
            report.sources.setdefault(a.sha, g.external_id)
            if a.sha in members or a.sha in seen:
                report.duplicates.append(a.sha)
                continue
            s.add(PoolGif(pool_id=pool_id, gif_sha=a.sha, source_ref=g.external_id))
            members.add(a.sha)
            seen.add(a.sha)
            report.added.append(a.sha)


__all__ = ["GiphyEmpty", "GiphySource", "import_gifs", "ingest_giphy", "is_giphy_source",
           "list_gifs", "parse_giphy_source"]

"""GIF pools: ingest from a folder, a URL list or a manifest; validate; store each file once.

A SOURCE is one of
* a folder: every *.gif and *.webp file in it and its subfolders (hidden ones skipped);
* a manifest: `.csv` with a header row, or `.jsonl`/`.ndjson` (one JSON object a line) or
  `.json` (an array of objects); each row has `path` (or `file`) or `url`, and optionally
  `title`, `tags` (a list, or a string split on `;`, `,` or `|`), `alt_text` (or
  `caption`), `slug` and `rating` (g, pg, pg-13, r); other columns are ignored (the demo pool's ground truth among them).
  A `path` is relative to the manifest's folder and must stay inside it or inside one of
  `settings.fetch.allowed_source_dirs`, after following symlinks;
* a text file of URLs (any other file name): one http(s) URL a line, `#` comments;
* a single GIF file or a single URL;
* `giphy:QUERY`, `giphy:trending` or `giphy:id:ID,ID,...`: GIFs from GIPHY's API
  (`scorer.giphy_import`, with the admin's `GIPHY_API_KEY`).

The GIF's own words are kept (they feed the zero-shot prior, `scorer.prior`): a folder
file `happy-dance.gif` gets the title "happy dance"; a URL keeps its slug
(`giphy.com/gifs/happy-dance-abc123` -> "happy-dance", also the title when there is none);
manifests keep title, tags and alt text. All of it is cleaned by `scorer.words.clean_text`
(no control characters or HTML, length capped).

Each accepted file is stored once under its SHA-256 (`gif_path`), written atomically
(temporary file + os.replace), whatever pools it belongs to; a `gifs` row carries its
size, format, dimensions, frame count and duration, and `pool_gifs` its membership. A
refused file never stops the others: it gets one reason, in the report and in the
`refusals` table. Validating and storing the file, the pool row and the refusals are
`scorer.pool_storage`'s, shared with `scorer.giphy_import`.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import stat
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from scorer.admin_sources import url_problem
from scorer.fetch import fetch_urls
from scorer.giphy_import import ingest_giphy, is_giphy_source
from scorer.pool_owners import OPERATOR, may_see
from scorer.pool_storage import (
    AcceptedGif,
    IngestReport,
    PoolError,
    SourceItem,
    check_may_add,
    drop_pool_if_empty,
    file_kind,
    get_or_create_pool,
    gif_path,
    pool_exists,
    record_refusals,
    validate_gif,
    validation_workers,
)
from scorer.prior import prior_summary
from scorer.settings import RATINGS, Settings
from scorer.store import Gif, Pool, PoolGif, Refusal, session_scope, unit_of_work
from scorer.words import (
    MAX_ALT,
    clean_tags,
    clean_text,
    slug_from_url,
    title_from_path,
    words_from_name,
)

IMAGE_SUFFIXES = (".gif", ".webp")
MANIFEST_CSV = (".csv",)
MANIFEST_JSON = (".jsonl", ".ndjson", ".json")
_DB_CHUNK = 200


class UnknownPoolError(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no pool named {name!r}")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


# ---------------------------------------------------------------------------------------
# reading a SOURCE


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _roots(settings: Settings, base: Path, confine: Sequence[Path] | None = None) -> list[Path]:
    if confine is not None:  # a chat/web admin's source: only the operator's folders
        return [Path(r).resolve() for r in confine]
    roots = [base.resolve()]
    roots += [Path(os.path.expanduser(d)).resolve() for d in settings.fetch.allowed_source_dirs]
    return roots


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def _guesses(item: SourceItem) -> set[str]:
    """The titles an ingest without a manifest would have guessed for this item's file."""
    out = set()
    if item.path is not None:
        out.add(title_from_path(item.path.name))
    if item.slug:
        out.add(words_from_name(item.slug))
    return out - {""}


def _split_tags(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(t).strip() for t in raw if str(t).strip()]
    return [t.strip() for t in re.split(r"[;,|]", str(raw)) if t.strip()]


def _refuse(item: SourceItem, where: str, problem: str) -> SourceItem:
    """`item` refused for `problem`; the reason names the row only when the ref does not
    (the CLI prints "ref: reason", so "row 4: row 4: ..." must never be stored)."""
    item.error = problem if item.ref == where else f"{where}: {problem}"
    return item


def _row_item(settings: Settings, row: dict, where: str, base: Path, roots: list[Path],
              files_allowed: bool = True) -> SourceItem:
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    raw_path = str(row.get("path") or row.get("file") or "").strip()
    url = str(row.get("url") or "").strip()
    # clean_text drops NUL bytes too: PostgreSQL refuses them, which would sink the batch.
    title = clean_text(row.get("title"))
    tags = clean_tags(_split_tags(row.get("tags")))
    alt = clean_text(row.get("alt_text") or row.get("caption"), MAX_ALT)
    slug = clean_text(row.get("slug")) or (slug_from_url(url) if _is_url(url) else "")
    rating_raw = str(row.get("rating") or "").strip().lower()
    item = SourceItem(ref=raw_path or url or where, title=title, tags=tags, alt_text=alt, slug=slug,
                      title_given=bool(title))
    if rating_raw:
        if rating_raw not in RATINGS:
            # The value itself is not echoed: refusal reasons never carry a file's content.
            return _refuse(item, where, f"unknown rating (expected {', '.join(RATINGS)})")
        item.rating = rating_raw
    if raw_path and not files_allowed:  # a manifest fetched by URL never reads this server's files
        item.ref = where
        return _refuse(item, where, "a manifest fetched by URL may name URLs only, not files")
    if "\x00" in raw_path:  # no file has one; pathlib would raise on it
        item.ref = where
        return _refuse(item, where, "a NUL character in the path")
    if raw_path:
        path = Path(os.path.expanduser(raw_path))
        path = path if path.is_absolute() else base / path
        if not _inside(path, roots):
            return _refuse(item, where, "outside the manifest's folder and the allowed "
                                        "source folders (allowed_source_dirs)")
        item.path = path
        item.title = item.title or title_from_path(raw_path)
    elif url:
        problem = None if _is_url(url) else "not an http(s) URL"
        problem = problem or url_problem(url)
        if problem:
            item.ref = where  # a bad URL is not echoed as the ref: it may be anything
            return _refuse(item, where, problem)
        item.url = url
        item.title = item.title or words_from_name(slug)
    else:
        _refuse(item, where, "no path or url")
    return item


def _read_manifest_rows(path: Path) -> Iterator[tuple[str, dict | None, str | None]]:
    """(where, row, error) for each row of a CSV or JSON manifest."""
    if path.suffix.lower() in MANIFEST_CSV:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {(f or "").strip().lower() for f in reader.fieldnames or []}
            if not fields & {"path", "file", "url"}:
                raise PoolError(f"{path}: a manifest needs a 'path' (or 'file') or 'url' column")
            for n, row in enumerate(reader, start=2):
                yield f"row {n}", row, None
        return
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PoolError(f"{path}: not valid JSON: {exc}") from None
        for n, row in enumerate(rows, start=1):
            if isinstance(row, dict):
                yield f"item {n}", row, None
            else:
                yield f"item {n}", None, "not a JSON object"
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {n}", None, f"not valid JSON ({exc.msg})"
            continue
        if isinstance(row, dict):
            yield f"line {n}", row, None
        else:
            yield f"line {n}", None, "not a JSON object"


def read_source(settings: Settings, source: str | Path, *,
                confine: Sequence[Path] | None = None,
                trusted: Collection[tuple[str, int]] = ()) -> list[SourceItem]:
    """The items a SOURCE names, in a stable order. Raises PoolError if SOURCE is unusable.

    `confine` (a chat/web admin's source, see `scorer.admin_sources`) replaces the folders
    files may come from: the manifest's own folder and `allowed_source_dirs` no longer count.
    A URL ending in .txt, .csv, .json or .jsonl is a list or manifest to fetch (its rows name
    URLs only); any other URL is one GIF. `trusted` exempts (ip, port) pairs from the
    private-address check, as for the GIFs' own fetches.
    """
    text = str(source)
    if not text.strip():  # an unset $DIR: never "every GIF under the current folder"
        raise PoolError("SOURCE is empty: give a folder, a manifest (.csv/.json/.jsonl), "
                        "a URL list (.txt), a URL or giphy:QUERY")
    if _is_url(text):
        listed = _listed_at(settings, text, trusted)
        return listed if listed is not None else [_single_url_item(text)]
    path = Path(os.path.expanduser(text))
    if not path.exists():
        raise PoolError(f"no such file or folder: {path}")
    if path.is_dir():
        return _folder_items(settings, path, _roots(settings, path, confine))
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return [SourceItem(ref=str(path), path=path, title=title_from_path(path.name))]
    if not stat.S_ISREG(path.stat().st_mode):
        raise PoolError(f"{path}: not a regular file ({file_kind(path.stat().st_mode)})")
    if suffix in MANIFEST_CSV + MANIFEST_JSON:
        return _manifest_items(settings, path, confine)
    # anything else: a list of URLs
    return _url_list_items(path)


LIST_BY_URL = (".txt", *MANIFEST_CSV, *MANIFEST_JSON)


def _listed_at(settings: Settings, url: str, trusted: Collection[tuple[str, int]]) -> list[SourceItem] | None:
    """A URL list (.txt) or manifest (.csv/.json/.jsonl) fetched by URL, as a chat admin with no
    access to the server gives one: its items (URL rows only), or None for any other URL (a GIF).
    Fetched with the same guards as a GIF (no private address, a byte cap)."""
    import tempfile
    from urllib.parse import urlsplit

    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix not in LIST_BY_URL:
        return None
    if problem := url_problem(url):
        raise PoolError(f"{url}: {problem}")
    (got,) = fetch_urls(settings, [url], trusted=trusted, accept={"text"})
    if not got.ok:
        raise PoolError(f"the list at {url} could not be read: {got.error}")
    with tempfile.TemporaryDirectory(prefix="moodgif-list-") as tmp:
        local = Path(tmp) / f"list{suffix}"
        local.write_bytes(got.data or b"")
        try:
            if suffix == ".txt":
                return _url_list_items(local)
            return _manifest_items(settings, local, confine=[], files_allowed=False)
        except PoolError as exc:  # named by its URL, not by the temporary copy
            raise PoolError(str(exc).replace(str(local), url)) from None


def _single_url_item(url: str) -> SourceItem:
    """A SOURCE that is one URL: its item, or a refusal saying what is wrong with it."""
    problem = url_problem(url)
    if problem:
        return SourceItem(ref="url", error=problem)
    return _url_item(url)


def _manifest_items(settings: Settings, path: Path, confine: Sequence[Path] | None,
                    files_allowed: bool = True) -> list[SourceItem]:
    """One item per row of a CSV or JSON manifest; a bad row is a refusal, an unreadable
    manifest a PoolError."""
    base = path.parent
    roots = _roots(settings, base, confine)
    items = []
    try:
        for where, row, error in _read_manifest_rows(path):
            if row is None:
                items.append(SourceItem(ref=where, error=error))
            else:
                items.append(_row_item(settings, row, where, base, roots, files_allowed))
    except UnicodeDecodeError:
        raise PoolError(f"{path}: the manifest is not UTF-8 text") from None
    except (RecursionError, csv.Error) as exc:
        raise PoolError(f"{path}: cannot read the manifest ({type(exc).__name__})") from None
    return items


def _url_list_items(path: Path) -> list[SourceItem]:
    """One item per URL line of a text file (blank lines and `#` comments skipped)."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise PoolError(
            f"{path}: not a folder, manifest (.csv/.jsonl/.json), URL list or .gif/.webp file"
        ) from None
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # A line that is no URL is named by its number only: the file may be anything
        # (an env file, a password file), and refusals are stored and shown.
        problem = None if _is_url(line) else "not an http(s) URL"
        problem = problem or url_problem(line)
        if problem:
            items.append(SourceItem(ref=f"line {n}", error=problem))
        else:
            items.append(_url_item(line))
    if items and all(it.error == "not an http(s) URL" for it in items):
        # a README or a notes file, not a list: one line says so, not one per line of it
        raise PoolError(f"{path}: not a folder, manifest (.csv/.jsonl/.json), URL list or "
                        ".gif/.webp file: no line of it is an http(s) URL")
    return items


def _folder_items(settings: Settings, path: Path, roots: list[Path]) -> list[SourceItem]:
    """Every .gif/.webp under `path` (hidden ones skipped); a named pipe, device or symlink
    loop with such a name is a refusal with its reason, never opened."""
    items = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            reason = "a symlink loop" if exc.errno == errno.ELOOP else (
                "a broken symlink" if exc.errno == errno.ENOENT else f"cannot stat: {exc.strerror}")
            items.append(SourceItem(ref=str(rel), error=f"skipped: {reason}"))
            continue
        if stat.S_ISDIR(mode):
            continue
        item = SourceItem(ref=str(rel), path=p, title=title_from_path(p.name))
        if not stat.S_ISREG(mode):
            item.error = f"skipped: {file_kind(mode)}"
        elif not _inside(p, roots):
            item.error = "a link to outside the folder and the allowed source folders"
        items.append(item)
    return items


def _url_item(url: str) -> SourceItem:
    slug = slug_from_url(url)
    return SourceItem(ref=url, url=url, slug=slug, title=words_from_name(slug))


# ---------------------------------------------------------------------------------------
# the database side


def _record(engine: Engine, pool_id: int, chunk: list[AcceptedGif], seen: set[str],
            report: IngestReport) -> None:
    """Insert the gifs rows and memberships of one chunk in one transaction."""
    shas = list({a.sha for a in chunk})
    with session_scope(engine) as s:
        known = {g.sha256: g for g in s.scalars(select(Gif).where(Gif.sha256.in_(shas)))}
        members = set(
            s.scalars(
                select(PoolGif.gif_sha).where(PoolGif.pool_id == pool_id, PoolGif.gif_sha.in_(shas))
            )
        )
        for a in chunk:
            it = a.item
            gif = known.get(a.sha)
            if gif is None:
                gif = Gif(
                    sha256=a.sha, bytes=a.size, format=a.info.format, width=a.info.width,
                    height=a.info.height, n_frames=a.info.n_frames, duration_ms=a.info.duration_ms,
                    title=it.title, tags=it.tags, alt_text=it.alt_text, slug=it.slug,
                    source_url=it.url, rating=it.rating,
                    rating_source="manifest" if it.rating else None,
                )
                s.add(gif)
                known[a.sha] = gif
            else:
                # Fill what an earlier ingest did not know; never overwrite what it did, except
                # a title it only guessed from the same file's name ("IMG_0042.gif" -> "img"),
                # which a manifest naming that file now tells.
                if it.title and (not gif.title or (it.title_given and gif.title in _guesses(it))):
                    gif.title = it.title
                if not gif.tags and it.tags:
                    gif.tags = it.tags
                if not gif.alt_text and it.alt_text:
                    gif.alt_text = it.alt_text
                if not gif.slug and it.slug:
                    gif.slug = it.slug
                if gif.rating is None and it.rating:
                    gif.rating, gif.rating_source = it.rating, "manifest"
                if gif.source_url is None and it.url:
                    gif.source_url = it.url
            report.sources.setdefault(a.sha, it.ref)
            if a.sha in members or a.sha in seen:
                report.duplicates.append(a.sha)
                continue
            s.add(PoolGif(pool_id=pool_id, gif_sha=a.sha, source_ref=it.ref[:2000]))
            members.add(a.sha)
            seen.add(a.sha)
            report.added.append(a.sha)


def _fetch_window(
    settings: Settings,
    items: Sequence[SourceItem],
    part: Sequence[int],
    trusted: Collection[tuple[str, int]],
    fbar: Any,
    errors: dict[int, str],
) -> dict[int, bytes]:
    """Download the URLs of one window; a failed fetch becomes that item's refusal in `errors`.

    Only this window's bytes are returned so the caller holds at most one window in memory."""
    fetched: dict[int, bytes] = {}
    url_idx = [i for i in part if items[i].url]
    if url_idx:
        results = fetch_urls(
            settings, [items[i].url or "" for i in url_idx], trusted=trusted,
            on_done=lambda _r: fbar.update(1),
        )
        for i, res in zip(url_idx, results, strict=True):
            if res.data is not None:
                fetched[i] = res.data
            else:
                errors[i] = res.error or "fetch failed"
        del results
    return fetched


@dataclass
class _IngestRun:
    """What one ingest carries from window to window."""

    settings: Settings
    engine: Engine
    pool_id: int
    items: list[SourceItem]
    report: IngestReport
    todo: list[int]  # the items not refused while reading the SOURCE
    errors: dict[int, str]  # item index -> the reason it is refused
    seen: set[str] = field(default_factory=set)  # sha256 this run has added to the pool
    pending: list[AcceptedGif] = field(default_factory=list)  # not yet in the database

    @classmethod
    def start(cls, settings: Settings, engine: Engine, pool_id: int, items: list[SourceItem],
              report: IngestReport) -> _IngestRun:
        errors: dict[int, str] = {i: it.error for i, it in enumerate(items) if it.error}
        todo = [i for i in range(len(items)) if i not in errors]
        return cls(settings, engine, pool_id, items, report, todo, errors)

    @property
    def n_urls(self) -> int:
        return sum(1 for i in self.todo if self.items[i].url)

    def accept(self, gif: AcceptedGif) -> None:
        self.pending.append(gif)
        if len(self.pending) >= _DB_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            _record(self.engine, self.pool_id, self.pending, self.seen, self.report)
            self.pending = []

    def store_refusals(self) -> None:
        self.report.refused = [(self.items[i].ref, self.errors[i]) for i in sorted(self.errors)]
        accepted = [self.items[i].ref for i in self.todo if i not in self.errors]
        record_refusals(self.engine, self.pool_id, self.report.refused, accepted)


@contextmanager
def _progress_bars(pool_name: str, n_urls: int, n_items: int,
                   progress: bool) -> Iterator[tuple[Any, Any]]:
    """(fetch bar, ingest bar), on stderr."""
    from tqdm import tqdm

    disable = None if progress else True  # None: tqdm shows itself only on a terminal
    with (
        tqdm(total=n_urls, desc="fetch", unit="url", disable=True if not n_urls else disable,
             file=sys.stderr) as fbar,
        tqdm(total=n_items, desc=f"ingest {pool_name}", unit="gif", disable=disable,
             file=sys.stderr) as bar,
    ):
        yield fbar, bar


def _window_size(settings: Settings) -> int:
    # A window of items at a time: its URLs are fetched, then every file in it is validated
    # and stored before the next window is fetched, so memory stays flat in the number of
    # URLs (at most one window of downloads is held), and order is the SOURCE's.
    return max(16, 4 * max(1, settings.fetch.concurrency))


def _windows(todo: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(todo), size):
        yield todo[start:start + size]


def _validate_window(run: _IngestRun, ready: list[int], fetched: dict[int, bytes],
                     workers: ThreadPoolExecutor) -> Iterator[tuple[int, AcceptedGif | str]]:
    # Pillow's decoder releases the GIL, so threads validate files side by side.
    return workers.map(
        lambda i: (i, validate_gif(run.settings, run.items[i], fetched.pop(i, None))), ready)


def _ingest_window(run: _IngestRun, part: list[int], trusted_endpoints: Collection[tuple[str, int]],
                   workers: ThreadPoolExecutor, fbar: Any, bar: Any) -> None:
    fetched = _fetch_window(run.settings, run.items, part, trusted_endpoints, fbar, run.errors)
    ready = [i for i in part if i not in run.errors]
    for i, outcome in _validate_window(run, ready, fetched, workers):
        bar.update(1)
        if isinstance(outcome, str):
            run.errors[i] = outcome
        else:
            run.accept(outcome)
    bar.update(len(part) - len(ready))  # the items whose fetch failed are done too


def ingest(
    settings: Settings,
    engine: Engine,
    pool_name: str,
    source: str | Path,
    *,
    progress: bool = False,
    trusted_endpoints: Collection[tuple[str, int]] = (),
    confine: Sequence[Path] | None = None,
    owner: str = OPERATOR,
    **source_options: Any,
) -> IngestReport:
    """Add every usable GIF of SOURCE to the pool (created if new); see the module doc.

    Raises PoolError only when SOURCE or the name as a whole is unusable; a bad file is a
    refusal in the report. `trusted_endpoints` exempts exact (ip, port) pairs from the
    private-address check (tests use it to reach a local server). `confine` limits the
    server files it may read to those folders (a chat/web admin's source). A `giphy:...`
    SOURCE goes to `scorer.giphy_import` (`source_options`: limit, rating; GiphyError when
    GIPHY fails). A pool this call created that ends with no GIF is removed again
    (`report.pool_dropped`): a source whose every file was refused leaves no empty pool.
    `owner` is whose a new pool is (`scorer.pool_owners.OPERATOR`, or a chat workspace's
    "<platform>:<workspace>"); a workspace may add to its own pools only (PoolError, before
    anything is read, and again when the pool is created: another may have taken the name).
    """
    check_may_add(engine, pool_name, owner)
    existed = pool_exists(engine, pool_name)
    try:
        report = _ingest_source(settings, engine, pool_name, source, progress=progress,
                                trusted_endpoints=trusted_endpoints, confine=confine,
                                owner=owner, **source_options)
    except BaseException:
        if not existed:
            drop_pool_if_empty(engine, pool_name, owner)
        raise
    if not existed and report.nothing_in:
        report.pool_dropped = drop_pool_if_empty(engine, pool_name, owner)
    return report


def _ingest_source(settings: Settings, engine: Engine, pool_name: str, source: str | Path, *,
                   progress: bool, trusted_endpoints: Collection[tuple[str, int]],
                   confine: Sequence[Path] | None, owner: str, **source_options: Any) -> IngestReport:
    if is_giphy_source(source):
        return ingest_giphy(settings, engine, pool_name, str(source), progress=progress,
                            trusted_endpoints=trusted_endpoints, owner=owner, **source_options)
    items = read_source(settings, source, confine=confine, trusted=trusted_endpoints)
    pool_id = get_or_create_pool(engine, pool_name, owner)
    run = _IngestRun.start(settings, engine, pool_id, items, IngestReport(pool=pool_name))
    with (
        _progress_bars(pool_name, run.n_urls, len(run.todo), progress) as (fbar, bar),
        ThreadPoolExecutor(max_workers=validation_workers()) as workers,
    ):
        for part in _windows(run.todo, _window_size(settings)):
            _ingest_window(run, part, trusted_endpoints, workers, fbar, bar)
        run.flush()
    run.store_refusals()
    return run.report


# ---------------------------------------------------------------------------------------
# list / show / remove


def _pool_id(session, name: str) -> int:  # type: ignore[no-untyped-def]
    pid = session.scalar(select(Pool.id).where(Pool.name == name))
    if pid is None:
        raise UnknownPoolError(name)
    return pid


def list_pools(db: Engine | Session, viewer: str = OPERATOR) -> list[dict]:
    """Every pool `viewer` may see (`scorer.pool_owners.may_see`; the operator: all) with
    its number of GIFs and its owner, by name (in the caller's Session, or its own)."""
    with unit_of_work(db) as s:
        rows = s.execute(
            select(Pool.name, Pool.description, Pool.created_at, Pool.owner, func.count(PoolGif.gif_sha))
            .outerjoin(PoolGif, PoolGif.pool_id == Pool.id)
            .group_by(Pool.id, Pool.name, Pool.description, Pool.created_at, Pool.owner)
            .order_by(Pool.name)
        ).all()
    return [
        {"name": n, "description": d or "", "gifs": int(c), "created_at": t.isoformat(timespec="seconds"),
         "owner": o}
        for n, d, t, o, c in rows if may_see(viewer, o)
    ]


def pool_gifs(engine: Engine, pool_name: str) -> list[str]:
    """The sha256 of every GIF in the pool, in the order they were added."""
    with session_scope(engine) as s:
        pid = _pool_id(s, pool_name)
        return list(
            s.scalars(
                select(PoolGif.gif_sha)
                .where(PoolGif.pool_id == pid)
                .order_by(PoolGif.added_at, PoolGif.gif_sha)
            )
        )


def pool_details(engine: Engine, pool_name: str, *, limit: int | None = 20) -> dict:
    """What `pool show` prints: totals, ratings, formats, refusals and the first GIFs."""
    with session_scope(engine) as s:
        pid = _pool_id(s, pool_name)
        pool = s.get(Pool, pid)
        assert pool is not None
        n, total_bytes, frames = s.execute(
            _in_pool(select(func.count(Gif.sha256), func.coalesce(func.sum(Gif.bytes), 0),
                            func.coalesce(func.sum(Gif.n_frames), 0)), pid)
        ).one()
        ratings = _counts_by(s, pid, Gif.rating)
        formats = _counts_by(s, pid, Gif.format)
        refusals = s.scalar(select(func.count(Refusal.id)).where(Refusal.pool_id == pid)) or 0
        latest = _latest_refusals(s, pid)
        members = list(s.scalars(select(PoolGif.gif_sha).where(PoolGif.pool_id == pid)))
        query = _in_pool(select(Gif), pid).order_by(PoolGif.added_at, Gif.sha256)
        gifs = [_gif_details(g) for g in s.scalars(query if limit is None else query.limit(limit))]
    return {
        "name": pool.name,
        "created_at": pool.created_at.isoformat(timespec="seconds"),
        "gifs": int(n),
        "bytes": int(total_bytes),
        "frames": int(frames),
        "ratings": {(str(k) if k else "unrated"): v for k, v in ratings.items()},
        "formats": {str(k): v for k, v in formats.items()},
        "refusals_recorded": int(refusals),
        "refusals_latest": latest,
        "prior": prior_summary(engine, members),
        "first": gifs,
    }


def _latest_refusals(s: Session, pool_id: int, n: int = 5) -> list[dict]:
    """The newest `n` refusals still standing in the pool: what to fix first."""
    rows = s.execute(select(Refusal.source_ref, Refusal.reason, Refusal.created_at)
                     .where(Refusal.pool_id == pool_id)
                     .order_by(Refusal.created_at.desc(), Refusal.id.desc()).limit(n)).all()
    return [{"source": ref, "reason": why, "at": at.isoformat(timespec="seconds")}
            for ref, why, at in rows]


def _in_pool(query: Any, pool_id: int) -> Any:
    """`query` over the GIFs of one pool."""
    return query.join(PoolGif, PoolGif.gif_sha == Gif.sha256).where(PoolGif.pool_id == pool_id)


def _counts_by(s: Session, pool_id: int, column: Any) -> dict[Any, int]:
    """How many of the pool's GIFs have each value of `column`."""
    rows = s.execute(_in_pool(select(column, func.count()), pool_id).group_by(column)).all()
    return {value: int(count) for value, count in rows}


def _gif_details(g: Gif) -> dict:
    return {
        "sha256": g.sha256, "title": g.title, "tags": list(g.tags or []),
        "alt_text": g.alt_text or "", "slug": g.slug or "", "width": g.width, "height": g.height,
        "frames": g.n_frames, "duration_ms": g.duration_ms, "bytes": g.bytes,
        "format": g.format, "rating": g.rating, "source_url": g.source_url,
    }


def set_pool_owner(engine: Engine, name: str, owner: str) -> str:
    """Give pool `name` to `owner` (`scorer.pool_owners`: "" shares it with every workspace);
    returns the owner it had. The operator's way to settle a pool whose owner is wrong, such
    as one a workspace's admin added from chat before pools had owners (it became shared).
    A running bot follows within seconds (`bot.score_matrix.version_stamp`)."""
    with session_scope(engine) as s:
        pool = s.scalar(select(Pool).where(Pool.name == name))
        if pool is None:
            raise UnknownPoolError(name)
        before, pool.owner = pool.owner, owner
    return before


def remove_pool(engine: Engine, name: str) -> int:
    """Delete the pool and its memberships; return how many. GIFs, scores and comparisons stay."""
    with session_scope(engine) as s:
        pid = _pool_id(s, name)
        removed = s.execute(delete(PoolGif).where(PoolGif.pool_id == pid)).rowcount or 0
        s.execute(update(Refusal).where(Refusal.pool_id == pid).values(pool_id=None))
        s.execute(delete(Pool).where(Pool.id == pid))
    return int(removed)


__all__ = [
    "IngestReport",
    "PoolError",
    "SourceItem",
    "UnknownPoolError",
    "gif_path",
    "ingest",
    "list_pools",
    "pool_details",
    "pool_gifs",
    "read_source",
    "remove_pool",
    "set_pool_owner",
]

"""What every pool ingest stores, whatever its SOURCE: one GIF file, its pool, its refusals.

`scorer.pool` (folders, manifests, URL lists) and `scorer.giphy_import` (`giphy:` sources)
both build `SourceItem`s, validate and store each file through `validate_gif` and report in
an `IngestReport`; the primitives live here, apart from either, so that `scorer.pool` can
dispatch a `giphy:` SOURCE to `scorer.giphy_import` without the two importing each other.

Each accepted file is stored once under its SHA-256 (`gif_path`), written atomically
(temporary file + os.replace), whatever pools it belongs to.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from scorer.fetch import too_large
from scorer.frames import GifDecodeError, GifInfo, verify_gif
from scorer.pool_owners import OPERATOR, add_refusal
from scorer.settings import Settings
from scorer.store import Pool, PoolGif, Refusal, session_scope

POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# `channel pools all` means every pool (scorer.settings): a pool by that name could never be
# chosen alone, and a channel limited to it would see every pool instead.
RESERVED_POOL_NAMES = frozenset({"all"})

_DB_CHUNK = 500  # refs per IN (...) list: well under SQLite's and PostgreSQL's bind limits


class PoolError(ValueError):
    """A pool name or SOURCE that cannot be used at all (not one bad file)."""


def check_pool_name(name: str) -> None:
    """Raise PoolError unless `name` can be a pool's name (the one rule every way in uses)."""
    if not POOL_NAME.match(name):
        raise PoolError(f"bad pool name {name!r}: start with a letter or digit, then letters, digits, "
                        "'.', '_' or '-' (at most 100)")
    if name.lower() in RESERVED_POOL_NAMES:
        raise PoolError(f"{name!r} cannot be a pool's name: `channel pools all` means every pool")


def gif_path(settings: Settings, sha256: str) -> Path:
    """Where the file with this SHA-256 lives: gifs_dir/ab/abcdef....gif (or .webp)."""
    base = settings.gifs_dir / sha256[:2] / sha256
    path = base.with_suffix(".gif")
    if not path.exists():
        webp = base.with_suffix(".webp")
        if webp.exists():
            return webp
    return path


@dataclass
class IngestReport:
    pool: str
    added: list[str] = field(default_factory=list)  # sha256 of GIFs new to this pool
    duplicates: list[str] = field(default_factory=list)  # sha256 already in the pool (or twice in the source)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (source_ref, reason)
    sources: dict[str, str] = field(default_factory=dict)  # sha256 -> the source_ref it came from
    pool_dropped: bool = False  # the pool was new and nothing went in: it was not kept

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def nothing_in(self) -> bool:
        """No GIF of the source is in the pool now, not even as a duplicate."""
        return not self.added and not self.duplicates

    def to_dict(self) -> dict:
        return {
            "pool": self.pool,
            "counts": {
                "added": len(self.added),
                "duplicates": len(self.duplicates),
                "refused": len(self.refused),
            },
            "added": [{"sha256": s, "source": self.sources.get(s, "")} for s in self.added],
            "duplicates": [{"sha256": s, "source": self.sources.get(s, "")} for s in self.duplicates],
            "refused": [{"source": ref, "reason": why} for ref, why in self.refused],
            "pool_kept": not self.pool_dropped,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        line = (f"pool {self.pool}: {len(self.added)} added, {len(self.duplicates)} duplicates, "
                f"{len(self.refused)} refused")
        if self.pool_dropped:
            line += f"; nothing added, so the new pool {self.pool} was not kept"
        return line

    def first_refusals(self, n: int = 3) -> str:
        """The first `n` refusals on one line, each "source: reason" (a job's detail)."""
        shown = "; ".join(f"{ref}: {why}" for ref, why in self.refused[:n])
        more = len(self.refused) - n
        return shown + (f"; and {more} more" if more > 0 else "")


@dataclass
class SourceItem:
    ref: str  # how the report and the refusals table name it
    path: Path | None = None
    url: str | None = None
    title: str = ""
    tags: list[str] = field(default_factory=list)
    alt_text: str = ""
    slug: str = ""
    rating: str | None = None
    error: str | None = None  # refused before reading (bad row, outside allowed folders)
    title_given: bool = False  # a manifest's own title, not one guessed from a file name


# ---------------------------------------------------------------------------------------
# validating and storing one file


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in the words of a refusal."""
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


@dataclass
class AcceptedGif:
    item: SourceItem
    sha: str
    size: int
    info: GifInfo


def _store_file(settings: Settings, sha: str, fmt: str, data: bytes) -> Path:
    path = settings.gifs_dir / sha[:2] / f"{sha}.{fmt}"
    if path.exists() and path.stat().st_size == len(data):
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Same folder, unique name, then an atomic rename: a reader never sees half a file.
    tmp = path.with_name(f".{sha}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # 0600: only this service's user reads the pool (it serves /gifs/ itself).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_file(settings: Settings, path: Path) -> bytes:
    """A regular file's bytes. Opened non-blocking and checked with fstat on the open file,
    so a named pipe (or a file swapped for one) is refused instead of hanging the ingest."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise GifDecodeError("cannot read the file: a symlink loop") from None
        raise GifDecodeError(f"cannot read the file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GifDecodeError(f"not a regular file: {file_kind(st.st_mode)}")
        if st.st_size > settings.fetch.max_gif_bytes:
            raise GifDecodeError(too_large(st.st_size, settings.fetch.max_gif_bytes))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(settings.fetch.max_gif_bytes + 1)
        if len(data) > settings.fetch.max_gif_bytes:
            raise GifDecodeError(too_large(None, settings.fetch.max_gif_bytes))
        return data
    except OSError as exc:
        raise GifDecodeError(f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def validate_gif(settings: Settings, item: SourceItem, data: bytes | None) -> AcceptedGif | str:
    """The accepted file, or the reason it is refused."""
    try:
        if data is None:
            assert item.path is not None
            data = _read_file(settings, item.path)
        if len(data) > settings.fetch.max_gif_bytes:
            return too_large(len(data), settings.fetch.max_gif_bytes)
        info = verify_gif(data, max_pixels=settings.fetch.max_gif_pixels, max_frames=settings.fetch.max_gif_frames,
                          max_total_pixels=settings.fetch.max_gif_total_pixels)
        sha = hashlib.sha256(data).hexdigest()
        _store_file(settings, sha, info.format, data)
        return AcceptedGif(item, sha, len(data), info)
    except GifDecodeError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot store the file: {exc.strerror or exc}"


def validation_workers() -> int:
    """Threads that validate GIFs side by side (Pillow releases the GIL while decoding)."""
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------
# the database side


def owner_of(engine: Engine, name: str) -> str | None:
    """The pool's owner, or None when there is no pool by that name."""
    with session_scope(engine) as s:
        return s.scalar(select(Pool.owner).where(Pool.name == name))


def check_may_add(engine: Engine, name: str, adder: str) -> None:
    """PoolError unless `adder` may add to pool `name` (a new name is anyone's)."""
    owner = owner_of(engine, name)
    if owner is not None and (refused := add_refusal(name, owner, adder)):
        raise PoolError(refused)


def get_or_create_pool(engine: Engine, name: str, owner: str = OPERATOR) -> int:
    """The pool's id, created for `owner` if new; PoolError when it is someone else's (checked
    in the same transaction: two workspaces racing for a new name, the second is refused)."""
    check_pool_name(name)
    for _ in range(2):
        try:
            with session_scope(engine) as s:
                pool = s.scalar(select(Pool).where(Pool.name == name))
                if pool is None:
                    pool = Pool(name=name, owner=owner)
                    s.add(pool)
                    s.flush()
                elif refused := add_refusal(name, pool.owner, owner):
                    raise PoolError(refused)
                return pool.id
        except IntegrityError:  # created by a concurrent ingest: read it back
            continue
    raise PoolError(f"cannot create pool {name!r}")


def record_refusals(engine: Engine, pool_id: int, refused: Sequence[tuple[str, str]],
                    accepted: Iterable[str] = ()) -> None:
    """The refusals of one ingest, replacing what earlier ingests recorded for the same
    sources in this pool; `accepted` (the refs that are in the pool now) clears theirs.

    So the `refusals` table holds what is refused *now*: a file refused twice counts once,
    and a file refused once and added later (fixed, or from another source with the same
    name) is no longer counted by `pool show`.
    """
    # PostgreSQL refuses NUL in text, and one such ref (a file name, a row) would sink the report
    refused = [(ref.replace("\x00", ""), why.replace("\x00", "")) for ref, why in refused]
    accepted = [ref.replace("\x00", "") for ref in accepted]
    stale = list(dict.fromkeys([*accepted, *(ref for ref, _ in refused)]))
    if not stale:
        return
    with session_scope(engine) as s:
        for start in range(0, len(stale), _DB_CHUNK):
            s.execute(delete(Refusal).where(Refusal.pool_id == pool_id,
                                            Refusal.source_ref.in_(stale[start:start + _DB_CHUNK])))
        s.add_all(Refusal(pool_id=pool_id, source_ref=ref, reason=why) for ref, why in refused)


def pool_exists(engine: Engine, name: str) -> bool:
    with session_scope(engine) as s:
        return s.scalar(select(Pool.id).where(Pool.name == name)) is not None


def drop_pool_if_empty(engine: Engine, name: str, owner: str = OPERATOR) -> bool:
    """Delete pool `name` when it holds no GIF (an add that refused everything created it);
    True when it was deleted. Its refusals stay, detached, as `remove_pool` leaves them.
    Only `owner`'s: a pool another workspace created meanwhile is never this add's to drop."""
    with session_scope(engine) as s:
        pid = s.scalar(select(Pool.id).where(Pool.name == name, Pool.owner == owner))
        if pid is None or s.scalar(select(PoolGif.gif_sha).where(PoolGif.pool_id == pid).limit(1)):
            return False
        s.execute(update(Refusal).where(Refusal.pool_id == pid).values(pool_id=None))
        s.execute(delete(Pool).where(Pool.id == pid))
    return True


__all__ = [
    "POOL_NAME",
    "RESERVED_POOL_NAMES",
    "AcceptedGif",
    "IngestReport",
    "PoolError",
    "SourceItem",
    "check_may_add",
    "check_pool_name",
    "drop_pool_if_empty",
    "file_kind",
    "get_or_create_pool",
    "gif_path",
    "owner_of",
    "pool_exists",
    "record_refusals",
    "validate_gif",
    "validation_workers",
]

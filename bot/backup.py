"""`moodgif backup` / `moodgif restore`: the database and the data files in one archive.

An archive is a tar.gz holding

    database/moodgif.sqlite3   a SQLite snapshot (online backup API), or
    database/moodgif.sql       a plain pg_dump of the PostgreSQL database,
    files/gifs/...             the pool files (settings.gifs_dir),
    files/features/...         the feature cache (optional: it can be recomputed),
    files/models/...           the trained heads,
    manifest.json              format version, schema revision, row and file counts, and
                               the sha256 of every part (written last, after hashing).

Consistency while the bot runs: the database snapshot is taken first and is a single
point in time (SQLite's backup API copies all pages in one step under a read lock; pg_dump
runs on a snapshot exported from the same transaction that counts the rows). The files are
copied after it: they are written before the rows that point to them and are stored under
their content hash, so every row in the snapshot finds its file; a file added later is a
harmless extra.

Restore refuses to replace non-empty data unless forced, verifies every checksum before it
touches anything, and swaps the new data in so that a failure leaves the old data as it
was: directories are renamed (and renamed back on failure); the SQLite database is written
through the backup API in one transaction; the PostgreSQL dump is replayed by psql in a
single transaction that also checks the row counts, so an error rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from tqdm import tqdm

from scorer.settings import Settings

FORMAT = "moodgif-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILE_PARTS = ("gifs", "features", "models")
SQLITE_MEMBER = "database/moodgif.sqlite3"
PG_MEMBER = "database/moodgif.sql"
CHUNK = 1 << 20
SPOOL_BYTES = 32 << 20
# Files being written by another process right now (atomic writes use a temp name first).
_IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


# ---------------------------------------------------------------------------------------
# helpers


def part_dir(settings: Settings, part: str) -> Path:
    return Path(getattr(settings, f"{part}_dir"))


def _dialect(url: str) -> str:
    name = make_url(url).get_backend_name()
    if name not in {"sqlite", "postgresql"}:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {name}")
    return name


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every regular file under root, in a stable order."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(_IN_PROGRESS_SUFFIXES):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path


def _listing_sha(files: dict[str, dict[str, Any]]) -> str:
    """One checksum for a whole directory part: sha256 of its sorted `sha  path` lines."""
    lines = "".join(f"{files[rel]['sha256']}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


class _HashingReader:
    """A file wrapper that hashes what tarfile reads from it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hash.update(data)
        return data


def _add_stable_file(tar: tarfile.TarFile, path: Path, member: str) -> tuple[str, int]:
    """Add a file nobody else writes (our own dump) by streaming it."""
    size = path.stat().st_size
    info = tarfile.TarInfo(member)
    info.size, info.mode, info.mtime = size, 0o600, int(path.stat().st_mtime)
    with path.open("rb") as f:
        reader = _HashingReader(f)
        tar.addfile(info, reader)  # type: ignore[arg-type]
    return reader.hash.hexdigest(), size


def _add_live_file(tar: tarfile.TarFile, path: Path, member: str) -> tuple[str, int] | None:
    """Add a file another process may touch: copy it once (hashing) so size and bytes agree.

    Returns None when the file vanished since it was listed (deleted after the snapshot).
    """
    h = hashlib.sha256()
    size = 0
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None
    with f, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        mtime = int(os.fstat(f.fileno()).st_mtime)
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            spool.write(chunk)
            size += len(chunk)
        spool.seek(0)
        info = tarfile.TarInfo(member)
        info.size, info.mode, info.mtime = size, 0o644, mtime
        tar.addfile(info, spool)
    return h.hexdigest(), size


def _progress(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="file", disable=not enabled, leave=False)


# ---------------------------------------------------------------------------------------
# database snapshots


def _sqlite_counts(conn: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return counts, revision


def _sqlite_snapshot(url: str, out: Path) -> tuple[dict[str, int], str | None]:
    src_path = _sqlite_path(url)
    if not src_path.is_file():
        raise BackupError(f"no database at {src_path}: nothing to back up")
    src = sqlite3.connect(str(src_path), timeout=30)
    dst = sqlite3.connect(str(out))
    try:
        # pages=-1 (the default): all pages in one step under one read transaction, so the
        # copy is one point in time even while the bot writes (WAL lets it go on writing).
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
        counts, revision = _sqlite_counts(dst)
    finally:
        dst.close()
        src.close()
    return counts, revision


_PG_QUERY_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "host": "PGHOST",
    "port": "PGPORT",
}


def pg_env(url: str) -> dict[str, str]:
    """libpq environment for pg_dump/psql: the password travels in the environment, never argv."""
    u = make_url(url)
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", u.host),
        ("PGPORT", u.port),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
    ):
        if value:
            env[key] = str(value)
    for key, value in u.query.items():
        if key in _PG_QUERY_ENV:
            env[_PG_QUERY_ENV[key]] = value if isinstance(value, str) else value[0]
    return env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (Debian: postgresql-client), "
            "of the server's major version or newer"
        )
    return path


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise BackupError(f"{what} failed (exit {proc.returncode}): {tail}")


def _pg_snapshot(engine: Engine, url: str, out: Path) -> tuple[dict[str, int], str | None, str]:
    pg_dump = _pg_tool("pg_dump")
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        # The exported snapshot is this transaction's: pg_dump sees exactly what we count.
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
            {"s": schema},
        ).scalars().all()
        counts = {
            t: conn.execute(text(f'SELECT count(*) FROM "{schema}"."{t}"')).scalar_one() for t in tables
        }
        revision = None
        if "alembic_version" in tables:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        _run(
            [pg_dump, "--format=plain", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
             f"--file={out}"],
            pg_env(url),
            "pg_dump",
        )
    return counts, revision, schema


# ---------------------------------------------------------------------------------------
# backup


def default_archive_name(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return f"moodgif-backup-{now:%Y%m%d-%H%M%S}.tar.gz"


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def _archive_path(dest: Path) -> Path:
    """Where the archive goes. A name without an archive suffix is a folder, even one that
    does not exist yet: `moodgif backup /backups/nightly` used to write a file called
    `nightly`, and the next night's run overwrote it."""
    if dest.is_dir() or (not dest.exists() and not dest.name.endswith(ARCHIVE_SUFFIXES)):
        dest.mkdir(parents=True, exist_ok=True)
        name = default_archive_name()
        named, n = dest / name, 1
        while named.exists():  # two backups in one second (a cron run and a manual one)
            named, n = dest / name.replace(".tar.gz", f"-{n}.tar.gz"), n + 1
        return named
    if dest.exists():
        raise BackupError(f"{dest} already exists, and a backup never overwrites one: give a new "
                          "name, or a folder to put a dated archive in")
    return dest


def create_backup(
    settings: Settings, dest: Path, *, include_features: bool = True, progress: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Write one archive with the database and the data files; returns (path, manifest).

    `dest` is an archive's file name (`.tar.gz`, `.tgz`), or a folder to put a dated archive
    in (an existing one, or a new one: any other name). The archive appears under its name
    only when complete (written as NAME.RANDOM.partial, then renamed). An archive already
    there is never overwritten: last night's backup is not lost to a mistyped command.
    """

    dest = _archive_path(Path(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = settings.db_url
    dialect = _dialect(url)
    parts_wanted = [p for p in FILE_PARTS if include_features or p != "features"]
    # A partial file of its own: two backups to the same name (a cron run and a manual
    # one in the same second) must not write into one file and race on its rename.
    partial = dest.with_name(f"{dest.name}.{secrets.token_hex(4)}.partial")

    try:
        return _create_backup(settings, dest, url, dialect, parts_wanted, partial, progress)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise BackupError(f"no space left while writing {dest} ({exc.strerror}); nothing was "
                              "changed: free some space or pick another folder") from None
        raise
    except sqlite3.OperationalError as exc:
        if "full" in str(exc) or "disk i/o" in str(exc).lower():
            raise BackupError(f"no space left for the database snapshot next to {dest} ({exc}); "
                              "nothing was changed: free some space or pick another folder") from None
        raise


def _create_backup(settings: Settings, dest: Path, url: str, dialect: str, parts_wanted: list[str],
                   partial: Path, progress: bool) -> tuple[Path, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=".moodgif-backup-", dir=dest.parent) as tmp:
        snapshot = _snapshot_database(url, dialect, Path(tmp))
        with _archive_written_atomically(partial, dest) as tar:
            parts = {"database": _add_database(tar, snapshot)}
            parts |= _add_data_files(tar, settings, parts_wanted, progress)
            manifest = _manifest(snapshot, parts, parts_wanted)
            _add_manifest(tar, manifest)
    return dest, manifest


@dataclass(frozen=True)
class _DatabaseSnapshot:
    """The database at one point in time: the file to archive, and what it holds."""

    file: Path
    member: str
    dialect: str
    counts: dict[str, int]
    revision: str | None
    pg_schema: str | None = None


def _snapshot_database(url: str, dialect: str, tmp: Path) -> _DatabaseSnapshot:
    """Taken first, before any file is listed (see the module docstring for why)."""
    from scorer.store import make_engine

    if dialect == "sqlite":
        db_file = tmp / "moodgif.sqlite3"
        counts, revision = _sqlite_snapshot(url, db_file)
        return _DatabaseSnapshot(db_file, SQLITE_MEMBER, dialect, counts, revision)
    db_file = tmp / "moodgif.sql"
    counts, revision, pg_schema = _pg_snapshot(make_engine(url), url, db_file)
    return _DatabaseSnapshot(db_file, PG_MEMBER, dialect, counts, revision, pg_schema)


@contextmanager
def _archive_written_atomically(partial: Path, dest: Path) -> Iterator[tarfile.TarFile]:
    """A tar.gz written as `partial` and renamed to `dest` only when complete; removed on failure."""
    try:
        # 0600 before the first byte: the archive holds the whole ledger.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(partial, 0o600)
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            yield tar
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def _add_database(tar: tarfile.TarFile, snapshot: _DatabaseSnapshot) -> dict[str, Any]:
    sha, size = _add_stable_file(tar, snapshot.file, snapshot.member)
    part: dict[str, Any] = {
        "member": snapshot.member, "sha256": sha, "bytes": size, "dialect": snapshot.dialect
    }
    if snapshot.pg_schema:
        part["schema"] = snapshot.pg_schema
    return part


def _add_data_files(tar: tarfile.TarFile, settings: Settings, parts_wanted: list[str],
                    progress: bool) -> dict[str, dict[str, Any]]:
    """Each wanted data folder, listed only now that the database snapshot is taken."""
    listings = {p: list(_walk_files(part_dir(settings, p))) for p in parts_wanted}
    bar = _progress(sum(len(v) for v in listings.values()), "backup", progress)
    parts = {part: _add_part_files(tar, part, entries, bar) for part, entries in listings.items()}
    bar.close()
    return parts


def _add_part_files(tar: tarfile.TarFile, part: str, entries: list[tuple[str, Path]],
                    bar: tqdm) -> dict[str, Any]:
    """Add one folder's files; returns its manifest entry (a file deleted since listing is left out)."""
    files: dict[str, dict[str, Any]] = {}
    for rel, path in entries:
        added = _add_live_file(tar, path, f"files/{part}/{rel}")
        bar.update(1)
        if added is not None:
            files[rel] = {"sha256": added[0], "bytes": added[1]}
    return {
        "member": f"files/{part}/",
        "count": len(files),
        "bytes": sum(f["bytes"] for f in files.values()),
        "sha256": _listing_sha(files),
        "files": files,
    }


def _manifest(snapshot: _DatabaseSnapshot, parts: dict[str, Any],
              parts_wanted: list[str]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "moodgif_version": _moodgif_version(),
        "revision": snapshot.revision,
        "dialect": snapshot.dialect,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "counts": {
            "tables": snapshot.counts,
            "files": {p: parts[p]["count"] for p in parts_wanted},
        },
        "parts": parts,
    }


def _add_manifest(tar: tarfile.TarFile, manifest: dict[str, Any]) -> None:
    """Added last: it holds the checksums of every member before it."""
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    info = tarfile.TarInfo(MANIFEST)
    info.size, info.mode = len(data), 0o644
    info.mtime = int(dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


def _moodgif_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moodgif")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------
# reading and verifying an archive


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise BackupError(f"refusing archive member with an unsafe path: {name!r}")
    return p


def read_archive(src: Path, staging: Path | None, *, progress: bool = False) -> dict[str, Any]:
    """Read every member, check every checksum against the manifest; return the manifest.

    With `staging`, the database dump goes to staging/database/ and the files to
    staging/files/<part>/...; without it nothing is written (a pure check).
    """
    src = Path(src)
    if not src.is_file():
        raise BackupError(f"no backup archive at {src}")
    seen: dict[str, tuple[str, int]] = {}
    manifest: dict[str, Any] | None = None
    bar = tqdm(desc="read", unit="file", disable=not progress, leave=False)
    try:
        with tarfile.open(src, "r:gz") as tar:
            for info in tar:
                rel = _safe_member(info.name)
                if info.isdir():
                    continue
                if not info.isfile():
                    raise BackupError(f"refusing archive member that is not a plain file: {info.name!r}")
                f = tar.extractfile(info)
                assert f is not None
                if info.name == MANIFEST:
                    manifest = json.loads(f.read())
                    continue
                if rel.parts[0] not in {"database", "files"}:
                    raise BackupError(f"unexpected archive member {info.name!r}")
                seen[info.name] = (_copy_member(f, staging.joinpath(*rel.parts) if staging else None), info.size)
                bar.update(1)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            # Writing the staging copy failed, not reading the archive: say so.
            raise BackupError(f"no space left to unpack {src} ({exc.strerror}); the archive is "
                              "fine and nothing was changed: free some space and retry") from None
        raise BackupError(f"{src} is damaged, truncated or not a tar.gz: {exc}") from None
    except (tarfile.TarError, EOFError, json.JSONDecodeError) as exc:
        raise BackupError(f"{src} is damaged, truncated or not a tar.gz: {exc}") from None
    finally:
        bar.close()
    return _checked_manifest(src, manifest, seen)


def _checked_manifest(src: Path, manifest: Any, seen: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The manifest, once its shape and every member's checksum are as it says; a damaged
    manifest is one clear BackupError, never a KeyError deep in the restore."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{src} has no moodgif manifest: not a moodgif backup, or truncated")
    try:
        version = int(manifest.get("version", 0))
        if version > FORMAT_VERSION:
            raise BackupError(
                f"{src} is backup format {version}, newer than this moodgif reads "
                f"({FORMAT_VERSION}): upgrade moodgif first"
            )
        # what restore reads later, here, so a damaged manifest is one clear line
        if not (isinstance(manifest["dialect"], str) and isinstance(manifest["counts"]["tables"], dict)):
            raise TypeError("dialect or table counts of the wrong kind")
        _verify(manifest, seen)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackupError(f"{src} has a damaged moodgif manifest ({type(exc).__name__}: {exc}); "
                          "nothing was changed") from None
    return manifest


def _copy_member(f: IO[bytes], target: Path | None) -> str:
    """Hash a member while (optionally) writing it out; returns its sha256."""
    h = hashlib.sha256()
    out = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = target.open("wb")
    try:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    return h.hexdigest()


def _verify(manifest: dict[str, Any], seen: dict[str, tuple[str, int]]) -> None:
    expected: dict[str, str] = {}
    db = manifest["parts"]["database"]
    expected[db["member"]] = db["sha256"]
    for part in FILE_PARTS:
        info = manifest["parts"].get(part)
        if info is None:
            continue
        if _listing_sha(info["files"]) != info["sha256"]:
            raise BackupError(f"manifest listing of {part} does not match its checksum")
        for rel, f in info["files"].items():
            expected[f"files/{part}/{rel}"] = f["sha256"]
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise BackupError(f"archive is missing {len(missing)} part(s), e.g. {missing[0]}")
    extra = sorted(set(seen) - set(expected))
    if extra:
        raise BackupError(f"archive has {len(extra)} member(s) not in its manifest, e.g. {extra[0]}")
    for name, sha in expected.items():
        if seen[name][0] != sha:
            raise BackupError(f"checksum mismatch for {name}: the archive is corrupt")


# ---------------------------------------------------------------------------------------
# restore


def existing_data(settings: Settings) -> list[str]:
    """What the installation already holds, e.g. ['gifs: 120 rows', 'gifs dir: 120 files']."""
    from sqlalchemy import inspect

    from scorer.salt import CHECK_KEY
    from scorer.store import make_engine

    found: list[str] = []
    url = settings.db_url
    if _dialect(url) != "sqlite" or _sqlite_path(url).is_file():
        engine = make_engine(url)
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                if table == "alembic_version":
                    continue
                # A bot started once on a new database (deploy.md's `enable --now`) has written
                # only its salt check: nothing a restore would lose.
                where = f" WHERE key <> '{CHECK_KEY}'" if table == "meta" else ""
                n = conn.execute(text(f'SELECT count(*) FROM "{table}"{where}')).scalar_one()
                if n:
                    found.append(f"{table}: {n} rows")
    for part in FILE_PARTS:
        n = sum(1 for _ in _walk_files(part_dir(settings, part)))
        if n:
            found.append(f"{part} dir: {n} files")
    return found


def restore_backup(
    settings: Settings, src: Path, *, force: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Replace the installation's database and files with an archive's; returns its manifest.
    Refused while a server or retrain worker runs on this home (`bot.home_lock`)."""
    from bot.home_lock import HomeBusy, home_lock

    _dialect(settings.db_url)
    if not Path(src).is_file():
        raise BackupError(f"no backup archive at {src}")
    try:
        with home_lock(settings.home, exclusive=True, doing="restore"):
            return _restore_unused(settings, Path(src), force=force, progress=progress)
    except HomeBusy as exc:
        raise BackupError(str(exc)) from None


def _restore_unused(settings: Settings, src: Path, *, force: bool, progress: bool) -> dict[str, Any]:
    """`restore_backup`, with no server or worker running on the home."""
    from scorer.migrate import upgrade
    from scorer.store import dispose_engines, make_engine

    url = settings.db_url
    dialect = _dialect(url)
    if not force:
        _refuse_if_in_use(settings)
    settings.home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.home))
    try:
        manifest = read_archive(Path(src), staging, progress=progress)
        if manifest["dialect"] != dialect:
            raise BackupError(
                f"the backup holds a {manifest['dialect']} database but this installation uses "
                f"{dialect}: restore into a {manifest['dialect']} installation"
            )
        engine = make_engine(url)
        _check_revision_known(engine, manifest.get("revision"))
        if dialect != "sqlite":
            _refuse_if_pg_in_use(url)
        swapped = _swap_in_dirs(settings, staging, manifest)
        try:
            if dialect == "sqlite":
                _restore_sqlite(staging / SQLITE_MEMBER, _sqlite_path(url), manifest)
            else:
                _restore_pg(engine, url, staging / PG_MEMBER, manifest)
        except BaseException:
            _swap_back(swapped)
            raise
        dispose_engines()
        # An older backup is brought up to this code's schema.
        upgrade(make_engine(url))
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_if_in_use(settings: Settings) -> None:
    found = existing_data(settings)
    if found:
        raise BackupError(
            "the installation already holds data (" + ", ".join(found[:4])
            + (", ..." if len(found) > 4 else "") + "): restore with --force to replace it"
        )


def _refuse_if_pg_in_use(url: str) -> None:
    """The home's lock sees processes on this home only: a bot on another host, or one started
    with another MOODGIF_HOME, still uses the database. Its open sessions say so."""
    from scorer.store import dispose_engines, make_engine

    dispose_engines()  # this process's idle pooled connections are no other user
    with make_engine(url).connect() as conn:
        others = conn.execute(text(
            "SELECT coalesce(nullif(application_name, ''), 'unnamed') || ' from ' "
            "|| coalesce(host(client_addr), 'a local socket') FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'")).scalars().all()  # not autovacuum's workers
    dispose_engines()
    if others:
        raise BackupError(
            f"{len(others)} other connection(s) use this PostgreSQL database ("
            + ", ".join(sorted(set(others))[:3]) + "): stop the bot and the worker on every host "
            "that uses it, then restore again (nothing was changed)")


def _check_revision_known(engine: Any, revision: str | None) -> None:
    """A backup made by a newer moodgif (a schema revision this code lacks) is refused."""
    from scorer.migrate import is_known_revision

    if revision is not None and not is_known_revision(engine, revision):
        raise BackupError(
            f"the backup's schema revision {revision} is unknown to this moodgif "
            "(made by a newer version?): upgrade moodgif first"
        ) from None


def _swap_in_dirs(settings: Settings, staging: Path, manifest: dict[str, Any]) -> list[tuple[Path, Path | None]]:
    """Rename each restored part into place, keeping the old one in staging/_old.

    Returns [(live dir, where its old content went or None)] for _swap_back.
    """
    old_root = staging / "_old"
    old_root.mkdir()
    swapped: list[tuple[Path, Path | None]] = []
    try:
        for part in FILE_PARTS:
            if part not in manifest["parts"]:
                continue  # e.g. a backup without the feature cache keeps the current one
            live = part_dir(settings, part)
            new = staging / "files" / part
            new.mkdir(parents=True, exist_ok=True)
            live.parent.mkdir(parents=True, exist_ok=True)
            kept = None
            if live.exists():
                kept = old_root / part
                os.rename(live, kept)
            swapped.append((live, kept))
            os.rename(new, live)
    except OSError as exc:
        _swap_back(swapped)
        raise BackupError(
            f"could not move restored files into place ({exc}); nothing was changed. "
            "The data folders must be plain folders on one file system with the home folder"
        ) from None
    return swapped


def _swap_back(swapped: list[tuple[Path, Path | None]]) -> None:
    for live, kept in reversed(swapped):
        if live.exists():
            shutil.rmtree(live)
        if kept is not None:
            os.rename(kept, live)


def _restore_sqlite(snapshot: Path, live: Path, manifest: dict[str, Any]) -> None:
    src = sqlite3.connect(str(snapshot))
    try:
        check = src.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the database in the backup fails SQLite's integrity check: {check}")
        counts, _ = _sqlite_counts(src)
        if counts != manifest["counts"]["tables"]:
            raise BackupError("the database in the backup does not hold the row counts its manifest lists")
        live.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(str(live), timeout=30)
        try:
            # One step = one write transaction on the live file: on any error SQLite rolls it
            # back, and other connections (WAL) see either the old or the new database.
            src.backup(dst)
        except sqlite3.Error as exc:
            raise BackupError(f"writing the database failed, old database kept: {exc}") from None
        finally:
            dst.close()
    finally:
        src.close()


def _restore_pg(engine: Engine, url: str, dump: Path, manifest: dict[str, Any]) -> None:
    psql = _pg_tool("psql")
    schema = manifest["parts"]["database"].get("schema", "public")
    with engine.connect() as conn:
        target_schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": target_schema}
        ).scalars().all()
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s"), {"s": target_schema}
        ).scalars().all()
    engine.dispose()  # our own idle connections must not hold locks on the tables we drop
    if target_schema != schema:
        raise BackupError(
            f"the backup's tables are in schema {schema!r}, this database uses {target_schema!r}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "drop.sql"
        if schema == "public":
            # pg_dump leaves the default public schema out of the dump: empty it instead.
            drop.write_text(
                "".join(f'DROP TABLE IF EXISTS "{schema}"."{t}" CASCADE;\n' for t in tables)
                + "".join(f'DROP SEQUENCE IF EXISTS "{schema}"."{s}" CASCADE;\n' for s in sequences)
            )
        else:
            drop.write_text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE;\n')
        # Checked inside the same transaction: a short or damaged replay rolls back whole.
        checks = "".join(
            f"  IF (SELECT count(*) FROM \"{schema}\".\"{t}\") <> {n} THEN\n"
            f"    RAISE EXCEPTION 'restore check: table {t} should hold {n} rows';\n  END IF;\n"
            for t, n in sorted(manifest["counts"]["tables"].items())
        )
        check = Path(tmp) / "check.sql"
        check.write_text(f"DO $moodgif$\nBEGIN\n{checks}  NULL;\nEND\n$moodgif$;\n")
        _run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
             "-f", str(drop), "-f", str(dump), "-f", str(check)],
            pg_env(url),
            "replaying the PostgreSQL dump (old database kept)",
        )

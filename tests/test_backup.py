"""Backup and restore round trips on real SQLite files and a real PostgreSQL database."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from bot.backup import BackupError, create_backup, read_archive, restore_backup
from scorer.migrate import head_revision
from scorer.settings import Settings, load_settings
from scorer.store import (
    Base,
    Comparison,
    Gif,
    ModelVersion,
    Pool,
    PoolGif,
    Prediction,
    dispose_engines,
    make_engine,
    pack_scores,
    session_scope,
)

FILES = {
    "gifs": {"ab/" + "ab" * 32 + ".gif": b"GIF89a" + bytes(range(200)), "cd/" + "cd" * 32 + ".gif": b"GIF89a-2"},
    "features": {"enc-1/" + "ab" * 32 + ".npy": np.arange(40, dtype="<f4").tobytes()},
    "models": {"v1/head.pt": b"\x80\x04weights", "v1/config.json": b'{"head": "fc"}'},
}


def _fill(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        pool = Pool(name="team")
        s.add(pool)
        for i, sha in enumerate(("ab" * 32, "cd" * 32)):
            s.add(Gif(sha256=sha, bytes=10 + i, width=4, height=4, n_frames=3, title=f"gif {i}", tags=["x"]))
        s.flush()
        s.add_all([PoolGif(pool_id=pool.id, gif_sha="ab" * 32), PoolGif(pool_id=pool.id, gif_sha="cd" * 32)])
        mv = ModelVersion(name="v1", encoder_id="enc-1", head_kind="fc", status="active", metrics={"rmse": 0.1})
        s.add(mv)
        s.flush()
        s.add(Prediction(model_version_id=mv.id, gif_sha="ab" * 32, scores=pack_scores(np.linspace(0, 1, 17))))
        s.add(Comparison(emotion=9, winner="ab" * 32, loser="cd" * 32, source="vote", vote_key="p1:u1"))
    for part, files in FILES.items():
        for rel, data in files.items():
            path = getattr(settings, f"{part}_dir") / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _state(settings: Settings) -> dict:
    """Everything a restore must bring back: rows of the main tables and all file bytes."""
    engine = make_engine(settings.db_url)
    out: dict = {}
    with session_scope(engine) as s:
        out["gifs"] = sorted((g.sha256, g.bytes, g.title, g.tags) for g in s.scalars(select(Gif)))
        out["pools"] = sorted(p.name for p in s.scalars(select(Pool)))
        out["pool_gifs"] = sorted(pg.gif_sha for pg in s.scalars(select(PoolGif)))
        out["models"] = sorted((m.name, m.status, json.dumps(m.metrics)) for m in s.scalars(select(ModelVersion)))
        out["predictions"] = sorted((p.gif_sha, bytes(p.scores)) for p in s.scalars(select(Prediction)))
        out["comparisons"] = sorted((c.winner, c.loser, c.vote_key) for c in s.scalars(select(Comparison)))
    for part in FILES:
        root = getattr(settings, f"{part}_dir")
        out[part] = {
            p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }
    return out


def _wipe(settings: Settings) -> None:
    """Lose everything: the database's tables (or file) and the data folders."""
    engine = make_engine(settings.db_url)
    if engine.dialect.name == "sqlite":
        dispose_engines()
        for suffix in ("", "-wal", "-shm"):
            Path(str(settings.home / "moodgif.db") + suffix).unlink(missing_ok=True)
    else:
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
    for part in FILES:
        shutil.rmtree(getattr(settings, f"{part}_dir"), ignore_errors=True)


def _rewrite(src: Path, dst: Path, member: Callable[[str, bytes], bytes], manifest: Callable[[dict], None] = lambda m: None) -> None:
    """Copy an archive, changing member bytes and/or the manifest (to fake damage)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                m = json.loads(data)
                manifest(m)
                data = json.dumps(m).encode()
            else:
                data = member(info.name, data)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def test_round_trip(settings: Settings, engine, tmp_path: Path) -> None:
    _fill(settings, engine)
    before = _state(settings)
    archive, manifest = create_backup(settings, tmp_path / "b.tar.gz")
    assert manifest["revision"] == head_revision(engine)
    assert manifest["dialect"] == engine.dialect.name
    assert manifest["counts"]["tables"]["gifs"] == 2
    assert manifest["counts"]["files"] == {"gifs": 2, "features": 1, "models": 2}
    assert all(len(f["sha256"]) == 64 for p in ("gifs", "models") for f in manifest["parts"][p]["files"].values())

    _wipe(settings)
    restore_backup(settings, archive)  # empty installation: no --force needed
    assert _state(settings) == before

    # now it holds data: a second restore is refused, and --force is needed
    with pytest.raises(BackupError, match="--force"):
        restore_backup(settings, archive)
    with session_scope(make_engine(settings.db_url)) as s:
        s.add(Pool(name="added-later"))
    (settings.gifs_dir / "stray.gif").write_bytes(b"later")
    restore_backup(settings, archive, force=True)
    assert _state(settings) == before


def test_a_postgresql_restore_is_refused_while_another_host_uses_the_database(
        settings: Settings, engine, tmp_path: Path) -> None:
    """The home's lock cannot see a bot on another host (or one started with another home):
    its open session to the database refuses the restore before anything is swapped."""
    from sqlalchemy import create_engine

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's users are processes on this home: the home's lock covers them")
    _fill(settings, engine)
    archive, _ = create_backup(settings, tmp_path / "b.tar.gz")
    with session_scope(make_engine(settings.db_url)) as s:
        s.add(Pool(name="added-later"))
    current = _state(settings)
    other_host = create_engine(settings.db_url, connect_args={"application_name": "moodgif-elsewhere"})
    try:
        with other_host.connect():
            with pytest.raises(BackupError, match=r"1 other connection\(s\).*moodgif-elsewhere.*nothing was changed"):
                restore_backup(settings, archive, force=True)
            assert _state(settings) == current
    finally:
        other_host.dispose()
    restore_backup(settings, archive, force=True)  # once it is gone
    assert "added-later" not in _state(settings)["pools"]


def test_damaged_archive_changes_nothing(settings: Settings, engine, tmp_path: Path) -> None:
    _fill(settings, engine)
    archive, _ = create_backup(settings, tmp_path / "b.tar.gz")
    with session_scope(engine) as s:
        s.add(Pool(name="current"))
    (settings.models_dir / "v2.pt").write_bytes(b"newer model")
    current = _state(settings)

    flipped = tmp_path / "flipped.tar.gz"
    _rewrite(archive, flipped, lambda name, data: data[:-1] + b"X" if name.startswith("files/gifs/") else data)
    with pytest.raises(BackupError, match="checksum mismatch"):
        restore_backup(settings, flipped, force=True)
    with pytest.raises(BackupError, match="checksum mismatch"):
        read_archive(flipped, None)
    assert _state(settings) == current

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BackupError):
        restore_backup(settings, truncated, force=True)
    assert _state(settings) == current
    assert not list(settings.home.glob(".restore-*")), "staging folders are cleaned up"


@pytest.mark.parametrize("manifest", [
    {"format": "moodgif-backup", "version": 1},  # no parts
    {"format": "moodgif-backup", "version": "x"},
    {"format": "moodgif-backup", "version": 1, "dialect": "sqlite", "counts": {"tables": {}},
     "parts": {"database": {}}},
    [1],
])
def test_a_damaged_manifest_is_one_clear_error(tmp_path: Path, manifest: object) -> None:
    archive = tmp_path / "odd.tar.gz"
    data = json.dumps(manifest).encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match=r"(damaged moodgif manifest|no moodgif manifest)"):
        read_archive(archive, None)


def test_failing_database_step_keeps_old_data(settings: Settings, engine, tmp_path: Path) -> None:
    """The manifest promises more rows than the dump holds: SQLite stops before writing,
    PostgreSQL's replay fails its in-transaction check and rolls back; files are swapped back."""
    _fill(settings, engine)
    archive, _ = create_backup(settings, tmp_path / "b.tar.gz")
    with session_scope(engine) as s:
        s.add(Pool(name="current"))
    (settings.gifs_dir / "only-now.gif").write_bytes(b"now")
    current = _state(settings)

    def lie(m: dict) -> None:
        m["counts"]["tables"]["gifs"] += 5

    bad = tmp_path / "bad.tar.gz"
    _rewrite(archive, bad, lambda _n, d: d, lie)
    with pytest.raises(BackupError):
        restore_backup(settings, bad, force=True)
    dispose_engines()
    assert _state(settings) == current


def test_unknown_revision_is_refused(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:
    _fill(sqlite_settings, sqlite_engine)
    archive, _ = create_backup(sqlite_settings, tmp_path / "b.tar.gz")
    newer = tmp_path / "newer.tar.gz"
    _rewrite(archive, newer, lambda _n, d: d, lambda m: m.update(revision="9999_from_the_future"))
    with pytest.raises(BackupError, match="upgrade moodgif first"):
        restore_backup(sqlite_settings, newer, force=True)


def test_dialect_mismatch_is_refused(sqlite_settings: Settings, sqlite_engine, pg_url: str, tmp_path: Path) -> None:
    _fill(sqlite_settings, sqlite_engine)
    archive, _ = create_backup(sqlite_settings, tmp_path / "b.tar.gz")
    pg = load_settings(env={}, home=str(tmp_path / "pg-home"), database_url=pg_url)
    with pytest.raises(BackupError, match="holds a sqlite database"):
        restore_backup(pg, archive)


def test_backup_while_another_thread_writes(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:
    """Each writer transaction adds one GIF and its pool row: a consistent snapshot has as
    many pool_gifs as gifs, whatever moment it was taken at."""
    settings = sqlite_settings
    with session_scope(sqlite_engine) as s:
        s.add(Pool(id=1, name="p"))
    stop = threading.Event()
    written = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(20000):
                if stop.is_set():
                    break
                with session_scope(sqlite_engine) as s:
                    sha = f"{i:064x}"
                    s.add(Gif(sha256=sha, bytes=i, width=1, height=1, n_frames=1))
                    s.flush()
                    s.add(PoolGif(pool_id=1, gif_sha=sha))
                written[0] = i + 1
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        while written[0] < 50 and t.is_alive():
            threading.Event().wait(0.01)
        manifests = []
        for k in range(3):
            _, m = create_backup(settings, tmp_path / f"b{k}.tar.gz")
            manifests.append(m)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors
    counts = [m["counts"]["tables"] for m in manifests]
    for c in counts:
        assert c["gifs"] == c["pool_gifs"] > 0
    assert counts[-1]["gifs"] <= written[0]

    # The archived database is a valid, self-contained file with exactly those rows.
    staging = tmp_path / "staging"
    read_archive(tmp_path / "b2.tar.gz", staging)
    con = sqlite3.connect(staging / "database" / "moodgif.sqlite3")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM gifs").fetchone()[0] == counts[-1]["gifs"]
    con.close()


def test_cli_backup_and_restore(settings: Settings, engine, tmp_path: Path, monkeypatch) -> None:
    from bot.cli import cli

    _fill(settings, engine)
    before = _state(settings)
    monkeypatch.setenv("MOODGIF_HOME", str(settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", settings.db_url)
    runner = CliRunner()
    out_dir = tmp_path / "backups"
    res = runner.invoke(cli, ["backup", f"{out_dir}/"])
    assert res.exit_code == 0, res.output
    assert "backup written" in res.output and "2 gifs" in res.output
    (archive,) = out_dir.glob("moodgif-backup-*.tar.gz")

    res = runner.invoke(cli, ["restore", str(archive)])
    assert res.exit_code == 1 and "--force" in res.output
    res = runner.invoke(cli, ["restore", "--check", str(archive)])
    assert res.exit_code == 0 and "backup ok" in res.output

    _wipe(settings)
    res = runner.invoke(cli, ["restore", str(archive)])
    assert res.exit_code == 0, res.output
    assert _state(settings) == before
    res = runner.invoke(cli, ["restore", str(tmp_path / "missing.tar.gz")])
    assert res.exit_code == 1 and "no backup archive" in res.output


def test_restore_on_a_host_without_the_salt_says_so_and_serve_stops(
        sqlite_settings: Settings, sqlite_engine, tmp_path: Path, monkeypatch) -> None:
    """The salt is never in a backup (docs/deploy.md): a restore onto a new host warns at once,
    and `serve` stops with the fix instead of answering every /gif with a 500."""
    from bot.cli import cli
    from scorer.salt import load_salt, salt_file, salt_problem

    settings, engine = sqlite_settings, sqlite_engine
    _fill(settings, engine)
    salt = load_salt(engine, settings)  # what the first vote does: the ledger's fingerprint
    monkeypatch.setenv("MOODGIF_HOME", str(settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("MOODGIF_HTTP_PORT", "0")
    runner = CliRunner()
    archive = tmp_path / "b.tar.gz"
    assert runner.invoke(cli, ["backup", str(archive)]).exit_code == 0
    _wipe(settings)
    salt_file(settings).unlink()  # a new machine: the backup, not the secret
    res = runner.invoke(cli, ["restore", str(archive)])
    assert res.exit_code == 0 and "restored" in res.stdout
    assert "warning:" in res.stderr and "user_hash_salt is missing" in res.stderr, res.stderr
    served = runner.invoke(cli, ["serve"])
    assert served.exit_code == 1 and "user_hash_salt is missing" in served.output, served.output
    assert not salt_file(settings).exists()  # nothing made up in its place
    salt_file(settings).write_text(salt + "\n")  # the fix it names
    assert salt_problem(make_engine(settings.db_url), settings) == ""


def test_a_salt_lost_for_good_is_started_anew_and_the_votes_stay(
        sqlite_settings: Settings, sqlite_engine, tmp_path: Path, monkeypatch) -> None:
    """The old host is gone with its salt: `restore --new-salt` lets the new one serve, with
    every vote kept, and says what is lost (who cast them)."""
    from sqlalchemy import func, select

    from bot.cli import cli
    from scorer.salt import load_salt, salt_file, salt_problem
    from scorer.store import Comparison, session_scope

    settings, engine = sqlite_settings, sqlite_engine
    _fill(settings, engine)
    old = load_salt(engine, settings)
    with session_scope(engine) as s:
        votes = s.scalar(select(func.count()).select_from(Comparison))
    monkeypatch.setenv("MOODGIF_HOME", str(settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", settings.db_url)
    runner = CliRunner()
    archive = tmp_path / "b.tar.gz"
    assert runner.invoke(cli, ["backup", str(archive)]).exit_code == 0
    _wipe(settings)
    salt_file(settings).unlink()
    assert runner.invoke(cli, ["restore", "--check", "--new-salt", str(archive)]).exit_code == 2
    res = runner.invoke(cli, ["restore", "--new-salt", str(archive)])
    assert res.exit_code == 0 and "new user-hash salt" in res.stdout, res.output
    assert "warning:" not in res.stderr
    engine = make_engine(settings.db_url)
    assert salt_problem(engine, settings) == ""  # `serve` would start
    assert load_salt(engine, settings) != old
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Comparison)) == votes
    again = runner.invoke(cli, ["restore", "--force", "--new-salt", str(archive)])  # the salt is here now
    assert again.exit_code == 0 and "new user-hash salt" in again.stdout  # a backup of the old ledger


def test_restore_is_refused_while_a_server_runs_on_the_home(sqlite_settings: Settings, sqlite_engine,
                                                            tmp_path: Path) -> None:
    """`restore --force` once swapped the database under a running `serve`, whose next Send
    then landed in the restored file; the home's lock (bot.home_lock) stops it now."""
    from bot.home_lock import HomeBusy, home_lock

    settings, engine = sqlite_settings, sqlite_engine
    _fill(settings, engine)
    archive = tmp_path / "b.tar.gz"
    create_backup(settings, archive)
    with home_lock(settings.home, exclusive=False, doing="serve"):  # what `serve` holds
        with pytest.raises(BackupError, match="server, retrain or worker is running"):
            restore_backup(settings, archive, force=True)
        with home_lock(settings.home, exclusive=False, doing="run the retrain worker"):
            pass  # a server and the worker share the home
    with (home_lock(settings.home, exclusive=True, doing="restore"),  # a restore running
          pytest.raises(HomeBusy, match="a restore is running"),
          home_lock(settings.home, exclusive=False, doing="serve")):
        pass
    # `retrain --once` holds the lock too: it once ran on, under a restore, into a bare
    # AssertionError and left a stray candidate in the restored database
    from click.testing import CliRunner

    from bot.cli import cli

    with home_lock(settings.home, exclusive=True, doing="restore"):
        res = CliRunner().invoke(cli, ["retrain", "--once"], env={
            "MOODGIF_HOME": str(settings.home), "MOODGIF_DATABASE_URL": settings.db_url})
    assert res.exit_code == 1 and "cannot retrain: a restore is running" in res.output, res.output
    restore_backup(settings, archive, force=True)  # nothing runs: it goes ahead


def test_a_database_a_bot_only_started_on_restores_without_force(sqlite_settings: Settings, sqlite_engine) -> None:
    """deploy.md's `systemctl enable --now` starts the bot on the new database before the
    admin restores: its only row, the salt check, is no data to lose."""
    from bot.backup import existing_data
    from scorer.salt import load_salt

    load_salt(sqlite_engine, sqlite_settings)  # what a first `serve` writes
    assert existing_data(sqlite_settings) == []
    with session_scope(sqlite_engine) as s:
        s.add(Pool(name="real-data"))
    assert existing_data(sqlite_settings) == ["pools: 1 rows"]


def test_score_and_pool_add_are_refused_while_a_restore_runs(sqlite_settings: Settings, sqlite_engine,
                                                             tmp_path: Path) -> None:
    """`moodgif score` (hours on a big pool) and `pool add` once ran on under a restore: the
    score wrote a stray candidate model version and feature files into the restored home (or
    died on a foreign key); they hold the home's lock now, as `retrain --once` does."""
    from click.testing import CliRunner

    from bot.cli import cli
    from bot.home_lock import home_lock

    settings = sqlite_settings
    _fill(settings, sqlite_engine)
    src = tmp_path / "incoming"
    src.mkdir()
    (src / "a.gif").write_bytes(FILES["gifs"]["ab/" + "ab" * 32 + ".gif"])
    env = {"MOODGIF_HOME": str(settings.home), "MOODGIF_DATABASE_URL": settings.db_url}
    before = _state(settings)
    with home_lock(settings.home, exclusive=True, doing="restore"):
        scored = CliRunner().invoke(cli, ["score", "--no-prior", "--encoder", "motion"], env=env)
        added = CliRunner().invoke(cli, ["pool", "add", "late", str(src)], env=env)
    assert scored.exit_code == 1 and "cannot score: a restore is running" in scored.output, scored.output
    assert added.exit_code == 1 and "cannot add to a pool: a restore is running" in added.output, added.output
    dispose_engines()
    assert _state(settings) == before


def test_two_backups_to_one_name_at_once_both_finish(sqlite_settings: Settings, sqlite_engine,
                                                     tmp_path: Path, monkeypatch) -> None:
    """A cron backup and a manual one in the same second pick the same dated name: they once
    shared NAME.partial, and the one that renamed second died on a FileNotFoundError."""
    import bot.backup as backup

    _fill(sqlite_settings, sqlite_engine)
    both_writing = threading.Barrier(2, timeout=30)
    add_files = backup._add_data_files

    def add_files_together(*args, **kwargs):  # type: ignore[no-untyped-def]
        both_writing.wait()  # each has its archive open: the writes overlap
        return add_files(*args, **kwargs)

    monkeypatch.setattr(backup, "_add_data_files", add_files_together)
    dest = tmp_path / "same.tar.gz"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            create_backup(sqlite_settings, dest)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert read_archive(dest, None)["counts"]["tables"]["gifs"] == 2
    assert not list(tmp_path.glob("*.partial"))


def test_a_name_without_suffix_is_a_folder_and_no_archive_is_overwritten(
        sqlite_settings: Settings, sqlite_engine, tmp_path: Path, monkeypatch) -> None:
    """`moodgif backup /backups/nightly` wrote a file called `nightly`, and the next night's
    run overwrote it: now it is a folder of dated archives, and an existing archive stays."""
    from bot.cli import cli

    _fill(sqlite_settings, sqlite_engine)
    monkeypatch.setenv("MOODGIF_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("MOODGIF_DATABASE_URL", sqlite_settings.db_url)
    runner = CliRunner()
    nightly = tmp_path / "nightly"
    for _ in range(2):  # the same second, most likely: the second gets its own name
        res = runner.invoke(cli, ["backup", str(nightly)])
        assert res.exit_code == 0, res.output
    archives = sorted(nightly.glob("moodgif-backup-*.tar.gz"))
    assert nightly.is_dir() and len(archives) == 2
    for archive in archives:
        assert read_archive(archive, None)["counts"]["tables"]["gifs"] == 2

    named = tmp_path / "x.tar.gz"
    assert runner.invoke(cli, ["backup", str(named)]).exit_code == 0
    first = named.read_bytes()
    res = runner.invoke(cli, ["backup", str(named)])
    assert res.exit_code == 1 and "already exists" in res.output and "never overwrites" in res.output
    assert named.read_bytes() == first
    assert not list(tmp_path.rglob("*.partial"))

"""Pool ingest on real databases (SQLite and PostgreSQL): storage, dedup, refusals, CLI."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from _h1_gifs import good_gif, huge_canvas_gif, many_frames_gif
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import func, select

from scorer.demo_pool import make_demo_pool
from scorer.pool import (
    PoolError,
    UnknownPoolError,
    gif_path,
    ingest,
    list_pools,
    pool_details,
    pool_gifs,
    read_source,
    remove_pool,
)
from scorer.settings import Settings
from scorer.store import Gif, PoolGif, Refusal, session_scope


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _corrupt_palette() -> bytes:
    data = bytearray(good_gif(99, size=16, n=3))
    data[10] = (data[10] & ~7) | 7
    return bytes(data)


BROKEN = {
    "zero.gif": (b"", "empty file"),
    "truncated.gif": (good_gif(7, size=32, n=6)[:300], "truncated"),
    "png.gif": (_png_bytes(), "PNG"),
    "text.gif": (b"this is a text file, not a gif\n", "text"),
    "bomb.gif": (huge_canvas_gif(), "30000x30000"),
}


def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.gifs_dir.rglob("*") if p.is_file())


def test_five_good_five_broken(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(5):
        (folder / f"good{i}.gif").write_bytes(good_gif(i))
    for name, (data, _) in BROKEN.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("ignored: not a .gif/.webp name")

    report = ingest(settings, engine, "mixed", folder)
    assert len(report.added) == 5 and not report.duplicates
    reasons = dict(report.refused)
    assert set(reasons) == set(BROKEN)
    for name, (_, expected) in BROKEN.items():
        assert expected in reasons[name], (name, reasons[name])
    with session_scope(engine) as s:
        rows = s.execute(select(Refusal.source_ref, Refusal.reason)).all()
    assert {r for r, _ in rows} == set(BROKEN)
    assert _count(engine, Gif) == 5 and len(pool_gifs(engine, "mixed")) == 5
    files = _stored_files(settings)
    assert len(files) == 5 and not any(p.name.endswith(".tmp") for p in files)
    for sha in report.added:
        assert gif_path(settings, sha).is_file()
        assert gif_path(settings, sha) == settings.gifs_dir / sha[:2] / f"{sha}.gif"


def test_more_bad_input(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "frames.gif").write_bytes(many_frames_gif(10_000))
    (folder / "palette.gif").write_bytes(_corrupt_palette())
    (folder / "ok.gif").write_bytes(good_gif(42))
    report = ingest(settings, engine, "bad", folder)
    reasons = dict(report.refused)
    assert "too many frames" in reasons["frames.gif"]
    assert "corrupt GIF" in reasons["palette.gif"] or "truncated" in reasons["palette.gif"]
    assert len(report.added) == 1
    # the byte cap, checked before reading a file
    big = tmp_path / "big"
    big.mkdir()
    (big / "big.gif").write_bytes(good_gif(43, size=40, n=8))
    (big / "ok.gif").write_bytes(good_gif(44, size=4, n=2))
    small = settings.override(fetch__max_gif_bytes=300)
    report = ingest(small, engine, "bad", big)
    assert "too large" in dict(report.refused)["big.gif"] and len(report.added) == 1


def test_rerun_adds_nothing_and_dedups_across_pools(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "g"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.gif").write_bytes(good_gif(100 + i))
    (folder / "copy.gif").write_bytes(good_gif(100))  # same bytes twice in one source
    first = ingest(settings, engine, "one", folder)
    assert len(first.added) == 4 and len(first.duplicates) == 1 and first.ok
    again = ingest(settings, engine, "one", folder)
    assert not again.added and len(again.duplicates) == 5
    other = ingest(settings, engine, "two", folder)
    assert len(other.added) == 4
    assert _count(engine, Gif) == 4 and _count(engine, PoolGif) == 8
    assert len(_stored_files(settings)) == 4
    assert {p["name"]: p["gifs"] for p in list_pools(engine)} == {"one": 4, "two": 4}


def test_manifest_rows_outside_allowed_folders(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (base / "sub" / "in.gif").write_bytes(good_gif(1))
    (outside / "out.gif").write_bytes(good_gif(2))
    (base / "link.gif").symlink_to(outside / "out.gif")
    manifest = base / "m.csv"
    manifest.write_text(
        "path,title,tags,rating,truth_anger\n"
        "sub/in.gif,inside,a;b,pg,0.5\n"
        "../elsewhere/out.gif,escape,,g,0.1\n"
        f"{outside / 'out.gif'},absolute,,g,0.1\n"
        "link.gif,symlink,,g,0.1\n"
        ",nothing,,g,0\n"
        "sub/in.gif,bad rating,,xxx,0\n"
    )
    report = ingest(settings, engine, "m", manifest)
    assert len(report.added) == 1
    reasons = dict(report.refused)
    for ref in ("../elsewhere/out.gif", str(outside / "out.gif"), "link.gif"):
        assert "outside" in reasons[ref]
    assert "no path or url" in reasons["row 6"]
    assert any("unknown rating" in why for why in reasons.values())
    with session_scope(engine) as s:
        gif = s.get(Gif, report.added[0])
        assert gif is not None
        assert (gif.title, gif.tags, gif.rating, gif.rating_source) == ("inside", ["a", "b"], "pg", "manifest")
        assert gif.n_frames == 4 and (gif.width, gif.height) == (16, 16)

    allowed = settings.override(fetch__allowed_source_dirs=[str(outside)])
    report2 = ingest(allowed, engine, "m", manifest)
    assert len(report2.added) == 1  # out.gif, now allowed (the other rows point to it too)
    assert len(report2.duplicates) == 3


def test_jsonl_manifest(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.gif").write_bytes(good_gif(5))
    (tmp_path / "b.gif").write_bytes(good_gif(6))
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"path": "a.gif", "title": "A", "tags": ["x", "y"], "rating": "g"}) + "\n"
        + "{not json\n\n"
        + json.dumps({"file": "b.gif"}) + "\n"
        + json.dumps(["a list"]) + "\n"
    )
    report = ingest(settings, engine, "j", m)
    assert len(report.added) == 2
    assert [r for r, _ in report.refused] == ["line 2", "line 5"]
    with session_scope(engine) as s:
        titles = {g.title: g.tags for g in s.scalars(select(Gif))}
    assert titles["A"] == ["x", "y"]


def test_list_show_remove(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.gif").write_bytes(good_gif(200 + i))
    (folder / "zero.gif").write_bytes(b"")
    report = ingest(settings, engine, "keep", folder)
    ingest(settings, engine, "drop", folder)
    info = pool_details(engine, "drop", limit=2)
    assert info["gifs"] == 3 and len(info["first"]) == 2 and info["refusals_recorded"] == 1
    assert info["formats"] == {"gif": 3} and info["ratings"] == {"unrated": 3}
    assert remove_pool(engine, "drop") == 3
    assert [p["name"] for p in list_pools(engine)] == ["keep"]
    with pytest.raises(UnknownPoolError):
        pool_gifs(engine, "drop")
    with pytest.raises(UnknownPoolError):
        remove_pool(engine, "drop")
    # membership only: the GIFs, their files and the refusal log stay
    assert _count(engine, Gif) == 3 and _count(engine, Refusal) == 2
    assert all(gif_path(settings, s).is_file() for s in report.added)
    assert sorted(pool_gifs(engine, "keep")) == sorted(report.added)


def test_bad_sources(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PoolError, match="no such file"):
        ingest(settings, engine, "p", tmp_path / "missing")
    for empty in ("", "  "):  # an unset $DIR: not every GIF under the current folder
        with pytest.raises(PoolError, match="SOURCE is empty"):
            ingest(settings, engine, "p", empty)
    assert "p" not in [row["name"] for row in list_pools(engine)]
    with pytest.raises(PoolError, match="bad pool name"):
        ingest(settings, engine, "no spaces please", tmp_path)
    for reserved in ("all", "ALL"):  # `channel pools all` means every pool
        with pytest.raises(PoolError, match="means every pool"):
            ingest(settings, engine, reserved, tmp_path)
    m = tmp_path / "m.csv"
    m.write_text("title\nx\n")
    with pytest.raises(PoolError, match=r"'path' \(or 'file'\) or 'url' column"):
        ingest(settings, engine, "p", m)


def test_url_list_items(sqlite_settings: Settings, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("# comment\n\nhttps://example.org/a.gif\nftp://example.org/b.gif\nnot a url\n")
    items = read_source(sqlite_settings, urls)
    assert [i.url for i in items] == ["https://example.org/a.gif", None, None]
    assert "not an http(s) URL" in (items[1].error or "")


def _cli(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    from bot.cli import cli

    env = {"MOODGIF_HOME": str(settings.home), "MOODGIF_DATABASE_URL": settings.database_url}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_demo_pool_then_add_twice(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    demo = tmp_path / "demo"
    res = _cli(settings, "demo-pool", str(demo), "--count", "24", "--seed", "3")
    assert res.exit_code == 0, res.output
    res = _cli(settings, "pool", "add", "demo", str(demo / "manifest.csv"))
    assert res.exit_code == 0, res.output
    assert "24 added, 0 duplicates, 0 refused" in res.output
    res = _cli(settings, "pool", "add", "demo", str(demo / "manifest.csv"), "--json")
    assert res.exit_code == 0
    out = json.loads(res.output)
    assert out["counts"] == {"added": 0, "duplicates": 24, "refused": 0}
    # the ground truth stays in the manifest: no column of the database holds it
    with session_scope(engine) as s:
        gif = s.scalars(select(Gif)).first()
        assert gif is not None and gif.rating in {"g", "pg", "pg-13"}
        assert "truth" not in json.dumps(gif.tags) and gif.title.startswith("demo face")
    res = _cli(settings, "pool", "list", "--json")
    assert json.loads(res.output)[0]["gifs"] == 24
    res = _cli(settings, "pool", "show", "demo")
    assert res.exit_code == 0 and "GIFs      24" in res.output
    res = _cli(settings, "pool", "remove", "demo")
    assert res.exit_code == 0 and "24 memberships" in res.output
    res = _cli(settings, "pool", "show", "demo")
    assert res.exit_code == 1 and "no pool named 'demo'" in res.output


def test_cli_exit_code_when_refused(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "good.gif").write_bytes(good_gif(1))
    (folder / "bad.gif").write_bytes(b"GIF89a nope")
    res = _cli(settings, "pool", "add", "p", str(folder), "--json")
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["counts"] == {"added": 1, "duplicates": 0, "refused": 1}
    assert out["refused"][0]["source"] == "bad.gif" and out["refused"][0]["reason"]
    res = _cli(settings, "pool", "add", "p", str(folder))
    assert res.exit_code == 1 and "bad.gif:" in res.output
    res = _cli(settings, "pool", "add", "p", str(tmp_path / "nope"))
    assert res.exit_code == 2 and "no such file" in res.output


@pytest.mark.slow
def test_large_demo_ingest_is_stable(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    manifest = make_demo_pool(tmp_path / "d", 250, seed=1)
    report = ingest(sqlite_settings, sqlite_engine, "demo", manifest)
    assert len(report.added) == 250 and report.ok  # more than one database chunk
    assert len(pool_gifs(sqlite_engine, "demo")) == 250
    assert len(os.listdir(sqlite_settings.gifs_dir)) > 100  # spread over sha prefixes


def test_a_refusal_names_its_place_once(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The ref says where ("line 2", "row 3"); the reason never repeats it, so every caller
    (the CLI's "ref: reason", the job line, `pool show`) prints it once."""
    urls = tmp_path / "notes.md"
    urls.write_text("https://example.org/a.gif\nsecret=hunter2\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,url,rating\n,ftp://x/y.gif,\n,,\na.gif,,nc-17\n")
    items = read_source(settings, urls) + read_source(settings, manifest)
    refused = [(i.ref, i.error) for i in items if i.error]
    assert refused == [("line 2", "not an http(s) URL"), ("row 2", "not an http(s) URL"),
                       ("row 3", "no path or url"),
                       ("a.gif", "row 4: unknown rating (expected g, pg, pg-13, r)")]
    res = _cli(settings, "pool", "add", "x", str(urls))
    assert "  line 2: not an http(s) URL\n" in res.output and "line 2: line 2" not in res.output


def test_a_nul_or_space_in_a_row_is_a_refusal_not_a_crash(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL cannot store NUL: a URL or path with one once sank the whole report there."""
    good = tmp_path / "good.gif"
    good.write_bytes(good_gif(1))
    manifest = tmp_path / "mixed.csv"
    manifest.write_text("path,url,title\ngood.gif,,fine\n,http://127.0.0.1/c\x00d.gif,t\n"
                        ",http://example.org/a b.gif,t\nbad\x00.gif,,t\n")
    res = _cli(settings, "pool", "add", "mixed", str(manifest))
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "1 added, 0 duplicates, 3 refused" in res.output
    assert "row 3: malformed URL (a space or control character in it)" in res.output
    assert "row 4: malformed URL" in res.output and "row 5: a NUL character in the path" in res.output


def test_an_add_that_adds_nothing_leaves_no_empty_pool(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "bad.gif").write_bytes(b"GIF89a nope")
    res = _cli(settings, "pool", "add", "empty", str(folder))
    assert res.exit_code == 1, res.output
    assert "nothing added, so the new pool empty was not kept" in res.output and "bad.gif:" in res.output
    assert list_pools(engine) == []
    # a pool that existed before keeps existing, whatever one add refuses
    (folder / "good.gif").write_bytes(good_gif(7))
    assert len(ingest(settings, engine, "kept", folder).added) == 1
    (folder / "good.gif").unlink()
    again = ingest(settings, engine, "kept", folder)
    assert again.nothing_in and not again.pool_dropped
    assert [p["name"] for p in list_pools(engine)] == ["kept"]
    # an empty folder for a new pool: nothing refused, yet no pool either, so a script's
    # `pool add && score --pool` must stop here; --json answers errors in JSON too
    empty = tmp_path / "none"
    empty.mkdir()
    res = _cli(settings, "pool", "add", "nothing", str(empty), "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["pool_kept"] is False, res.output
    res = _cli(settings, "pool", "add", "nothing", str(tmp_path / "missing"), "--json")
    assert res.exit_code == 2 and json.loads(res.stdout)["error"].startswith("no such file or folder")


def test_pool_show_counts_only_what_is_still_refused_and_says_why(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    (folder / "gifs").mkdir(parents=True)
    for i in range(3):
        (folder / "gifs" / f"{i}.gif").write_bytes(good_gif(300 + i))
    (folder / "gifs" / "bad.gif").write_bytes(b"GIF89a nope")
    manifest = folder / "m.csv"  # its paths lack the gifs/ folder: every row is refused
    manifest.write_text("path\n0.gif\n1.gif\n2.gif\n")
    ingest(settings, engine, "p", folder / "gifs" / "0.gif")
    for _ in range(2):  # the same refusals twice count once
        ingest(settings, engine, "p", manifest)
    assert pool_details(engine, "p")["refusals_recorded"] == 3
    ingest(settings, engine, "p", folder / "gifs")  # 0, 1 and 2 are in now; bad.gif is not
    info = pool_details(engine, "p")
    assert info["gifs"] == 3 and info["refusals_recorded"] == 1
    assert [r["source"] for r in info["refusals_latest"]] == ["bad.gif"]
    res = _cli(settings, "pool", "show", "p")
    assert res.exit_code == 0 and "refusals  1:" in res.output
    assert "bad.gif: " in res.output.split("refusals", 1)[1]


def test_removing_a_pool_names_the_channels_limited_to_it(sqlite_settings: Settings, sqlite_engine,
                                                          tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import cli
    from bot.scoped_settings import scopes_limited_to, set_scoped

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.gif").write_bytes(good_gif(301))
    ingest(sqlite_settings, sqlite_engine, "alpha", folder)
    set_scoped(sqlite_engine, "slack", "T1", "C1", "pools", ["alpha"])
    set_scoped(sqlite_engine, "discord", "G1", "", "pools", ["alpha", "beta"])
    set_scoped(sqlite_engine, "slack", "T1", "C2", "pools", ["beta"])
    assert sorted(scopes_limited_to(sqlite_engine, "alpha")) == ["discord/G1", "slack/T1/C1"]
    env = {"MOODGIF_HOME": str(sqlite_settings.home), "MOODGIF_DATABASE_URL": sqlite_settings.db_url}
    res = CliRunner().invoke(cli, ["pool", "remove", "alpha"], env=env)
    assert res.exit_code == 0 and "removed pool alpha" in res.stdout
    assert "warning: 2 channel(s)" in res.stderr and "slack/T1/C1" in res.stderr, res.stderr


@pytest.mark.slow  # a subprocess and a server that never answers in time
def test_a_pool_add_stopped_by_sigterm_leaves_no_empty_pool(sqlite_settings: Settings, sqlite_engine,
                                                           tmp_path: Path) -> None:
    """systemd and `docker stop` send SIGTERM; it once killed `pool add` where it stood and
    left the new pool behind, empty (Ctrl-C cleaned up)."""
    import http.server
    import signal
    import subprocess
    import sys
    import threading
    import time

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(30)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = tmp_path / "slow.txt"
    urls.write_text(f"http://127.0.0.1:{server.server_port}/slow.gif\n")
    env = {**os.environ, "MOODGIF_HOME": str(sqlite_settings.home), "MOODGIF_DATABASE_URL": sqlite_settings.db_url,
           "MOODGIF_ALLOW_PRIVATE_URLS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "pool", "add", "slow", str(urls)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        engine = sqlite_engine
        deadline = time.monotonic() + 120
        while "slow" not in [p["name"] for p in list_pools(engine)]:  # created, now fetching
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert proc.returncode == 128 + signal.SIGTERM
        assert "slow" not in [p["name"] for p in list_pools(engine)]
    finally:
        proc.kill()
        server.shutdown()


def test_a_private_address_refusal_says_how_to_allow_a_test_server(sqlite_settings: Settings, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/a.gif\n")
    res = _cli(sqlite_settings, "pool", "add", "local", str(urls))
    assert res.exit_code == 1 and "loopback address 127.0.0.1" in res.output
    assert res.output.count("MOODGIF_ALLOW_PRIVATE_URLS=1") == 1


def test_a_manifest_tells_the_title_a_folder_add_only_guessed(settings: Settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A folder's IMG_0042.gif was titled "img"; a manifest naming that file with a real title
    was then ignored ("never overwrite"), leaving an admin no way to fix it."""
    from sqlalchemy import select

    from scorer.store import Gif, session_scope

    folder = tmp_path / "t1"
    folder.mkdir()
    (folder / "IMG_0042.gif").write_bytes(good_gif(42))
    assert len(ingest(settings, engine, "team", folder).added) == 1
    with session_scope(engine) as s:
        guessed = s.scalars(select(Gif.title)).one()
    (folder / "m.csv").write_text("path,title,tags\nIMG_0042.gif,Kramer shocked,kramer;shocked\n")
    ingest(settings, engine, "team", folder / "m.csv")
    with session_scope(engine) as s:
        row = s.scalars(select(Gif)).one()
        assert guessed != row.title == "Kramer shocked" and row.tags == ["kramer", "shocked"]
    (folder / "m2.csv").write_text("path,title\nIMG_0042.gif,something else\n")
    ingest(settings, engine, "team", folder / "m2.csv")  # a title someone gave is kept
    with session_scope(engine) as s:
        assert s.scalars(select(Gif.title)).one() == "Kramer shocked"


def test_a_text_file_with_no_url_is_one_error_not_one_per_line(sqlite_settings: Settings, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n" + "".join(f"line {i} of prose\n" for i in range(39)))
    res = _cli(sqlite_settings, "pool", "add", "x", str(readme))
    assert res.exit_code == 2 and "no line of it is an http(s) URL" in res.output
    assert res.output.count("not an http(s) URL") == 0 and "prose" not in res.output

"""Chat and web admins name pool sources; they must not read the server's files.

Driven through the real bolt app (signed `/gif-admin` commands from a workspace admin),
the real admin web form, and the real CLI (the operator, who keeps full access).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _bot_pool import demo_manifest
from _sec_slack import slack_stack
from sqlalchemy import select

from scorer.admin_sources import SourceNotAllowed, check_admin_source
from scorer.store import Pool, PoolGif, Refusal, session_scope

REPO = Path(__file__).resolve().parents[2]
SECRET_LINE = "SLACK_BOT_TOKEN=xoxb-REAL-SECRET-4242"


def _secrets(tmp_path: Path) -> Path:
    d = tmp_path / "etc-secrets"
    d.mkdir()
    (d / "bot.env").write_text(f"{SECRET_LINE}\nDATABASE_PASSWORD=hunter2\n")
    (d / "shadow").write_text("root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n")
    return d


def _db_text(engine) -> str:  # type: ignore[no-untyped-def]
    """Everything ingest could have written about a source, as one string."""
    with session_scope(engine) as s:
        rows = [f"{r.source_ref}|{r.reason}" for r in s.scalars(select(Refusal))]
        rows += [r.source_ref for r in s.scalars(select(PoolGif))]
        rows += [p.name for p in s.scalars(select(Pool))]
    return "\n".join(rows)


async def _replies(stack, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.data["text"] for c in await stack.fake.wait_for("webhook", n)]


async def test_slack_admin_cannot_name_server_paths(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secrets = _secrets(tmp_path)
    attempts = [str(secrets / "bot.env"), str(secrets / "shadow"), str(secrets), "/etc/shadow",
                "/etc", str(tmp_path / "does-not-exist"), "~/.ssh/id_rsa", "../../etc/passwd",
                "file:///etc/passwd", str(secrets / "nope" / ".." / "bot.env")]
    async with slack_stack(sqlite_settings, sqlite_engine) as stack:
        for i, path in enumerate(attempts):
            assert await stack.command(f"pools add leak{i} {path}") == 200
        texts = await _replies(stack, len(attempts))
        # One fixed answer whatever the path: nothing tells which paths exist.
        assert len(set(texts)) == 1, texts
        assert "MOODGIF_ADMIN_SOURCE_DIRS" in texts[0]
        assert stack.core.jobs == []
    db = _db_text(sqlite_engine)
    assert "leak" not in db and "xoxb" not in db and "hunter2" not in db


@pytest.mark.slow  # an admin pool add runs in the worker child (a Python start-up)
async def test_allowed_folder_contents_never_echo_and_escapes_are_refused(
        sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secrets = _secrets(tmp_path)
    allowed = tmp_path / "gif-drop"
    allowed.mkdir()
    # a file that is no URL list at all, inside the allowed folder
    (allowed / "notes.txt").write_text(f"{SECRET_LINE}\nhttp://example.com:99999/x.gif\nhttp://[::1\n")
    (allowed / "link.txt").symlink_to(secrets / "bot.env")
    (allowed / "sub").mkdir()
    shutil.copy(next(demo_manifest().parent.rglob("*.gif")), allowed / "sub" / "ok.gif")
    os.mkfifo(allowed / "sub" / "pipe.gif")
    (allowed / "sub" / "loop.gif").symlink_to(allowed / "sub" / "loop.gif")
    (allowed / "sub" / "out.gif").symlink_to(secrets / "shadow")
    async with slack_stack(sqlite_settings, sqlite_engine, admin_source_dirs=[str(allowed)]) as stack:
        for source in (str(allowed / "link.txt"), f"{allowed}/../etc-secrets/bot.env",
                       str(secrets / "bot.env")):
            await stack.command(f"pools add esc {source}")
        texts = await _replies(stack, 3)
        assert len(set(texts)) == 1 and "allowed" in texts[0]
        assert stack.core.jobs == []
        await stack.command(f"pools add notes {allowed / 'notes.txt'}")
        await stack.command(f"pools add drop {allowed / 'sub'}")
        acks = await _replies(stack, 5)
        assert all("Adding pool" in t for t in acks[3:]), acks
        for job in stack.core.jobs:
            await asyncio.wait_for(job.task, 60)  # a FIFO or a loop must not hang it
    with session_scope(sqlite_engine) as s:
        reasons = {r.source_ref: r.reason for r in s.scalars(select(Refusal))}
    db = _db_text(sqlite_engine)
    assert "xoxb" not in db and "SLACK_BOT_TOKEN" not in db and "hunter2" not in db and "root:" not in db
    assert reasons["line 1"] == "not an http(s) URL"  # the ref says which line, once
    assert reasons["line 2"].startswith("malformed URL")
    assert reasons["line 3"].startswith("malformed URL")
    assert "named pipe" in reasons["pipe.gif"]
    assert "symlink loop" in reasons["loop.gif"]
    assert "outside" in reasons["out.gif"]
    assert "drop" in db  # ok.gif went in


async def test_web_admin_form_is_held_to_the_same_rule(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import aiohttp
    from _adapter_core import make_core
    from _sec_server import running

    secrets = _secrets(tmp_path)
    core, settings, _ = make_core(sqlite_settings, sqlite_engine)
    async with running(core, settings, sqlite_engine) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "/admin") as r:
            csrf = re.search(r"name=csrf value='([^']+)'", await r.text()).group(1)  # type: ignore[union-attr]
        answers = set()
        for source in (str(secrets / "bot.env"), str(tmp_path / "missing")):
            async with http.post(url + "/admin/pools", data={"name": "w", "source": source, "csrf": csrf},
                                 allow_redirects=False) as r:
                assert r.status == 400
                answers.add(await r.text())
        assert len(answers) == 1
    assert core.jobs == [] and "xoxb" not in _db_text(sqlite_engine)


def test_provider_and_url_sources_pass_the_check(sqlite_settings) -> None:
    s = sqlite_settings.override(fetch__admin_source_dirs=[])
    assert check_admin_source(s, "giphy:happy cats").source == "giphy:happy cats"
    assert check_admin_source(s, "https://example.org/list.txt").roots == ()
    for bad in ("http://example.org:99999/x", "http://[::1", "/tmp", "relative/path", "ftp://x/y"):
        with pytest.raises(SourceNotAllowed):
            check_admin_source(s, bad)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_cli_operator_keeps_full_access_and_bad_lines_are_refusals(tmp_path) -> None:
    gifs = tmp_path / "anywhere"
    gifs.mkdir()
    shutil.copy(next(demo_manifest().parent.rglob("*.gif")), gifs / "a\x1b[31mred.gif")
    urls = tmp_path / "urls.txt"
    urls.write_text("http://example.com:99999/x.gif\nhttp://[::1\nnot a url at all\n")
    env = {**os.environ, "MOODGIF_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    moodgif = [sys.executable, "-m", "bot.cli"]
    out = subprocess.run([*moodgif, "pool", "add", "cli", str(gifs)], env=env, capture_output=True,
                         text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1 added" in out.stdout
    bad = subprocess.run([*moodgif, "pool", "add", "cli", str(urls)], env=env, capture_output=True,
                         text=True, timeout=100)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert "line 1: malformed URL" in bad.stdout and "line 3: not an http(s) URL" in bad.stdout
    assert "not a url at all" not in bad.stdout
    show = subprocess.run([*moodgif, "pool", "show", "cli"], env=env, capture_output=True, text=True,
                          timeout=100)
    assert show.returncode == 0 and "\x1b" not in show.stdout
    # the escape code in the file name is not printed raw by `pool add` either
    again = subprocess.run([*moodgif, "pool", "add", "cli2", str(gifs / "a\x1b[31mred.gif")], env=env,
                           capture_output=True, text=True, timeout=100)
    assert "\x1b" not in again.stdout

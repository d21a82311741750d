"""The web playground and admin pages over real HTTP against a real SQLite database."""

from __future__ import annotations

import asyncio
import html
import re

import pytest
from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from aiohttp.test_utils import TestClient, TestServer

from bot.adapters.web import build_app
from bot.core import BotCore
from bot.events import Actor
from bot.intent import IntentParser
from scorer.store import Comparison, session_scope


@pytest.fixture
async def web(sqlite_settings, sqlite_engine):  # type: ignore[no-untyped-def]
    settings = sqlite_settings.override(chat__cooldown_s=0.0, ranking__poll_share=0.0,
                                        http__admin_token="s3cret-token")
    pool = ingest_demo(settings, sqlite_engine, demo_manifest())
    add_model_version(sqlite_engine, pool.shas, designed_scores(len(pool.shas)))
    core = BotCore(settings, sqlite_engine, intent_parser=IntentParser(settings, use_embeddings=False))
    async with TestClient(TestServer(build_app(core, settings, sqlite_engine))) as client:
        client.pool = pool
        client.core = core
        yield client


async def test_playground_page_and_static_files(web) -> None:  # type: ignore[no-untyped-def]
    resp = await web.get("/")
    assert resp.status == 200 and "moodgif playground" in await resp.text()
    assert "moodgif_user" in resp.cookies
    for name in ("app.js", "style.css"):
        assert (await web.get(f"/static/{name}")).status == 200
    assert (await web.get("/static/../web.py")).status in (403, 404)


async def test_request_send_vote_through_the_api(web) -> None:  # type: ignore[no-untyped-def]
    r = await (await web.post("/api/request", json={"text": "/gif happy"})).json()
    assert r["kind"] == "preview"
    card = r["preview"]["cards"][0]
    gif = await web.get(card["url"])
    assert gif.status == 200 and gif.headers["Content-Type"] == "image/gif"
    assert (await gif.read())[:6] in (b"GIF89a", b"GIF87a")
    assert "immutable" in gif.headers["Cache-Control"]
    sid = r["preview"]["session_id"]
    other = await (await web.post("/api/send", json={"session_id": sid, "user": "mallory"})).json()
    assert other["kind"] == "forbidden"
    posted = await (await web.post("/api/send", json={"session_id": sid})).json()
    assert posted["kind"] == "posted" and posted["post"]["requested_by"] == "you"
    twice = await (await web.post("/api/send", json={"session_id": sid})).json()
    assert twice["kind"] == "closed"
    vote = await (await web.post("/api/vote", json={"post_id": posted["post"]["post_id"],
                                                    "up": True, "user": "bob"})).json()
    assert vote["kind"] == "ack"
    with session_scope(web.core.engine) as s:
        assert s.query(Comparison).filter(Comparison.source == "vote").count() == 1
        assert {c.platform for c in s.query(Comparison)} == {"web"}
    post_id = posted["post"]["post_id"]
    assert (await (await web.post("/api/undo", json={"post_id": post_id, "user": "bob"})).json())["kind"] == "forbidden"
    undone = await (await web.post("/api/undo", json={"post_id": post_id})).json()
    assert undone["kind"] == "undone" and "Taken back" in undone["text"]


@pytest.mark.parametrize(("path", "body"), [
    ("/api/request", {"text": 5}),
    ("/api/request", {}),
    ("/api/shuffle", {"session_id": ""}),
    ("/api/send", {"session_id": "x", "sha": 3}),
    ("/api/vote", {"post_id": "1", "up": True}),
    ("/api/vote", {"post_id": True, "up": True}),
    ("/api/vote", {"post_id": 1, "up": "yes"}),
    ("/api/poll", {"poll_id": "x"}),
    ("/api/undo", {"post_id": "1"}),
    ("/api/undo", {}),
    ("/api/request", {"text": "happy", "user": "../../etc"}),
    ("/api/request", {"text": "happy", "channel": "a" * 100}),
])
async def test_bad_api_input_is_a_clear_400(web, path, body) -> None:  # type: ignore[no-untyped-def]
    resp = await web.post(path, json=body)
    assert resp.status == 400 and (await resp.text()).strip()


async def test_not_json_and_too_big(web) -> None:  # type: ignore[no-untyped-def]
    # The API takes JSON only (a cross-site page cannot send that type without a preflight).
    assert (await web.post("/api/request", data="not json")).status == 415
    as_json = {"Content-Type": "application/json"}
    assert (await web.post("/api/request", data="not json", headers=as_json)).status == 400
    assert (await web.post("/api/request", data="[1, 2]", headers=as_json)).status == 400
    long_name = await web.post("/api/choose", json={"ask_id": "a", "emotion": "a" * 41})
    assert long_name.status == 400 and "emotion is too long" in await long_name.text()
    big = await web.post("/api/request", json={"text": "x" * 100_000})
    assert big.status == 413
    ten_kb = await (await web.post("/api/request", json={"text": "happy " * 1700})).json()
    assert ten_kb["kind"] == "error"


@pytest.mark.parametrize("name", [
    "../moodgif.db", "..%2Fmoodgif.db", "%2e%2e/%2e%2e/etc/passwd",
    "ABCDEF" + "0" * 58 + ".gif", "0" * 63 + ".gif", "0" * 64 + ".png", "0" * 64 + ".gif",
    "0" * 64 + ".gif/../../x",
])
async def test_gif_urls_are_strict(web, name) -> None:  # type: ignore[no-untyped-def]
    resp = await web.get(f"/gifs/{name}")
    assert resp.status == 404


async def test_admin_pages_render(web) -> None:  # type: ignore[no-untyped-def]
    for path in ("/admin", "/admin/top?emotion=fear", "/admin/distribution?emotion=anger",
                 "/admin/comparisons", "/admin/retrains"):
        resp = await web.get(path)
        assert resp.status == 200, path
        assert "<h1>" in await resp.text()
    page = await (await web.get("/admin")).text()
    assert "wide prior only" in page
    # what "owner" means is on the page, not in a tooltip only a mouse can read
    assert "listed in that workspace only" in page and "moodgif pool owner" in page
    assert (await web.get("/admin/top?emotion=joy")).status == 400
    png = await web.get("/admin/plot/happiness.png")
    assert png.status == 200 and (await png.read())[:8] == b"\x89PNG\r\n\x1a\n"
    assert (await web.get("/admin/plot/joy.png")).status == 404
    top = await (await web.get("/admin/top?emotion=happiness&format=json")).json()
    means = [g["mean"] for g in top["gifs"]]
    assert means == sorted(means, reverse=True) and len(means) == len(web.pool.shas)
    stats = await (await web.get("/admin/comparisons?format=json")).json()
    assert stats["total"] == 0 and stats["recent"] == []


async def test_admin_lists_the_jobs_of_every_process_from_the_table(web) -> None:  # type: ignore[no-untyped-def]
    """The Jobs lists once showed this process's memory: empty after a restart, and blind to
    jobs queued from chat in another replica, which `stats` showed."""
    from bot.flows.jobs import enqueue

    added = enqueue(web.core.engine, "pool_add", {"name": "x", "source": "giphy:cat"}, "add pool x from giphy:cat")
    retrain = enqueue(web.core.engine, "retrain", {}, "retrain")
    assert not web.core.jobs  # queued elsewhere: nothing in this process's memory
    pools = await (await web.get("/admin")).text()
    assert f"job {added}: add pool x from giphy:cat" in pools and f"job {retrain}: retrain" in pools
    runs = await (await web.get("/admin/retrains")).text()
    assert f"job {retrain}: retrain" in runs and "add pool x" not in runs
    # a script that queued a pool add follows it in JSON
    listed = await (await web.get("/admin?format=json")).json()
    assert {(j["id"], j["state"]) for j in listed["jobs"]} == {(added, "queued"), (retrain, "queued")}
    assert isinstance(listed["pools"], list)


async def test_admin_and_playground_need_local_or_token(web) -> None:  # type: ignore[no-untyped-def]
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    for path in ("/", "/admin", "/admin/comparisons", "/admin/workspaces"):
        assert (await web.get(path, headers=proxied)).status == 403
    assert (await web.post("/api/request", json={"text": "happy"}, headers=proxied)).status == 403
    wrong = {**proxied, "Authorization": "Bearer nope"}
    assert (await web.get("/admin", headers=wrong)).status == 403
    right = {**proxied, "Authorization": "Bearer s3cret-token"}
    assert (await web.get("/admin", headers=right)).status == 200
    # the pool's files stay public: the Slack adapter links to them
    sha = web.pool.shas[0]
    assert (await web.get(f"/gifs/{sha}.gif", headers=proxied)).status == 200


@pytest.mark.slow  # an admin pool add runs in the worker child (a Python start-up)
async def test_admin_pool_add_reports_a_bad_source(web, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import re

    page = await (await web.get("/admin")).text()
    csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)
    resp = await web.post("/admin/pools", data={"name": "extra", "source": str(tmp_path / "nope"),
                                                "csrf": csrf},
                          headers={"Accept": "application/json"})
    # Server paths from the web need MOODGIF_ADMIN_SOURCE_DIRS (tests/security/ has the rest).
    assert resp.status == 400 and (await resp.json())["kind"] == "error"
    assert "MOODGIF_ADMIN_SOURCE_DIRS" in (await resp.json())["text"] and not web.core.jobs
    # A URL is taken; one that fails to fetch shows as a failed job on the admin page.
    resp = await web.post("/admin/pools", data={"name": "extra", "csrf": csrf,
                                                "source": "http://127.0.0.1:9/list.txt"},
                          headers={"Accept": "application/json"})
    assert (await resp.json())["kind"] == "ack"
    job = web.core.jobs[-1]
    await asyncio.wait_for(job.task, 60)
    page = await (await web.get("/admin")).text()
    assert "extra" in page and job.state in ("failed", "done") and job.detail
    bad = await web.post("/admin/pools", data={"name": "../x", "source": "y", "csrf": csrf})
    assert bad.status == 400
    queued = len(web.core.jobs)
    for name, says in (("_x", "start with a letter or digit"), ("émoji", "bad pool name"),
                       ("all", "means every pool")):  # refused at once, never a failed job
        resp = await web.post("/admin/pools", data={"name": name, "csrf": csrf,
                                                    "source": "http://127.0.0.1:9/list.txt"},
                              headers={"Accept": "application/json"})
        assert resp.status == 400 and says in (await resp.json())["text"], name
    assert len(web.core.jobs) == queued


async def test_serve_runs_the_playground_and_stops(sqlite_settings, sqlite_engine) -> None:
    from aiohttp import ClientSession

    from bot.serve import serve

    settings = sqlite_settings.override(http__port=0)
    core = BotCore(settings, sqlite_engine, intent_parser=IntentParser(settings, use_embeddings=False))
    stop = asyncio.Event()
    urls: list[str] = []
    task = asyncio.create_task(serve(settings, sqlite_engine, core=core, stop=stop,
                                     on_ready=urls.append))
    for _ in range(200):
        if urls or task.done():
            break
        await asyncio.sleep(0.05)
    assert urls and urls[0].startswith("http://127.0.0.1:")
    async with ClientSession() as http:
        async with http.get(urls[0]) as resp:
            assert resp.status == 200
        async with http.get(urls[0] + "healthz") as resp:
            assert resp.status == 200
        async with http.post(urls[0] + "api/request", json={"text": "happy"}) as resp:
            assert (await resp.json())["kind"] == "empty_pool"  # no pool yet: a polite answer
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_serve_on_a_taken_port_says_which_and_how_to_fix_it(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import socket

    from bot.serve import serve

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        settings = sqlite_settings.override(http__host="127.0.0.1", http__port=port,
                                            training__retrain_cron="")
        closed: list[bool] = []

        class RecordingCore(BotCore):  # the real core; only close() is watched
            async def close(self, timeout_s: float = 30.0) -> None:
                await super().close(timeout_s)
                closed.append(True)

        core = RecordingCore(settings, sqlite_engine,
                             intent_parser=IntentParser(settings, use_embeddings=False))
        urls: list[str] = []
        with pytest.raises(RuntimeError) as err:
            await asyncio.wait_for(serve(settings, sqlite_engine, core=core, stop=asyncio.Event(),
                                         on_ready=urls.append), 60)
    finally:
        taken.close()
    text = str(err.value)
    assert text.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in text and text.endswith("; choose a free port (--port N, or MOODGIF_HTTP_PORT)")
    assert err.value.__suppress_context__ and not urls  # `from None`; never announced
    # What started before the port was tried is stopped: the core, and the signal handlers.
    assert closed == [True]
    import signal

    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


async def test_preview_shows_how_the_request_was_read(web) -> None:  # type: ignore[no-untyped-def]
    from _adapter_core import give_words

    cats = give_words(web.core, web.core.engine)
    r = await (await web.post("/api/request", json={"text": "/gif cat"})).json()
    p = r["preview"]
    assert r["kind"] == "preview" and p["topic"] == "cat" and p["topic_only"] is True
    assert p["label"] == "cat" and "topic: cat" in p["interpretation"]
    assert p["cards"][0]["sha256"] in cats
    r = await (await web.post("/api/request", json={"text": "/gif happy unicorn"})).json()
    assert r["preview"]["emotion"] == "happiness" and "unicorn" in r["text"]


async def test_admin_pages_escape_a_gifs_hostile_words(web) -> None:  # type: ignore[no-untyped-def]
    """Titles and tags come from manifests and GIPHY: the templates autoescape them."""
    from _adapter_core import give_words

    give_words(web.core, web.core.engine, n=len(web.pool.shas), title="<script>alert(1)</script>",
               tags=("<img src=x onerror=alert(2)>",))
    page = await (await web.get("/admin/top?emotion=happiness")).text()
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_top_gifs_voted_means_compared_on_that_emotion(web) -> None:  # type: ignore[no-untyped-def]
    r = await (await web.post("/api/request", json={"text": "/gif happy"})).json()
    posted = await (await web.post("/api/send", json={"session_id": r["preview"]["session_id"]})).json()
    sent = posted["post"]["card"]["sha256"]
    await web.post("/api/vote", json={"post_id": posted["post"]["post_id"], "up": True, "user": "bob"})
    happy = (await (await web.get("/admin/top?emotion=happiness&format=json")).json())["gifs"]
    assert {g["sha256"] for g in happy if g["voted"]} == {sent}
    assert all(g["url"] == f"/gifs/{g['sha256']}.gif" for g in happy)
    fear = (await (await web.get("/admin/top?emotion=fear&format=json")).json())["gifs"]
    assert not any(g["voted"] for g in fear)
    page = await (await web.get("/admin/top?emotion=happiness")).text()
    assert page.count(" · voted") == 1
    png = await web.get("/admin/plot/happiness.png")  # drawn with the voted GIF apart
    assert png.status == 200 and (await png.read())[:4] == b"\x89PNG"


async def test_emotion_hints_come_from_the_core(web) -> None:  # type: ignore[no-untyped-def]
    from _adapter_core import give_words

    give_words(web.core, web.core.engine)
    hint = await (await web.get("/api/emotions?q=hap")).json()
    assert hint["emotions"][0] == "happiness" and len(hint["emotions"]) <= 8
    hint = await (await web.get("/api/emotions", params={"q": "happy cat"})).json()
    assert hint["reading"] == "happiness · topic: cat"
    hint = await (await web.get("/api/emotions", params={"q": "ugh"})).json()
    assert hint["reading"] == "anger (or contempt / disgust / sadness)"  # what the preview will offer
    assert (await (await web.get("/api/emotions")).json())["reading"] == ""
    # what the request will get: refused as too long, not a reading of its first words
    long = await (await web.get("/api/emotions", params={"q": "so happy " * 11, "n": "1800"})).json()
    assert long["reading"].startswith("That's a lot of text") and long["emotions"] == []
    bare = await (await web.get("/api/emotions", params={"q": "x" * 1200})).json()  # no n: q's own length
    assert bare["reading"].startswith("That's a lot of text")
    cjk = await web.get("/api/emotions", params={"q": "日本語" * 33, "n": "3000"})  # a short URL in any script
    assert cjk.status == 200 and (await cjk.json())["reading"].startswith("That's a lot of text")


async def _teach(core: BotCore, actor: Actor, words: str, emotion: str) -> str:
    """`actor` asks for `words`, switches to `emotion` and sends; the GIF posted."""
    r = await core.request(actor, words)
    if r.preview.emotion != emotion:
        r = await core.switch(actor, r.preview.session_id, emotion)
    posted = await core.send(actor, r.preview.session_id)
    assert posted.kind == "posted", posted
    return posted.post.card.sha256


async def test_admin_sees_each_workspaces_words_and_hidden_gifs_and_undoes_them(web) -> None:  # type: ignore[no-untyped-def]
    import re

    core = web.core
    people = {who: Actor("slack", "T1", "C1", who) for who in ("alice", "bob", "carol")}
    for who in ("alice", "bob"):
        sent = await _teach(core, people[who], "ugh", "contempt")  # the lexicon reads anger
    await _teach(core, Actor("discord", "G9", "c", "dan"), "<b>meh</b>", "sadness")
    admin = Actor("slack", "T1", "C1", "ada", is_admin=True)
    assert (await core.admin(admin, "hide", ["last"])).text.startswith("Hidden: ")
    assert (await core.request(people["carol"], "ugh")).preview.emotion == "contempt"

    rows = await (await web.get("/admin/workspaces?format=json")).json()
    t1 = next(w for w in rows if w["workspace"] == "T1")
    assert t1["platform"] == "slack" and t1["previews"] >= 3
    assert t1["phrases"] == [{"words": "ugh", "emotion": "contempt", "people": 2, "senders": 2}]
    assert [h["sha256"] for h in t1["hidden"]] == [sent] and t1["hidden"][0]["stored"]
    g9 = next(w for w in rows if w["workspace"] == "G9")
    assert g9["phrases"] == [] and g9["hidden"] == []  # one person's pick is theirs alone
    page = await (await web.get("/admin/workspaces")).text()
    assert "slack · T1" in page and "“ugh”" in page and "2 of 2" in page and sent[:12] in page
    csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)

    form = {"platform": "slack", "workspace": "T1", "csrf": csrf}
    forgot = await web.post("/admin/workspaces/forget", data={**form, "words": "UGH!"},
                            allow_redirects=False)
    assert forgot.status == 303 and forgot.headers["Location"] == "/admin/workspaces"
    assert (await core.request(people["carol"], "ugh")).preview.emotion == "anger"  # the parser again
    shown = await web.post("/admin/workspaces/unhide", data={**form, "sha256": sent},
                           headers={"Accept": "application/json"})
    assert (await shown.json())["text"] == "Shown again: 1 GIF."
    t1 = next(w for w in await (await web.get("/admin/workspaces?format=json")).json() if w["workspace"] == "T1")
    assert t1["phrases"] == [] and t1["hidden"] == []

    # another workspace's words are untouched; bad forms are a clear 400, a forged one a 403
    bad = [("/admin/workspaces/forget", {**form, "words": ""}),
           ("/admin/workspaces/forget", {**form, "platform": "irc", "words": "ugh"}),
           ("/admin/workspaces/forget", {**form, "workspace": "../T1", "words": "ugh"}),
           ("/admin/workspaces/unhide", {**form, "sha256": "zz"})]
    for path, data in bad:
        resp = await web.post(path, data=data)
        assert resp.status == 400 and (await resp.text()).strip(), (path, data)
    forged = await web.post("/admin/workspaces/forget", data={**form, "csrf": "x", "words": "ugh"})
    assert forged.status == 403
    assert (await web.post("/admin/workspaces/forget", data={**form, "words": "nothing here"},
                           headers={"Accept": "application/json"})).status == 200
    # the demo's virtual users' workspace is listed on the page: its buttons work too
    assert (await web.post("/admin/workspaces/forget", data={**form, "platform": "sim", "words": "happy"},
                           headers={"Accept": "application/json"})).status == 200


async def test_the_workspaces_page_escapes_what_people_typed(web) -> None:  # type: ignore[no-untyped-def]
    for who in ("alice", "bob"):
        await _teach(web.core, Actor("slack", "T1", "C1", who), "ugh <script>", "fear")
    page = await (await web.get("/admin/workspaces")).text()
    assert "<script" not in page and "“ugh &lt;script&gt;”" in page


# What the admin pages' handlers import, driven in a fresh interpreter: /admin/retrains once
# pulled in training.retrain, and torch with it (+750 MB in the chat process, docs/bot.md).
_ADMIN_PAGES_NO_TORCH = """
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from bot.adapters.web import build_app
from bot.core import BotCore
from bot.intent import IntentParser
from scorer.settings import load_settings
from scorer.store import make_engine

settings = load_settings(env={}, home=sys.argv[1])
engine = make_engine(settings.db_url)
core = BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False))
PAGES = ["/admin", "/admin/top?emotion=fear", "/admin/top?emotion=fear&format=json",
         "/admin/distribution?emotion=anger", "/admin/plot/anger.png", "/admin/comparisons",
         "/admin/comparisons?format=json", "/admin/retrains", "/admin/retrains?format=json",
         "/admin/workspaces", "/admin/workspaces?format=json"]

async def main():
    async with TestClient(TestServer(build_app(core, settings, engine))) as client:
        statuses = {p: (await client.get(p)).status for p in PAGES}
    await core.close()
    return statuses

statuses = asyncio.run(main())
heavy = [m for m in ("torch", "training.retrain", "training.fit") if m in sys.modules]
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def test_admin_pages_never_load_torch(sqlite_settings, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from scorer.store import RetrainRun

    pool = ingest_demo(sqlite_settings, sqlite_engine, demo_manifest())
    add_model_version(sqlite_engine, pool.shas, designed_scores(len(pool.shas)))
    with session_scope(sqlite_engine) as s:  # a run from before "nan" was kept out of metrics
        s.add(RetrainRun(trigger="admin", status="activated", step="activate",
                         metrics={"dev_rmse_new": float("nan"),
                                  "message": "model version 1 is active (dev RMSE nan, first version)"}))
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", _ADMIN_PAGES_NO_TORCH, str(sqlite_settings.home)],
                          cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(got["statuses"].values()) == {200}, got
    assert got["heavy"] == [], got


async def test_retrain_history_never_shows_nan(web) -> None:  # type: ignore[no-untyped-def]
    from scorer.store import RetrainRun
    from training.run_history import NOT_MEASURED

    with session_scope(web.core.engine) as s:  # as runs before the fix stored them
        s.add(RetrainRun(trigger="admin", status="activated", step="activate",
                         metrics={"dev_rmse_new": float("nan"), "dev_rmse_mean_only": 0.25,
                                  "message": "model version 1 is active (dev RMSE nan, first version)"}))
    page = await (await web.get("/admin/retrains")).text()
    assert "nan" not in page.lower() and "dev_rmse_mean_only=0.25" in page
    run = (await (await web.get("/admin/retrains?format=json")).json())[0]
    assert run["metrics"]["dev_rmse_new"] is None
    assert run["metrics"]["message"] == f"model version 1 is active ({NOT_MEASURED}, first version)"


async def test_admin_forms_take_json_and_answer_errors_in_json(web) -> None:  # type: ignore[no-untyped-def]
    import re

    page = await (await web.get("/admin")).text()
    csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)
    as_json = {"X-CSRF-Token": csrf, "Accept": "application/json"}
    # A JSON body is read (not "a pool needs a name"): here the command itself refuses, at
    # once and with a 4xx, a giphy: source while no GIPHY key is set.
    resp = await web.post("/admin/pools", json={"name": "g", "source": "giphy:cat"}, headers=as_json)
    body = await resp.json()
    assert resp.status == 400 and body["kind"] == "error"
    assert body["text"].startswith("GIPHY_API_KEY is not set") and not web.core.jobs
    # bad input: a JSON error when JSON was asked for, one line of text otherwise
    for path, data in [("/admin/pools", {"name": "../x", "source": "y"}),
                       ("/admin/pools", {"name": "x", "source": 5}),
                       ("/admin/workspaces/forget", {"platform": "irc", "workspace": "T", "words": "ugh"}),
                       ("/admin/workspaces/unhide", {"platform": "slack", "workspace": "T", "sha256": "zz"})]:
        resp = await web.post(path, json=data, headers=as_json)
        assert resp.status == 400 and resp.content_type == "application/json", (path, data)
        assert (await resp.json())["kind"] == "error"
    resp = await web.post("/admin/pools", data="[1]", headers={**as_json, "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["text"] == "expected a JSON object"
    resp = await web.post("/admin/pools", data={"name": "../x", "source": "y", "csrf": csrf})
    assert resp.status == 400 and resp.content_type == "text/plain"
    # without the token in the header a JSON body is a forged request
    assert (await web.post("/admin/pools", json={"name": "g", "source": "giphy:x"})).status == 403


async def test_web_unhide_takes_all_as_chat_does(web) -> None:  # type: ignore[no-untyped-def]
    import re

    admin = Actor("slack", "T1", "C1", "ada", is_admin=True)
    for sha in web.pool.shas[:2]:
        assert (await web.core.admin(admin, "hide", [sha])).text.startswith("Hidden: ")
    page = await (await web.get("/admin/workspaces")).text()
    assert "show all 2 again" in page
    csrf = re.search(r"name=csrf value='([^']+)'", page).group(1)
    resp = await web.post("/admin/workspaces/unhide",
                          json={"platform": "slack", "workspace": "T1", "sha256": "ALL"},
                          headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
    assert resp.status == 200 and (await resp.json())["text"] == "Shown again: 2 GIFs."
    t1 = [w for w in await (await web.get("/admin/workspaces?format=json")).json() if w["workspace"] == "T1"]
    assert all(not w["hidden"] for w in t1)


async def test_a_skipped_retrain_job_shows_as_skipped(web) -> None:  # type: ignore[no-untyped-def]
    """"retrain now" twice: the second job never ran; both admin pages say so."""
    from bot.flows.jobs import _finish, enqueue

    job = enqueue(web.core.engine, "retrain", {}, "retrain")
    _finish(web.core.engine, job, "skipped", "a retrain was already running (host:1)")
    for path in ("/admin", "/admin/retrains"):
        page = await (await web.get(path)).text()
        assert f"job {job}: retrain: <b>skipped</b> a retrain was already running" in page, path


async def test_a_database_that_went_away_is_a_503_that_says_so(web, sqlite_engine, caplog) -> None:  # type: ignore[no-untyped-def]
    """It was "500 Server got itself in trouble" in the playground and a traceback a request."""
    import logging
    import shutil
    from pathlib import Path

    db = Path(sqlite_engine.url.database)
    sqlite_engine.dispose()
    shutil.move(db, db.with_suffix(".away"))
    db.mkdir()  # what the database was is now something SQLite cannot open
    try:
        with caplog.at_level(logging.ERROR):
            resp = await web.post("/api/request", json={"text": "/gif happy"})
        assert resp.status == 503 and "does not answer right now" in await resp.text()
        assert resp.headers["Retry-After"] == "15"
        assert "Traceback" not in caplog.text and "the database does not answer" in caplog.text
    finally:
        db.rmdir()
        sqlite_engine.dispose()
        shutil.move(db.with_suffix(".away"), db)


# ---- what a keyboard and screen-reader user gets from the pages' HTML


def _tags(page: str, tag: str) -> list[str]:
    """Each `<tag ...>` opening tag in `page`."""
    return re.findall(rf"<{tag}\b[^>]*>", page)


def _attr(tag: str, name: str) -> str | None:
    """An attribute's unescaped value in one opening tag (None when absent)."""
    m = re.search(rf"""\s{name}=(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", tag)
    if m is None:
        return None
    return html.unescape(next(g for g in m.groups() if g is not None))


async def test_the_playground_has_a_main_heading(web) -> None:  # type: ignore[no-untyped-def]
    """A screen reader's heading list was empty: the page's name was a styled <span>."""
    page = await (await web.get("/")).text()
    headings = re.findall(r"<h1\b[^>]*>(.*?)</h1>", page, re.S)
    assert [re.sub(r"<[^>]+>|\s+", " ", h).split() for h in headings] == [["moodgif", "playground"]]


async def test_admin_images_say_what_they_show(web) -> None:  # type: ignore[no-untyped-def]
    """The chart's alt was just "histogram"; the top GIFs' alt was empty (read as nothing)."""
    from _adapter_core import give_words

    page = await (await web.get("/admin/distribution?emotion=anger")).text()
    [chart] = [t for t in _tags(page, "img") if "/admin/plot/anger.png" in t]
    alt = _attr(chart, "alt") or ""
    assert alt.startswith("histogram of") and "anger" in alt, alt

    give_words(web.core, web.core.engine, n=len(web.pool.shas), title="", tags=())  # untitled
    titled = set(give_words(web.core, web.core.engine, n=2, title="Dog <falls> over"))
    page = await (await web.get("/admin/top?emotion=fear")).text()
    imgs = _tags(page, "img")
    assert len(imgs) == len(web.pool.shas)
    alts = {(_attr(t, "src") or "")[len("/gifs/"):][:64]: _attr(t, "alt") for t in imgs}
    assert {alts[sha] for sha in titled} == {"Dog <falls> over"}  # escaped in the HTML, said as typed
    assert {alt for sha, alt in alts.items() if sha not in titled} == {"a GIF of fear"}  # as chat says it


async def test_admin_row_buttons_say_which_row(web) -> None:  # type: ignore[no-untyped-def]
    """Every row's button read "forget" or "show again": in a screen reader's list of
    buttons, ten identical names."""
    for who in ("alice", "bob"):
        await _teach(web.core, Actor("slack", "T1", "C1", who), "ugh", "contempt")
        await _teach(web.core, Actor("slack", "T1", "C1", who), "meh <b>", "sadness")
    shas = web.pool.shas[:2]
    admin = Actor("slack", "T1", "C1", "ada", is_admin=True)
    for sha in shas:
        assert (await web.core.admin(admin, "hide", [sha])).text.startswith("Hidden: ")
    from _adapter_core import give_words

    titled = give_words(web.core, web.core.engine, n=len(web.pool.shas), title="Cat being silly")
    assert set(shas) <= set(titled)
    page = await (await web.get("/admin/workspaces")).text()
    names = [_attr(t, "aria-label") for t in _tags(page, "button")]
    assert "forget “ugh” (slack · T1)" in names and "forget “meh <b>” (slack · T1)" in names
    assert names.count("show again: Cat being silly (slack · T1)") == 2
    assert "show all 2 again (hidden GIFs of slack · T1)" in names
    # the visible word stays in the name, so "click forget" by voice still finds it
    buttons = re.findall(r"<button\b[^>]*>([^<]*)</button>", page)
    assert {b for b in buttons} == {"forget", "show again", "show all 2 again"}


async def test_admin_pages_say_a_plain_phrase_before_the_term(web) -> None:  # type: ignore[no-untyped-def]
    """"Bradley-Terry fit", "posterior mean ± sd" and "zero-shot prior" stood alone."""
    pools = await (await web.get("/admin")).text()
    assert "scores from votes (Bradley-Terry fit" in pools
    assert "first guess before any vote (zero-shot prior)" in pools
    top = await (await web.get("/admin/top?emotion=fear")).text()
    assert "score ± uncertainty (posterior mean ± sd)" in top
    for page in (pools, top):
        for term in ("Bradley-Terry fit", "zero-shot prior", "posterior mean ± sd"):
            assert page.count(term) == page.count(f"({term}"), term


async def test_housekeeping_says_once_that_the_database_is_away_and_when_it_is_back(
        sqlite_settings, sqlite_engine, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """An outage logged a full traceback from the housekeeping every minute; now one line, and
    one more when the database answers again. The database here is really unreachable (a
    PostgreSQL URL on a port nothing listens on), then the real one again."""
    import asyncio
    import logging

    from _adapter_core import make_core
    from sqlalchemy import create_engine

    import bot.serve as serve

    core, _settings, _clock = make_core(sqlite_settings, sqlite_engine)
    monkeypatch.setattr(serve, "HOUSEKEEPING_S", 0.01)
    dead = create_engine("postgresql+psycopg://moodgif@127.0.0.1:9/none?connect_timeout=2")
    core.ctx.engine = dead
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="moodgif.bot.serve")
    task = asyncio.create_task(serve._housekeeping(core, stop))
    try:
        for _ in range(500):
            await asyncio.sleep(0.02)
            if caplog.records:  # the first pass against the dead database has said something
                break
        await asyncio.sleep(0.3)  # several more passes against the dead database
        core.ctx.engine = sqlite_engine
        for _ in range(500):
            await asyncio.sleep(0.02)
            if any("answers again" in r.message for r in caplog.records):
                break
    finally:
        stop.set()
        await task
        dead.dispose()
    said = [(r.levelname, r.message) for r in caplog.records if r.name == "moodgif.bot.serve"]
    away = [s for s in said if "does not answer" in s[1]]
    assert len(away) == 1 and away[0][0] == "WARNING" and "retrying every" in away[0][1], said
    assert not [r for r in caplog.records if r.exc_info], said  # no traceback
    assert ("INFO", "housekeeping: the database answers again") in said

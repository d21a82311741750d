"""The local playground and admin pages (aiohttp): platform "web", workspace "local".

A chat-like page at `/` where you type `/gif happy` and get the preview with its buttons,
then the post with 👍/👎, through the same `BotCore` the Slack and Discord adapters use;
admin pages under `/admin` (pools, top GIFs per emotion, score distributions, comparisons,
retrain history); and the pool's files at `/gifs/<sha256>.gif`, the stable URLs the Slack
adapter hands out behind `settings.http.public_url`.

Only `/gifs/` is public. The playground and the admin pages answer requests from this
machine (loopback, with no proxy header) while the server is private, else only with the
admin token; every state-changing request must be same-origin (and JSON or carry the CSRF
token), and the Host must be this server's: `bot/adapters/web_guard.py` says how.

Pages are Jinja2 templates (`bot/adapters/templates/`, aiohttp-jinja2, autoescaping on: GIF
titles, tags and job details are outside input); what the admin pages show comes from
`bot.reports` and `training.ledger_report`, so this module only checks input and renders.

`build_app(core, settings, engine)` returns the application; `moodgif serve` mounts the
Slack routes and the ops routes (`/healthz`, `/readyz`, `/metrics`) on the same one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bot import reports
from bot.adapters.web_guard import CSRF_FIELD, Access, body_deadline, guard, refuse_framing
from bot.core import BotCore
from bot.events import PLATFORMS, SIM_PLATFORM, Actor, GifCard, PostView, Reply, gif_url
from bot.flows.admin import AddPool, AdminCommand, ForgetPhrase, Retrain, hide_command
from bot.flows.hiding import UnhideGif
from bot.flows.jobs import newest_jobs
from bot.hints import typing_hint
from scorer.emotions import INDEX, NAMES
from scorer.settings import Settings
from scorer.store import db_error_line, is_busy_error, request_path
from training import ledger_report, run_history  # torch-free: this is the chat process

log = logging.getLogger("moodgif.bot.web")

STATIC_DIR = Path(__file__).with_name("web_static")
# Jinja2 templates, package data of bot.adapters (pyproject's package-data ships them).
TEMPLATES = jinja2.PackageLoader("bot.adapters", "templates")
PLATFORM = "web"
WORKSPACE = "local"
DEFAULT_CHANNEL = "general"
USER_COOKIE = "moodgif_user"
_SHA_FILE = re.compile(r"^([0-9a-f]{64})\.(gif|webp)$")
_NAME = re.compile(r"^[\w.-]{1,64}$")  # user and channel names a request may pick
MAX_WORDS = 500
CORE_KEY: web.AppKey[BotCore] = web.AppKey("moodgif_core", BotCore)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("moodgif_settings", Settings)
ENGINE_KEY: web.AppKey[Engine] = web.AppKey("moodgif_engine", Engine)
ACCESS_KEY: web.AppKey[Access] = web.AppKey("moodgif_access", Access)


# ---------------------------------------------------------------------------------------
# access: bot/adapters/web_guard.py (Host allow-list, who, same origin, CSRF)


async def _db(fn: Any, *args: Any) -> Any:
    """A page's database work in a worker thread, waiting only briefly for another
    process's lock (then the `busy` middleware answers 503 "try again")."""
    def run() -> Any:
        with request_path():
            return fn(*args)

    return await asyncio.to_thread(run)


@web.middleware
async def busy(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except OperationalError as exc:
        if is_busy_error(exc):
            log.warning("%s %s: database busy (locked by another process)", request.method, request.path)
            raise web.HTTPServiceUnavailable(text="The database is busy (locked by another job); "
                                                  "try again in a moment.\n",
                                             headers={"Retry-After": "5"}) from None
        # The database went away (a restart, a network cut): one line, not a traceback per
        # request, and a page that says so rather than "Server got itself in trouble".
        log.error("%s %s: the database does not answer (%s)", request.method, request.path,
                  db_error_line(exc))
        raise web.HTTPServiceUnavailable(text="The database does not answer right now; nothing "
                                              "was lost: try again in a moment.\n",
                                         headers={"Retry-After": "15"}) from None


# ---------------------------------------------------------------------------------------
# JSON forms of the core's replies


def card_json(card: GifCard) -> dict[str, Any]:
    return {"sha256": card.sha256, "url": gif_url(card.sha256, suffix=card.local_path.suffix or ".gif"),
            "title": card.title,
            "alt": card.alt_text, "width": card.width, "height": card.height,
            "bytes": card.bytes, "emotion": card.emotion, "credit": card.credit}


def reply_json(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": reply.kind, "text": reply.text, "choices": list(reply.choices)}
    if reply.ask_id:
        out["ask_id"] = reply.ask_id
        out["more_choices"] = list(reply.more_choices)
    if reply.preview is not None:
        p = reply.preview
        out["preview"] = {"session_id": p.session_id, "emotion": p.emotion, "query": p.query,
                          "label": p.label, "interpretation": p.interpretation,
                          "topic": p.topic, "topic_only": p.topic_only,
                          "can_shuffle": p.can_shuffle, "confidence": round(p.confidence, 3),
                          "alternatives": list(p.alternatives), "more_feelings": list(p.more_feelings),
                          "cards": [card_json(c) for c in p.cards]}
    if reply.post is not None:
        out["post"] = {"post_id": reply.post.post_id, "emotion": reply.post.emotion,
                       "topic": reply.post.topic, "caption": reply.post.caption,
                       "requested_by": reply.post.requested_by, "card": card_json(reply.post.card)}
    if reply.poll is not None:
        out["poll"] = {"poll_id": reply.poll.poll_id, "emotion": reply.poll.emotion,
                       "left": card_json(reply.poll.left), "right": card_json(reply.poll.right)}
    return out


# ---------------------------------------------------------------------------------------
# the playground API


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        raise web.HTTPBadRequest(text="expected a JSON body\n") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    try:  # JSON may spell a lone surrogate ("\\ud800"), which no database can store
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise web.HTTPBadRequest(text="the JSON holds a broken character (a lone surrogate)\n") from None
    return data


def _actor(request: web.Request, data: dict[str, Any]) -> Actor:
    """Who clicked: the body may name a user (several people on one machine, tests), else the
    browser's cookie, else "you"."""
    user = str(data.get("user") or request.cookies.get(USER_COOKIE) or "you")
    channel = str(data.get("channel") or DEFAULT_CHANNEL)
    if not _NAME.match(user) or not _NAME.match(channel):
        raise web.HTTPBadRequest(text="user and channel are 1-64 letters, digits, . _ or -\n")
    return Actor(PLATFORM, WORKSPACE, channel, user, display_name=user)


def _str(data: dict[str, Any], key: str, limit: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise web.HTTPBadRequest(text=f"{key} is required\n")
    if len(value) > limit:
        raise web.HTTPBadRequest(text=f"{key} is too long (at most {limit} characters)\n")
    return value


async def api_request(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    data = await _body(request)
    text = data.get("text")
    if not isinstance(text, str):
        raise web.HTTPBadRequest(text="text is required\n")
    actor = _actor(request, data)
    answer = await core.request_with_poll(actor, text)
    out = reply_json(answer.reply)
    if answer.poll is not None:
        out["poll_reply"] = reply_json(answer.poll)
    return web.json_response(out)


async def api_shuffle(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].shuffle(_actor(request, data), _str(data, "session_id"))
    return web.json_response(reply_json(reply))


async def api_choose(request: web.Request) -> web.Response:
    """A "did you mean" button: the words asked about (`ask_id`) as the feeling picked."""
    data = await _body(request)
    reply = await request.app[CORE_KEY].choose(_actor(request, data), _str(data, "ask_id"),
                                               _str(data, "emotion", 40))
    return web.json_response(reply_json(reply))


async def api_switch(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].switch(_actor(request, data), _str(data, "session_id"),
                                               _str(data, "emotion", 40))
    return web.json_response(reply_json(reply))


async def api_send(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    data = await _body(request)
    sha = data.get("sha")
    if sha is not None and not isinstance(sha, str):
        raise web.HTTPBadRequest(text="sha must be a string\n")
    async def publish(post: PostView) -> str:  # the playground's "channel" is this page
        return f"web:{post.post_id}"

    sent = await core.send_and_publish(_actor(request, data), _str(data, "session_id"), sha or None,
                                       publish)
    return web.json_response(reply_json(sent.reply))


async def api_cancel(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].cancel(_actor(request, data), _str(data, "session_id"))
    return web.json_response(reply_json(reply))


async def api_undo(request: web.Request) -> web.Response:
    data = await _body(request)
    post_id = data.get("post_id")
    if isinstance(post_id, bool) or not isinstance(post_id, int) or not 0 < post_id < 2**63:
        raise web.HTTPBadRequest(text="post_id (a number) is required\n")
    reply = await request.app[CORE_KEY].undo(_actor(request, data), post_id)
    return web.json_response(reply_json(reply))  # the playground's "channel" is the page: it drops the post


async def api_vote(request: web.Request) -> web.Response:
    data = await _body(request)
    post_id = data.get("post_id")
    up = data.get("up")
    if (isinstance(post_id, bool) or not isinstance(post_id, int) or not 0 < post_id < 2**63
            or up not in (True, False, None)):
        raise web.HTTPBadRequest(text="post_id (a number) and up (true, false or null) are required\n")
    reply = await request.app[CORE_KEY].vote(_actor(request, data), post_id=post_id, up=up)
    return web.json_response(reply_json(reply))


async def api_poll(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].answer_poll(_actor(request, data), _str(data, "poll_id"),
                                                    _str(data, "answer", 20))
    return web.json_response(reply_json(reply))


async def api_emotions(request: web.Request) -> web.Response:
    """While typing: emotion completions, and how the core reads the words so far."""
    # The page sends the first 100 characters and how many there are in all (`n`): a long
    # request's hint is the refusal, and a query string stays short in any script.
    q, n = request.query.get("q", ""), request.query.get("n", "")
    hint = await _db(typing_hint, request.app[CORE_KEY], q[:100], 8,
                     _actor(request, dict(request.query)), int(n) if n.isdigit() else len(q))
    return web.json_response({"emotions": hint.completions, "reading": hint.reading})


async def index(request: web.Request) -> web.StreamResponse:
    resp = aiohttp_jinja2.render_template("playground.html", request, {})
    if USER_COOKIE not in request.cookies:
        resp.set_cookie(USER_COOKIE, "web-" + secrets.token_hex(4), samesite="Strict",
                        httponly=True, max_age=365 * 24 * 3600)
    return resp


async def gif_file(request: web.Request) -> web.StreamResponse:
    """A pool file by its SHA-256; the name is checked strictly, so no path can escape."""
    from scorer.pool import gif_path

    m = _SHA_FILE.match(request.match_info["name"])
    if not m:
        raise web.HTTPNotFound()
    path = gif_path(request.app[SETTINGS_KEY], m.group(1))
    if not path.is_file():
        raise web.HTTPNotFound()
    # Content-addressed: the bytes under this name never change.
    return web.FileResponse(path, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Type": "image/webp" if path.suffix == ".webp" else "image/gif",
        "X-Content-Type-Options": "nosniff",
    })


# ---------------------------------------------------------------------------------------
# admin pages: data from bot.reports / training.ledger_report, HTML from templates/


def _admin_actor(channel: str = DEFAULT_CHANNEL) -> Actor:
    return Actor(PLATFORM, WORKSPACE, channel, "admin", "admin", is_admin=True)


def _page(request: web.Request, template: str, title: str, **context: Any) -> web.Response:
    csrf = {"name": CSRF_FIELD, "token": request.app[ACCESS_KEY].csrf_token}
    context.update(title=title, names=NAMES, csrf=csrf)
    return aiohttp_jinja2.render_template(template, request, context)


def _emotion_param(request: web.Request) -> int:
    name = request.query.get("emotion", "happiness").strip().lower()
    if name not in INDEX:
        raise web.HTTPBadRequest(text=f"unknown emotion {name[:40]!r}; one of {', '.join(NAMES)}\n")
    return INDEX[name]


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _bad_input(request: web.Request, text: str) -> web.HTTPBadRequest:
    """A 400 for an admin form's input, in JSON (`{"kind": "error", "text": ...}`, as the
    command's own refusals) when the client asked for JSON, else one line of text."""
    if _wants_json(request):
        return web.HTTPBadRequest(text=json.dumps({"kind": "error", "text": text}),
                                  content_type="application/json")
    return web.HTTPBadRequest(text=text + "\n")


async def _admin_input(request: web.Request) -> dict[str, str]:
    """An admin form's fields: a browser's form post, or a script's JSON object (which
    carries the CSRF token in the X-CSRF-Token header, `web_guard`)."""
    if request.content_type != "application/json":
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        raise _bad_input(request, "expected a JSON object") from None
    if not isinstance(data, dict):
        raise _bad_input(request, "expected a JSON object")
    for key, value in data.items():
        if not isinstance(value, str):
            raise _bad_input(request, f"{str(key)[:40]} must be a string")
    return data


async def admin_pools(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    matrix = await _db(core.ranker.matrix)
    pools = await _db(reports.pool_rows, request.app[ENGINE_KEY], matrix)
    jobs = await _db(newest_jobs, request.app[ENGINE_KEY])
    if request.query.get("format") == "json":  # a script follows its queued pool add here
        return web.json_response({"pools": pools, "jobs": [_job_json(j) for j in jobs]},
                                 dumps=lambda o: json.dumps(o, default=str))
    return _page(request, "pools.html", "Pools", matrix=matrix, pools=pools, jobs=jobs)


def _job_json(job: Any) -> dict[str, Any]:
    return {"id": job.id, "what": job.what, "state": job.state, "detail": job.detail}


async def admin_pools_add(request: web.Request) -> web.Response:
    form = await _admin_input(request)
    name, source = form.get("name", "").strip(), form.get("source", "").strip()
    if not name or not source:  # the name's own rule is the pools' (scorer.pool_storage)
        raise _bad_input(request, "a pool needs a name (letters, digits, . _ -) and a source")
    return await _run_admin(request, _admin_actor(), AddPool(name, source), back="/admin")


async def _run_admin(request: web.Request, actor: Actor, command: AdminCommand, back: str) -> web.Response:
    """An admin command from a form: its reply as JSON when asked (a refusal with status
    400, like bad input), else back to the page (a refusal: a 400 with its text)."""
    reply = await request.app[CORE_KEY].run_admin(actor, command)
    if reply.kind == "error":
        raise _bad_input(request, reply.text or "refused")
    if _wants_json(request):
        return web.json_response(reply_json(reply))
    raise web.HTTPSeeOther(back)


async def admin_retrain(request: web.Request) -> web.Response:
    return await _run_admin(request, _admin_actor(), Retrain(), back="/admin/retrains")


async def admin_top(request: web.Request) -> web.Response:
    emotion = _emotion_param(request)
    matrix = await _db(request.app[CORE_KEY].ranker.matrix)
    rows = await _db(reports.top_gifs, request.app[ENGINE_KEY], matrix, emotion)
    for row in rows:
        row["url"] = gif_url(row["sha256"])
    if request.query.get("format") == "json":
        return web.json_response({"emotion": NAMES[emotion], "gifs": rows})
    return _page(request, "top.html", f"Top GIFs: {NAMES[emotion]}", emotion=emotion, rows=rows,
                 scored=matrix.scored)


async def admin_plot(request: web.Request) -> web.Response:
    name = request.match_info["emotion"]
    if name not in INDEX:
        raise web.HTTPNotFound()
    matrix = await _db(request.app[CORE_KEY].ranker.matrix)
    png = await _db(reports.distribution_png, request.app[ENGINE_KEY], matrix, INDEX[name])
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def admin_distribution(request: web.Request) -> web.Response:
    emotion = _emotion_param(request)
    return _page(request, "distribution.html", f"Score distribution: {NAMES[emotion]}", emotion=emotion)


async def admin_comparisons(request: web.Request) -> web.Response:
    st = await _db(ledger_report.summary, request.app[ENGINE_KEY])
    if request.query.get("format") == "json":
        return web.json_response(st)
    return _page(request, "comparisons.html", "Comparisons", st=st)


async def admin_retrains(request: web.Request) -> web.Response:
    runs = await _db(run_history.history, request.app[ENGINE_KEY], 50)
    # "retrain now" lands here: its job's state too (a skipped one started no run above)
    jobs = await _db(newest_jobs, request.app[ENGINE_KEY], 20, "retrain")
    if request.query.get("format") == "json":  # the jobs, every kind: /admin?format=json
        return web.json_response(runs, dumps=lambda o: json.dumps(o, default=str))
    return _page(request, "retrains.html", "Retrain history", runs=runs, jobs=jobs)


async def admin_workspaces(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    ctx = request.app[CORE_KEY].ctx
    rows = await _db(reports.workspace_rows, request.app[ENGINE_KEY], settings, ctx.now(),
                     50, ctx.teaches)
    if request.query.get("format") == "json":
        return web.json_response(rows, dumps=lambda o: json.dumps(o, default=str))
    return _page(request, "workspaces.html", "Workspaces", rows=rows,
                 memory_days=settings.chat.phrase_memory_days)


async def admin_forget_words(request: web.Request) -> web.Response:
    form = await _admin_input(request)
    words = form.get("words", "").strip()
    if not words:
        raise _bad_input(request, "which words? (the `words` field is empty)")
    return await _run_admin(request, _workspace_admin(request, form), ForgetPhrase(words[:MAX_WORDS]),
                            back="/admin/workspaces")


async def admin_unhide(request: web.Request) -> web.Response:
    form = await _admin_input(request)
    # Read as chat reads `unhide SHA|all`: one parser for the word.
    command = hide_command("unhide", form.get("sha256", "")) if form.get("sha256") else None
    if not isinstance(command, UnhideGif):
        raise _bad_input(request, "sha256: 8 to 64 hex digits of a hidden GIF's SHA-256, or all")
    return await _run_admin(request, _workspace_admin(request, form), command,
                            back="/admin/workspaces")


def _workspace_admin(request: web.Request, form: dict[str, str]) -> Actor:
    """The operator acting as an admin of one workspace (the form's `platform` and `workspace`)."""
    platform, workspace = form.get("platform", ""), form.get("workspace", "")
    # the demo's virtual users are a workspace too ("sim"): the page lists them, so its
    # buttons work on them
    if platform not in (*PLATFORMS, SIM_PLATFORM) or not _NAME.match(workspace):
        raise _bad_input(request, f"platform: one of {', '.join(PLATFORMS)}; workspace: its ID")
    return Actor(platform, workspace, "", "admin", "admin", is_admin=True)


def metrics_line(metrics: dict | None) -> str:
    """A retrain's numeric and short metrics on one line (the first eight)."""
    flat = {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float | str)}
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in list(flat.items())[:8])


def caption(row: dict) -> str:
    """A GIF's words on one short line (title, else slug; then tags)."""
    text = row.get("title") or row.get("slug") or ""
    if row.get("tags"):
        text = f"{text} [{', '.join(row['tags'][:4])}]".strip()
    return text[:60]


# ---------------------------------------------------------------------------------------
# the application


def build_app(core: BotCore, settings: Settings, engine: Engine) -> web.Application:
    """The playground, admin pages and `/gifs/`; other routes can be added by the caller."""
    access = Access(settings)
    app = web.Application(middlewares=[body_deadline, guard(access), busy], client_max_size=64 * 1024)
    app.on_response_prepare.append(refuse_framing)
    app[ACCESS_KEY] = access
    app[CORE_KEY] = core
    app[SETTINGS_KEY] = settings
    app[ENGINE_KEY] = engine
    aiohttp_jinja2.setup(app, loader=TEMPLATES, autoescape=True,  # titles and tags are hostile input
                         trim_blocks=True, lstrip_blocks=True,
                         filters={"caption": caption, "metrics_line": metrics_line})
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.router.add_get("/gifs/{name}", gif_file)
    app.router.add_post("/api/request", api_request)
    app.router.add_post("/api/shuffle", api_shuffle)
    app.router.add_post("/api/switch", api_switch)
    app.router.add_post("/api/choose", api_choose)
    app.router.add_post("/api/send", api_send)
    app.router.add_post("/api/cancel", api_cancel)
    app.router.add_post("/api/vote", api_vote)
    app.router.add_post("/api/undo", api_undo)
    app.router.add_post("/api/poll", api_poll)
    app.router.add_get("/api/emotions", api_emotions)
    app.router.add_get("/admin", admin_pools)
    app.router.add_post("/admin/pools", admin_pools_add)
    app.router.add_post("/admin/retrain", admin_retrain)
    app.router.add_get("/admin/top", admin_top)
    app.router.add_get("/admin/distribution", admin_distribution)
    app.router.add_get("/admin/plot/{emotion}.png", admin_plot)
    app.router.add_get("/admin/comparisons", admin_comparisons)
    app.router.add_get("/admin/retrains", admin_retrains)
    app.router.add_get("/admin/workspaces", admin_workspaces)
    app.router.add_post("/admin/workspaces/forget", admin_forget_words)
    app.router.add_post("/admin/workspaces/unhide", admin_unhide)
    return app

"""The local playground and admin pages (aiohttp): platform "web", workspace "local".

A chat-like page at `/` where you type `/gif happy` and get the preview with its buttons,
then the post with 👍/👎, through the same `BotCore` the Slack and Discord adapters use;
admin pages under `/admin` (pools, top GIFs per emotion, score distributions, comparisons,
retrain history); and the pool's files at `/gifs/<sha256>.gif`, the stable URLs the Slack
adapter hands out behind `settings.public_url`.

Only `/gifs/` is public. The playground and the admin pages answer requests from this
machine (loopback, with no proxy header) while the server is private, else only with the
admin token; every state-changing request must be same-origin (and JSON or carry the CSRF
token), and the Host must be this server's: `bot/adapters/web_guard.py` says how.

`build_app(core, settings, engine)` returns the application; `moodgif serve` mounts the
Slack routes and the ops routes (`/healthz`, `/readyz`, `/metrics`) on the same one.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from bot.adapters.web_guard import Access, guard
from bot.core import BotCore
from bot.events import Actor, GifCard, Reply
from bot.ranking import PRIOR_SD
from scorer.emotions import INDEX, NAMES
from scorer.settings import Settings
from scorer.store import Comparison, is_busy_error, request_path, session_scope

log = logging.getLogger("moodgif.bot.web")

STATIC_DIR = Path(__file__).with_name("web_static")
PLATFORM = "web"
WORKSPACE = "local"
DEFAULT_CHANNEL = "general"
USER_COOKIE = "moodgif_user"
_SHA_FILE = re.compile(r"^([0-9a-f]{64})\.(gif|webp)$")
_NAME = re.compile(r"^[\w.-]{1,64}$")  # user and channel names a request may pick
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
        if not is_busy_error(exc):
            raise
        log.warning("%s %s: database busy (locked by another process)", request.method, request.path)
        raise web.HTTPServiceUnavailable(text="The database is busy (locked by another job); "
                                              "try again in a moment.\n",
                                         headers={"Retry-After": "5"}) from None


def is_local(request: web.Request) -> bool:
    """Trusted as the operator without a token (never on an exposed server)."""
    return request.app[ACCESS_KEY].is_local(request)


# ---------------------------------------------------------------------------------------
# JSON forms of the core's replies


def gif_url(card: GifCard) -> str:
    return f"/gifs/{card.sha256}{card.local_path.suffix or '.gif'}"


def card_json(card: GifCard) -> dict[str, Any]:
    return {"sha256": card.sha256, "url": gif_url(card), "title": card.title,
            "alt": card.alt_text, "width": card.width, "height": card.height,
            "bytes": card.bytes, "emotion": card.emotion, "credit": card.credit}


def reply_json(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": reply.kind, "text": reply.text, "choices": list(reply.choices)}
    if reply.preview is not None:
        p = reply.preview
        out["preview"] = {"session_id": p.session_id, "emotion": p.emotion, "query": p.query,
                          "label": p.label, "interpretation": p.interpretation,
                          "topic": p.topic, "topic_only": p.topic_only,
                          "can_shuffle": p.can_shuffle, "confidence": round(p.confidence, 3),
                          "cards": [card_json(c) for c in p.cards]}
    if reply.post is not None:
        out["post"] = {"post_id": reply.post.post_id, "emotion": reply.post.emotion,
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
    if not isinstance(value, str) or not value or len(value) > limit:
        raise web.HTTPBadRequest(text=f"{key} is required\n")
    return value


async def api_request(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    data = await _body(request)
    text = data.get("text")
    if not isinstance(text, str):
        raise web.HTTPBadRequest(text="text is required\n")
    actor = _actor(request, data)
    reply = await core.request(actor, text)
    out = reply_json(reply)
    if reply.kind == "preview" and reply.preview is not None:
        poll = await core.maybe_poll(actor, reply.preview.emotion)
        if poll is not None:
            out["poll_reply"] = reply_json(poll)
    return web.json_response(out)


async def api_shuffle(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].shuffle(_actor(request, data), _str(data, "session_id"))
    return web.json_response(reply_json(reply))


async def api_send(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    data = await _body(request)
    sha = data.get("sha")
    if sha is not None and not isinstance(sha, str):
        raise web.HTTPBadRequest(text="sha must be a string\n")
    reply = await core.send(_actor(request, data), _str(data, "session_id"), sha or None)
    if reply.kind == "posted" and reply.post is not None:
        await core.attach_message(reply.post.post_id, f"web:{reply.post.post_id}")
    return web.json_response(reply_json(reply))


async def api_cancel(request: web.Request) -> web.Response:
    data = await _body(request)
    reply = await request.app[CORE_KEY].cancel(_actor(request, data), _str(data, "session_id"))
    return web.json_response(reply_json(reply))


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
    """Autocomplete: emotions matching what is typed so far."""
    prefix = request.query.get("q", "")[:100]
    core = request.app[CORE_KEY]
    names = await _db(core.parser.suggest_emotions, prefix, 8) \
        if hasattr(core.parser, "suggest_emotions") else [n for n in NAMES if n.startswith(prefix)]
    return web.json_response({"emotions": names})


async def index(request: web.Request) -> web.StreamResponse:
    resp = web.FileResponse(STATIC_DIR / "index.html")
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
# admin pages


def _admin_actor(channel: str = DEFAULT_CHANNEL) -> Actor:
    return Actor(PLATFORM, WORKSPACE, channel, "admin", "admin", is_admin=True)


def _page(title: str, body: str) -> web.Response:
    nav = " · ".join(f'<a href="{href}">{name}</a>' for href, name in (
        ("/", "playground"), ("/admin", "pools"), ("/admin/top", "top GIFs"),
        ("/admin/distribution", "score distribution"), ("/admin/comparisons", "comparisons"),
        ("/admin/retrains", "retrains")))
    doc = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)} · moodgif</title>"
           f'<link rel=stylesheet href="/static/style.css"></head><body class=admin>'
           f"<nav>{nav}</nav><h1>{html.escape(title)}</h1>{body}</body></html>")
    return web.Response(text=doc, content_type="text/html")


def _emotion_param(request: web.Request) -> int:
    name = request.query.get("emotion", "happiness").strip().lower()
    if name not in INDEX:
        raise web.HTTPBadRequest(text=f"unknown emotion {name[:40]!r}; one of {', '.join(NAMES)}\n")
    return INDEX[name]


def _emotion_picker(path: str, current: int) -> str:
    links = " ".join(
        f'<a href="{path}?emotion={n}"{" class=current" if i == current else ""}>{n}</a>'
        for i, n in enumerate(NAMES))
    return f"<p class=emotions>{links}</p>"


def _pool_priors(engine, names: list[str]) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Per pool: GIFs the zero-shot prior scored, and how many of them have only its wide prior."""
    from scorer.pool import pool_gifs
    from scorer.prior import prior_summary

    return {name: prior_summary(engine, pool_gifs(engine, name)) for name in names}


async def admin_pools(request: web.Request) -> web.Response:
    from scorer.pool import list_pools

    core = request.app[CORE_KEY]
    pools = await _db(list_pools, request.app[ENGINE_KEY])
    priors = await _db(_pool_priors, request.app[ENGINE_KEY], [p["name"] for p in pools])
    matrix = await _db(core.ranker.matrix)
    rows = "".join(
        f"<tr><td>{html.escape(p['name'])}</td><td>{p['gifs']}</td>"
        f"<td>{int(matrix.pools[p['name']].sum()) if p['name'] in matrix.pools else 0}</td>"
        f"<td>{priors[p['name']]['scored']}</td><td>{priors[p['name']]['wide']}</td>"
        f"<td>{html.escape(p['created_at'])}</td></tr>" for p in pools)
    jobs = "".join(f"<li>job {j.id}: {html.escape(j.what)}: <b>{j.state}</b> {html.escape(j.detail)}</li>"
                   for j in reversed(core.jobs))
    body = (
        f"<p>{matrix.size} GIFs ranked; scores from model version "
        f"{matrix.model_version_id or '— (not scored yet)'}, Bradley-Terry fit {matrix.fit_id or '—'} "
        f"({matrix.n_bt} GIFs with votes).</p>"
        "<table><tr><th>pool</th><th>GIFs</th><th>ranked</th><th>zero-shot prior</th>"
        "<th title='no face and no words: explored more until votes place them'>wide prior only</th>"
        "<th>created</th></tr>"
        f"{rows or '<tr><td colspan=6>no pools yet</td></tr>'}</table>"
        "<h2>Add a pool</h2><form method=post action=/admin/pools>"
        + request.app[ACCESS_KEY].hidden_field() +
        "<label>name <input name=name required pattern='[A-Za-z0-9_.-]+'></label> "
        "<label>source <input name=source required size=50 "
        "placeholder='a folder, a manifest (.csv/.json), a URL list (.txt) or giphy:WORDS'></label> "
        "<button>add and score</button></form>"
        + (f"<h2>Jobs</h2><ul>{jobs}</ul>" if jobs else "")
    )
    return _page("Pools", body)


async def admin_pools_add(request: web.Request) -> web.Response:
    form = await request.post()
    name, source = str(form.get("name", "")).strip(), str(form.get("source", "")).strip()
    if not _NAME.match(name) or not source:
        raise web.HTTPBadRequest(text="a pool needs a name (letters, digits, . _ -) and a source\n")
    reply = await request.app[CORE_KEY].admin(_admin_actor(), "pools", ["add", name, source])
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(reply_json(reply))
    if reply.kind == "error":
        raise web.HTTPBadRequest(text=(reply.text or "refused") + "\n")
    raise web.HTTPSeeOther("/admin")


async def admin_retrain(request: web.Request) -> web.Response:
    reply = await request.app[CORE_KEY].admin(_admin_actor(), "retrain", [])
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(reply_json(reply))
    raise web.HTTPSeeOther("/admin/retrains")


def top_gifs(core: BotCore, emotion: int, k: int = 24) -> list[dict[str, Any]]:
    """The k GIFs with the highest posterior mean on one emotion, across every pool."""
    m = core.ranker.matrix()
    if not m.size:
        return []
    col = m.mean[emotion]
    k = min(k, m.size)
    idx = np.argpartition(-col, k - 1)[:k]
    idx = idx[np.argsort(-col[idx], kind="stable")]
    shas = [m.shas[int(i)] for i in idx]
    words, voted = _words_and_votes(core.engine, shas)
    out = []
    for i, sha in zip(idx, shas, strict=True):
        sd = float(m.sd[emotion, i])
        out.append({"sha256": sha, "mean": float(col[i]), "sd": sd,
                    "voted": sha in voted, "url": f"/gifs/{sha}.gif", **words.get(sha, {})})
    return out


def _words_and_votes(engine, shas: list[str]) -> tuple[dict[str, dict], set[str]]:  # type: ignore[no-untyped-def]
    """The GIFs' own words (title, tags, slug) and which of them somebody compared: the
    zero-shot prior has its own per-GIF width, so a narrow sd no longer means votes."""
    from sqlalchemy import or_, select

    from scorer.store import Comparison, Gif, session_scope

    with session_scope(engine) as s:
        words = {g.sha256: {"title": g.title or "", "tags": list(g.tags or []), "slug": g.slug or ""}
                 for g in s.scalars(select(Gif).where(Gif.sha256.in_(shas)))}
        rows = s.execute(select(Comparison.winner, Comparison.loser).where(
            or_(Comparison.winner.in_(shas), Comparison.loser.in_(shas)))).all()
    voted = {x for row in rows for x in row} & set(shas)
    return words, voted


async def admin_top(request: web.Request) -> web.Response:
    emotion = _emotion_param(request)
    core = request.app[CORE_KEY]
    rows = await _db(top_gifs, core, emotion)
    if request.query.get("format") == "json":
        return web.json_response({"emotion": NAMES[emotion], "gifs": rows})
    scored = (await _db(core.ranker.matrix)).scored
    cells = "".join(
        f'<figure><img src="{r["url"]}" alt="" loading=lazy width=96 height=96>'
        f"<figcaption>{r['mean']:.2f} ± {r['sd']:.2f}<br>{html.escape(_caption(r))}</figcaption></figure>"
        for r in rows)
    note = "" if scored else "<p><b>Not scored yet:</b> these are in no particular order.</p>"
    return _page(f"Top GIFs: {NAMES[emotion]}", _emotion_picker("/admin/top", emotion) + note
                 + f"<div class=grid>{cells or 'no GIFs'}</div>"
                 "<p>Score = posterior mean ± sd on the [0, 1] scale (model prior + votes).</p>")


def _caption(row: dict) -> str:
    """A GIF's words on one short line (title, else slug; then tags)."""
    text = row.get("title") or row.get("slug") or ""
    if row.get("tags"):
        text = f"{text} [{', '.join(row['tags'][:4])}]".strip()
    return text[:60]


def render_distribution(core: BotCore, emotion: int) -> bytes:
    """PNG histogram of one emotion's posterior means (GIFs with votes drawn separately)."""
    from matplotlib.figure import Figure  # no pyplot: thread-safe, no global state

    m = core.ranker.matrix()
    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot()
    if m.size and m.scored:
        col = m.mean[emotion]
        sd = m.sd[emotion]
        voted = sd < np.float32(PRIOR_SD * 0.999)  # narrower than the prior: votes moved it
        bins = np.linspace(0, 1, 31)
        ax.hist(col[~voted], bins=bins, alpha=0.7, label=f"model only ({int((~voted).sum())})")
        if voted.any():
            ax.hist(col[voted], bins=bins, alpha=0.7, label=f"with votes ({int(voted.sum())})")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "not scored yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{NAMES[emotion]} score (posterior mean)")
    ax.set_ylabel("GIFs")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


async def admin_plot(request: web.Request) -> web.Response:
    name = request.match_info["emotion"]
    if name not in INDEX:
        raise web.HTTPNotFound()
    png = await _db(render_distribution, request.app[CORE_KEY], INDEX[name])
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def admin_distribution(request: web.Request) -> web.Response:
    emotion = _emotion_param(request)
    return _page(f"Score distribution: {NAMES[emotion]}",
                 _emotion_picker("/admin/distribution", emotion)
                 + f'<img src="/admin/plot/{NAMES[emotion]}.png" alt="histogram" width=600 height=320>')


def comparisons_summary(engine: Engine, limit: int = 50) -> dict[str, Any]:
    from training.comparisons import stats

    st = stats(engine)
    with session_scope(engine) as s:
        rows = s.execute(select(Comparison.id, Comparison.source, Comparison.emotion,
                                Comparison.winner, Comparison.loser, Comparison.tie,
                                Comparison.platform, Comparison.created_at)
                         .order_by(Comparison.id.desc()).limit(limit)).all()
    st["recent"] = [{"id": r[0], "source": r[1], "emotion": NAMES[r[2]] if 0 <= r[2] < len(NAMES) else r[2],
                     "winner": r[3], "loser": r[4], "tie": bool(r[5]), "platform": r[6],
                     "at": r[7].isoformat(timespec="seconds")} for r in rows]
    return st


async def admin_comparisons(request: web.Request) -> web.Response:
    st = await _db(comparisons_summary, request.app[ENGINE_KEY])
    if request.query.get("format") == "json":
        return web.json_response(st)
    src = ", ".join(f"{k}: {v}" for k, v in st["by_source"].items()) or "none yet"
    emo = ", ".join(f"{k}: {v}" for k, v in st["by_emotion"].items()) or "none yet"
    rows = "".join(
        f"<tr><td>{r['id']}</td><td>{r['source']}</td><td>{r['emotion']}</td>"
        f"<td>{html.escape(r['winner'][:12])}</td><td>{'tie' if r['tie'] else 'beats'}</td>"
        f"<td>{html.escape(r['loser'][:12])}</td><td>{html.escape(r['platform'])}</td>"
        f"<td>{r['at']}</td></tr>" for r in st["recent"])
    body = (f"<p>{st['total']} comparisons from {st['people']} people ({src}); "
            f"{st['ties']} ties.</p><p>By emotion: {emo}</p>"
            "<table><tr><th>#</th><th>source</th><th>emotion</th><th>winner</th><th></th>"
            f"<th>loser</th><th>platform</th><th>when (UTC)</th></tr>{rows}</table>")
    return _page("Comparisons", body)


async def admin_retrains(request: web.Request) -> web.Response:
    from training.retrain import history

    runs = await _db(history, request.app[ENGINE_KEY], 50)
    if request.query.get("format") == "json":
        return web.json_response(runs, dumps=lambda o: json.dumps(o, default=str))

    def metrics(m: dict) -> str:
        flat = {k: v for k, v in (m or {}).items() if isinstance(v, int | float | str)}
        return html.escape(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in list(flat.items())[:8]))

    rows = "".join(
        f"<tr><td>{r['id']}</td><td>{r['trigger']}</td><td>{r['status']}</td><td>{r['step']}</td>"
        f"<td>{r['started_at']:%Y-%m-%d %H:%M}</td><td>{r['model_version_id'] or ''}</td>"
        f"<td>{metrics(r['metrics'])}</td><td>{html.escape((r['error'] or '')[:120])}</td></tr>"
        for r in runs)
    body = ("<form method=post action=/admin/retrain>" + request.app[ACCESS_KEY].hidden_field()
            + "<button>retrain now</button></form>"
            "<table><tr><th>#</th><th>trigger</th><th>status</th><th>step</th><th>started</th>"
            f"<th>model</th><th>metrics</th><th>error</th></tr>{rows or '<tr><td colspan=8>no runs yet</td></tr>'}"
            "</table>")
    return _page("Retrain history", body)


# ---------------------------------------------------------------------------------------
# the application


def build_app(core: BotCore, settings: Settings, engine: Engine) -> web.Application:
    """The playground, admin pages and `/gifs/`; other routes can be added by the caller."""
    access = Access(settings)
    app = web.Application(middlewares=[guard(access), busy], client_max_size=64 * 1024)
    app[ACCESS_KEY] = access
    app[CORE_KEY] = core
    app[SETTINGS_KEY] = settings
    app[ENGINE_KEY] = engine
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.router.add_get("/gifs/{name}", gif_file)
    app.router.add_post("/api/request", api_request)
    app.router.add_post("/api/shuffle", api_shuffle)
    app.router.add_post("/api/send", api_send)
    app.router.add_post("/api/cancel", api_cancel)
    app.router.add_post("/api/vote", api_vote)
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
    return app

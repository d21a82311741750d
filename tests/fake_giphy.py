"""A local fake of GIPHY's API and its media CDN, for tests and benchmarks.

The answers have the shapes GIPHY's real ones have (https://developers.giphy.com/docs/api/):
`data[]` entries with `type`, `id`, `url`, `slug`, `title`, `alt_text`, `rating`,
`username`, `source`, `source_post_url`, `user`, and `images.{original, downsized, ...}`
whose `url`, `size`, `width`, `height` are strings; `pagination` {total_count, count,
offset}; `meta` {status, msg, response_id}. Errors come back as GIPHY sends them (401 with
a `message`, 429 with `Retry-After`). The media app serves the renditions' bytes and
counts every download, so a test can see that a resumed import fetched nothing twice.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeGif:
    id: str
    title: str
    words: str = ""  # extra words the search matches (like GIPHY's tags)
    rating: str = "g"
    username: str = ""
    source: str = ""
    alt_text: str = ""
    renditions: dict[str, bytes] = field(default_factory=dict)  # name -> bytes
    stated_sizes: dict[str, int] = field(default_factory=dict)  # a size GIPHY claims instead
    url_override: dict[str, str] = field(default_factory=dict)  # name -> absolute URL

    @property
    def slug(self) -> str:
        words = "-".join(w for w in self.title.lower().replace("gif", "").split() if w.isalnum())
        return f"{words}-{self.id}" if words else self.id


class FakeGiphy:
    def __init__(self, key: str = "test-giphy-key") -> None:
        self.key = key
        self.gifs: list[FakeGif] = []
        self.media_base = ""  # set once the media app listens
        self.api_calls: list[tuple[str, dict[str, str]]] = []
        self.downloads: Counter[str] = Counter()
        self.fail_429 = 0  # the next N API calls answer 429
        self.fail_5xx = 0  # the next N API calls answer 503
        self.retry_after = "0"
        self.page_max = 50
        self.redirect_to = ""  # where /redirect/... sends a rendition request
        self.broken_paging = False  # ignore `offset` and give no total_count (a bad proxy)

    def add(self, gif: FakeGif) -> FakeGif:
        self.gifs.append(gif)
        return gif

    # ---------------------------------------------------------------- answers
    def _entry(self, g: FakeGif) -> dict:
        images = {}
        for name, data in g.renditions.items():
            url = g.url_override.get(name) or f"{self.media_base}/media/{g.id}/{name}.gif?cid=fake&rid={name}.gif&ct=g"
            images[name] = {"height": "100", "width": "100",
                            "size": str(g.stated_sizes.get(name, len(data))), "url": url,
                            "mp4": f"{self.media_base}/media/{g.id}/{name}.mp4",
                            "webp": f"{self.media_base}/media/{g.id}/{name}.webp"}
        return {
            "type": "gif", "id": g.id, "url": f"https://giphy.com/gifs/{g.slug}",
            "slug": g.slug, "bitly_gif_url": f"https://gph.is/{g.id}",
            "embed_url": f"https://giphy.com/embed/{g.id}", "username": g.username,
            "source": g.source, "title": g.title, "rating": g.rating, "content_url": "",
            "source_tld": "", "source_post_url": g.source, "is_sticker": 0,
            "import_datetime": "2020-01-01 00:00:00", "trending_datetime": "0000-00-00 00:00:00",
            "images": images, "alt_text": g.alt_text,
            "user": ({"avatar_url": "", "banner_url": "", "profile_url": f"https://giphy.com/{g.username}/",
                      "username": g.username, "display_name": g.username.title(),
                      "is_verified": False} if g.username else None),
            "analytics_response_payload": "",
        }

    def _page(self, hits: list[FakeGif], offset: int, limit: int) -> dict:
        if self.broken_paging:
            offset = 0
        chosen = hits[offset : offset + min(limit, self.page_max)]
        total = 0 if self.broken_paging else len(hits)
        return {"data": [self._entry(g) for g in chosen],
                "pagination": {"total_count": total, "count": len(chosen), "offset": offset},
                "meta": {"status": 200, "msg": "OK", "response_id": uuid.uuid4().hex[:16]}}

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.api_calls.append((request.path, dict(request.query)))
        key = request.query.get("api_key", "")
        if not key:
            return web.json_response({"message": "No API key found in request"}, status=401)
        if key != self.key:
            return web.json_response({"meta": {"status": 403, "msg": "Forbidden"}, "data": []}, status=403)
        if self.fail_429 > 0:
            self.fail_429 -= 1
            return web.json_response({"meta": {"status": 429, "msg": "API rate limit exceeded"},
                                      "data": []}, status=429, headers={"Retry-After": self.retry_after})
        if self.fail_5xx > 0:
            self.fail_5xx -= 1
            return web.Response(status=503, text="upstream overloaded")
        return None

    @staticmethod
    def _allowed(g: FakeGif, rating: str) -> bool:
        order = ["y", "g", "pg", "pg-13", "r"]
        if not rating or g.rating not in order:
            return True
        return order.index(g.rating) <= order.index(rating)

    async def search(self, request: web.Request) -> web.Response:
        if (refusal := await self._gate(request)) is not None:
            return refusal
        q = request.query.get("q", "").lower().split()
        rating = request.query.get("rating", "")
        hits = [g for g in self.gifs if self._allowed(g, rating)
                and set(q) <= set(re.split(r"[^a-z0-9]+", f"{g.title} {g.words} {g.slug}".lower()))]
        return web.json_response(self._page(hits, int(request.query.get("offset", 0)),
                                            int(request.query.get("limit", 25))))

    async def trending(self, request: web.Request) -> web.Response:
        if (refusal := await self._gate(request)) is not None:
            return refusal
        rating = request.query.get("rating", "")
        hits = [g for g in self.gifs if self._allowed(g, rating)]
        return web.json_response(self._page(hits, int(request.query.get("offset", 0)),
                                            int(request.query.get("limit", 25))))

    async def by_ids(self, request: web.Request) -> web.Response:
        if (refusal := await self._gate(request)) is not None:
            return refusal
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        by = {g.id: g for g in self.gifs}
        hits = [by[i] for i in ids if i in by]
        return web.json_response(self._page(hits, 0, len(hits) or 1))

    async def media(self, request: web.Request) -> web.Response:
        gid, name = request.match_info["gid"], request.match_info["name"]
        by = {g.id: g for g in self.gifs}
        if gid not in by or name not in by[gid].renditions:
            return web.Response(status=404)
        self.downloads[f"{gid}/{name}"] += 1
        return web.Response(body=by[gid].renditions[name], content_type="image/gif")

    async def redirect(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirect_to)

    def api_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/gifs/search", self.search)
        app.router.add_get("/v1/gifs/trending", self.trending)
        app.router.add_get("/v1/gifs", self.by_ids)
        return app

    def media_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/media/{gid}/{name}.gif", self.media)
        app.router.add_get("/redirect/{gid}/{name}.gif", self.redirect)
        return app

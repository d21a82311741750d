"""A small GIPHY API client: search, trending and GIFs by id, with paging and backoff.

Only the API calls live here (aiohttp, JSON). The renditions themselves are downloaded by
`scorer.fetch` (SSRF-safe, size-capped) from `scorer.giphy_import`, which also stores them.

* The base URL is `settings.giphy.api_url` (tests point it at a local fake); the key is
  `settings.giphy.api_key` (`GIPHY_API_KEY`, a secret: it is sent as GIPHY asks, in the
  `api_key` query parameter, and never appears in an error message or a log line).
* 429 and 5xx are retried with exponential backoff, honouring `Retry-After`; 401/403 stop at
  once with one line about the key; every other failure is one `GiphyError` line.
* Each GIF becomes a `GiphyGif`: its id, cleaned words (title, slug, alt text), the rating
  mapped onto moodgif's ratings, the attribution fields, and its renditions.

GIPHY ratings and moodgif's (a GIF is never rated more permissively than GIPHY rates it):

    GIPHY  y  -> g       ("youth": stricter than g, so it fits under any ceiling)
    GIPHY  g  -> g
    GIPHY  pg -> pg
    GIPHY  pg-13 -> pg-13
    GIPHY  r  -> r
    missing or unknown -> None (moodgif treats an unknown rating as pg-13)
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from scorer.settings import RATINGS, Settings
from scorer.words import MAX_ALT, MAX_TITLE, clean_text

GIPHY_RATING_MAP: dict[str, str] = {"y": "g", "g": "g", "pg": "pg", "pg-13": "pg-13", "r": "r"}
# GIPHY's own rating filter for a moodgif ceiling: results at or below it.
CEILING_PARAM: dict[str, str] = {"g": "g", "pg": "pg", "pg-13": "pg-13", "r": "r"}
# Renditions tried in order when the original is over the size cap; all are GIFs.
RENDITIONS: tuple[str, ...] = (
    "original", "downsized_large", "downsized_medium", "downsized", "fixed_height",
    "fixed_width", "fixed_height_downsampled", "fixed_width_downsampled", "fixed_height_small",
    "fixed_width_small",
)
PAGE_MAX = 50  # GIPHY's largest page for search and trending
IDS_MAX = 100  # GIPHY's largest batch for /v1/gifs?ids=
GIPHY_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class GiphyError(RuntimeError):
    """One line an admin can act on: missing or refused key, quota, outage, bad answer."""


class GiphyKeyError(GiphyError):
    """No key, or GIPHY refused it (401/403)."""


def map_rating(giphy_rating: str | None) -> str | None:
    """GIPHY's rating on moodgif's scale (see the module doc); None when unknown."""
    return GIPHY_RATING_MAP.get((giphy_rating or "").strip().lower())


def _int(raw: Any) -> int | None:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Rendition:
    name: str
    url: str
    size: int | None  # bytes, when GIPHY says
    width: int | None = None
    height: int | None = None


@dataclass
class GiphyGif:
    id: str
    title: str = ""
    slug: str = ""
    alt_text: str = ""
    giphy_rating: str = ""
    rating: str | None = None  # on moodgif's scale
    username: str = ""
    source_url: str = ""  # where the uploader says it comes from
    giphy_url: str = ""  # its page on giphy.com
    renditions: list[Rendition] = field(default_factory=list)
    query: str = ""  # the search phrase that found it (starter pools)

    @property
    def external_id(self) -> str:
        return f"giphy:{self.id}"

    def attribution(self) -> dict[str, str]:
        out = {"provider": "giphy", "username": self.username, "source_url": self.source_url,
               "giphy_url": self.giphy_url}
        if self.query:
            out["query"] = self.query
        return out

    def pick(self, cap: int) -> Rendition | str:
        """The first rendition (original first) under `cap` bytes, or why there is none.

        A rendition whose size GIPHY does not state is tried (the fetcher caps it anyway).
        """
        if not self.renditions:
            return "no GIF rendition in GIPHY's answer"
        for r in self.renditions:
            if r.size is None or r.size <= cap:
                return r
        smallest = min(self.renditions, key=lambda r: r.size or 0)
        return (f"too large: every GIF rendition is over the size cap (original "
                f"{self.renditions[0].size:,} bytes, smallest {smallest.name} {smallest.size:,} "
                f"bytes; cap {cap:,})")


def parse_gif(obj: Any) -> GiphyGif | None:
    """A `data[]` entry of a GIPHY answer, or None when it has no usable id."""
    if not isinstance(obj, dict):
        return None
    gid = str(obj.get("id") or "").strip()
    if not GIPHY_ID.match(gid):
        return None
    slug = clean_text(obj.get("slug"), MAX_TITLE)
    # "happy-dance-abc123": the words are the slug without the id GIPHY appends.
    if slug.endswith(gid):
        slug = slug[: -len(gid)].rstrip("-")
    username = str(obj.get("username") or (obj.get("user") or {}).get("username") or "").strip()
    images = obj.get("images") if isinstance(obj.get("images"), dict) else {}
    renditions = []
    for name in RENDITIONS:
        img = images.get(name)
        if not isinstance(img, dict):
            continue
        url = str(img.get("url") or "")
        if not url.lower().startswith(("https://", "http://")):
            continue
        renditions.append(Rendition(name, url, _int(img.get("size")), _int(img.get("width")),
                                    _int(img.get("height"))))
    giphy_rating = str(obj.get("rating") or "").strip().lower()
    page = str(obj.get("url") or "")
    source = str(obj.get("source_post_url") or obj.get("source") or "")
    return GiphyGif(
        id=gid,
        title=clean_text(obj.get("title"), MAX_TITLE),
        slug=slug,
        alt_text=clean_text(obj.get("alt_text"), MAX_ALT),
        giphy_rating=giphy_rating,
        rating=map_rating(giphy_rating),
        username=username if _USERNAME.match(username) else "",
        source_url=source if source.lower().startswith(("https://", "http://")) else "",
        giphy_url=page if page.lower().startswith(("https://", "http://")) else "",
        renditions=renditions,
    )


@dataclass
class Page:
    gifs: list[GiphyGif]
    total_count: int
    count: int
    offset: int
    skipped: int = 0  # entries without a usable id


def check_key(settings: Settings) -> None:
    """GiphyKeyError, with what to do, when no GIPHY key is set: the CLI, chat and the web
    admin refuse a `giphy:` source with this one line before anything is queued."""
    if not settings.giphy.api_key:
        raise GiphyKeyError(
            "GIPHY_API_KEY is not set: create a key at https://developers.giphy.com/dashboard/ "
            "and export GIPHY_API_KEY=... (see the README's 'Real GIFs in one command')")


class GiphyClient:
    """GIPHY's API over one aiohttp session; use as `async with GiphyClient(settings) as c`."""

    def __init__(self, settings: Settings, *, backoff_s: float = 1.0, retries: int | None = None,
                 max_wait_s: float = 120.0) -> None:
        check_key(settings)
        self.settings = settings
        self.base = settings.giphy.api_url.rstrip("/")
        self.backoff_s = backoff_s
        self.retries = settings.fetch.retries if retries is None else retries
        self.max_wait_s = max_wait_s  # a Retry-After longer than this is not waited for
        self.calls = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GiphyClient:
        timeout = aiohttp.ClientTimeout(total=self.settings.fetch.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _scrub(self, text: str) -> str:
        return text.replace(self.settings.giphy.api_key, "***")

    async def _get(self, path: str, params: dict[str, str]) -> dict:
        assert self._session is not None, "use `async with GiphyClient(...)`"
        query = {"api_key": self.settings.giphy.api_key, **params}
        url = f"{self.base}{path}"
        attempts = 1 + max(0, self.retries)
        last = ""
        for attempt in range(attempts):
            wait = self.backoff_s * (2**attempt) * (1 + 0.25 * random.random())
            try:
                self.calls += 1
                async with self._session.get(url, params=query, allow_redirects=False) as resp:
                    if resp.status in (401, 403):
                        raise GiphyKeyError(
                            f"GIPHY refused the API key (HTTP {resp.status}): check GIPHY_API_KEY "
                            "at https://developers.giphy.com/dashboard/")
                    if resp.status == 429 or resp.status >= 500:
                        last = ("GIPHY rate limit reached (HTTP 429)" if resp.status == 429
                                else f"GIPHY is unavailable (HTTP {resp.status})")
                        after = _retry_after(resp.headers.get("Retry-After"))
                        if after is not None:
                            if after > self.max_wait_s:
                                raise GiphyError(
                                    f"{last}: it asks to wait {after:.0f} s; run the same command "
                                    "again later (it resumes where it stopped)")
                            wait = max(wait, after)
                    elif resp.status != 200:
                        raise GiphyError(f"GIPHY answered HTTP {resp.status} {resp.reason or ''}"
                                         f" to {path}".rstrip())
                    else:
                        try:
                            body = await resp.json(content_type=None)
                        except (ValueError, aiohttp.ContentTypeError):
                            raise GiphyError(f"GIPHY's answer to {path} is not JSON") from None
                        if not isinstance(body, dict) or not isinstance(body.get("data"), list | dict):
                            raise GiphyError(f"GIPHY's answer to {path} has no 'data'")
                        return body
            except GiphyError:
                raise
            except TimeoutError:
                last = f"GIPHY timed out after {self.settings.fetch.timeout_s:g} s"
            except aiohttp.ClientError as exc:
                last = self._scrub(f"cannot reach GIPHY at {self.base}: {exc.__class__.__name__}")
            if attempt + 1 < attempts:
                await asyncio.sleep(wait)
        hint = " (beta keys allow about 100 calls an hour)" if "429" in last else ""
        raise GiphyError(f"{last} after {attempts} attempts{hint}; run the same command again "
                         "later: it resumes where it stopped")

    def _page(self, body: dict) -> Page:
        raw = body.get("data") or []
        raw = raw if isinstance(raw, list) else [raw]
        gifs = [g for g in (parse_gif(x) for x in raw) if g is not None]
        pag = body.get("pagination") if isinstance(body.get("pagination"), dict) else {}
        count = _int(pag.get("count"))
        return Page(gifs=gifs, total_count=_int(pag.get("total_count")) or 0,
                    count=len(raw) if count is None else count, offset=_int(pag.get("offset")) or 0,
                    skipped=len(raw) - len(gifs))

    async def search(self, query: str, *, limit: int = PAGE_MAX, offset: int = 0,
                     rating: str | None = None) -> Page:
        params = {"q": query, "limit": str(min(PAGE_MAX, max(1, limit))), "offset": str(offset)}
        if rating:
            params["rating"] = CEILING_PARAM[rating]
        return self._page(await self._get("/v1/gifs/search", params))

    async def trending(self, *, limit: int = PAGE_MAX, offset: int = 0,
                       rating: str | None = None) -> Page:
        params = {"limit": str(min(PAGE_MAX, max(1, limit))), "offset": str(offset)}
        if rating:
            params["rating"] = CEILING_PARAM[rating]
        return self._page(await self._get("/v1/gifs/trending", params))

    async def by_ids(self, ids: Sequence[str]) -> list[GiphyGif]:
        out: list[GiphyGif] = []
        for start in range(0, len(ids), IDS_MAX):
            chunk = ids[start : start + IDS_MAX]
            out += self._page(await self._get("/v1/gifs", {"ids": ",".join(chunk)})).gifs
        return out

    async def collect(self, kind: str, query: str = "", *, limit: int,
                      rating: str | None = None) -> list[GiphyGif]:
        """Up to `limit` distinct GIFs of a search or of trending, following `pagination`."""
        out: dict[str, GiphyGif] = {}
        offset = 0
        while len(out) < limit:
            want = min(PAGE_MAX, limit - len(out))
            page = (await self.search(query, limit=want, offset=offset, rating=rating)
                    if kind == "search" else await self.trending(limit=want, offset=offset, rating=rating))
            before = len(out)
            for g in page.gifs:
                if len(out) < limit:
                    out.setdefault(g.id, g)
            served = page.count or (len(page.gifs) + page.skipped)
            offset = page.offset + served
            if served == 0 or (page.total_count and offset >= page.total_count):
                break
            if len(out) == before and not page.skipped:
                break  # a page of nothing new: an API that ignores `offset` cannot loop us
        return list(out.values())


def _retry_after(raw: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date counts as a minute)."""
    if not raw:
        return None
    try:
        return max(0.0, float(raw.strip()))
    except ValueError:
        return 60.0


def check_ceiling(rating: str | None) -> str | None:
    if rating is not None and rating not in RATINGS:
        raise GiphyError(f"unknown rating ceiling {rating!r} (expected {', '.join(RATINGS)})")
    return rating


__all__ = ["GIPHY_RATING_MAP", "GiphyClient", "GiphyError", "GiphyGif", "GiphyKeyError",
           "check_key", "clean_text", "map_rating", "parse_gif"]

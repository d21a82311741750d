"""Who may use the playground and admin pages, and which requests they may send.

The playground writes real votes and the admin pages create pools and start retrains, so
every request to them (everything but `/gifs/`, `/slack/` and the ops routes) passes:

1. **Host allow-list** (DNS rebinding): the `Host` header must name this server: a
   loopback name (`localhost`, `127.0.0.1`, `::1`), the host of `public_url`, the bound
   address when it is a specific one, or a name in `allowed_hosts`. A page on
   `evil.example` whose name an attacker re-points to 127.0.0.1 still sends
   `Host: evil.example`, and is refused (421).
2. **Who**: on a private server (bound to loopback, no `public_url`) a request from this
   machine that came through no proxy, or one with the admin token. On an *exposed* server
   (bound to anything else, or `public_url` set: a forwarder may make every request look
   local) only the admin token counts, as `Authorization: Bearer TOKEN` or as the password
   of HTTP Basic (so a browser can log in); with no token set those pages are off (403).
3. **Same origin** for every state-changing request (POST...): `Sec-Fetch-Site` must be
   `same-origin` or `none` when a browser sends it, and `Origin`, when present, must be
   this very server. The JSON API also requires `Content-Type: application/json` (a
   cross-site page cannot send that without a CORS preflight, which is never granted), and
   the admin forms carry a CSRF token (browsers attach Basic credentials to cross-site form
   posts by themselves; a Bearer header they never attach, so Bearer calls need no token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from scorer.settings import Settings

log = logging.getLogger("moodgif.bot.web")

PUBLIC_PREFIXES = ("/gifs/", "/healthz", "/readyz", "/metrics", "/slack/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
CSRF_FIELD = "csrf"
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")


def _is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_exposed(settings: Settings) -> bool:
    """Reachable from other machines: bound beyond loopback, or published under a URL."""
    return bool(settings.http.public_url.strip()) or not _is_loopback_name(settings.http.host or "0.0.0.0")


def split_host(value: str) -> str:
    """The host name of a `Host` header or URL netloc, lower-case, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare IPv6 address or a plain name


def allowed_hosts(settings: Settings) -> frozenset[str]:
    hosts = set(LOOPBACK_NAMES)
    if settings.http.public_url.strip():
        try:
            name = urlsplit(settings.http.public_url.strip()).hostname
        except ValueError:
            name = None
        if name:
            hosts.add(name.lower())
    bound = (settings.http.host or "").strip("[]").lower()
    if bound and bound not in ("0.0.0.0", "::", ""):
        hosts.add(bound)
    hosts.update(h.strip().lower() for h in settings.http.allowed_hosts if h.strip())
    return frozenset(hosts)


def peer_is_local(request: web.Request) -> bool:
    """A request from this machine that did not come through a (header-adding) proxy."""
    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address((request.remote or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Access:
    """The policy of one application: built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exposed = is_exposed(settings)
        self.hosts = allowed_hosts(settings)
        # Derived from the admin token when there is one, so every replica behind a load
        # balancer (and the next restart) accepts the forms the others rendered; a page on
        # another origin can read neither.
        self.csrf_token = (
            base64.urlsafe_b64encode(hmac.digest(settings.http.admin_token.encode(), b"moodgif csrf v1",
                                                 "sha256")).decode().rstrip("=")
            if settings.http.admin_token else secrets.token_urlsafe(32))
        if self.exposed and not settings.http.admin_token:
            log.warning(
                "the playground and admin pages are OFF: this server is exposed (bound to %s%s) "
                "and MOODGIF_ADMIN_TOKEN is empty; set it to use them (see docs/security.md)",
                settings.http.host, f", public URL {settings.http.public_url}" if settings.http.public_url else "")

    # --- who ----------------------------------------------------------------------------
    def token_kind(self, request: web.Request) -> str | None:
        """'bearer' or 'basic' when the request carries the admin token, else None."""
        token = self.settings.http.admin_token
        auth = request.headers.get("Authorization", "")
        if not token or not auth:
            return None
        scheme, _, value = auth.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            given = value.strip()
        elif scheme == "basic":
            try:
                given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return None
        else:
            return None
        return scheme if hmac.compare_digest(given.encode(), token.encode()) else None

    def is_local(self, request: web.Request) -> bool:
        """Trusted as the operator without a token: only on a server that is not exposed."""
        return not self.exposed and peer_is_local(request)

    # --- checks -------------------------------------------------------------------------
    def host_ok(self, request: web.Request) -> bool:
        raw = request.headers.get("Host")
        return bool(raw) and split_host(raw) in self.hosts

    def same_origin(self, request: web.Request) -> str | None:
        """Why a state-changing request is cross-site, or None when it is not."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return f"cross-site request (Sec-Fetch-Site: {site[:20]})"
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not a browser, or a same-origin navigation by an old one
        try:
            parts = urlsplit(origin)
            origin_host = (parts.hostname or "").lower()
            origin_port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "bad Origin header"
        if origin == "null" or not origin_host:
            return "opaque origin"
        host = request.headers.get("Host", "")
        host_name = split_host(host)
        try:
            tail = host.rsplit("]", 1)[-1]
            host_port = int(tail.rsplit(":", 1)[1]) if ":" in tail else None
        except ValueError:
            host_port = -1
        # A Host without a port was sent to a default port: 80, or 443 through a TLS proxy (the
        # server cannot tell which); an Origin on any other port of the same host is another site.
        ports = {host_port} if host_port is not None else {80, 443}
        if origin_host != host_name or origin_port not in ports:
            # Behind a TLS-terminating proxy the public URL is the origin: allow it exactly.
            public = self.settings.http.public_url.strip().rstrip("/")
            if not public or origin.rstrip("/").lower() != public.lower():
                return "cross-origin request"
        return None

    async def csrf_ok(self, request: web.Request) -> bool:
        if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return request.headers.get("X-CSRF-Token", "") != "" and hmac.compare_digest(
                request.headers.get("X-CSRF-Token", "").encode(), self.csrf_token.encode())
        form = await request.post()  # cached: the handler reads the same parsed form
        given = str(form.get(CSRF_FIELD, ""))
        return hmac.compare_digest(given.encode(), self.csrf_token.encode())


# No page of moodgif's may be shown inside another site's frame: a framed admin page's one-click
# buttons (forget, show again, retrain now) would pass every origin and CSRF check.
NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


async def refuse_framing(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response, errors included, forbids framing."""
    for name, value in NO_FRAMING.items():
        response.headers.setdefault(name, value)


# A request's body must arrive within this (Slack and browsers send theirs at once): aiohttp
# bounds the headers' wait but not the body's, so 300 connections dripping a byte every 5 s
# once sat open indefinitely.
BODY_READ_S = 15.0


@web.middleware
async def body_deadline(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Read the whole body first, within `BODY_READ_S` and the app's size cap (a declared
    Content-Length over the cap is refused before a byte is read); the handler then reads
    the cached body."""
    if request.body_exists:
        cap = request.client_max_size
        if request.content_length is not None and request.content_length > cap:
            return _closing(413, f"The request body is over {cap:,} bytes.\n")
        try:
            await asyncio.wait_for(request.read(), BODY_READ_S)
        except TimeoutError:
            log.info("%s %s: the body did not arrive within %g s; connection closed",
                     request.method, request.path, BODY_READ_S)
            return _closing(408, "The request body did not arrive in time.\n")
    return await handler(request)


def _closing(status: int, text: str) -> web.Response:
    """An answer after which the connection closes: its body is not worth waiting for."""
    response = web.Response(status=status, text=text)
    response.force_close()
    return response


def guard(access: Access) -> Callable:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        if getattr(request.match_info, "http_exception", None) is not None:
            return await handler(request)  # no such route or method: its 404/405, nothing to guard
        if not access.host_ok(request):
            raise web.HTTPMisdirectedRequest(
                text="This server does not answer to that Host name (add it to MOODGIF_ALLOWED_HOSTS).\n")
        kind = access.token_kind(request)
        if kind is None and not access.is_local(request):
            if access.exposed and not access.settings.http.admin_token:
                raise web.HTTPForbidden(
                    text="The playground and admin pages are off: this server is reachable from "
                         "other machines and MOODGIF_ADMIN_TOKEN is not set.\n")
            if access.exposed:
                raise web.HTTPUnauthorized(
                    text="The admin token is required (Authorization: Bearer <MOODGIF_ADMIN_TOKEN>, "
                         "or log in with it as the password).\n",
                    headers={"WWW-Authenticate": 'Basic realm="moodgif admin", charset="UTF-8"'})
            raise web.HTTPForbidden(text="The playground and admin pages answer only local requests "
                                         "or `Authorization: Bearer <MOODGIF_ADMIN_TOKEN>`.\n")
        if request.method not in SAFE_METHODS:
            why = access.same_origin(request)
            if why is not None:
                log.warning("refused %s %s: %s", request.method, request.path, why)
                raise web.HTTPForbidden(text=f"Refused: {why}.\n")
            if request.path.startswith("/api/"):
                if request.content_type != "application/json":
                    raise web.HTTPUnsupportedMediaType(text="expected Content-Type: application/json\n")
            elif kind != "bearer" and not await access.csrf_ok(request):
                raise web.HTTPForbidden(text="Refused: missing or wrong CSRF token; reload the page.\n")
        return await handler(request)

    return middleware


__all__ = ["BODY_READ_S", "PUBLIC_PREFIXES", "Access", "allowed_hosts", "body_deadline", "guard", "is_exposed", "peer_is_local"]

"""Fetch GIFs from URLs with aiohttp, safely.

* Bounded concurrency (`settings.fetch.concurrency`), a total timeout per attempt
  (`fetch_timeout_s`), retries with exponential backoff (`fetch_retries`) on timeouts,
  connection errors, 429 and 5xx; no retry on other 4xx or on a refusal.
* A byte cap (`max_gif_bytes`) checked on Content-Length and again while streaming.
* The real type from the first bytes, not from the Content-Type header or the name.
* SSRF protection: only http(s); every hop of a redirect chain (followed by hand, at most
  `MAX_REDIRECTS`) is checked; host names are resolved by us and *every* answer must be a
  public address (no loopback, private, link-local, multicast, reserved, unspecified,
  CGNAT, or their IPv6 / IPv4-mapped forms). The connection then goes to exactly the
  addresses that were checked (a pinned resolver), so a DNS answer cannot change between
  the check and the connect. `settings.fetch.allow_private_urls` turns the address check off;
  `trusted` exempts exact (ip, port) endpoints, which is how tests reach a local server
  while still checking every other address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from scorer.frames import SUPPORTED_FORMATS, describe_format, sniff_format
from scorer.settings import Settings

MAX_REDIRECTS = 5
BACKOFF_S = 0.5
USER_AGENT = "moodgif/0.1 (+https://github.com/moodgif)"

# host, port -> IP address strings
Lookup = Callable[[str, int], Awaitable[list[str]]]


def too_large(size: int | None, cap: int) -> str:
    """The one wording of a refusal over the byte cap (fetch, file, tar); `size` None when only
    "more than the cap" is known (a stream cut off at the cap)."""
    said = f"{size:,} bytes" if size is not None else f"more than {cap:,} bytes"
    return f"too large: {said} (cap {cap:,})"


class FetchRefused(Exception):
    """A URL that will not be fetched (or kept); the message is the reason. Not retried."""


class _Retryable(Exception):
    """A failure worth another attempt (timeout, connection error, 429, 5xx)."""


@dataclass
class FetchResult:
    url: str
    data: bytes | None = None
    error: str | None = None
    final_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


def address_problem(ip: str) -> str | None:
    """Why an address may not be fetched from, or None when it is public."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return address_problem(str(mapped))
    for attr, word in (
        # most specific first: 169.254/16 is also "private" to Python
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(addr, attr):
            return f"{word} address {addr}"
    if not addr.is_global:
        return f"non-public address {addr}"
    return None


async def _system_lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class _Policy:
    def __init__(self, allow_private: bool, trusted: Collection[tuple[str, int]], lookup: Lookup):
        self.allow_private = allow_private
        self.trusted = {(str(ipaddress.ip_address(h)), int(p)) for h, p in trusted}
        self.lookup = lookup

    def check(self, ip: str, port: int, host: str) -> None:
        if self.allow_private or (str(ipaddress.ip_address(ip.split("%", 1)[0])), port) in self.trusted:
            return
        problem = address_problem(ip)
        if problem:  # the problem names the address; the host only when it is a name
            raise FetchRefused(f"refused: {problem}" if host == ip
                               else f"refused: {host} resolves to a {problem}")

    async def resolve(self, host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
            ips = [host]
        except ValueError:
            try:
                ips = await self.lookup(host, port)
            except (OSError, UnicodeError) as exc:
                raise FetchRefused(f"cannot resolve host {host}: {exc}") from None
        if not ips:
            raise FetchRefused(f"cannot resolve host {host}")
        for ip in ips:  # every answer, not just the first: one bad one refuses the host
            self.check(ip, port, host)
        return ips


class _PinnedResolver(AbstractResolver):
    """Gives aiohttp exactly the addresses the policy checked for this host."""

    def __init__(self, pinned: dict[tuple[str, int], list[str]]) -> None:
        self.pinned = pinned

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        ips = self.pinned.get((host, port))
        if not ips:
            raise OSError(f"{host}:{port} was not checked before connecting")
        return [
            ResolveResult(
                hostname=host, host=ip, port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0, flags=socket.AI_NUMERICHOST,
            )
            for ip in ips
        ]

    async def close(self) -> None:
        return None


class Fetcher:
    def __init__(
        self,
        settings: Settings,
        *,
        trusted: Collection[tuple[str, int]] = (),
        lookup: Lookup | None = None,
        backoff_s: float = BACKOFF_S,
        accept: Collection[str] = SUPPORTED_FORMATS,
    ) -> None:
        self.settings = settings
        self.accept = frozenset(accept)  # sniffed kinds kept: GIF/WebP, or "text" for a list
        self.policy = _Policy(settings.fetch.allow_private_urls, trusted, lookup or _system_lookup)
        self.backoff_s = backoff_s
        self.pinned: dict[tuple[str, int], list[str]] = {}

    async def fetch_all(
        self, urls: Sequence[str], on_done: Callable[[FetchResult], None] | None = None
    ) -> list[FetchResult]:
        s = self.settings
        sem = asyncio.Semaphore(max(1, s.fetch.concurrency))
        connector = aiohttp.TCPConnector(
            resolver=_PinnedResolver(self.pinned), limit=max(1, s.fetch.concurrency),
            use_dns_cache=False,
        )
        timeout = aiohttp.ClientTimeout(total=s.fetch.timeout_s, sock_connect=s.fetch.timeout_s)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        ) as session:

            async def one(url: str) -> FetchResult:
                async with sem:
                    result = await self._fetch_with_retries(session, url)
                if on_done:
                    on_done(result)
                return result

            return list(await asyncio.gather(*(one(u) for u in urls)))

    async def _fetch_with_retries(self, session: aiohttp.ClientSession, url: str) -> FetchResult:
        attempts = 1 + max(0, self.settings.fetch.retries)
        last = "failed"
        for attempt in range(attempts):
            try:
                data, final = await self._fetch_once(session, url)
                return FetchResult(url, data=data, final_url=final)
            except FetchRefused as exc:
                return FetchResult(url, error=str(exc))
            except _Retryable as exc:
                last = str(exc)
            except Exception as exc:  # one odd URL must never abort the whole import
                return FetchResult(url, error=f"refused: {type(exc).__name__}: {str(exc)[:120]}")
            if attempt + 1 < attempts:
                delay = self.backoff_s * (2**attempt) * (1 + 0.25 * random.random())
                await asyncio.sleep(delay)
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        return FetchResult(url, error=last + suffix)

    async def _fetch_once(self, session: aiohttp.ClientSession, url: str) -> tuple[bytes, str]:
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                parts = urlsplit(current)
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError as exc:  # port 99999, "http://[::1": one refusal, not a traceback
                raise FetchRefused(f"refused: malformed URL ({str(exc)[:80]})") from None
            if parts.scheme not in ("http", "https"):
                raise FetchRefused(f"refused: not an http(s) URL: {current[:200]}")
            if not parts.hostname:
                raise FetchRefused(f"refused: no host in URL {current[:200]}")
            self.pinned[(parts.hostname, port)] = await self.policy.resolve(parts.hostname, port)
            try:
                async with session.get(current, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchRefused(f"HTTP {resp.status} redirect without a Location")
                        current = urljoin(current, location)
                        continue
                    if resp.status == 429 or resp.status >= 500:
                        raise _Retryable(f"HTTP {resp.status} {resp.reason or ''}".strip())
                    if resp.status != 200:
                        raise FetchRefused(f"HTTP {resp.status} {resp.reason or ''}".strip())
                    return await self._read_body(resp), current
            except TimeoutError:
                raise _Retryable(f"timed out after {self.settings.fetch.timeout_s:g} s") from None
            except aiohttp.ClientError as exc:
                refusal = _find_refusal(exc)
                if refusal is not None:
                    raise refusal from None
                raise _Retryable(f"connection failed: {exc.__class__.__name__}: {exc}") from None
        raise FetchRefused(f"too many redirects (more than {MAX_REDIRECTS})")

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.settings.fetch.max_gif_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise FetchRefused(too_large(resp.content_length, cap))
        buf = bytearray()
        checked = False
        async for chunk in resp.content.iter_chunked(64 * 1024):
            buf += chunk
            if len(buf) > cap:
                raise FetchRefused(too_large(None, cap))
            if not checked and len(buf) >= 16:
                # Stop a wrong type after its first bytes instead of downloading it all.
                kind = sniff_format(bytes(buf[:512]))
                if kind not in self.accept:
                    raise FetchRefused(_wrong_type(kind, resp, self.accept))
                checked = True
        if not checked:
            kind = sniff_format(bytes(buf[:512]))
            if kind not in self.accept:
                raise FetchRefused(_wrong_type(kind, resp, self.accept))
        return bytes(buf)


def _wrong_type(kind: str, resp: aiohttp.ClientResponse, accept: Collection[str]) -> str:
    declared = resp.headers.get("Content-Type", "")
    # a URL list or manifest is text: "not a GIF" would name the wrong thing
    reason = f"not a text list ({kind} data)" if "text" in accept else describe_format(kind)
    return f"wrong type: {reason}" + (f" (served as {declared})" if declared else "")


def _find_refusal(exc: BaseException) -> FetchRefused | None:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, FetchRefused):
            return cur
        cur = cur.__cause__ or cur.__context__ or getattr(cur, "os_error", None)
    return None


def fetch_urls(
    settings: Settings,
    urls: Sequence[str],
    *,
    trusted: Collection[tuple[str, int]] = (),
    lookup: Lookup | None = None,
    backoff_s: float = BACKOFF_S,
    on_done: Callable[[FetchResult], None] | None = None,
    accept: Collection[str] = SUPPORTED_FORMATS,
) -> list[FetchResult]:
    """Fetch every URL (results in the same order); never raises for one bad URL. `accept`:
    the sniffed kinds kept (GIF and WebP; {"text"} for a URL list or manifest).

    Runs its own event loop; called from a thread that already runs one (a bot handler
    that forgot to use a worker thread), it runs that loop in a helper thread instead.
    """
    fetcher = Fetcher(settings, trusted=trusted, lookup=lookup, backoff_s=backoff_s, accept=accept)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetcher.fetch_all(list(urls), on_done))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, fetcher.fetch_all(list(urls), on_done)).result()

"""Resumable downloads of large dataset files (the GIFGIF dump): HTTP Range, SHA-256, progress.

`obtain(source, dest_dir)` takes a local path as it is, or downloads an http(s) URL into
`dest_dir`:

* bytes go to `<name>.part`; an interrupted download resumes from its size with
  `Range: bytes=N-` (a server that ignores the range answers 200, and the file restarts);
* a connection error or a 5xx/429 is retried (`settings.fetch.retries`, backoff), each time
  resuming from where the bytes stopped;
* when a SHA-256 is given, the finished file must match it, or it is deleted and the
  download fails with both digests; only then is `.part` renamed to its final name, so a
  file with the final name is always complete.

The URL is the admin's own (like a local path), so it is not limited to public addresses
or to the GIF size cap as pool downloads are.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from scorer.settings import Settings

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """One line: what failed and what to do."""


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, sha256: str | None) -> None:
    if sha256:
        got = sha256_file(path)
        if got != sha256.lower():
            raise DownloadError(f"{path.name}: SHA-256 {got} does not match the expected {sha256}")


def obtain(settings: Settings, source: str | Path, dest_dir: Path, *, sha256: str | None = None,
           progress: bool = False, backoff_s: float = 1.0) -> Path:
    """A local file for SOURCE (a path, or an http(s) URL downloaded into dest_dir)."""
    text = str(source)
    if not _is_url(text):
        path = Path(os.path.expanduser(text))
        if not path.is_file():
            raise DownloadError(f"no such file: {path}")
        _check(path, sha256)
        return path
    name = Path(unquote(urlsplit(text).path)).name or "download"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    if dest.is_file():  # finished earlier (the final name is only ever given to a whole file)
        _check(dest, sha256)
        return dest
    part = dest.with_name(dest.name + ".part")
    asyncio.run(_download(settings, text, part, progress=progress, backoff_s=backoff_s))
    try:
        _check(part, sha256)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


async def _download(settings: Settings, url: str, part: Path, *, progress: bool,
                    backoff_s: float) -> None:
    from tqdm import tqdm

    attempts = 1 + max(0, settings.fetch.retries)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.fetch.timeout_s,
                                    sock_read=settings.fetch.timeout_s)
    last = ""
    bar = tqdm(unit="B", unit_scale=True, desc=part.name.removesuffix(".part"), file=sys.stderr,
               disable=None if progress else True)
    try:
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            for attempt in range(attempts):
                have = part.stat().st_size if part.exists() else 0
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    async with session.get(url, headers=headers) as resp:
                        if resp.status == 416 and have:
                            return  # nothing left to send: the part is whole
                        if resp.status == 429 or resp.status >= 500:
                            last = f"HTTP {resp.status}"
                        elif resp.status not in (200, 206):
                            raise DownloadError(f"{url}: HTTP {resp.status} {resp.reason or ''}".rstrip())
                        else:
                            mode = "ab" if resp.status == 206 else "wb"
                            start = have if resp.status == 206 else 0
                            total = resp.content_length
                            bar.reset(total=(start + total) if total is not None else None)
                            bar.update(start)
                            with part.open(mode) as fh:
                                async for chunk in resp.content.iter_chunked(CHUNK):
                                    fh.write(chunk)
                                    bar.update(len(chunk))
                            if total is not None and part.stat().st_size < start + total:
                                last = "the connection closed early"
                            else:
                                return
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{exc.__class__.__name__}: {exc}"[:200]
                if attempt + 1 < attempts:
                    await asyncio.sleep(backoff_s * (2**attempt))
    finally:
        bar.close()
    raise DownloadError(f"{url}: {last} after {attempts} attempts; run the same command again "
                        f"to resume from {part.stat().st_size if part.exists() else 0:,} bytes")


__all__ = ["DownloadError", "obtain", "sha256_file"]

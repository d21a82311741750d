"""Which pool SOURCEs a chat or web admin may name (the CLI operator may name any).

A Slack workspace admin, a Discord server manager or someone logged in to the web admin
is not the operator of the machine: from them, `pools add NAME SOURCE` takes
* an http(s) URL (fetched with the SSRF checks of `scorer.fetch`),
* `giphy:QUERY` (a provider query; treated like a URL: no server file is read), or
* a path inside one of the folders the operator listed in `admin_source_dirs`
  (`MOODGIF_ADMIN_SOURCE_DIRS`), after following symlinks; a manifest's rows and a
  folder's symlinks must stay inside those folders too.
Anything else is refused with one fixed message that does not depend on whether the path
exists, so a reply never tells which server paths exist. With `admin_source_dirs` empty
(the default) no server path is accepted from chat or the web.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from scorer.settings import Settings

PROVIDER_PREFIXES = ("giphy:",)


class SourceNotAllowed(ValueError):
    """The SOURCE may not be used from chat or the web; the message says what may."""


@dataclass(frozen=True)
class AllowedSource:
    source: str
    roots: tuple[Path, ...]  # the folders files may come from (empty: no server file)


def admin_roots(settings: Settings) -> tuple[Path, ...]:
    return tuple(Path(d).resolve() for d in settings.fetch.admin_source_dirs if d.strip() and os.path.isabs(d))


def _refusal(settings: Settings) -> SourceNotAllowed:
    where = ("a path inside the folders the operator allowed (MOODGIF_ADMIN_SOURCE_DIRS)"
             if admin_roots(settings) else
             "no server path: the operator allowed no folder (MOODGIF_ADMIN_SOURCE_DIRS)")
    return SourceNotAllowed(f"From chat or the web a pool source is an http(s) URL, giphy:QUERY, or {where}.")


def url_problem(url: str) -> str | None:
    """Why a URL cannot even be parsed (bad port, bracket, no host, a control character or
    space, which no server means and PostgreSQL cannot store: NUL), or None."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "malformed URL (a space or control character in it)"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return f"malformed URL ({str(exc)[:60]})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "not an http(s) URL with a host"
    return None


def check_admin_source(settings: Settings, source: str) -> AllowedSource:
    """The SOURCE as chat/web may use it, or SourceNotAllowed."""
    text = source.strip()
    lower = text.lower()
    if lower.startswith(PROVIDER_PREFIXES):
        return AllowedSource(text, ())
    if lower.startswith(("http://", "https://")):
        problem = url_problem(text)
        if problem:
            raise SourceNotAllowed(f"That URL cannot be used: {problem}.")
        return AllowedSource(text, ())
    roots = admin_roots(settings)
    # No "~", no relative paths: they would mean the server's own home or working folder.
    if not roots or not os.path.isabs(text) or "\x00" in text:
        raise _refusal(settings)
    resolved = Path(text).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise _refusal(settings)
    return AllowedSource(str(resolved), roots)


__all__ = ["AllowedSource", "SourceNotAllowed", "admin_roots", "check_admin_source", "url_problem"]

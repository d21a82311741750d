"""A GIF's own words at ingest: titles from file names, slugs from URLs, clean manifest text.

These words feed the word channel of the zero-shot prior (`scorer.prior`) and are shown to
admins, so everything that comes from outside goes through `clean_text` first: control
characters and HTML tags removed, whitespace collapsed, length capped. Never raises.
"""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

MAX_TITLE = 300  # characters; a GIF title longer than a tweet is noise, not a title
MAX_TAG = 60
MAX_TAGS = 30
MAX_ALT = 1000

_TAG_RE = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]{0,500}>", re.I | re.S)
_SPACE_RE = re.compile(r"\s+")
# Tokens that look like ids, not words: long hex/base62 runs with digits, or pure numbers.
_HASHLIKE = re.compile(r"^(?=.*\d)[A-Za-z0-9]{8,}$|^[0-9a-fA-F]{12,}$|^\d+$")
_ID_TAIL = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9]{5,}$")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[-_.\s+~]+")


# Words about the file, not the feeling: a title like "i dont give a fuck gif" or a tag
# "reaction gif" says what the thing is, and the sentence model reads "gif" alone as
# amusement (0.95). Dropped from what the prior's word channel reads (`reading_text`), never
# from the title shown to admins.
FORMAT_WORDS = frozenset({"gif", "gifs", "giphy", "gifv", "webp", "mp4", "animated", "animation",
                          "reaction", "reactions", "meme", "memes", "hd", "loop", "tumblr"})
_WORD = re.compile(r"[^\W_]+")


def reading_text(text: str) -> str:
    """`text` without FORMAT_WORDS (whole words, any case); '' when only punctuation is left
    (dashes, spaces) of a text that had them ("reaction-gif"). Emoji and emoticons stay."""
    text = text.strip()
    kept = _SPACE_RE.sub(" ", _WORD.sub(
        lambda m: "" if m.group(0).lower() in FORMAT_WORDS else m.group(0), text)).strip()
    if kept == text:
        return kept
    return kept if any(unicodedata.category(ch) not in ("Pd", "Pc", "Zs") for ch in kept) else ""


def clean_text(raw: object, cap: int = MAX_TITLE) -> str:
    """Plain, printable, single-line text of at most `cap` characters ('' for None).

    The one cleaner of words someone else wrote (manifests, GIPHY's fields): tags and
    script bodies dropped, entities decoded (every renderer escapes again), cut at a word."""
    if raw is None:
        return ""
    text = html.unescape(_TAG_RE.sub(" ", str(raw)))
    # Controls and line breaks become spaces; format characters (bidi overrides,
    # zero-width) go, except the emoji joiner that holds a family emoji together. Every
    # script's letters stay: a Japanese or Arabic title is a title.
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
                   else "" if unicodedata.category(ch) == "Cf" and ch != "\u200d" else ch
                   for ch in text)
    text = _SPACE_RE.sub(" ", text).strip()
    text = text.replace("<", "").replace(">", "")  # stray brackets of a cut-off tag
    if len(text) > cap:
        text = text[:cap].rsplit(" ", 1)[0] if " " in text[:cap] else text[:cap]
    return text


def clean_tags(raw: list[str]) -> list[str]:
    out: list[str] = []
    for tag in raw[: MAX_TAGS * 2]:
        t = clean_text(tag, MAX_TAG)
        if t and t.lower() not in (o.lower() for o in out):
            out.append(t)
        if len(out) >= MAX_TAGS:
            break
    return out


def words_from_name(stem: str) -> str:
    """'happy-dance', 'HappyDance_3f9a2c1b7d' -> 'happy dance'; ids and numbers dropped."""
    stem = unquote(stem)
    words: list[str] = []
    for token in _SPLIT.split(stem):
        if not token or _HASHLIKE.match(token):
            continue
        words += [w for w in _CAMEL.split(token) if w]
    return clean_text(" ".join(words).lower() if words else "", MAX_TITLE)


def title_from_path(name: str) -> str:
    """A folder file's title: its name without the suffix (and a `category__` prefix kept as words)."""
    stem = PurePosixPath(name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return words_from_name(stem)


def slug_from_url(url: str) -> str:
    """The URL's word-bearing slug: giphy.com/gifs/happy-dance-abc123 -> 'happy-dance'.

    The last path segment that is not a bare id or a file name like 'giphy.gif'; a trailing
    id joined by '-' is cut off. Media hosts (media.giphy.com/media/<id>/giphy.gif) give ''.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    segments = [unquote(p) for p in path.split("/") if p]
    for i in range(len(segments) - 1, -1, -1):
        segment = segments[i]
        if i > 0 and segments[i - 1].lower() == "media":
            continue  # media.giphy.com/media/<id>/...: the segment after "media" is an id
        seg = segment.rsplit(".", 1)[0] if "." in segment else segment
        if seg.lower() in ("giphy", "source", "200", "100", "original", "gifs", "media", "raw"):
            continue
        parts = [p for p in re.split(r"-", seg) if p]
        # GIPHY-style page slugs end in the GIF's id ("happy-dance-abc123"): a last token
        # that mixes letters and digits is an id, not a word.
        while len(parts) > 1 and (_HASHLIKE.match(parts[-1]) or _ID_TAIL.match(parts[-1])):
            parts.pop()
        if not parts or all(_HASHLIKE.match(p) for p in parts):
            continue
        return clean_text("-".join(parts), MAX_TITLE)
    return ""


__all__ = ["FORMAT_WORDS", "MAX_ALT", "MAX_TAG", "MAX_TITLE", "clean_tags", "clean_text", "reading_text",
           "slug_from_url", "title_from_path", "words_from_name"]

"""What to show while someone is still typing a request: how the words so far would be read
(feeling, topic) and emotion completions. Both come from the core (`BotCore.interpret` and the
core's own intent parser), so a hint never disagrees with the answer the request then gets.

Used by Discord's `/gif` autocomplete and the playground's `/api/emotions`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scorer.emotions import NAMES

if TYPE_CHECKING:
    from bot.core import BotCore
    from bot.events import Actor
    from bot.topics import Reading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TypingHint:
    reading: str  # "happiness · topic: cat"; "" when there is nothing to say yet
    completions: list[str]  # emotion names and lexicon words that start like the last word


def reading_line(reading: Reading) -> str:
    """A short line for a hint: the feeling (or the closest ones), the topic, what is missing."""
    from bot.flows.switches import switches_for

    parts = []
    if reading.emotion:  # with the preview's switches when it is unsure: "anger (or contempt / ...)"
        others = switches_for(reading, reading.emotion)
        parts.append(reading.emotion + (f" (or {' / '.join(others)})" if others else ""))
    elif reading.intent.kind in ("did_you_mean", "unknown") and reading.intent.alternatives:
        # an unsure reading's guesses are the buttons the request will answer with
        parts.append("did you mean " + " / ".join(e for e, _ in reading.intent.alternatives[:3]))
    if reading.topic:
        parts.append("topic: " + " ".join(reading.topic))
    if reading.missing:
        parts.append("no GIFs about " + " ".join(reading.missing))
    return " · ".join(parts)


def completions(core: BotCore, prefix: str, limit: int) -> list[str]:
    parser = core.parser
    if hasattr(parser, "suggest_emotions"):
        return list(parser.suggest_emotions(prefix, limit=limit))[:limit]
    # a parser without completions (a test double): emotion names only
    return [n for n in NAMES if n.startswith(prefix.strip().lower())][:limit]


def typing_hint(core: BotCore, text: str, limit: int = 25, actor: Actor | None = None,
                length: int | None = None) -> TypingHint:
    """Synchronous (the parser and the snapshot may be built on first use): call it from a
    worker thread. `actor`: who is typing, so the hint reads their workspace's words as the
    request will. `length`: how long the whole text is, when only its start was sent (the
    playground). Never raises for the reading: a hint that fails is just not shown."""
    from bot.intent import MAX_CHARS, TOO_LONG, too_long

    if too_long(text) or (length or 0) > MAX_CHARS:  # the request will be refused: say so
        return TypingHint(reading=TOO_LONG, completions=[])
    line = ""
    if (text or "").strip():
        try:
            line = reading_line(core.interpret(text, actor))
        except Exception:
            log.debug("typing hint: reading failed", exc_info=True)
    return TypingHint(reading=line, completions=completions(core, text or "", limit))

"""What a preview offers besides its GIF: the request's other likely feelings as one-click
switches ("Not quite? Switch to: contempt"), and every other feeling in an "Another
feeling…" menu. Used by the previews (`bot.flows.requests`), the typing hints (`bot.hints`)
and the reading of a workspace's own words (`bot.flows.context`), which applies exactly where
a preview admits doubt.
"""

from __future__ import annotations

from bot.topics import Reading
from scorer.emotions import INDEX, NAMES

# A preview offers the request's other likely feelings as switches unless the reading is
# this sure, and only those with at least this share (bot.intent's alternatives). A guess
# (a sentence's reading, `Intent.is_guess`) offers its next ones whatever its confidence.
SWITCH_SURE = 0.9
SWITCH_MIN_SHARE = 0.1
MAX_SWITCHES = 3


def more_feelings(reading: Reading | None, shown: str, switches: tuple[str, ...]) -> tuple[str, ...]:
    """Every other feeling, for the "Another feeling…" menu: wherever the preview admits doubt
    (it offers switches; its reading is a guess, such as a workspace's pick for words the
    parser could not read; it says under 90 % ("lol" 85 %, with no other feeling at 10 %); or
    it answers a "did you mean")."""
    if not switches and not _doubted(reading):
        return ()
    return tuple(n for n in NAMES if n != shown and n not in switches)


def _doubted(reading: Reading | None) -> bool:
    if reading is None:
        return False
    intent = reading.intent
    if intent.kind == "did_you_mean":
        return True
    return bool(reading.emotion) and (intent.is_guess or intent.confidence < SWITCH_SURE)


def switches_for(reading: Reading | None, shown: str) -> tuple[str, ...]:
    """The feelings a preview of `shown` offers to switch to: the reading's own answer when
    the person switched away from it, then its alternatives with a real share, unless the
    reading was sure; after a "did you mean" pick, its other guesses. None for a topic alone
    (no feeling was named)."""
    if reading is None or not (reading.emotion or reading.intent.kind == "did_you_mean"):
        return ()
    intent = reading.intent
    if intent.emotion == shown and intent.confidence >= SWITCH_SURE and not intent.is_guess:
        return ()
    # a guess offers its next ones whatever their share; so does a "did you mean" pick, whose
    # other guesses were the buttons beside it a moment ago
    min_share = 0.0 if intent.is_guess or intent.kind == "did_you_mean" else SWITCH_MIN_SHARE
    options = [intent.emotion] + [e for e, p in intent.alternatives if p >= min_share]
    return tuple(e for e in dict.fromkeys(options) if e in INDEX and e != shown)[:MAX_SWITCHES]


__all__ = ["MAX_SWITCHES", "SWITCH_MIN_SHARE", "SWITCH_SURE", "more_feelings", "switches_for"]

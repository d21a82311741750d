"""The 17 GIFGIF emotion axes: the one definition used by every part of moodgif.

The order is GIFGIF's and is part of every stored array (index = position), so it must
never change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Emotion:
    index: int
    name: str
    description: str
    emoji: str


_AXES: tuple[tuple[str, str, str], ...] = (
    ("amusement", "finding something funny; laughing", "😂"),
    ("anger", "being mad or furious at someone or something", "😡"),
    ("contempt", "looking down on someone; scorn, eye-rolling disdain", "🙄"),
    ("contentment", "calm, quiet satisfaction with how things are", "😌"),
    ("disgust", "revulsion at something gross or offensive", "🤢"),
    ("embarrassment", "awkward self-consciousness after a social slip", "😳"),
    ("excitement", "eager, energetic anticipation; hyped", "🤩"),
    ("fear", "being scared, anxious or terrified", "😱"),
    ("guilt", "feeling responsible for having done something wrong", "😬"),
    ("happiness", "joy and good cheer", "😄"),
    ("pleasure", "sensory enjoyment; something feels good", "😋"),
    ("pride", "satisfaction in one's own achievement; nailed it", "😎"),
    ("relief", "the release of tension when a worry is over; phew", "😮‍💨"),
    ("sadness", "sorrow, disappointment, feeling down", "😢"),
    ("satisfaction", "a need or goal fulfilled; a job well done", "👌"),
    ("shame", "painful feeling of having done something dishonourable", "🙈"),
    ("surprise", "being startled or amazed by the unexpected", "😮"),
)

EMOTIONS: tuple[Emotion, ...] = tuple(
    Emotion(i, name, desc, emoji) for i, (name, desc, emoji) in enumerate(_AXES)
)
NAMES: tuple[str, ...] = tuple(e.name for e in EMOTIONS)
N_EMOTIONS: int = len(EMOTIONS)
INDEX: dict[str, int] = {e.name: e.index for e in EMOTIONS}


class UnknownEmotionError(ValueError):
    """A name that is not one of the 17 axes."""


def emotion_index(name: str) -> int:
    """Index of an emotion name (case-insensitive); raises UnknownEmotionError."""
    key = name.strip().lower()
    try:
        return INDEX[key]
    except KeyError:
        raise UnknownEmotionError(
            f"unknown emotion {name!r}; expected one of: {', '.join(NAMES)}"
        ) from None

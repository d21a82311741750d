"""A workspace's own words: how people here sent the same request before.

Teams say things the parser cannot know ("monday again" means anger in one team and
sadness in another). Every Send from a preview already says which feeling a person wanted
for their words, and previews keep the words (`chat_sessions.query_key`). So a request whose
words were sent before in the same workspace is read the way people here sent it:

- Only where the parser is not sure: a sentence (however sure the model is, a situation
  can mean several feelings) or a feeling word below the confidence from which a preview
  offers no switches ("ugh", "monday again"). A feeling word read as sure ("happy") is never
  overruled, so two people cannot turn a plain word into a prank, and sure requests, most
  short ones, cost no lookup.
- **Your own last pick** for these words comes first: a switch then a Send is remembered
  for the next time you type the same thing.
- Else **the workspace's pick**: the feeling the most people here last sent for these
  words, if at least `MIN_PEOPLE` did and no other feeling has as many.

Each person counts once, by their latest Send, so repeating a request adds nothing. Only
Sends within `chat.phrase_memory_days` count, only previews count (a poll's answer or a
topic-only preview names no feeling), and a channel with `learn_phrases` off neither keeps
its words nor reads by them. The parser's own reading stays one click away: it leads the
preview's switches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from bot.intent import Intent
from bot.topics import Reading
from scorer.emotions import NAMES
from scorer.settings import Settings

MIN_PEOPLE = 2  # different people whose latest Send agrees before the workspace's pick applies
KEY_CHARS = 200  # the key column's width; longer requests are keyed by their start
_DRAWN_OUT = re.compile(r"([^\W\d_])\1{2,}")  # a letter three times or more ("ughhh"); not digits
_REPEATED_EMOJI = re.compile(r"([\U0001F000-\U0001FAFF\u2600-\u27BF])\1+")


def memory_since(settings: Settings, now: dt.datetime) -> dt.datetime | None:
    """The oldest Send that still teaches (`chat.phrase_memory_days`); None: learning is off."""
    days = settings.chat.phrase_memory_days
    return now - dt.timedelta(days=days) if days > 0 else None


def phrase_key(query: str) -> str:
    """The form in which requests are matched: case, punctuation and spacing do not count,
    emoji do ("Monday again..." and "monday again" match; "ugh 😭" and "ugh 😂" do not). Nor
    does how long a word or an emoji is drawn out, or said again: "ughhh", "ugh ugh" and
    "ugh" match, "😭😭😭" and "😭" too. A request keyed before this rule keeps its key; a plain
    one ("monday again") was keyed the same under both."""
    kept = "".join(" " if unicodedata.category(ch).startswith(("P", "Z", "C")) else ch
                   for ch in unicodedata.normalize("NFKC", query).casefold())
    tokens = _REPEATED_EMOJI.sub(r"\1", _DRAWN_OUT.sub(r"\1", kept)).split()
    words = [w for i, w in enumerate(tokens) if i == 0 or w != tokens[i - 1]]
    return " ".join(words)[:KEY_CHARS]


@dataclass(frozen=True)
class Learned:
    """What people here last sent for one request's words."""

    emotion: str
    people: int  # people whose latest Send was `emotion`
    senders: int  # people who sent anything for these words
    yours: bool  # the asker's own latest Send
    like: str = ""  # the learned words a paraphrase was read as (bot.phrase_book); "": the same words

    def said(self) -> str:
        """Where the feeling came from, as a preview says it."""
        words = f"“{self.like[:60]}”" if self.like else "these words"
        if self.yours:
            return f"your last pick for {words}"
        return f"how {self.people} of {self.senders} people here sent {words}"


def learned_feeling(latest: dict[str, int], asker: str, reading: Reading, *,
                    sure: float) -> Learned | None:
    """The feeling to read these words as, from each person's latest Send (`latest`: user
    hash -> emotion index); None when the parser's reading should stand. `sure`: the
    confidence from which others' picks no longer apply (the preview's `SWITCH_SURE`)."""
    if not latest or is_sure(reading, sure):
        return None
    if asker in latest:
        own = NAMES[latest[asker]]
        return Learned(own, sum(1 for e in latest.values() if NAMES[e] == own), len(latest), True)
    return _workspace_pick(latest)


def _workspace_pick(latest: dict[str, int]) -> Learned | None:
    """The feeling the most people last sent, if at least `MIN_PEOPLE` did and no other
    feeling has as many."""
    ranked = Counter(latest.values()).most_common(2)
    (best, people), rest = ranked[0], ranked[1:]
    if people < MIN_PEOPLE or (rest and rest[0][1] == people):
        return None
    return Learned(NAMES[best], people, len(latest), False)


@dataclass(frozen=True)
class WorkspacePhrase:
    """A workspace's pick for some words, as an admin sees it."""

    key: str
    learned: Learned


def workspace_phrases(sends: list[tuple[str, str, int]], limit: int = 20) -> list[WorkspacePhrase]:
    """The words that have a workspace pick (`MIN_PEOPLE` agreeing, no tie), most people first,
    from Sends newest first (key, user hash, emotion): what `/gif-admin phrases` lists. A
    person's own pick, which applies to them alone, is not listed."""
    latest: dict[str, dict[str, int]] = {}
    for key, who, emotion in sends:
        latest.setdefault(key, {}).setdefault(who, emotion)
    out = [WorkspacePhrase(key, pick) for key, people in latest.items()
           if (pick := _workspace_pick(people)) is not None]
    out.sort(key=lambda p: (-p.learned.people, p.key))
    return out[:limit]


def is_sure(reading: Reading, sure: float) -> bool:
    """Whether the parser's own answer stands whatever people here sent: a feeling word read
    at `sure` or above. A sentence's reading never is (`Intent.is_guess`)."""
    return bool(reading.emotion) and reading.intent.confidence >= sure and not reading.intent.is_guess


def read_as_learned(reading: Reading, learned: Learned) -> Reading:
    """`reading` with its feeling as people here sent it; the parser's own choices become
    the alternatives (the preview's switches), and the topic is kept."""
    if reading.emotion == learned.emotion:
        return reading
    parser_choices = [(reading.intent.emotion, reading.intent.confidence)] if reading.intent.emotion else []
    parser_choices += reading.intent.alternatives
    alternatives = [(e, p) for e, p in parser_choices if e and e != learned.emotion]
    # Laplace's rule of succession: two of two people is a likely, not a sure, reading.
    confidence = (learned.people + 1) / (learned.senders + 2)
    intent = Intent(learned.emotion, confidence, alternatives, is_guess=True)
    return dataclasses.replace(reading, intent=intent, feeling_source=learned.said())


__all__ = ["KEY_CHARS", "MIN_PEOPLE", "Learned", "WorkspacePhrase", "is_sure", "learned_feeling",
           "memory_since", "phrase_key", "read_as_learned", "workspace_phrases"]

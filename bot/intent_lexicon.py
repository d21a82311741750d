"""The hand-written knowledge behind `bot.intent`: the lexicon file, function words,
negation, and the prototype sentences the embedding path compares a request against.

Kept apart from the parser so the words can be read and edited without reading code.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from scorer.emotions import NAMES

# Emoji shortcodes whose names would read wrong as words (:joy: is 😂, not "joy"). Slack sends
# every emoji so (bot.adapters.markup turns these into the emoji and any other into its name as
# words: :thinking_face: -> "thinking face"), and people type them anywhere (the parser reads
# these as their emoji too).
SHORTCODES: dict[str, str] = {
    "joy": "😂", "rofl": "🤣", "sob": "😭", "cry": "😢", "rage": "😡", "angry": "😠",
    "scream": "😱", "fearful": "😨", "cold_sweat": "😰", "flushed": "😳", "see_no_evil": "🙈",
    "face_palm": "🤦", "facepalm": "🤦", "roll_eyes": "🙄", "face_with_rolling_eyes": "🙄",
    "unamused": "😒", "smirk": "😏", "relieved": "😌", "partying_face": "🥳", "tada": "🎉",
    "star_struck": "🤩", "nauseated_face": "🤢", "face_vomiting": "🤮", "grimacing": "😬",
    "sunglasses": "😎", "muscle": "💪", "trophy": "🏆", "ok_hand": "👌", "+1": "👍",
    "thumbsup": "👍", "white_check_mark": "✅", "100": "💯", "skull": "💀", "yum": "😋",
    "drooling_face": "🤤", "open_mouth": "😮", "astonished": "😲", "exploding_head": "🤯",
    "heart": "❤", "broken_heart": "💔", "smile": "😄", "grin": "😁", "slightly_smiling_face": "🙂",
    "disappointed": "😞", "pensive": "😔", "sweat_smile": "😅", "fire": "🔥", "pray": "🙏",
    "innocent": "😇", "pleading_face": "🥺", "weary": "😩", "triumph": "😤", "eyes": "👀",
    "face_exhaling": "😮‍💨", "melting_face": "🫠", "thumbsdown": "👎", "-1": "👎",
}

LEXICON_FILE = "lexicon.tsv"
SITUATIONS_FILE = "situations.tsv"


@dataclass(frozen=True)
class Entry:
    """One lexicon term: how much it points at each emotion (the rest is doubt)."""

    weights: tuple[tuple[str, float], ...]  # best first
    weak: bool = False  # too generic to count for much inside a longer sentence

    @property
    def top(self) -> tuple[str, float]:
        return self.weights[0]


class LexiconError(ValueError):
    """A malformed line in the lexicon file (a packaging bug, so it fails loudly)."""


def normalize_key(term: str) -> str:
    """The form in which words and phrases are looked up: lower case, apostrophes dropped,
    single spaces. Emoji and emoticons are looked up as written (see `emoji_key`)."""
    t = term.replace("’", "'").replace("'", "").lower()
    return " ".join(t.split())


def fold_accents(text: str) -> str:
    """Latin letters without their accents (café -> cafe, jalapeño -> jalapeno), so that a word
    is one word whether typed with them or not, and never cut at an accented letter."""
    if text.isascii():
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def emoji_key(text: str) -> str:
    """Emoji without variation selectors and skin tones, so 👍🏽 and ❤️ find 👍 and ❤."""
    return "".join(
        ch for ch in text if ch not in "\ufe0e\ufe0f" and not 0x1F3FB <= ord(ch) <= 0x1F3FF
    )


def _is_word_term(term: str) -> bool:
    return all(ch.isalpha() or ch in " '’" for ch in term)


@cache
def load_lexicon() -> tuple[dict[str, Entry], dict[str, Entry]]:
    """(words and phrases keyed by `normalize_key`, symbols: emoji and emoticons as written)."""
    text = resources.files("bot").joinpath("data", LEXICON_FILE).read_text(encoding="utf-8")
    words: dict[str, Entry] = {}
    symbols: dict[str, Entry] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        term, *fields = line.split("\t")
        weak = "weak" in fields
        weights: list[tuple[str, float]] = []
        for f in fields:
            if f == "weak" or not f:
                continue
            name, _, w = f.partition(":")
            if name not in NAMES:
                raise LexiconError(f"{LEXICON_FILE}:{lineno}: unknown emotion {name!r}")
            weights.append((name, float(w)))
        if not weights or sum(w for _, w in weights) > 1.0001:
            raise LexiconError(f"{LEXICON_FILE}:{lineno}: weights must be given and sum to <= 1")
        entry = Entry(tuple(sorted(weights, key=lambda p: -p[1])), weak)
        if _is_word_term(term):
            table, key = words, normalize_key(term)
        else:
            table, key = symbols, emoji_key(term)
        old = table.get(key)
        if old is not None and old != entry:
            raise LexiconError(f"{LEXICON_FILE}:{lineno}: {term!r} is defined twice differently")
        table[key] = entry
    # Every emotion's own name is always a full-confidence hit.
    for name in NAMES:
        words.setdefault(name, Entry(((name, 1.0),)))
    return words, symbols


@cache
def load_situations() -> tuple[tuple[str, str], ...]:
    """The hand-written situation bank: (emotion, sentence) pairs from `situations.tsv`."""
    text = resources.files("bot").joinpath("data", SITUATIONS_FILE).read_text(encoding="utf-8")
    out: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, sentence = line.partition("\t")
        if name not in NAMES or not sentence.strip():
            raise LexiconError(f"{SITUATIONS_FILE}:{lineno}: expected EMOTION<TAB>sentence")
        out.append((name, sentence.strip()))
    return tuple(out)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no emotion of their own; they neither count as hits nor as misses.
STOPWORDS: frozenset[str] = _words(
    """
    a an the and or but if of to in on at by for with from as is are was were be been being am
    im i me my mine myself we us our you your youre u ur he she it its they them their this that
    these those there here so very really too such just quite pretty totally literally
    much more most feel feeling feels felt get got getting make makes made have has had do does
    did doing will would could should can may might must shall gif gifs show give send find me
    about after again all also any because before being both each few how into like lot lots
    now only other out over own same some than then thing things today tonight right now what
    when where which while who whom why yet one ok okay yeah yep ya well oh ah um uh hmm kinda
    sorta bit little af asf rn tho though still even ever always something someone somebody
    going gonna wanna want need day time
    anymore longer theres thats whats heres hows ive youve weve theyve ill youll itll hes shes lets id
    """
)

# Words that flip the emotion of a hit within the next few words ("not happy").
NEGATORS: frozenset[str] = _words(
    "not no never dont doesnt didnt isnt arent wasnt werent aint wont cant cannot couldnt "
    "shouldnt wouldnt havent hasnt hadnt hardly barely nothing nobody neither nor without"
)
NEGATION_WINDOW = 3

# Words that sharpen the emotion after them; "so happy" is more sure than "happy".
INTENSIFIERS: frozenset[str] = _words(
    "so very really super totally extremely incredibly absolutely completely utterly "
    "insanely hella mega ultra too most sooo soo freaking fucking damn bloody"
)

# Everyday work words that are real words, not typos of an emotion word, though MiniLM's
# vocabulary lacks them ("prod" is not "proud", "outage" is not "outrage").
WORK_WORDS: frozenset[str] = _words(
    """
    prod staging repo repos deploy deploys redeploy rollback hotfix outage outages oncall
    standup standups retro retros sprint sprints backlog jira slack zoom ci cd pr prs mr
    pipeline pipelines linter lint flaky kubernetes k8s infra devops sre qa ux ui api apis
    sdk cli vpn wifi laptop repo codebase refactor refactored merge merged commit commits
    postmortem incident incidents pager pagerduty offsite onboarding okr okrs kpi kpis
    roadmap stakeholder stakeholders intern interns manager managers ceo cto vp hr
    donut donuts pizza bagel bagels kitchen fridge microwave printer
    """
)

# Lexicon words that are also things a GIF can show: in a short request they may be its
# topic ("/gif coffee monday": coffee GIFs, Monday's feeling), when the pool has them.
TOPIC_WORDS: frozenset[str] = _words(
    """
    coffee tea beer wine pizza food cake cookie cookies chocolate bacon donut donuts taco tacos
    burger fries icecream party birthday vacation beach dog dogs puppy puppies cat cats kitten
    kittens baby babies christmas halloween fireworks dance dancing sunday friday weekend
    """
)

# A bad feeling said to be over ("not scared anymore", "no longer angry") reads as relief.
ENDED_NEGATIVE: tuple[tuple[str, float], ...] = (("relief", 0.6), ("contentment", 0.25))

# Cheap sarcasm markers: positive words said this way usually mean the opposite
# ("great, just great", "oh wonderful", "/s"). Matched on the cleaned, lower-cased request.
SARCASM_PATTERNS: tuple[str, ...] = (
    r"\b(great|wonderful|fantastic|perfect|lovely|awesome|brilliant|amazing|super|nice)\W+"
    r"(just|simply|absolutely|really)\W+\1\b",
    r"^\W*oh\W+(great|wonderful|fantastic|perfect|lovely|joy|goody|brilliant|awesome|sure|yay)\b",
    r"(^|\s)/s\s*$",
    r"\byeah,? right\b",
    r"\bjust what i (needed|wanted)\b",
    r"\bthanks a lot\b",
    r"\bwhat a surprise\b.*\bagain\b",
    r"\bcan'?t wait\b.*\b(meeting|training|reorg|paperwork|timesheets?)\b",
)
# Where a sarcastic request's positive reading goes instead.
SARCASM_TARGETS: tuple[tuple[str, float], ...] = (("contempt", 0.6), ("anger", 0.4))
POSITIVE: frozenset[str] = frozenset(
    {"happiness", "excitement", "satisfaction", "pleasure", "contentment", "pride", "relief"})

# What "not X" most often means in chat, with lower weights than a plain hit: negation is
# a cheap guess, and a sentence like "not happy with the deploy" also reads as anger.
NEGATED: dict[str, tuple[tuple[str, float], ...]] = {
    "amusement": (("contempt", 0.55), ("anger", 0.2)),
    "anger": (("contentment", 0.4), ("relief", 0.15)),
    "contempt": (("happiness", 0.3), ("contentment", 0.25)),
    "contentment": (("sadness", 0.35), ("anger", 0.3)),
    "disgust": (("pleasure", 0.3), ("contentment", 0.25)),
    "embarrassment": (("pride", 0.4), ("contentment", 0.2)),
    "excitement": (("contempt", 0.35), ("sadness", 0.35)),
    "fear": (("pride", 0.3), ("contentment", 0.3), ("relief", 0.15)),
    "guilt": (("pride", 0.35), ("contempt", 0.25)),
    "happiness": (("sadness", 0.55), ("anger", 0.25)),
    "pleasure": (("disgust", 0.45), ("sadness", 0.2)),
    "pride": (("shame", 0.4), ("embarrassment", 0.25)),
    "relief": (("fear", 0.45), ("sadness", 0.2)),
    "sadness": (("contentment", 0.35), ("happiness", 0.3)),
    "satisfaction": (("anger", 0.4), ("sadness", 0.35)),
    "shame": (("pride", 0.45), ("contempt", 0.15)),
    "surprise": (("contempt", 0.45), ("contentment", 0.15)),
}

# Prototype sentences per emotion for the embedding path. Several per emotion, mixing a
# definition, first-person chat lines and typical situations, because a request is a
# short chat line and a bare emotion name embeds poorly for slang.
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "amusement": (
        "my dog did something so silly and goofy",
        "a funny fail video that made me laugh",
        "that prank was hilarious",
        "that is so funny, I am laughing out loud",
        "hahaha this joke cracks me up",
        "finding something hilarious",
        "I can't stop laughing at this",
        "what a ridiculous, silly, comical thing",
        "lol that meme is hilarious",
    ),
    "anger": (
        "someone keeps doing this and it drives me crazy",
        "they ruined my day, I am furious with them",
        "stuck waiting again, this is infuriating",
        "how dare they, this is unfair and outrageous",
        "I am so angry and furious right now",
        "this makes me mad, I hate it",
        "I'm pissed off and want to scream",
        "rage: stop doing that, it is infuriating",
        "so annoyed and frustrated with this nonsense",
        "my blood is boiling",
    ),
    "contempt": (
        "ugh, what an arrogant show-off",
        "imagine being that clueless",
        "nobody asked for your opinion",
        "oh great, another pointless thing, how typical",
        "rolling my eyes at this, whatever",
        "looking down on someone with scorn and disdain",
        "how pathetic, I am not impressed",
        "who cares, that's so lame",
        "sarcastic: oh wow, how original",
        "I think you are beneath me",
    ),
    "contentment": (
        "a quiet peaceful afternoon with a good book",
        "warm and comfortable at home, all is well",
        "enjoying the simple things, life is calm",
        "calm, peaceful and content with life",
        "relaxing on a quiet cozy evening",
        "everything is fine and I'm at peace",
        "chilling on the couch with a cup of tea",
        "a lazy sunday, nothing to worry about",
        "good night, sleep well",
    ),
    "disgust": (
        "there is something gross and dirty in my food",
        "that smells rotten and makes me nauseous",
        "ew, someone left a filthy mess",
        "ew gross, that is disgusting",
        "this makes me want to throw up",
        "yuck, revolting and nasty food",
        "repulsed by something rotten and slimy",
        "that smell is sickening",
        "eww what is that, no thanks",
    ),
    "embarrassment": (
        "I said something stupid in front of everyone",
        "I made an awkward mistake in public and everyone saw it",
        "my mic was on and everyone heard me",
        "so embarrassing, I'm blushing",
        "awkward moment, I want to disappear",
        "I tripped and fell in front of everyone",
        "oops, that was awkward and cringe",
        "I called my teacher mom by accident",
        "red-faced after a social slip",
    ),
    "excitement": (
        "great news, something amazing is about to happen",
        "we got it! this is huge, I am thrilled",
        "tickets booked, the big day is coming",
        "I'm so excited, can't wait",
        "let's go, so hyped and pumped for this",
        "eager anticipation of something great tomorrow",
        "woohoo, the concert is tonight",
        "stoked about the trip this weekend",
        "the new game comes out today, so thrilled",
    ),
    "fear": (
        "something bad might happen and I am terrified",
        "waiting nervously for the results",
        "a strange noise in the dark, I am scared",
        "the doctor called with worrying news",
        "I'm scared and terrified",
        "this is so creepy, I'm afraid",
        "anxious and nervous about what will happen",
        "panic: something is following me in the dark",
        "horror movie jump scare, I'm frightened",
        "worried sick, dreading the results",
    ),
    "guilt": (
        "I hurt someone I love and I feel terrible",
        "I broke something that was not mine",
        "I let my friend down and it was my fault",
        "I feel guilty, it was my fault",
        "sorry, I shouldn't have done that",
        "I ate the last cookie and feel bad about it",
        "my bad, I broke it, please forgive me",
        "regret and remorse for what I did wrong",
        "I forgot your birthday, I'm so sorry",
    ),
    "happiness": (
        "we got great news today and I am so happy",
        "a lovely day with people I love",
        "I am thrilled and grateful, life is good",
        "I am so happy and joyful",
        "what a wonderful, cheerful day, smiling",
        "good news, I'm glad and delighted",
        "feeling great, in a really good mood",
        "joy and good cheer with friends",
        "this makes me so happy",
    ),
    "pleasure": (
        "the first sip of hot coffee is so good",
        "warm fresh food that tastes amazing",
        "sinking into a soft warm bed feels wonderful",
        "mmm this food is delicious",
        "that massage feels so good",
        "yummy, tasty chocolate cake",
        "enjoying a hot bath, pure bliss",
        "savoring every bite of this pizza",
        "sensory enjoyment, it feels amazing",
    ),
    "pride": (
        "I worked hard and achieved my goal",
        "I built it myself and it works",
        "we won first place, I am proud of us",
        "I passed with top marks",
        "I'm so proud of myself",
        "nailed it, I crushed that presentation",
        "look at what I achieved, like a boss",
        "I won the championship",
        "proud of my team's accomplishment",
        "flexing my new skills, I'm the best",
    ),
    "relief": (
        "the bad thing did not happen after all",
        "the problem is fixed and the worry is gone",
        "it turned out fine, I can relax now",
        "everyone is safe, thank goodness",
        "phew, what a relief",
        "thank god that's over",
        "finally done, a weight off my shoulders",
        "the test came back negative, so relieved",
        "dodged a bullet, that was close",
        "the worry is over, I can breathe again",
    ),
    "sadness": (
        "we lost and I am so disappointed",
        "I did not get what I hoped for and I feel down",
        "someone I love is gone and I miss them",
        "a loss that makes me want to cry",
        "I'm so sad and crying",
        "heartbroken and lonely, I miss them",
        "feeling down and depressed today",
        "my pet died and I'm grieving",
        "so disappointed, this is a bummer",
        "tears and sorrow",
    ),
    "satisfaction": (
        "everything lined up neatly and perfectly",
        "a clean, finished, perfectly organised result",
        "the task is complete and it worked exactly as planned",
        "that is so satisfying",
        "job well done, task complete",
        "everything fits perfectly, exactly right",
        "mission accomplished, all tests pass",
        "a need fulfilled, I'm satisfied",
        "checked everything off my to-do list",
    ),
    "shame": (
        "everyone knows what I did and I am ashamed",
        "I feel worthless and humiliated",
        "I did something dishonest and now I feel disgraced",
        "I'm ashamed of myself",
        "I feel like a disgrace, I want to hide my face",
        "shame on me for what I did",
        "humiliated and dishonoured in public",
        "I can't show my face after that",
        "hanging my head in shame",
    ),
    "surprise": (
        "something totally unexpected just happened",
        "I never expected that to happen",
        "out of nowhere, this shocking news",
        "wow, I didn't see that coming",
        "what a surprise, I'm shocked",
        "no way, I can't believe it",
        "plot twist, totally unexpected",
        "whoa, my mind is blown",
        "startled and amazed, jaw dropped",
    ),
}

# For `help_text()`: request examples users can copy.
EXAMPLES: dict[str, str] = {
    "amusement": "lol, haha, 😂",
    "anger": "so mad, ffs, 😡",
    "contempt": "whatever, smh, 🙄",
    "contentment": "chill, cozy, 😌",
    "disgust": "gross, ew, 🤢",
    "embarrassment": "awkward, oops, 😳",
    "excitement": "hyped, let's go, 🤩",
    "fear": "scared, yikes, 😱",
    "guilt": "my bad, sorry, 😬",
    "happiness": "happy, yay, 😄",
    "pleasure": "yummy, mmm, 😋",
    "pride": "nailed it, proud, 😎",
    "relief": "phew, thank god, 😮‍💨",
    "sadness": "sad, 😭, :(",
    "satisfaction": "satisfying, job done, 👌",
    "shame": "ashamed, shame on me, 🙈",
    "surprise": "wow, no way, 😮",
}


def is_emoji_char(ch: str) -> bool:
    """True for pictographic symbols (emoji, dingbats), not letters or punctuation."""
    cp = ord(ch)
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x2B00 <= cp <= 0x2BFF:
        return True
    if cp in (0x203C, 0x2049, 0x2122, 0x2139, 0x2328, 0x23CF):
        return True
    return (0x2190 <= cp <= 0x21FF or 0x2300 <= cp <= 0x23FF) and unicodedata.category(ch) == "So"

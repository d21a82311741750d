"""Search phrases for the starter pool: what people type when they feel each emotion.

`moodgif pool starter` searches GIPHY with these phrases to fill a pool that covers the 17
GIFGIF emotions from day one. They were written for moodgif (not taken from any list):
for each emotion, the reactions a chat user reaches a GIF for ("facepalm", "slow clap",
"phew", "mic drop"), rather than the emotion's name alone, because GIPHY's search ranks
by the words people tag and title GIFs with, and a name like "contempt" or "guilt" finds
few reaction GIFs. The first phrases are the most typical; the starter takes GIFs from the
phrases in turn (one from each, then a second from each...), so a small pool still spans
several kinds of reaction per emotion.

Changing a phrase changes which GIFs a new starter pool gets; it never touches a pool
already built. Every phrase is at most 50 characters (GIPHY's cap on a query).
"""

from __future__ import annotations

from scorer.emotions import NAMES

PHRASES: dict[str, tuple[str, ...]] = {
    "amusement": ("lol", "laughing hard", "cracking up", "giggle", "thats hilarious"),
    "anger": ("rage", "flip table", "angry yelling", "so mad", "furious"),
    "contempt": ("eye roll", "side eye", "unimpressed", "whatever", "scoff"),
    "contentment": ("cozy", "chill vibes", "relaxing", "content smile", "peaceful"),
    "disgust": ("ew", "gross", "yuck", "grossed out", "disgusted face"),
    "embarrassment": ("facepalm", "awkward", "cringe", "blushing", "hide face"),
    "excitement": ("so excited", "yay", "hype", "jumping for joy", "cant wait"),
    "fear": ("scared", "terrified", "scream", "hiding scared", "nervous"),
    "guilt": ("oops", "my bad", "im sorry", "guilty look", "sorry"),
    "happiness": ("happy dance", "big smile", "so happy", "joy", "smiling"),
    "pleasure": ("yummy", "mmm delicious", "bliss", "feels so good", "ahh"),
    "pride": ("mic drop", "nailed it", "like a boss", "proud", "flex"),
    "relief": ("phew", "relieved", "sigh of relief", "wipe sweat", "thank god"),
    "sadness": ("crying", "sad", "tears", "heartbroken", "sobbing"),
    "satisfaction": ("satisfying", "chefs kiss", "perfect", "job well done", "slow clap"),
    "shame": ("ashamed", "walk of shame", "hang head", "shame", "hide in shame"),
    "surprise": ("shocked", "omg", "jaw drop", "surprised", "plot twist"),
}

assert tuple(PHRASES) == tuple(NAMES), "one entry per emotion, in scorer.emotions order"

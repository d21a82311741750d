"""Content rating of a GIF (g, pg, pg-13, r) from the Open-NSFW probability.

A rating given by the pool's manifest always wins (`rating_source == "manifest"`, or any
source other than this module's). Otherwise the GIF's NSFW probability, the **maximum**
over its sampled frames (one explicit frame is enough to make a GIF unsafe), is mapped
with the thresholds in the settings:

| P(NSFW)                                    | rating |
|--------------------------------------------|--------|
| >= `nsfw_r_threshold` (0.8)                | r      |
| >= `nsfw_pg13_threshold` (0.4)             | pg-13  |
| >= `nsfw_pg_threshold` (0.15)              | pg     |
| below                                      | g      |

0.8 is Yahoo's own "unsafe" line and 0.15 sits under its 0.2 "safe" line; the band in
between is where the model is unsure, so those GIFs get the middle ratings that the
default ceiling (pg-13) still allows or refuses conservatively.
"""

from __future__ import annotations

import numpy as np

from scorer.settings import Settings

SOURCE = "nsfw-model"


def gif_nsfw_prob(frame_probs: np.ndarray) -> float:
    return float(np.max(np.asarray(frame_probs, dtype=np.float64))) if len(frame_probs) else 0.0


def rating_from_nsfw(prob: float, settings: Settings) -> str:
    if prob >= settings.scoring.nsfw_r_threshold:
        return "r"
    if prob >= settings.scoring.nsfw_pg13_threshold:
        return "pg-13"
    if prob >= settings.scoring.nsfw_pg_threshold:
        return "pg"
    return "g"


def apply_rating(gif: object, prob: float, settings: Settings) -> None:
    """Set gif.nsfw_prob, and gif.rating unless a manifest (or a person) already rated it."""
    gif.nsfw_prob = float(prob)  # type: ignore[attr-defined]
    source = getattr(gif, "rating_source", None)
    if getattr(gif, "rating", None) and source not in (None, SOURCE):
        return
    gif.rating = rating_from_nsfw(prob, settings)  # type: ignore[attr-defined]
    gif.rating_source = SOURCE  # type: ignore[attr-defined]

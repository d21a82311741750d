"""A voter whose thumbs never vary carries no ranking information: their weight fades."""

from __future__ import annotations

import numpy as np

from scorer.store import Comparison, session_scope
from training.comparisons import (
    THUMB_MIN_VOTES,
    _weigh_thumbs_by_variation,
    load_ledger,
    reference_id,
)

GIFS = [f"{i:064x}" for i in range(12)]


def _thumb(emotion: int, gif: str, up: bool, who: str, source: str = "vote") -> Comparison:
    ref = reference_id(emotion)
    winner, loser = (gif, ref) if up else (ref, gif)
    return Comparison(emotion=emotion, winner=winner, loser=loser, source=source, who=who)


def test_one_note_voter_fades_and_mixed_voters_count_fully(sqlite_engine) -> None:
    rows = [_thumb(9, g, False, "grump") for g in GIFS]  # 👎 on everything
    rows += [_thumb(9, g, i % 3 != 0, "fair") for i, g in enumerate(GIFS)]  # mixed
    rows += [_thumb(9, g, False, "new") for g in GIFS[:THUMB_MIN_VOTES - 1]]  # too few to judge
    rows.append(Comparison(emotion=9, winner=GIFS[0], loser=GIFS[1], source="send", who="grump"))
    with session_scope(sqlite_engine) as s:
        s.add_all(rows)
    ledger, info = load_ledger(sqlite_engine, known_gifs=set(GIFS))
    w = ledger.weight
    n = len(GIFS)
    assert np.all(w[:n] == 0.0)  # the one-note voter's thumbs are muted
    assert np.all(w[n:2 * n] == 1.0)  # a third of the fair voter's thumbs go the other way
    assert np.all(w[2 * n:2 * n + THUMB_MIN_VOTES - 1] == 1.0)  # newcomers count fully
    assert w[-1] == 1.0  # the one-note voter's send still counts: only thumbs are weighed
    assert info["muted_voters"] == 1


def test_a_mostly_one_way_voter_is_scaled_not_dropped() -> None:
    weights = np.ones(20)
    thumbs = [(i, "u", i < 19) for i in range(20)]  # 19 up, 1 down: minority share 0.05
    assert _weigh_thumbs_by_variation(weights, thumbs) == 1
    np.testing.assert_allclose(weights, 0.5)

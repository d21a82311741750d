"""Preview decisions as judgements against the sender's bar (training.judgements)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from bot import session as sess
from scorer.emotions import INDEX
from training import bradley_terry as bt
from training.comparisons import LedgerArrays
from training.judgements import bar_id, judgement_counts, preview_judgements, with_judgements

HAPPY = INDEX["happiness"]
NOW = dt.datetime(2026, 1, 1, 12, 0)


def _sha(i: int) -> str:
    return f"{i:064x}"


def _preview(engine, shown: list[str], sent: str | None) -> None:
    state = sess.create_session(engine, kind="preview", platform="t", workspace="w",
                                channel="c", user_hash="0" * 64, query="happy",
                                emotion=HAPPY, shas=shown[:1], now=NOW, ttl_s=900)
    for sha in shown[1:]:
        state = sess.advance_session(engine, state.id, [sha], NOW)
    if sent is None:
        assert sess.close_session(engine, state.id, "cancelled", NOW)
    else:
        assert sess.send_session(engine, state, sent, NOW) is not None


def test_every_decision_is_a_judgement_against_the_bar(sqlite_engine) -> None:
    a, b, c, d = (_sha(i) for i in range(4))
    _preview(sqlite_engine, [a], a)  # sent without a shuffle: a win, where pairs record nothing
    _preview(sqlite_engine, [b, a], a)  # b skipped, a sent
    _preview(sqlite_engine, [c, d], None)  # both passed over, then cancelled
    open_one = sess.create_session(sqlite_engine, kind="preview", platform="t", workspace="w",
                                   channel="c", user_hash="0" * 64, query="", emotion=HAPPY,
                                   shas=[d], now=NOW, ttl_s=900)
    assert open_one.state == "open"  # still open: no decision yet, nothing counted
    bar = bar_id(HAPPY)
    rows = preview_judgements(sqlite_engine, {a, b, c, d})
    who = "0" * 64  # the person who decided travels with each judgement (their reliability)
    assert sorted(rows) == sorted([(HAPPY, a, bar, who), (HAPPY, a, bar, who),
                                   (HAPPY, bar, b, who), (HAPPY, bar, c, who),
                                   (HAPPY, bar, d, who)])
    # GIFs no longer in a pool are left out
    assert preview_judgements(sqlite_engine, {a}) == [(HAPPY, a, bar, who)] * 2
    counts = judgement_counts(sqlite_engine, {a: 0, b: 1, c: 2, d: 3}, 4)
    assert counts[:, HAPPY].tolist() == [2, 1, 1, 1] and counts.sum() == 5


def test_the_first_gif_sent_without_a_shuffle_now_outranks_the_one_sent_after_skipping_it() -> None:
    """The adverse selection the judgements remove: a GIF shown first and usually sent
    (8 of 10 times) but twice skipped for a runner-up that people send half the time
    (2 of 4). As "sent beats skipped" pairs the best GIF only ever loses; as judgements
    against the bar it is the better GIF."""
    best, runner = 0, 1
    ids = [_sha(best), _sha(runner)]
    pairs = LedgerArrays(ids, np.array([HAPPY] * 2, np.int16), np.array([runner] * 2),
                         np.array([best] * 2), np.zeros(2, bool), np.ones(2), 2,
                         is_send=np.ones(2, bool))
    bar = bar_id(HAPPY)
    judged = with_judgements(pairs, [(HAPPY, ids[best], bar)] * 8 + [(HAPPY, bar, ids[best])] * 2
                             + [(HAPPY, ids[runner], bar)] * 2 + [(HAPPY, bar, ids[runner])] * 2)
    assert (judged.weight[:2] == 0.0).all()  # the pairs themselves no longer count
    assert judged.ids[2] == bar and len(judged) == 16

    def theta(ledger: LedgerArrays) -> np.ndarray:
        e = ledger.emotion == HAPPY
        return bt.fit_all(len(ledger.ids), ledger.emotion[e], ledger.winner[e], ledger.loser[e],
                          ledger.tie[e], ledger.weight[e])[HAPPY].theta

    before, after = theta(pairs), theta(judged)
    assert before[best] < before[runner]
    assert after[best] > after[runner]

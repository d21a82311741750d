"""Each preview decision as a judgement against the sender's bar, for the Bradley-Terry fit.

A person looks at one GIF at a time and sends it when it is good enough, else shuffles
(or finally cancels). The ledger records that as "the sent GIF beats each skipped one"
(`training.comparisons.record_send`). Those pairs are adversely selected once the bot shows
its best-known GIF first (bot.ranking, "bounded" exploration): the first GIF is only ever
*skipped-and-beaten* (a send without a shuffle records nothing), so the GIFs the ranker
believes in most collect losses against the runners-up that happened to be sent after them,
and never a win. docs/learning-loop.md measures what that did to the top of the ranking.

What a person actually did is judge each GIF against their own bar, so that is what the
fit gets: per emotion one more reference item, the *send bar* (`bar_id`), which every sent
GIF beats and every skipped GIF (shown and passed over, in a sent or a cancelled preview)
loses to. A GIF sent without a shuffle now counts as a win. The plain "sent beats skipped"
rows stay in the ledger (other tools read them); the retrain weighs them by
`SEND_PAIR_WEIGHT`, since the bar judgements carry the same information without the bias.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from scorer.emotions import N_EMOTIONS, NAMES
from scorer.store import ChatSession, Post
from training.comparisons import REFERENCE_PREFIX, LedgerArrays, intern_item, is_reference
from training.reliability import ReliabilityReport, weigh_people

BAR_PREFIX = REFERENCE_PREFIX + "bar:"  # a reference item: never a GIF, never ranked
# Weight of the ledger's "sent beats skipped" rows when the bar judgements are used.
SEND_PAIR_WEIGHT = 0.0
# Cap each person's repeated judgements and weigh them by their agreement with the others
# (training/reliability.py); off only to measure what it does.
WEIGH_PEOPLE = os.environ.get("MOODGIF_WEIGH_PEOPLE", "1") != "0"


def bar_id(emotion: int) -> str:
    """The per-emotion send bar: the level a person sends at."""
    return BAR_PREFIX + NAMES[emotion]


def preview_judgements(engine: Engine, known: set[str], until: dt.datetime | None = None
                       ) -> list[tuple[int, str, str, str]]:
    """(emotion, winner, loser, who) per decision in closed previews: sent GIF > bar >
    skipped; `who` is the person who decided (their user hash).

    `known`: GIFs still in a pool (others are left out, like the ledger's unknown GIFs);
    `until`: only previews last touched before this (a stable snapshot for one fit).
    """
    q = (select(ChatSession.emotion, ChatSession.shown, ChatSession.state, Post.gif_sha,
                ChatSession.user_hash)
         .outerjoin(Post, Post.session_id == ChatSession.id)
         .where(ChatSession.kind == "preview", ChatSession.state.in_(("sent", "cancelled")),
                ChatSession.topic == ""))  # a topic's preview named no feeling: it judges none
    if until is not None:
        q = q.where(ChatSession.updated_at <= until)
    out: list[tuple[int, str, str, str]] = []
    with engine.connect() as conn:
        for emotion, shown, state, sent, who in conn.execute(q):
            if not 0 <= int(emotion) < N_EMOTIONS or not shown:
                continue
            bar = bar_id(int(emotion))
            who = who or ""
            if state == "sent" and sent in known:
                out.append((int(emotion), sent, bar, who))
            for sha in dict.fromkeys(shown):
                if sha != sent and sha in known:
                    out.append((int(emotion), bar, sha, who))
    return out


def previews_decided_since(engine: Engine, since: dt.datetime | None) -> int:
    """Previews sent or cancelled (a feeling named) after `since` (None: ever): decisions the
    next fit learns from even when they add no comparison row (a GIF sent without a shuffle
    is one win against the bar)."""
    q = (select(func.count()).select_from(ChatSession)
         .where(ChatSession.kind == "preview", ChatSession.state.in_(("sent", "cancelled")),
                ChatSession.topic == ""))
    if since is not None:
        q = q.where(ChatSession.updated_at > since)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def with_judgements(ledger: LedgerArrays, rows: Sequence[tuple],
                    send_pair_weight: float = SEND_PAIR_WEIGHT, *,
                    weigh_people: bool = WEIGH_PEOPLE) -> LedgerArrays:
    """The ledger plus the bar judgements (`(emotion, winner, loser[, who])` rows); its
    "send" rows re-weighted by `send_pair_weight`; then, with `weigh_people`, each person's
    rows capped and scaled by their reliability (training/reliability.py)."""
    ids = list(ledger.ids)
    index = {item: i for i, item in enumerate(ids)}
    em, win, lose, people = [], [], [], []
    for row in rows:
        e, w, lo = row[:3]
        em.append(e)
        win.append(intern_item(w, index, ids))
        lose.append(intern_item(lo, index, ids))
        people.append(row[3] if len(row) > 3 else "")
    send_rows = ledger.is_send if ledger.is_send is not None else np.zeros(len(ledger), bool)
    weight = np.where(send_rows, ledger.weight * send_pair_weight, ledger.weight)
    k = len(em)
    old_who = ledger.who if ledger.who is not None else np.full(len(ledger), "", dtype=object)
    out = LedgerArrays(
        ids=ids,
        emotion=np.concatenate([ledger.emotion, np.asarray(em, np.int16)]),
        winner=np.concatenate([ledger.winner, np.asarray(win, np.int64)]),
        loser=np.concatenate([ledger.loser, np.asarray(lose, np.int64)]),
        tie=np.concatenate([ledger.tie, np.zeros(k, bool)]),
        weight=np.concatenate([weight, np.ones(k)]),
        max_id=ledger.max_id,
        is_send=np.concatenate([send_rows, np.zeros(k, bool)]),
        who=np.concatenate([old_who, np.asarray(people, dtype=object)]),
    )
    if weigh_people:
        out.weight, _ = weigh_ledger_people(out)
    return out


def weigh_ledger_people(ledger: LedgerArrays) -> tuple[np.ndarray, ReliabilityReport]:
    """The ledger's weights after each person's repeat cap and reliability (a new array)."""
    if ledger.who is None or not len(ledger):
        return ledger.weight.copy(), ReliabilityReport()
    is_ref = np.asarray([is_reference(item) for item in ledger.ids], dtype=bool)
    return weigh_people(ledger.weight, ledger.who, ledger.emotion, ledger.winner,
                        ledger.loser, is_ref)


def judgement_counts(engine: Engine, index: dict[str, int], n: int) -> np.ndarray:
    """(n, 17) bar judgements per GIF and emotion: evidence the ranker counts like comparisons."""
    counts = np.zeros((n, N_EMOTIONS), dtype=np.int64)
    for e, w, lo, _who in preview_judgements(engine, set(index)):
        for item in (w, lo):
            i = index.get(item)
            if i is not None:
                counts[i, e] += 1
    return counts

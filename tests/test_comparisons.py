"""The comparisons ledger on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select, text

from scorer.emotions import N_EMOTIONS, NAMES
from scorer.store import Comparison, Gif, Meta, Pool, PoolGif, Post, session_scope, utcnow
from training.comparisons import (
    LedgerError,
    import_pairs,
    is_reference,
    load_ledger,
    record_poll,
    record_send,
    record_vote,
    reference_id,
    stats,
    user_hash,
)


def sha(n: int) -> str:
    return hashlib.sha256(f"gif{n}".encode()).hexdigest()


def add_pool(engine, shas: list[str], name: str = "demo") -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        pool = Pool(name=name)
        s.add(pool)
        s.flush()
        for i, h in enumerate(shas):
            if s.get(Gif, h) is None:
                s.add(Gif(sha256=h, bytes=100, width=10, height=10, n_frames=8))
            s.flush()
            s.add(PoolGif(pool_id=pool.id, gif_sha=h, source_ref=f"/data/giphy{i}.gif"))


def add_post(engine, gif: str, emotion: int, age: dt.timedelta = dt.timedelta(0)) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        post = Post(platform="slack", workspace="T1", channel="C1", gif_sha=gif, emotion=emotion,
                    created_at=utcnow() - age)
        s.add(post)
        s.flush()
        return post.id


def rows(engine) -> list[Comparison]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return list(s.scalars(select(Comparison).order_by(Comparison.id)))


@pytest.fixture
def gifs(engine) -> list[str]:  # type: ignore[no-untyped-def]
    shas = [sha(i) for i in range(6)]
    add_pool(engine, shas)
    return shas


def test_reference_items_fit_the_column_and_are_distinct() -> None:
    refs = {reference_id(e) for e in range(N_EMOTIONS)}
    assert len(refs) == N_EMOTIONS
    assert all(is_reference(r) and len(r) <= 64 for r in refs)
    assert not is_reference(sha(1))
    with pytest.raises(LedgerError):
        reference_id(N_EMOTIONS)


def test_user_hash_is_salted_stable_and_raw_ids_never_stored(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "slack", "U123RAW")
    assert who == user_hash(engine, settings, "slack", "U123RAW")
    assert who != user_hash(engine, settings, "discord", "U123RAW")
    assert len(who) == 64 and "U123RAW" not in who
    # The generated salt is kept in a 0600 file in MOODGIF_HOME (never in the database, so
    # no copy of it can re-identify voters); other processes on this home hash alike.
    salt_path = settings.home / "user_hash_salt"
    salt = salt_path.read_text().strip()
    assert len(salt) >= 32 and salt_path.stat().st_mode & 0o077 == 0
    with session_scope(engine) as s:
        assert s.get(Meta, "user_hash_salt") is None
    assert who != hashlib.sha256(b"slack\x00U123RAW").hexdigest()

    post = add_post(engine, gifs[0], 9)
    record_vote(engine, emotion=9, gif=gifs[0], up=True, who=who, post_id=post, platform="slack")
    record_send(engine, emotion=9, sent=gifs[0], skipped=[gifs[1]], who=who)
    # A raw id passed where a hash belongs is refused, not stored.
    with pytest.raises(LedgerError, match="raw user id"):
        record_send(engine, emotion=9, sent=gifs[0], skipped=[gifs[1]], who="U123RAW")
    with engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM comparisons")))
    assert "U123RAW" not in dump
    assert who in dump


def test_explicit_salt_setting_wins(engine, settings) -> None:  # type: ignore[no-untyped-def]
    settings.chat.user_hash_salt = "pepper"
    expected = hashlib.sha256(b"pepper\x00slack\x00U1").hexdigest()
    assert user_hash(engine, settings, "slack", "U1") == expected


def test_send_beats_each_skipped(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "slack", "U1")
    n = record_send(engine, emotion=0, sent=gifs[0], skipped=[gifs[1], gifs[2], gifs[1], gifs[0]],
                    who=who, platform="slack", workspace="T1", channel="C1")
    assert n == 2
    got = [(r.emotion, r.winner, r.loser, r.tie, r.source) for r in rows(engine)]
    assert got == [(0, gifs[0], gifs[1], False, "send"), (0, gifs[0], gifs[2], False, "send")]


def test_vote_record_replace_remove(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    alice = user_hash(engine, settings, "slack", "alice")
    bob = user_hash(engine, settings, "slack", "bob")
    post = add_post(engine, gifs[2], 13)
    ref = reference_id(13)
    kw = {"emotion": 13, "gif": gifs[2], "post_id": post}
    assert record_vote(engine, up=True, who=alice, **kw) == "recorded"
    assert [(r.winner, r.loser) for r in rows(engine)] == [(gifs[2], ref)]
    assert record_vote(engine, up=True, who=alice, **kw) == "unchanged"
    assert record_vote(engine, up=False, who=alice, **kw) == "replaced"
    assert [(r.winner, r.loser) for r in rows(engine)] == [(ref, gifs[2])]
    assert record_vote(engine, up=True, who=bob, **kw) == "recorded"
    assert len(rows(engine)) == 2
    assert record_vote(engine, up=None, who=alice, **kw) == "removed"
    assert record_vote(engine, up=None, who=alice, **kw) == "unchanged"
    left = rows(engine)
    assert len(left) == 1 and left[0].who == bob and left[0].vote_key == f"{post}:{bob}"


def test_bad_votes_are_refused_and_write_nothing(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "discord", "u")
    old = add_post(engine, gifs[0], 1, age=dt.timedelta(days=60))
    fresh = add_post(engine, gifs[0], 1)
    with pytest.raises(LedgerError, match="expired"):
        record_vote(engine, emotion=1, gif=gifs[0], up=True, who=who, post_id=old)
    with pytest.raises(LedgerError, match="does not exist"):
        record_vote(engine, emotion=1, gif=gifs[0], up=True, who=who, post_id=fresh + 1000)
    with pytest.raises(LedgerError, match="another GIF"):
        record_vote(engine, emotion=1, gif=gifs[1], up=True, who=who, post_id=fresh)
    with pytest.raises(LedgerError, match="unknown emotion"):
        record_vote(engine, emotion=17, gif=gifs[0], up=True, who=who, post_id=fresh)
    assert rows(engine) == []


def test_unknown_gif_and_emotion_are_refused_whole(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "slack", "U1")
    with pytest.raises(LedgerError, match="not in any pool"):
        # One good loser and one unknown: nothing at all may be written.
        record_send(engine, emotion=0, sent=gifs[0], skipped=[gifs[1], sha(999)], who=who)
    with pytest.raises(LedgerError, match="unknown emotion"):
        record_poll(engine, emotion=-1, left=gifs[0], right=gifs[1], answer="left", who=who)
    with pytest.raises(LedgerError, match="answer"):
        record_poll(engine, emotion=2, left=gifs[0], right=gifs[1], answer="both", who=who)
    with pytest.raises(LedgerError):
        record_poll(engine, emotion=2, left=reference_id(2), right=gifs[1], answer="left", who=who)
    assert rows(engine) == []


def test_poll_answers(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "web", "x")
    record_poll(engine, emotion=5, left=gifs[0], right=gifs[1], answer="left", who=who)
    record_poll(engine, emotion=5, left=gifs[0], right=gifs[1], answer="Right", who=who)
    record_poll(engine, emotion=5, left=gifs[0], right=gifs[1], answer="neither", who=who)
    got = [(r.winner, r.loser, r.tie, r.source) for r in rows(engine)]
    assert got == [(gifs[0], gifs[1], False, "poll"), (gifs[1], gifs[0], False, "poll"),
                   (gifs[0], gifs[1], True, "poll")]


def test_import_counts_and_skips_bad_rows(engine, gifs) -> None:  # type: ignore[no-untyped-def]
    data = [
        ("happiness", gifs[0], gifs[1], "left"),
        ("sadness", "giphy2", "giphy3", "right"),  # addressed by pooled file stem
        ("fear", gifs[0], gifs[1], "neither"),
        ("sympathy", gifs[0], gifs[1], "left"),  # not a GIFGIF emotion
        ("anger", "", gifs[1], "left"),  # corrupt row with an empty id
        ("anger", gifs[0], sha(999), "left"),  # not in any pool
        ("anger", gifs[0]),  # malformed
    ]
    report = import_pairs(engine, data)
    assert (report.rows, report.added, report.ties, report.skipped_total) == (7, 3, 1, 4)
    assert report.skipped["unknown emotion"] == 1
    assert report.skipped["empty id"] == 1
    assert report.skipped["GIF not in any pool"] == 1
    assert report.skipped["malformed row"] == 1
    got = [(r.emotion, r.winner, r.loser, r.tie, r.source) for r in rows(engine)]
    assert got == [(NAMES.index("happiness"), gifs[0], gifs[1], False, "import"),
                   (NAMES.index("sadness"), gifs[3], gifs[2], False, "import"),
                   (NAMES.index("fear"), gifs[0], gifs[1], True, "import")]


def test_load_ledger_arrays_and_unknown_gifs(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    who = user_hash(engine, settings, "slack", "U1")
    post = add_post(engine, gifs[3], 4)
    record_vote(engine, emotion=4, gif=gifs[3], up=False, who=who, post_id=post)
    record_send(engine, emotion=0, sent=gifs[0], skipped=[gifs[1]], who=who)
    record_poll(engine, emotion=0, left=gifs[4], right=gifs[5], answer="neither", who=who)
    arr, info = load_ledger(engine)
    assert len(arr) == 3 and info["skipped_unknown_gif"] == 0
    assert arr.max_id == max(r.id for r in rows(engine))
    ids = arr.ids
    assert (ids[arr.winner[0]], ids[arr.loser[0]]) == (reference_id(4), gifs[3])
    assert (ids[arr.winner[1]], ids[arr.loser[1]]) == (gifs[0], gifs[1])
    assert arr.tie.tolist() == [False, False, True]
    assert arr.emotion.tolist() == [4, 0, 0]
    assert arr.weight.tolist() == [1.0, 1.0, 1.0]
    assert info["by_source"] == {"vote": 1, "send": 1, "poll": 1}
    # A GIF later removed from every pool: its comparisons are counted and skipped.
    arr2, info2 = load_ledger(engine, known_gifs=set(gifs) - {gifs[1]})
    assert len(arr2) == 2 and info2["skipped_unknown_gif"] == 1
    # A fixed item order puts never-compared GIFs in the index too.
    arr3, _ = load_ledger(engine, items=gifs)
    assert arr3.ids[:6] == gifs and reference_id(4) in arr3.ids


def test_stats(engine, settings, gifs) -> None:  # type: ignore[no-untyped-def]
    assert stats(engine)["total"] == 0
    who = user_hash(engine, settings, "slack", "U1")
    record_send(engine, emotion=0, sent=gifs[0], skipped=gifs[1:3], who=who)
    record_poll(engine, emotion=16, left=gifs[4], right=gifs[5], answer="neither", who=who)
    st = stats(engine)
    assert st["total"] == 3
    assert st["by_source"] == {"poll": 1, "send": 2}
    assert st["by_emotion"] == {"amusement": 2, "surprise": 1}
    assert st["ties"] == 1 and st["people"] == 1 and st["max_id"] > 0

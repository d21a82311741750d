"""Scoped settings, the cooldown bucket, and the preview state machine in the database."""

from __future__ import annotations

import datetime as dt

import pytest

from bot import session as sess
from scorer.store import ChatSession, Impression, Post, session_scope


def test_scoped_settings_channel_beats_workspace_beats_settings(settings, engine) -> None:
    get = lambda key, channel="C1": sess.get_scoped(  # noqa: E731
        engine, settings, "slack", "T1", channel, key)
    assert get("rating_ceiling") == settings.chat.rating_ceiling
    assert get("pools") == [] and get("watch") is False
    assert get("preview_count") == settings.chat.preview_count

    sess.set_scoped(engine, "slack", "T1", "", "rating_ceiling", "g")
    assert get("rating_ceiling") == "g" and get("rating_ceiling", "C2") == "g"
    sess.set_scoped(engine, "slack", "T1", "C1", "rating_ceiling", "PG")
    assert get("rating_ceiling") == "pg" and get("rating_ceiling", "C2") == "g"
    # another workspace or platform is untouched
    assert sess.get_scoped(engine, settings, "slack", "T2", "C1", "rating_ceiling") == "pg-13"
    assert sess.get_scoped(engine, settings, "discord", "T1", "C1", "rating_ceiling") == "pg-13"

    assert sess.set_scoped(engine, "slack", "T1", "C1", "pools", "b, a,a") == ["a", "b"]
    assert sess.set_scoped(engine, "slack", "T1", "C1", "watch", "on") is True
    assert sess.set_scoped(engine, "slack", "T1", "C1", "cooldown_s", "0") == 0.0
    values = sess.get_all_scoped(engine, settings, "slack", "T1", "C1")
    assert values.pools == ["a", "b"] and values.watch is True and values.cooldown_s == 0
    # changing a value updates the row, reset removes it
    sess.set_scoped(engine, "slack", "T1", "C1", "pools", "all")
    assert get("pools") == []
    sess.set_scoped(engine, "slack", "T1", "C1", "rating_ceiling", None)
    assert get("rating_ceiling") == "g"
    assert ("C1", "watch", True) in sess.list_scoped(engine, "slack", "T1")


@pytest.mark.parametrize(("key", "value"), [
    ("rating_ceiling", "x-rated"), ("preview_count", 2), ("cooldown_s", "soon"),
    ("cooldown_s", -1), ("watch", "maybe"), ("colour", "blue"),
])
def test_bad_scoped_values_are_refused(sqlite_settings, sqlite_engine, key, value) -> None:
    with pytest.raises(sess.ScopedSettingError):
        sess.set_scoped(sqlite_engine, "web", "local", "general", key, value)
    assert sess.list_scoped(sqlite_engine, "web", "local") == []


def test_cooldown_is_a_token_bucket_per_user() -> None:
    now = [100.0]
    cd = sess.Cooldown(lambda: now[0])
    assert cd.take(("slack", "U1"), 3.0) == 0.0
    wait = cd.take(("slack", "U1"), 3.0)
    assert wait == pytest.approx(3.0)
    assert cd.take(("slack", "U2"), 3.0) == 0.0  # someone else is not held up
    assert cd.take(("discord", "U1"), 3.0) == 0.0  # nor the same id on another platform
    now[0] += 2.0
    assert cd.take(("slack", "U1"), 3.0) == pytest.approx(1.0)
    now[0] += 1.0
    assert cd.take(("slack", "U1"), 3.0) == 0.0
    assert cd.take(("slack", "U1"), 0.0) == 0.0  # cooldown 0 = off


def test_preview_state_machine_posts_once(sqlite_settings, sqlite_engine) -> None:
    engine = sqlite_engine
    now = dt.datetime(2025, 1, 1, 12, 0)
    state = sess.create_session(engine, kind="preview", platform="web", workspace="local",
                                channel="general", user_hash="h" * 64, query="happy", emotion=9,
                                shas=["a" * 64], now=now, ttl_s=60)
    assert sess.load_session(engine, state.id).current == ("a" * 64,)
    moved = sess.advance_session(engine, state.id, ["b" * 64], now)
    assert moved.shown == ("a" * 64, "b" * 64) and moved.current == ("b" * 64,)
    assert sess.skipped_for(moved, "b" * 64) == ["a" * 64]
    assert not moved.expired(now) and moved.expired(now + dt.timedelta(seconds=60))
    first = sess.send_session(engine, moved, "b" * 64, now)
    second = sess.send_session(engine, moved, "b" * 64, now)  # a double click
    assert isinstance(first, int) and second is None
    assert sess.advance_session(engine, state.id, ["c" * 64], now) is None
    with session_scope(engine) as s:
        assert s.query(Post).count() == 1
        assert s.query(Impression).count() == 1
        assert s.get(ChatSession, state.id).state == "sent"
    assert sess.recent_in_channel(engine, "web", "local", "general",
                                  now - dt.timedelta(hours=1)) == ["b" * 64]
    assert sess.recent_in_channel(engine, "web", "local", "other",
                                  now - dt.timedelta(hours=1)) == []
    assert sess.attach_message(engine, first, "ts-1")
    assert sess.find_post(engine, platform="web", message_ref="ts-1").id == first
    assert sess.find_post(engine, platform="slack", message_ref="ts-1") is None
    assert sess.load_session(engine, "../../etc") is None
    assert sess.load_session(engine, "x" * 500) is None


def test_expire_old_sessions(sqlite_settings, sqlite_engine) -> None:
    now = dt.datetime(2025, 1, 1, 12, 0)
    old = sess.create_session(sqlite_engine, kind="poll", platform="web", workspace="local",
                              channel="c", user_hash="h" * 64, query="", emotion=0,
                              shas=["a" * 64, "b" * 64], now=now, ttl_s=10)
    assert sess.expire_old_sessions(sqlite_engine, now + dt.timedelta(seconds=5)) == 0
    assert sess.expire_old_sessions(sqlite_engine, now + dt.timedelta(seconds=11)) == 1
    assert sess.load_session(sqlite_engine, old.id).state == "expired"
    assert not sess.close_session(sqlite_engine, old.id, "answered", now)

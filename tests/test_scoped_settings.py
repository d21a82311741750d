"""Scoped settings: global < workspace < channel, one typed model, validated on the way in and out."""

from __future__ import annotations

import pytest

from bot import scoped_settings as scoped
from scorer.settings import ChannelSettings
from scorer.store import ScopedSetting, session_scope


def test_the_global_layer_is_the_chat_settings(sqlite_settings, sqlite_engine) -> None:
    s = sqlite_settings.override(chat__rating_ceiling="g", chat__preview_count=3)
    values = scoped.get_all_scoped(sqlite_engine, s, "slack", "T1", "C1")
    assert isinstance(values, ChannelSettings)
    assert (values.rating_ceiling, values.preview_count, values.cooldown_s) == ("g", 3, 3.0)
    assert values.pools == [] and values.watch is False  # scope-only keys: their own defaults
    scoped.set_scoped(sqlite_engine, "slack", "T1", "", "preview_count", "1")
    assert scoped.get_scoped(sqlite_engine, s, "slack", "T1", "C1", "preview_count") == 1


def test_a_stored_row_that_no_longer_validates_falls_back(sqlite_settings, sqlite_engine) -> None:
    scoped.set_scoped(sqlite_engine, "web", "W", "", "rating_ceiling", "pg")
    with session_scope(sqlite_engine) as s:  # a row an older version might have written
        s.add(ScopedSetting(platform="web", workspace="W", channel="C", key="rating_ceiling",
                            value={"v": "nc-17"}))
    assert scoped.get_scoped(sqlite_engine, sqlite_settings, "web", "W", "C", "rating_ceiling") == "pg"


def test_errors_say_which_key_and_value(sqlite_engine) -> None:
    with pytest.raises(scoped.ScopedSettingError, match="rating ceiling must be one of"):
        scoped.set_scoped(sqlite_engine, "web", "W", "C", "rating_ceiling", "x-rated")
    with pytest.raises(scoped.ScopedSettingError, match=r"cooldown_s.*'soon'"):
        scoped.set_scoped(sqlite_engine, "web", "W", "C", "cooldown_s", "soon")
    with pytest.raises(scoped.ScopedSettingError, match="known: rating_ceiling, pools"):
        scoped.set_scoped(sqlite_engine, "web", "W", "C", "colour", "blue")


def test_any_scope_sets_finds_a_watching_channel(sqlite_engine) -> None:
    assert not scoped.any_scope_sets(sqlite_engine, "discord", "watch", True)
    scoped.set_scoped(sqlite_engine, "discord", "G", "C", "watch", "on")
    assert scoped.any_scope_sets(sqlite_engine, "discord", "watch", True)
    assert not scoped.any_scope_sets(sqlite_engine, "slack", "watch", True)

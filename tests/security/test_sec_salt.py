"""The user-hash salt lives outside the database; an old database's salt is migrated."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from scorer.salt import SaltError, load_salt
from scorer.store import Meta, session_scope
from training import comparisons
from training.comparisons import user_hash


def test_old_salt_is_moved_out_and_old_hashes_still_match(engine, settings) -> None:  # type: ignore[no-untyped-def]
    old = "0123456789abcdef" * 4
    with session_scope(engine) as s:  # a database from before: the salt in the meta table
        s.add(Meta(key="user_hash_salt", value=old))
    comparisons._SALTS.clear()
    before = hashlib.sha256(f"{old}\x00slack\x00U1".encode()).hexdigest()
    assert user_hash(engine, settings, "slack", "U1") == before
    path = settings.home / "user_hash_salt"
    assert path.read_text().strip() == old and path.stat().st_mode & 0o777 == 0o600
    with session_scope(engine) as s:
        assert s.get(Meta, "user_hash_salt") is None  # no copy of the database carries it
        check = s.get(Meta, "user_hash_salt_check").value
    assert old not in check


def test_a_host_without_the_salt_is_stopped_not_silently_different(engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    comparisons._SALTS.clear()
    load_salt(engine, settings)
    other = settings.override(home=tmp_path / "other-host")
    with pytest.raises(SaltError, match="MOODGIF_USER_HASH_SALT"):
        load_salt(engine, other)
    (tmp_path / "other-host").mkdir(exist_ok=True)
    (tmp_path / "other-host" / "user_hash_salt").write_text("f" * 64)
    with pytest.raises(SaltError, match="not the salt"):
        load_salt(engine, other)
    shutil.copy(settings.home / "user_hash_salt", tmp_path / "other-host" / "user_hash_salt")
    assert load_salt(engine, other) == load_salt(engine, settings)

"""Scoped settings, in the spirit of Red-DiscordBot's Config: global < workspace < channel.

The keys, their types and their defaults are declared once, in
`scorer.settings.ChannelSettings`: a key that is also a global chat setting
(`rating_ceiling`, `cooldown_s`, `preview_count`) takes its global value from
`settings.chat`; a workspace row (channel "") beats it, and a channel row beats both.
Values are validated by that model when set and again when read (a row an older version
wrote that no longer passes falls back to the wider scope).

Rows live in the `scoped_settings` table as `{"v": value}`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from scorer.settings import ChannelSettings, Settings
from scorer.store import ScopedSetting, unit_of_work, utcnow

KEYS: tuple[str, ...] = tuple(ChannelSettings.model_fields)

# Every function takes the caller's Session (one user action = one transaction: `bot.flows`)
# or an Engine (a transaction of its own).
Db = Engine | Session

# Built once: every request runs it (bot.flows.context folds it with the channel's recent
# GIFs), and building a statement costs more than SQLite takes to answer it.
SCOPED_ROWS = select(ScopedSetting.channel, ScopedSetting.key, ScopedSetting.value).where(
    ScopedSetting.platform == bindparam("platform"),
    ScopedSetting.workspace == bindparam("workspace"),
    ScopedSetting.channel.in_([bindparam("workspace_scope"), bindparam("channel")]),
)


class ScopedSettingError(ValueError):
    """An unknown key or a value that key cannot take; the message says which."""


def _check_key(key: str) -> None:
    if key not in KEYS:
        raise ScopedSettingError(f"unknown setting {key!r}; known: {', '.join(KEYS)}")


def global_values(settings: Settings) -> dict[str, Any]:
    """The global layer: the scoped keys that are also chat settings."""
    return {k: getattr(settings.chat, k) for k in KEYS if k in type(settings.chat).model_fields}


def parse(key: str, value: Any) -> Any:
    """`value` as `key` takes it (validated by ChannelSettings); ScopedSettingError if not."""
    _check_key(key)
    try:
        return _adapter(key).validate_python(value)
    except ValidationError as exc:
        msg = str(exc.errors()[0].get("msg", "invalid")).removeprefix("Value error, ")
        if not msg.startswith(key.replace("_", " ")):
            msg = f"{key}: {msg}"
        raise ScopedSettingError(msg if repr(value) in msg else f"{msg} (got {value!r})") from None


@functools.cache
def _adapter(key: str) -> TypeAdapter[Any]:
    field = ChannelSettings.model_fields[key]
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[field.annotation, *field.metadata])  # type: ignore[valid-type]


def _scope_key(platform: str, workspace: str, channel: str) -> dict[str, str]:
    return {"platform": platform[:16], "workspace": workspace[:64], "channel": channel[:64]}


def get_all_scoped(db: Db, settings: Settings, platform: str, workspace: str,
                   channel: str) -> ChannelSettings:
    """Every scoped key for this channel at once (one query): what a request needs."""
    with unit_of_work(db) as s:  # Core on the action's connection: no ORM layer per request
        rows = s.connection().execute(SCOPED_ROWS, scope_params(platform, workspace,
                                                                 channel)).all()
    return resolve_rows(settings, rows)


def scope_params(platform: str, workspace: str, channel: str) -> dict[str, str]:
    """The bind parameters of `SCOPED_ROWS` for this channel."""
    return {**_scope_key(platform, workspace, channel), "workspace_scope": ""}


def resolve_rows(settings: Settings, rows: Any) -> ChannelSettings:
    """The channel's settings from its `SCOPED_ROWS` (channel, key, value): the global
    values overlaid by the workspace's rows, then the channel's."""
    values = global_values(settings)
    # The same global values and rows give the same (frozen) answer: validating them again
    # on every request costs more than the query
    key = (repr(sorted(values.items())), repr(sorted(tuple(r) for r in rows)))
    hit = _RESOLVED.get(key)
    if hit is None:
        hit = _resolve(values, rows)
        if len(_RESOLVED) >= _RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[key] = hit
    return hit


_RESOLVED: dict[tuple[str, str], ChannelSettings] = {}
_RESOLVED_MAX = 4096


def _resolve(values: dict[str, Any], rows: Any) -> ChannelSettings:
    # workspace rows first, then the channel's, so the channel wins
    for _chan, key, value in sorted(rows, key=lambda r: r[0] != ""):
        if key in KEYS and isinstance(value, dict) and "v" in value:
            try:
                values[key] = parse(key, value["v"])
            except ScopedSettingError:
                continue  # a row written by an older version: fall back to the wider scope
    return ChannelSettings(**values)


def get_scoped(db: Db, settings: Settings, platform: str, workspace: str,
               channel: str, key: str) -> Any:
    """One key for this channel: its own row, else the workspace's, else the global value."""
    _check_key(key)
    return getattr(get_all_scoped(db, settings, platform, workspace, channel), key)


def set_scoped(db: Db, platform: str, workspace: str, channel: str, key: str,
               value: Any) -> Any:
    """Set a key for a channel (or, with channel "", the workspace); None removes the row.

    Returns the stored (parsed) value; raises ScopedSettingError for a bad key or value.
    """
    parsed = None if value is None else parse(key, value)
    pk = {**_scope_key(platform, workspace, channel), "key": key}
    with unit_of_work(db) as s:
        row = s.get(ScopedSetting, pk)
        if parsed is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(ScopedSetting(**pk, value={"v": parsed}, updated_at=utcnow()))
        else:
            row.value, row.updated_at = {"v": parsed}, utcnow()
        s.flush()  # a read of the scope in the same transaction (Core, no autoflush) sees it
    return parsed


def list_scoped(db: Db, platform: str, workspace: str) -> list[tuple[str, str, Any]]:
    """(channel, key, value) rows of a workspace, for the admin pages."""
    with unit_of_work(db) as s:
        rows = s.execute(
            select(ScopedSetting.channel, ScopedSetting.key, ScopedSetting.value).where(
                ScopedSetting.platform == platform[:16], ScopedSetting.workspace == workspace[:64])
            .order_by(ScopedSetting.channel, ScopedSetting.key)
        ).all()
    return [(c, k, v.get("v") if isinstance(v, dict) else v) for c, k, v in rows]


def workspaces_setting(db: Db, key: str) -> list[tuple[str, str, Any]]:
    """(platform, workspace, value) of every workspace-scope row of `key` (the web admin's
    list of what each workspace hides)."""
    _check_key(key)
    with unit_of_work(db) as s:
        rows = s.execute(select(ScopedSetting.platform, ScopedSetting.workspace, ScopedSetting.value)
                         .where(ScopedSetting.key == key, ScopedSetting.channel == "")).all()
    return [(p, w, v.get("v") if isinstance(v, dict) else v) for p, w, v in rows]


def scopes_limited_to(db: Db, pool: str) -> list[str]:
    """"platform/workspace[/channel]" of every scope whose `pools` names `pool` (what a pool's
    removal leaves pointing at nothing)."""
    with unit_of_work(db) as s:
        rows = s.execute(select(ScopedSetting.platform, ScopedSetting.workspace, ScopedSetting.channel,
                                ScopedSetting.value).where(ScopedSetting.key == "pools")).all()
    return ["/".join(part for part in (p, w, c) if part) for p, w, c, v in rows
            if pool in ((v.get("v") if isinstance(v, dict) else v) or [])]


def any_scope_sets(db: Db, platform: str, key: str, value: Any) -> bool:
    """Does some workspace or channel of this platform set `key` to `value`? (Discord: watch.)"""
    _check_key(key)
    with unit_of_work(db) as s:
        rows = s.scalars(select(ScopedSetting.value).where(
            ScopedSetting.platform == platform[:16], ScopedSetting.key == key)).all()
    return any(isinstance(v, dict) and v.get("v") == value for v in rows)

"""The adapter contract (tests/contract.py): the same script gives the same comparisons on
every adapter. Slack and Discord add their drivers to the same `run_contract`."""

from __future__ import annotations

from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo
from aiohttp.test_utils import TestClient, TestServer
from contract import (
    CHOICE_EXPECTED,
    CONTRACT_SETTINGS,
    EXPECTED,
    OTHER_EXPECTED,
    SWITCH_EXPECTED,
    CoreDriver,
    WebDriver,
    run_choice_contract,
    run_contract,
    run_other_feeling_contract,
    run_switch_contract,
)

from bot.adapters.web import build_app
from bot.core import BotCore
from bot.intent import IntentParser


def _core(settings, engine, scored: bool = True) -> BotCore:  # type: ignore[no-untyped-def]
    settings = settings.override(**CONTRACT_SETTINGS)
    pool = ingest_demo(settings, engine, demo_manifest())
    if scored:
        add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    return BotCore(settings, engine, intent_parser=IntentParser(settings, use_embeddings=False))


async def test_core_driver_meets_the_contract(settings, engine) -> None:
    assert await run_contract(CoreDriver(_core(settings, engine)), engine) == EXPECTED


async def test_core_driver_meets_the_contract_before_scoring(sqlite_settings, sqlite_engine) -> None:
    core = _core(sqlite_settings, sqlite_engine, scored=False)
    assert await run_contract(CoreDriver(core), sqlite_engine) == EXPECTED


async def test_web_driver_meets_the_contract(settings, engine) -> None:
    core = _core(settings, engine)
    async with TestClient(TestServer(build_app(core, core.settings, engine))) as client:
        assert await run_contract(WebDriver(client), engine) == EXPECTED



async def test_core_driver_meets_the_switch_contract(settings, engine) -> None:
    assert await run_switch_contract(CoreDriver(_core(settings, engine)), engine) == SWITCH_EXPECTED


async def test_web_driver_meets_the_switch_contract(settings, engine) -> None:
    core = _core(settings, engine)
    async with TestClient(TestServer(build_app(core, core.settings, engine))) as client:
        assert await run_switch_contract(WebDriver(client), engine) == SWITCH_EXPECTED


async def test_core_driver_meets_the_choice_contract(settings, engine) -> None:
    assert await run_choice_contract(CoreDriver(_core(settings, engine)), engine) == CHOICE_EXPECTED


async def test_web_driver_meets_the_choice_contract(settings, engine) -> None:
    core = _core(settings, engine)
    async with TestClient(TestServer(build_app(core, core.settings, engine))) as client:
        assert await run_choice_contract(WebDriver(client), engine) == CHOICE_EXPECTED


async def test_core_driver_meets_the_other_feeling_contract(settings, engine) -> None:
    assert await run_other_feeling_contract(CoreDriver(_core(settings, engine)), engine) == OTHER_EXPECTED


async def test_web_driver_meets_the_other_feeling_contract(settings, engine) -> None:
    core = _core(settings, engine)
    async with TestClient(TestServer(build_app(core, core.settings, engine))) as client:
        assert await run_other_feeling_contract(WebDriver(client), engine) == OTHER_EXPECTED

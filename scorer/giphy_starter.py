"""`moodgif pool starter`: a pool for the 17 emotions from GIPHY, in one command.

1. Plan: for each emotion, search GIPHY with its phrases (`scorer.starter_phrases`) and pick
   GIFs from the phrases in turn until it has `per_emotion` (a GIF already picked for
   another emotion is skipped, so the pool has no duplicates). The plan is saved after each
   emotion to `$MOODGIF_HOME/giphy/starter-<name>.json`, so a run stopped by GIPHY's hourly
   quota resumes at the next emotion without asking again.
2. Import the planned GIFs (`scorer.giphy_import.import_gifs`): GIFs already stored are not
   downloaded again, so the import resumes too.

The search phrase that found each GIF is kept in its attribution (`query`), never in its
title or tags: it is how the GIF was found, not GIPHY's words about it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path

from sqlalchemy.engine import Engine

from scorer.giphy import GiphyClient, GiphyError, GiphyGif, Rendition, check_ceiling
from scorer.giphy_import import import_gifs, run_coroutine
from scorer.pool import IngestReport
from scorer.pool_storage import check_pool_name
from scorer.settings import Settings
from scorer.starter_phrases import PHRASES

PLAN_VERSION = 1


def plan_path(settings: Settings, name: str) -> Path:
    return settings.home / "giphy" / f"starter-{name}.json"


def _to_json(g: GiphyGif) -> dict:
    return dataclasses.asdict(g)


def _from_json(d: dict) -> GiphyGif:
    d = dict(d)
    d["renditions"] = [Rendition(**r) for r in d.get("renditions", [])]
    return GiphyGif(**d)


def _load_plan(path: Path, key: dict) -> dict[str, list[GiphyGif]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("key") != key:
        return {}  # another size or ceiling: plan again
    try:
        return {e: [_from_json(g) for g in gifs] for e, gifs in data.get("emotions", {}).items()}
    except (TypeError, ValueError):
        return {}


def _save_plan(path: Path, key: dict, plan: dict[str, list[GiphyGif]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": key, "emotions": {
        e: [_to_json(g) for g in gifs] for e, gifs in plan.items()}}, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # a reader sees the old plan or the new one, never half of one


async def _plan_emotion(client: GiphyClient, emotion: str, per_emotion: int, rating: str | None,
                        taken: set[str]) -> list[GiphyGif]:
    phrases = PHRASES[emotion][: max(1, min(len(PHRASES[emotion]), per_emotion))]
    # A few spare results per phrase cover GIFs another emotion already took.
    each = math.ceil(per_emotion / len(phrases)) + 2
    results = []
    for phrase in phrases:
        page = await client.search(phrase, limit=each, rating=rating)
        for g in page.gifs:
            g.query = phrase
        results.append(page.gifs)
    picked: list[GiphyGif] = []
    for rank in range(max((len(r) for r in results), default=0)):
        for gifs in results:
            if len(picked) < per_emotion and rank < len(gifs) and gifs[rank].id not in taken:
                picked.append(gifs[rank])
                taken.add(gifs[rank].id)
    return picked


def build_starter(settings: Settings, engine: Engine, name: str = "starter", *,
                  per_emotion: int = 8, rating: str | None = None, progress: bool = False,
                  trusted_endpoints: Collection[tuple[str, int]] = (), backoff_s: float = 1.0,
                  on_emotion: Callable[[str, int], None] | None = None) -> tuple[IngestReport, dict]:
    """Plan (resumable) and import the starter pool; returns the report and per-emotion counts.

    Raises GiphyError when GIPHY fails before the plan is complete (the plan so far is kept,
    so the same command resumes) and when no emotion found anything.
    """
    from tqdm import tqdm

    check_pool_name(name)
    if per_emotion < 1:
        raise GiphyError("--per-emotion must be at least 1")
    ceiling = check_ceiling(rating) or settings.chat.rating_ceiling
    key = {"version": PLAN_VERSION, "per_emotion": per_emotion, "rating": ceiling,
           "phrases": {e: list(p) for e, p in PHRASES.items()}}
    path = plan_path(settings, name)
    plan = _load_plan(path, key)
    todo = [e for e in PHRASES if e not in plan]

    async def run_plan() -> None:
        taken = {g.id for gifs in plan.values() for g in gifs}
        async with GiphyClient(settings, backoff_s=backoff_s) as client:
            with tqdm(total=len(PHRASES), initial=len(PHRASES) - len(todo), desc="searching GIPHY",
                      unit="emotion", disable=None if progress else True, file=sys.stderr) as bar:
                for emotion in todo:
                    plan[emotion] = await _plan_emotion(client, emotion, per_emotion, ceiling, taken)
                    _save_plan(path, key, plan)
                    if on_emotion:
                        on_emotion(emotion, len(plan[emotion]))
                    bar.update(1)

    if todo:
        run_coroutine(run_plan())
    gifs = [g for e in PHRASES for g in plan.get(e, [])]
    counts = {e: len(plan.get(e, [])) for e in PHRASES}
    if not gifs:
        raise GiphyError("GIPHY found no GIFs for any starter phrase at or below rating "
                         f"{ceiling}: check the key's access, or try --rating r")
    report = import_gifs(settings, engine, name, gifs, ceiling=ceiling, progress=progress,
                         trusted_endpoints=trusted_endpoints)
    return report, counts


__all__ = ["build_starter", "plan_path"]

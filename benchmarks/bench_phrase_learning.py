"""Does reading a workspace's own words (bot.learned_phrases) help people as they use the bot?

A simulated workspace asks in its own phrases, through the real BotCore, the shipped intent
parser (the fine-tuned sentence model) and SQLite, once with `learn_phrases` on and once off,
on the same random draws. Nothing here tunes anything: the rule's constants were fixed
before this script existed.

- The phrase book: P lines of a selection set (never a held-out one), each with the
  feelings its writers accepted. A team repeats itself: requests draw phrases with Zipf
  popularity.
- Meaning: the team gives each phrase one meaning (one of its accepted feelings, at
  random); each person means the team's meaning with probability 0.8, else an accepted
  feeling of their own (fixed per person and phrase).
- Gestures: a preview of the meant feeling is sent; else a switch or the "Another
  feeling…" menu to it, if the preview offers them, then Send; else a question's button or
  menu for it ("did you mean", or the 17 feelings for words not read), then Send; else Cancel.

Printed per week: the share of requests whose first answer is the meant feeling ("right at
once") and the share where it is at most one click away, with learning and without.

    .venv/bin/python benchmarks/bench_phrase_learning.py [--set fresh14] [--phrases 60]
        [--people 25] [--days 28] [--per-day 40] [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import bench_candidates as bc  # noqa: E402
from _bot_pool import add_model_version, demo_manifest, designed_scores, ingest_demo  # noqa: E402

from bot.core import BotCore  # noqa: E402
from bot.events import Actor  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from scorer.migrate import init_db  # noqa: E402
from scorer.settings import load_settings  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Ask:
    day: int
    user: str
    phrase: str
    meant: str


def workload(rows: list[tuple[str, set[str], str]], args: argparse.Namespace) -> list[Ask]:
    rng = np.random.default_rng(args.seed)
    book = [rows[i] for i in rng.choice(len(rows), size=min(args.phrases, len(rows)), replace=False)]
    team = {text: str(rng.choice(sorted(accepted))) for text, accepted, _ in book}
    popularity = 1.0 / np.arange(1, len(book) + 1) ** 1.1
    popularity /= popularity.sum()
    own: dict[tuple[str, str], str] = {}
    asks = []
    for day in range(args.days):
        for _ in range(args.per_day):
            text, accepted, _ = book[rng.choice(len(book), p=popularity)]
            user = f"user{rng.integers(args.people)}"
            if (user, text) not in own:
                own[(user, text)] = (team[text] if rng.random() < 0.8
                                     else str(rng.choice(sorted(accepted))))
            asks.append(Ask(day, user, text, own[(user, text)]))
    return asks


async def play(core: BotCore, asks: list[Ask], clock: list[float]) -> list[tuple[bool, bool]]:
    """(right at once, within one click) per request."""
    out = []
    for ask in asks:
        clock[0] = 1.8e9 + ask.day * 86400 + len(out)
        actor = Actor("sim", "T1", "general", ask.user, ask.user)
        reply = await core.request(actor, ask.phrase)
        right = reply.preview is not None and reply.preview.emotion == ask.meant
        picked = None
        offered = (*reply.preview.alternatives, *reply.preview.more_feelings) if reply.preview else ()
        if reply.preview is not None and not right and ask.meant in offered:  # a switch, or the menu
            picked = await core.switch(actor, reply.preview.session_id, ask.meant)
        elif reply.ask_id and ask.meant in (*reply.choices, *reply.more_choices):  # a question's buttons
            picked = await core.choose(actor, reply.ask_id, ask.meant)
        final = picked if picked is not None else reply
        if final.preview is not None and final.preview.emotion == ask.meant:
            await core.send(actor, final.preview.session_id)
        elif final.preview is not None:
            await core.cancel(actor, final.preview.session_id)
        out.append((right, right or picked is not None))
    return out


def core_for(home: Path, parser: IntentParser, learn: bool, clock: list[float]) -> BotCore:
    settings = load_settings(env={}, home=str(home)).override(
        chat__cooldown_s=0.0, ranking__poll_share=0.0, ranking__exploration="none",
        chat__phrase_memory_days=90.0 if learn else 0.0)
    engine = init_db(settings.db_url)
    pool = ingest_demo(settings, engine, demo_manifest())
    add_model_version(engine, pool.shas, designed_scores(len(pool.shas)))
    return BotCore(settings, engine, intent_parser=parser, clock=lambda: clock[0], seed=1)


async def one_workspace(parser: IntentParser, rows: list[tuple[str, set[str], str]],
                        args: argparse.Namespace) -> tuple[list[Ask], dict[bool, list[tuple[bool, bool]]]]:
    asks = workload(rows, args)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-phrase-learning-") as tmp:
        for learn in (False, True):
            clock = [0.0]
            core = core_for(Path(tmp) / ("on" if learn else "off"), parser, learn, clock)
            t0 = time.perf_counter()
            results[learn] = await play(core, asks, clock)
            await core.close()
            print(f"seed {args.seed}, learning {'on' if learn else 'off'}: {len(asks)} requests in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return asks, results


def shares(asks: list[Ask], results: dict[bool, list[tuple[bool, bool]]], week: int | None) -> list[float]:
    """Right at once off / on, within one click off / on, over `week` (None: all)."""
    idx = [i for i, a in enumerate(asks) if week is None or a.day // 7 == week]
    return [float(np.mean([results[learn][i][k] for i in idx])) for k in (0, 1) for learn in (False, True)]


async def main_async(args: argparse.Namespace) -> None:
    parser = bc.shipped_parser([args.set])  # refuses a held-out set
    rows = bc.rows_of(args.set)
    runs = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        runs.append(await one_workspace(parser, rows, argparse.Namespace(**{**vars(args), "seed": seed})))
    print(f"\n# {args.set}: {args.phrases} phrases, {args.people} people, {args.per_day} requests a "
          f"day for {args.days} days; seeds {args.seeds} (each a workspace of its own)")
    print("| week | right at once, off | on | within one click, off | on |")
    print("|---|---|---|---|---|")
    weeks = sorted({a.day // 7 for a in runs[0][0]})
    for week in [*weeks, None]:
        row = np.mean([shares(asks, results, week) for asks, results in runs], axis=0)
        label = "all" if week is None else str(week + 1)
        print(f"| {label} | {row[0]:.3f} | **{row[1]:.3f}** | {row[2]:.3f} | {row[3]:.3f} |")
    if len(runs) > 1:
        per_seed = [shares(asks, results, None) for asks, results in runs]
        print("per seed, right at once off -> on: " + ", ".join(f"{r[0]:.3f} -> {r[1]:.3f}" for r in per_seed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="fresh14", help="a selection set of bench_candidates.py")
    ap.add_argument("--phrases", type=int, default=60)
    ap.add_argument("--people", type=int, default=25)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--per-day", type=int, default=40)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated; each is a workspace")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()

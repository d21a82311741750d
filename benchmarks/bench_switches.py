"""How far is the right feeling from the person who typed the request? With a preview's
switches ("Not quite? Switch to: ...", `bot.flows.switches.switches_for`) and the did-you-mean
buttons, a request lands in one of three ways:

- right at once: the parser commits to an accepted feeling (top-1);
- one click: it commits to another, and a switch offers an accepted one; or it asks, and
  one of its did-you-mean buttons is accepted;
- further: the person types again (or picks from all 17).

    .venv/bin/python benchmarks/bench_switches.py            # the tune sentences + short requests
    .venv/bin/python benchmarks/bench_switches.py --held     # the held-out sets (read-only figures)
    .venv/bin/python benchmarks/bench_switches.py --selection  # round 30: the selection pool,
        # the rule before it (switches only below 90 % and at a 10 % share) against the current one

Also printed: how often a preview shows switches at all, and on previews that were already
right (buttons a satisfied person did not need).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_intent as bench  # noqa: E402
import bench_sentence_tuning as bst  # noqa: E402

from bot import intent as intent_mod  # noqa: E402
from bot.flows.switches import switches_for  # noqa: E402
from bot.intent import IntentParser  # noqa: E402
from bot.sentence_tuning import BUILD_TIMEOUT_S  # noqa: E402
from bot.topics import Reading  # noqa: E402


def rule_before_round_30(reading: Reading | None, shown: str) -> tuple[str, ...]:
    """`switches_for` as it was before the thirtieth round: a sentence's reading, too, offered
    no switches at 90 % or above, and only feelings with a 10 % share."""
    from bot.flows.switches import MAX_SWITCHES, SWITCH_MIN_SHARE, SWITCH_SURE
    from scorer.emotions import INDEX

    if reading is None or not (reading.emotion or reading.intent.kind == "did_you_mean"):
        return ()
    intent = reading.intent
    if intent.emotion == shown and intent.confidence >= SWITCH_SURE:
        return ()
    options = [intent.emotion] + [e for e, p in intent.alternatives if p >= SWITCH_MIN_SHARE]
    return tuple(e for e in dict.fromkeys(options) if e in INDEX and e != shown)[:MAX_SWITCHES]


ROUND_30_GROUPS = ["fresh13", "fresh9", "fresh11", "fresh12", "fresh7", "pool346", "terse1", "issuetune",
                   "fresh14"]


def round_30() -> None:
    import bench_candidates as bc  # sets the regression as the default reader: imported here only

    parser = bc.shipped_parser([*ROUND_30_GROUPS, "shorttune", "short2"])
    pooled = [r for name in ROUND_30_GROUPS for r in bc.rows_of(name)]
    for label, rule in (("before", rule_before_round_30), ("current", switches_for)):
        for name, rows in (("selection pooled", pooled), ("fresh14", bc.rows_of("fresh14")),
                           ("shorttune", bc.rows_of("shorttune")), ("short2", bc.rows_of("short2"))):
            m = one_click(parser, rows, rule)
            print(f"{label:8} {name:17} n={int(m['n']):<5} right at once {m['top1']:.4f}  within one click "
                  f"{m['one_click']:.4f}  previews with switches {m['switches_shown']:.3f} "
                  f"(of right ones {m['on_right']:.3f})", flush=True)


def one_click(parser: IntentParser, rows: list[bst.Row],
              rule: Callable[[Reading | None, str], tuple[str, ...]] = switches_for) -> dict[str, float]:
    n = len(rows)
    right = click = shown = shown_right = committed = 0
    for text, accepted, _ in rows:
        intent = parser.parse(text)
        if intent.kind == "match" and intent.emotion:
            committed += 1
            options = rule(Reading(intent), intent.emotion)
            shown += bool(options)
            if intent.emotion in accepted:
                right += 1
                shown_right += bool(options)
            elif accepted & set(options):
                click += 1
        elif accepted & {e for e, _ in intent.alternatives[:3]}:
            click += 1  # the did-you-mean buttons
    return {"n": n, "top1": right / n, "one_click": (right + click) / n,
            "switches_shown": shown / max(1, committed), "on_right": shown_right / max(1, right)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held", action="store_true", help="the held-out sets (figures only, no choice)")
    ap.add_argument("--selection", action="store_true", help="round 30 on the selection pool")
    args = ap.parse_args()
    if args.selection:
        round_30()
        return
    parser = IntentParser()
    emb = intent_mod._EMBEDDER
    if not emb.load() or not emb.wait_tuned(BUILD_TIMEOUT_S):
        sys.exit(f"sentence model unavailable: {emb.error}")
    if args.held:
        sets = bst.held_sets()
    else:
        rows = bench.load_rows()
        sets = {**bst.tune_sets(),
                "short requests tune": [r for r in rows if r[2] == "tune" and bench.is_short(r[0])]}
    pooled = [r for name, rows in sets.items() if not name.startswith("short requests") for r in rows]
    for name, rows in {**sets, "sentences pooled": pooled}.items():
        m = one_click(parser, rows)
        print(f"{name:30} n={int(m['n']):<4} right at once {m['top1']:.3f}  within one click "
              f"{m['one_click']:.3f}  previews with switches {m['switches_shown']:.3f} "
              f"(of right ones {m['on_right']:.3f})", flush=True)


if __name__ == "__main__":
    main()

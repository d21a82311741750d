"""The outputs of a run: tables, the targets check, the plot, the JSON and the
markdown report (docs/simulation.md).

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from bot.simulate.config import ADVERSARIAL_SUFFIX
from bot.simulate.report_text import CAUSE, HOW_TO
from bot.simulate.run import SimResult
from scorer.emotions import N_EMOTIONS, NAMES
from scorer.settings import Settings

# ---------------------------------------------------------------------------------------
# outputs


METRICS = (("ndcg5", "NDCG@5"), ("p1", "P@1"), ("top_pct", "1st %ile"),
           ("sent_without_shuffle", "sent 1st"),
           ("shuffles_per_send", "shuffles/send"), ("regret", "regret"),
           ("spearman", "Spearman"), ("pair_acc", "pair acc."))


def markdown_table(result: SimResult, at: Sequence[int]) -> str:
    head = ["strategy", "requests", *(label for _k, label in METRICS), "NDCG@5 range over seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in at:
        for name in result.names():
            p = result.point(name, n)
            cells = [f"`{name}`", f"{p['requests']:,}",
                     *(f"{p.get(key, float('nan')):.3f}" for key, _l in METRICS),
                     f"{p['ndcg5_min']:.3f} – {p['ndcg5_max']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def felt_table(result: SimResult) -> str:
    """Per strategy and checkpoint: what people feel beside NDCG@5 (window metrics are over
    the requests since the previous checkpoint)."""
    head = ["strategy", "requests", "NDCG@5", "P@1", "sent without a shuffle",
            "shuffles per send", "regret of the 1st GIF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in result.names():
        for p in result.run(name)["curve"][1:]:
            lines.append(f"| `{name}` | {p['requests']:,} | {p['ndcg5']:.3f} | {p['p1']:.3f} | "
                         f"{p.get('sent_without_shuffle', 0.0):.3f} | "
                         f"{p.get('shuffles_per_send', 0.0):.2f} | {p.get('regret', 0.0):.3f} |")
    return "\n".join(lines)


def product_name(result: SimResult) -> str:
    """The strategy that is the product as shipped: with polls when they are on by default."""
    names = result.names()
    polls_on = Settings().ranking.poll_share > 0
    if polls_on and "both+polls" in names:
        return "both+polls"
    return "both" if "both" in names else "both+polls"


def adversarial_pair(result: SimResult) -> tuple[str, str] | None:
    """(clean, attacked): the product's adversarial run and its clean twin when both ran (the
    product as shipped first: `both@adv` before `both+polls@adv`), else any such pair."""
    names = result.names()
    product = product_name(result)
    runs = [n for n in names if n.endswith(ADVERSARIAL_SUFFIX)
            and n.removesuffix(ADVERSARIAL_SUFFIX) in names]
    runs.sort(key=lambda n: n.removesuffix(ADVERSARIAL_SUFFIX) != product)
    return (runs[0].removesuffix(ADVERSARIAL_SUFFIX), runs[0]) if runs else None


@dataclasses.dataclass(frozen=True)
class Move:
    """How far the attacked runs moved a metric from their clean twins at the last checkpoint,
    paired by user seed: the mean move and its 95 % t-interval (None with a single seed)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    def within(self, bound: float) -> bool:
        """True only when the whole interval lies inside ±bound: a point estimate near zero
        from a few seeds says nothing when one emotion of one seed moves P@1 by 1/17."""
        if self.low is None or self.high is None:
            return abs(self.mean) < bound
        return -bound < self.low and self.high < bound

    def text(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.mean:+.3f} (1 seed: no interval)"
        return f"{self.mean:+.3f}, 95 % interval {self.low:+.3f} to {self.high:+.3f} over {self.n} seeds"


def paired_move(result: SimResult, base: str, attacked: str, key: str) -> Move:
    """`attacked` minus `base` at the last checkpoint, seed by seed (the same user seed meets the
    same people and requests until the adversaries change what they see)."""
    clean = {r.get("seed"): r["curve"][-1][key] for r in result.of(base)}
    dirty = {r.get("seed"): r["curve"][-1][key] for r in result.of(attacked)}
    diffs = [float(dirty[s]) - float(clean[s]) for s in clean if s in dirty]
    if not diffs:
        raise ValueError(f"no user seed ran both {base} and {attacked}")
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return Move(mean, None, None, 1)
    from scipy.stats import t  # the report's only scipy use; imported when an interval is due

    sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
    half = float(t.ppf(0.975, len(diffs) - 1)) * sd / len(diffs) ** 0.5
    return Move(mean, mean - half, mean + half, len(diffs))


def adversarial_seed_table(result: SimResult) -> str:
    """Per user seed, the clean run against the attacked one at the last checkpoint: P@1 is
    0 or 1 per emotion, so each seed's mean moves in steps of 1/17; the first GIF's true
    percentile and the window's shown-first P@1 (over hundreds of previews) say how far."""
    pair = adversarial_pair(result)
    if pair is None:
        return ""
    head = ["seed", "run", "NDCG@5", "P@1", "1st %ile", "shown 1st in top 1 %", "sent 1st"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in pair:
        for r in result.of(name):
            p = r["curve"][-1]
            lines.append(f"| {r.get('seed')} | `{name}` | {p['ndcg5']:.3f} | {p['p1']:.3f} | "
                         f"{p.get('top_pct', float('nan')):.4f} | {p.get('first_p1', 0.0):.3f} | "
                         f"{p.get('sent_without_shuffle', 0.0):.3f} |")
    return "\n".join(lines)


Target = tuple[str, bool | None, str]


def check_targets(result: SimResult) -> list[Target]:
    """Issue 12's targets, each as (target, met or None when not measured, the numbers)."""
    names = set(result.names())
    out: list[Target] = []
    product = product_name(result)
    if product in names and "prior" in names:
        out += _product_vs_prior(result, product)
    if {"both", "both+polls"} <= names:
        out.append(_polls_on_vs_off(result))
    pair = adversarial_pair(result)
    if pair is not None:
        out.append(_adversarial_move(result, *pair))
    if "feedback" in names:
        out.append(_from_no_prior(result))
    return out


def _product_vs_prior(result: SimResult, product: str) -> list[Target]:
    """What people feel (P@1, sent without a shuffle) from 2,000 requests, and NDCG@5 from
    1,000: the shipped strategy against its own prior alone."""
    curve = result.run(product)["curve"]
    late = [p for p in curve if p["requests"] >= 2000]
    felt = [(p["requests"], p["p1"], result.at("prior", p["requests"], "p1"),
             p["sent_without_shuffle"],
             result.at("prior", p["requests"], "sent_without_shuffle")) for p in late]
    ok = bool(felt) and all(a > b and c > d for _n, a, b, c, d in felt)
    from_1k = [p for p in curve if p["requests"] >= 1000]
    nd = [(p["requests"], p["ndcg5"], result.at("prior", p["requests"])) for p in from_1k]
    return [
        (f"`{product}` beats `prior` on P@1 and on sent without a shuffle at "
         "2,000 requests and after", ok if felt else None,
         "; ".join(f"{n:,}: P@1 {a:.3f} vs {b:.3f}, sent 1st {c:.3f} vs {d:.3f}"
                   for n, a, b, c, d in felt) or "not run to 2,000"),
        (f"`{product}` beats `prior` on NDCG@5 at every checkpoint from 1,000",
         all(a > b for _n, a, b in nd) if nd else None,
         ", ".join(f"{n:,}: {a:.3f} vs {b:.3f}" for n, a, b in nd) or "not run"),
    ]


def _polls_on_vs_off(result: SimResult) -> Target:
    on, off = result.point("both+polls", 1000), result.point("both", 1000)
    better = on["ndcg5"] > off["ndcg5"] and on["p1"] > off["p1"]
    default_off = Settings().ranking.poll_share == 0
    return ("polls on vs off: better at 1,000 requests on NDCG@5 and P@1, or off by "
            "default", better or default_off,
            f"at {on['requests']:,}: NDCG@5 {on['ndcg5']:.3f} vs {off['ndcg5']:.3f}, "
            f"P@1 {on['p1']:.3f} vs {off['p1']:.3f}; poll_share default "
            f"{Settings().ranking.poll_share:g}")


def _adversarial_move(result: SimResult, base: str, attacked: str) -> Target:
    clean, dirty = result.run(base)["curve"][-1], result.run(attacked)["curve"][-1]
    pct = ""
    if clean.get("top_pct") is not None and dirty.get("top_pct") is not None:
        pct = (f"; the first GIF's true percentile {clean['top_pct']:.4f} → "
               f"{dirty['top_pct']:.4f} ({dirty['top_pct'] - clean['top_pct']:+.4f})")
    move_n = paired_move(result, base, attacked, "ndcg5")
    move_p = paired_move(result, base, attacked, "p1")
    return (f"10 % adversarial users move the final NDCG@5 by < 0.02 and P@1 by < 0.05 "
            f"(`{base}` vs `{attacked}`; met when the seed-paired 95 % interval lies "
            "inside the bound)",
            move_n.within(0.02) and move_p.within(0.05),
            f"NDCG@5 {clean['ndcg5']:.3f} → {dirty['ndcg5']:.3f} ({move_n.text()}), "
            f"P@1 {clean['p1']:.3f} → {dirty['p1']:.3f} ({move_p.text()}){pct}")


def _from_no_prior(result: SimResult) -> Target:
    curve = result.run("feedback")["curve"]
    best = max(p["ndcg5"] for p in curve)
    first = next((p["requests"] for p in curve if p["ndcg5"] >= 0.8), None)
    return ("from no prior (`feedback`), NDCG@5 ≥ 0.8 of the ceiling within 5,000 "
            "requests", first is not None and first <= 5000,
            f"first reached at {first:,} requests" if first is not None else
            f"best {best:.3f}, final {curve[-1]['ndcg5']:.3f} at "
            f"{curve[-1]['requests']:,}")


def plot_curves(result: SimResult, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name in result.names():
        r = result.run(name)
        xs = [p["requests"] for p in r["curve"]]
        (line,) = axes[0].plot(xs, [p["ndcg5"] for p in r["curve"]], marker="o", ms=3, label=name)
        if len(r["seeds"]) > 1:
            axes[0].fill_between(xs, [p["ndcg5_min"] for p in r["curve"]],
                                 [p["ndcg5_max"] for p in r["curve"]], color=line.get_color(),
                                 alpha=0.12, lw=0)
        axes[1].plot(xs, [p["p1"] for p in r["curve"]], marker="o", ms=3, label=name)
        # window metrics: nothing happened before the first checkpoint
        axes[2].plot(xs[1:], [p.get("sent_without_shuffle", 0.0) for p in r["curve"][1:]],
                     marker="o", ms=3, label=name)
    axes[0].axhline(0.9, color="grey", ls="--", lw=0.8)
    axes[0].set_ylabel("NDCG@5 (share of the truth's ceiling)")
    axes[1].set_ylabel("P@1 (top GIF in the true top 1 %)")
    axes[2].set_ylabel("previews sent without a shuffle")
    for ax in axes:
        ax.set_xlabel("requests")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "moodgif: suggestion quality vs use (mean over 17 emotions; "
                 "band = range over user seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_json(result: SimResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), indent=1, default=str))


def first_reaching(result: SimResult, name: str, level: float, metric: str = "ndcg5") -> int | None:
    """The first checkpoint from which `metric` stays at or above `level` to the end."""
    found = None
    for p in result.run(name)["curve"]:
        below = p[metric] < level
        found = None if below else (found if found is not None else int(p["requests"]))
    return found


def machine() -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}"


def report_markdown(result: SimResult, command: str, png_name: str) -> str:
    """docs/learning-loop.md: what was run, the table, the targets, the adversarial check."""
    lines = _report_intro(result, command, png_name)
    for target, ok, numbers in check_targets(result):
        verdict = "not measured" if ok is None else ("**met**" if ok else "**not met**")
        lines.append(f"- {target}: {verdict} ({numbers})")
    seeds = adversarial_seed_table(result)
    if seeds:
        lines += ["", "Adversarial users, per user seed (last checkpoint):", "", seeds]
    lines += ["", "## Every checkpoint", "", felt_table(result), "", "## Earlier targets", ""]
    lines += _earlier_target_lines(result)
    lines += _per_emotion_lines(result)
    lines += _timing_lines(result)
    lines += ["", CAUSE, "", HOW_TO, ""]
    return "\n".join(lines)


def _report_intro(result: SimResult, command: str, png_name: str) -> list[str]:
    """What was run, at what scale, the results table and its legend."""
    cfg = result.config
    n_final = int(cfg["requests"])
    return [
        *_loop_summary_lines(cfg),
        *_made_by_lines(result, command),
        *_reduced_scale_lines(cfg, n_final),
        *_evaluation_pool_lines(result, png_name, n_final),
        *_results_lines(result, n_final),
        "## Issue 12's targets (what people feel)",
        "",
    ]


def _loop_summary_lines(cfg: dict) -> list[str]:
    """The page's title and what the simulated loop is."""
    return [
        "# The learning loop: suggestions get better with use",
        "",
        "Virtual users with known tastes use the bot through the same core the chat adapters "
        "use (request, shuffle, send, cancel, 👍/👎, polls); the real retrain job (ledger → "
        "Bradley-Terry → head → rescore → activate) runs every "
        f"{cfg['retrain_every']} requests on a simulated clock, and the ranking the bot would "
        "show is measured against the demo pool's ground truth after every retrain. The truth "
        "only drives the virtual users and the measurement; the ranker never sees it.",
        "",
    ]


def _made_by_lines(result: SimResult, command: str) -> list[str]:
    """The machine, the time in all and the command that made the page."""
    return [
        "Made by (on " + machine() + f", {result.seconds:.0f} s in all):",
        "",
        "```",
        command,
        "```",
        "",
    ]


def _reduced_scale_lines(cfg: dict, n_final: int) -> list[str]:
    """A warning when the run was smaller than the benchmark's; nothing otherwise."""
    if cfg["pool_size"] < 2000 or n_final < 5000:
        return ["**Reduced scale.** The benchmark (`benchmarks/bench_learning_loop.py`) is a "
                "2,000-GIF pool and 5,000 requests per run; this page was made at the scale in the "
                "command above (the shared 2-core machine could not run the full one in time); "
                "`docs/bench/learning-loop.md` says what was and was not measured.", ""]
    return []


def _evaluation_pool_lines(result: SimResult, png_name: str, n_final: int) -> list[str]:
    """The curves' plot, then the pools, requests, seeds and the shipped scorer behind them."""
    cfg = result.config
    names = result.names()
    n_seeds = len(result.run(names[0])["seeds"]) if names else 0
    return [
        f"![NDCG@5 versus requests per strategy]({png_name})",
        "",
        f"Evaluation pool: {cfg['pool_size']} demo GIFs; {n_final:,} requests per strategy, "
        f"each strategy run with {n_seeds} user seed(s) (numbers are means over them). "
        f"The shipped scorer `v0` was trained on a separate {cfg['seed_pool_size']}-GIF pool "
        f"with {result.prepared['v0'].get('crowd_comparisons') or '?'} GIFGIF-style crowd "
        "comparisons (Bradley-Terry noise), through the real training code.",
        "",
    ]


def _results_lines(result: SimResult, n_final: int) -> list[str]:
    """The results table at 1,000 requests and at the end, then what each column means."""
    at = [n for n in (1000, n_final) if n <= n_final]
    at = list(dict.fromkeys(at))
    return [
        "## Results (means over the 17 emotions)",
        "",
        markdown_table(result, at),
        "",
        *_metric_legend_lines(),
        "",
    ]


def _metric_legend_lines() -> list[str]:
    """One bullet per column of the results table."""
    return [
        "- **NDCG@5**: the deterministic top 5 of the posterior (no exploration) for each "
        "emotion, gain = the true score; the ceiling is the truth's own top 5, so the value is "
        "already a share of the ceiling (1.0 = the truth's ranking).",
        "- **P@1**: the first GIF is in the true top 1 % of the pool for that emotion.",
        "- **1st %ile**: the share of the pool the first GIF beats on the truth (1 = the best "
        "GIF); P@1 is 0 or 1 per emotion, this says how near the top the first GIF is.",
        "- **sent 1st**: share of previews sent without a shuffle (since the previous checkpoint).",
        "- **shuffles/send**: shuffles people made per GIF that reached the channel (since the "
        "previous checkpoint; shuffles before a cancel count too).",
        "- **regret**: per preview, the true score of the best GIF the bot could have shown "
        "first (allowed in the channel and not posted there in the repeat window) minus the "
        "true score of the GIF it did show first; mean since the previous checkpoint.",
        "- **Spearman**: posterior means against the truth over the whole pool.",
        "- **pair acc.**: a fixed held-out set of truth-derived pairs per emotion (never "
        "recorded as comparisons), ordered correctly by the posterior.",
    ]


def _earlier_target_lines(result: SimResult) -> list[str]:
    """The earlier targets: both+polls near the ceiling and ahead early; adversarial users."""
    cfg = result.config
    n_final = int(cfg["requests"])
    names = result.names()
    lines: list[str] = []
    if "both+polls" in names:
        reach = first_reaching(result, "both+polls", 0.9)
        lines.append("- both+polls holds 0.9 of the NDCG@5 ceiling: "
                     + (f"**yes, from {reach:,} requests on** (final "
                        f"{result.final('both+polls'):.3f})" if reach is not None else
                        f"**no** (final {result.final('both+polls'):.3f}, best "
                        f"{max(p['ndcg5'] for p in result.run('both+polls')['curve']):.3f})"))
        if n_final >= 1000:
            mine = result.at("both+polls", 1000)
            others = {n: result.at(n, 1000) for n in names
                      if n != "both+polls" and not n.endswith("@adv")}
            beats = all(mine > v for v in others.values())
            lines.append(f"- both+polls beats every other strategy at 1,000 requests: "
                         f"**{'yes' if beats else 'no'}** ({mine:.3f} vs "
                         + ", ".join(f"{k} {v:.3f}" for k, v in others.items()) + ")")
    pair = adversarial_pair(result)
    if pair is not None:
        clean = result.final(pair[0])
        dirty = result.final(pair[1])
        share = result.run(pair[1]).get("adversarial", cfg.get("adversarial", 0.0))
        lines += [
            f"- {share:.0%} adversarial users (always 👎, send at random, answer polls against "
            f"what they see) move the final NDCG@5 of `{pair[0]}` by **{dirty - clean:+.3f}** "
            f"({clean:.3f} → {dirty:.3f}; target: less than 0.02 in size)",
        ]
        last = result.run(pair[1])["curve"][-1]
        if last.get("trust_adversarial") is not None:
            lines.append(
                f"- how the retrain weighs people (`training/reliability.py`, final checkpoint): "
                f"mean trust normal {last.get('trust_normal') or 0:.2f}, noisy "
                f"{last.get('trust_noisy') or 0:.2f}, adversarial {last['trust_adversarial']:.2f}; "
                f"adversarial people made {last.get('adv_share_top_losses') or 0:.0%} of the "
                "judgements against the true top 1 % and keep "
                f"{last.get('adv_kept_top_losses') or 0:.0%} of their weight (normal people's "
                f"judgements on those GIFs keep {last.get('normal_kept_top') or 0:.0%})")
    return lines


def _per_emotion_lines(result: SimResult) -> list[str]:
    """The final NDCG@5 of every strategy, one column per emotion."""
    names = result.names()
    lines: list[str] = []
    lines += ["", "## Per emotion (final checkpoint, NDCG@5)", "",
              "| strategy | " + " | ".join(NAMES) + " |", "|---|" + "---|" * N_EMOTIONS]
    for name in names:
        per = result.run(name)["curve"][-1]["per_emotion"]["ndcg5"]
        lines.append(f"| `{name}` | " + " | ".join(f"{x:.2f}" for x in per) + " |")
    return lines


def _timing_lines(result: SimResult) -> list[str]:
    """Where the time went, and the settings each run used (so a rerun can match)."""
    names = result.names()
    lines: list[str] = []
    lines += ["", "## Where the time went", "",
              "Per run (mean over seeds; runs go side by side in `--workers` processes):", "",
              "| strategy | wall s | requests s | retrain s (count) | measuring s |",
              "|---|---|---|---|---|"]
    for name in names:
        r = result.run(name)
        t = r["timing"]
        lines.append(f"| `{name}` | {r['seconds']:.0f} | {t['requests_s']:.0f} | "
                     f"{t['retrain_s']:.0f} ({r['retrains']}) | {t['measure_s']:.0f} |")
    prep = result.prepared.get("prepare_seconds", {})
    lines += ["", "Preparing (pools, features, v0, templates; cached under the `--cache` folder, "
              "so only a cold first run pays): " + ", ".join(f"{k} {v:.0f} s"
                                                          for k, v in prep.items()) + "."]
    lines += ["", "Settings in effect (the product defaults unless the environment says "
              "otherwise; `feedback` runs with prior strength 0, `both` and the non-poll "
              "strategies with poll share 0):", ""]
    lines += [f"- `{name}`: " + ", ".join(f"{k}={v}" for k, v in result.run(name)["settings"].items())
              for name in names]
    return lines


def write_report(result: SimResult, out_dir: Path, *, command: str, json_path: Path | None = None,
                 stem: str = "learning") -> tuple[Path, Path]:
    """OUT/learning-loop.md, OUT/learning-curve.png, and the raw curves as JSON at
    `json_path` (every checkpoint, every metric per emotion; too big for docs/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stem}-curve.png"
    plot_curves(result, png)
    md = out_dir / f"{stem}-loop.md"
    md.write_text(report_markdown(result, command, png.name))
    if json_path is not None:
        save_json(result, json_path)
    return md, png

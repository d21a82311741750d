"""`moodgif suggest`: the core's answer to a request, printed (no chat platform needed)."""

from __future__ import annotations

import json
import sys

import click

from scorer.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(suggest_cmd)


def _scope(channel: str | None) -> tuple[str, str, str] | None:
    if not channel:
        return None
    from bot.events import PLATFORMS

    parts = channel.split("/")
    if len(parts) != 3 or not all(parts) or any(len(p) > 64 for p in parts):
        raise click.BadParameter("use PLATFORM/WORKSPACE/CHANNEL, e.g. slack/T0123/C0456",
                                 param_hint="--channel")
    if parts[0] not in PLATFORMS:
        raise click.BadParameter(f"the platform is one of {', '.join(PLATFORMS)}", param_hint="--channel")
    return parts[0], parts[1], parts[2]


@click.command("suggest")
@click.argument("text", nargs=-1, required=True)
@click.option("--k", "k", default=5, show_default=True, type=click.IntRange(1, 100),
              help="how many GIFs")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--channel", default=None, metavar="PLATFORM/WORKSPACE/CHANNEL",
              help="apply that channel's pools, rating ceiling and recent posts")
@click.option("--explore", is_flag=True,
              help="sample like the bot does (settings.ranking.exploration) instead of the best means")
@click.pass_obj
def suggest_cmd(settings: Settings, text: tuple[str, ...], k: int, as_json: bool,
                channel: str | None, explore: bool) -> None:
    """The top GIFs for an emotion or a request text (`moodgif suggest i broke prod`).

    Read and ranked by the bot core itself, with the bot's defaults (rating ceiling, topics);
    `--channel` adds that channel's pools, ceiling and recent posts. Writes nothing.
    Exits with code 3 when the text maps to no emotion (the reason goes to stderr; with --json
    a JSON answer with "emotion": null still goes to stdout); `help` prints the 17 emotions.
    """
    import asyncio

    from bot.core import BotCore
    from bot.events import Actor
    from bot.intent import without_background_build
    from bot.ranking import Ranker
    from scorer.migrate import init_db

    scope = _scope(channel)
    engine = init_db(settings.db_url)
    core = BotCore(settings, engine, ranker=Ranker(engine, background=False))
    actor = Actor(*scope, user_id="cli") if scope else None
    with without_background_build():
        got = asyncio.run(core.suggest(" ".join(text), k, actor=actor, explore=explore))
    if got.ranked is None:
        _unmapped(got, as_json)
        return
    from bot.topics import missing_note

    gifs = _suggested_gifs(settings, core, got)
    # What a preview adds ("No unicorn GIFs in this pool; here's happiness."), unless the
    # ranking's own note says more (an empty pool has no GIFs about anything)
    notes = [n for n in (missing_note(got.reading), got.ranked.note) if n]
    if not gifs and got.ranked.note:
        notes = [got.ranked.note]
    if as_json:
        intent = got.reading.intent
        click.echo(json.dumps({"query": got.query, "emotion": intent.emotion,
                               "confidence": round(intent.confidence, 3), "topic": list(got.reading.topic),
                               "topic_missing": list(got.reading.missing),
                               "note": "; ".join(n.rstrip(".") for n in notes) or None, "gifs": gifs}, ensure_ascii=False))
    else:
        _print_ranked(got, gifs, notes)


def _unmapped(got, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """Text the core mapped to no emotion: the list when that was asked for (exit 0), else
    the reason on stderr (and a JSON answer for scripts) and exit 3."""
    intent = got.reading.intent
    if intent.kind == "help":  # asked for the list: it is the answer
        from bot.intent import help_text
        from scorer.emotions import NAMES

        click.echo(json.dumps({"query": got.query, "emotion": None, "reason": intent.reason,
                               "emotions": list(NAMES), "topic": [], "gifs": []}, ensure_ascii=False)
                   if as_json else help_text())
        return
    reason = intent.reason or "no emotion found"
    if intent.alternatives and intent.kind != "did_you_mean":  # that reason names them
        reason += f" (closest: {', '.join(e for e, _ in intent.alternatives[:3])})"
    if as_json:  # a script still gets an answer it can read, as `moodgif intent --json`
        click.echo(json.dumps({"query": got.query, "emotion": None, "reason": reason,
                               "alternatives": [e for e, _ in intent.alternatives[:3]],
                               "topic": list(got.reading.topic), "gifs": []}, ensure_ascii=False))
    click.echo(f"moodgif suggest: {reason}", err=True)
    sys.exit(3)


def _print_ranked(got, gifs: list[dict], notes: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The reading on one line, then one line per GIF."""
    intent, topic = got.reading.intent, " ".join(got.reading.topic)
    if got.emotion < 0:
        head = f"topic: {topic} (no feeling named: the best-liked first)"
    else:
        head = f"{intent.emotion} (confidence {intent.confidence:.2f})" + (f"; topic: {topic}" if topic else "")
    click.echo(head + "".join(f" - {n}" for n in notes))
    if not gifs:
        click.echo("no GIFs to suggest: add a pool with `moodgif pool add NAME SOURCE`")
        return
    for n, g in enumerate(gifs, 1):
        score = (f"{g['mean']:.3f} ± {g['sd']:.3f}" if g["mean"] is not None
                 else f"appeal {g['score']:.3f}" if got.emotion < 0 else "unscored")
        click.echo(f"{n:>2}. {g['sha256'][:12]}  {score}  {g['title'][:40]:<40}  {g['path']}")


def _suggested_gifs(settings: Settings, core, got) -> list[dict]:  # type: ignore[no-untyped-def]
    """The ranked GIFs as `suggest` prints them: scores, title, rating, file and URL."""
    from bot.events import gif_url
    from scorer.pool import gif_path
    from scorer.store import Gif, session_scope

    matrix, ranked, emotion = core.ranker.matrix(), got.ranked, got.emotion
    with session_scope(core.engine) as s:
        rows = {g.sha256: (g.title, g.rating)
                for g in s.query(Gif).filter(Gif.sha256.in_(ranked.shas))}
    scored = matrix.scored and emotion >= 0
    gifs = []
    for sha, mean, score in zip(ranked.shas, ranked.means, ranked.scores, strict=True):
        title, rating = rows.get(sha, ("", None))
        gifs.append({
            "sha256": sha, "score": round(score, 4),
            "mean": round(mean, 4) if scored else None,
            "sd": round(float(matrix.sd[emotion, matrix.index[sha]]), 4) if scored else None,
            "title": title or "", "rating": rating,
            "path": str(gif_path(settings, sha)),
            "url": gif_url(sha, settings.http.public_url) if settings.http.public_url else None,
        })
    return gifs

"""`moodgif intent`: what emotion a request maps to."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from scorer.settings import Settings

if TYPE_CHECKING:
    from bot.intent import IntentParser

EXIT_CANNOT_MAP = 3


def register(group: click.Group) -> None:
    group.add_command(intent_cmd)


@click.command("intent")
@click.argument("text", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
@click.option("--no-embeddings", is_flag=True,
              help="lexicon and typo matching only (skips loading the sentence model)")
@click.pass_obj
def intent_cmd(settings: Settings, text: tuple[str, ...], as_json: bool, no_embeddings: bool) -> None:
    """Map TEXT to one of the 17 emotions, with a confidence and alternatives.

    Exits with code 3 when the request cannot be mapped; `help` (or `?`) prints the 17 emotions.
    With no TEXT, reads one request per line from standard input and prints one JSON line each
    (the model loads once).
    """
    from bot.intent import IntentParser, without_background_build

    parser = IntentParser(settings, use_embeddings=not no_embeddings)
    with without_background_build():
        _answer(parser, text, as_json)


def _answer(parser: IntentParser, text: tuple[str, ...], as_json: bool) -> None:
    from bot.intent import TOO_LONG, Intent, help_text, too_long
    from scorer.emotions import NAMES

    if too_long(" ".join(text)):  # what a chat request this long gets, not its start read
        click.echo(f"moodgif: {TOO_LONG}", err=True)
        sys.exit(EXIT_CANNOT_MAP)
    if not text:
        for line in sys.stdin:
            line = line.rstrip("\r\n")
            result = Intent(None, 0.0, [], TOO_LONG, "unknown") if too_long(line) else parser.parse(line)
            click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    result = parser.parse(" ".join(text))
    if result.kind == "help":  # asked for the list: it is the answer
        if as_json:
            click.echo(json.dumps({**result.to_json(), "emotions": list(NAMES)}, ensure_ascii=False))
        else:
            click.echo(help_text())
        return
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
    elif result.emotion is not None:
        extra = ", ".join(f"{e} {c:.2f}" for e, c in result.alternatives)
        click.echo(f"{result.emotion} ({result.confidence:.2f})" + (f"; also {extra}" if extra else ""))
    if result.emotion is None:
        click.echo(f"moodgif: {result.reason}", err=True)
        sys.exit(EXIT_CANNOT_MAP)

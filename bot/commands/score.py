"""`moodgif score`: encode a pool's GIFs (cached features) and write scores under a model version."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from scorer.settings import Settings

if TYPE_CHECKING:
    from scorer.pipeline import ScoreReport


def register(group: click.Group) -> None:
    group.add_command(score_cmd)


@click.command("score")
@click.option("--pool", default=None, help="pool name (default: every GIF)")
@click.option("--encoder", "encoder_id", default=None,
              help="encoder id (default: the active model's, else MOODGIF_ENCODER)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="where the encoder runs (default: MOODGIF_DEVICE)")
@click.option("--engine", "engine_kind", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local processes, or a Ray cluster")
@click.option("--address", default=None, help="Ray cluster address (default: start a local Ray)")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="decode processes (local) or encode actors (ray); default MOODGIF_SCORE_WORKERS")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="frames per encoder batch (default MOODGIF_SCORE_BATCH_SIZE)")
@click.option("--model-version", "model_version_id", type=int, default=None,
              help="write scores under this model version (default: the active one)")
@click.option("--list-encoders", is_flag=True, help="print the known encoder ids and exit")
@click.option("--no-prior", is_flag=True, help="skip the zero-shot prior (faces and words)")
@click.pass_obj
def score_cmd(
    settings: Settings, pool: str | None, encoder_id: str | None, device: str | None,
    engine_kind: str, address: str | None, workers: int | None, batch_size: int | None,
    model_version_id: int | None, list_encoders: bool, no_prior: bool,
) -> None:
    """Encode the GIFs that have no cached features yet, then score them.

    Every GIF gets the zero-shot prior (faces in its frames, its title, tags, alt text and
    slug through the same intent model as chat requests), a model version of its own that
    is active until votes train a better head. A trained head scores only the pools it was
    trained on; the prior ranks the others.
    """
    from bot.home_lock import HomeBusy, home_lock
    from scorer.encoders import EncoderError

    if list_encoders:
        _echo_known_encoders()
        return
    from scorer.migrate import init_db
    from scorer.pipeline import ScoreError, score_pool

    engine = init_db(settings.db_url)
    text_model = None if no_prior else _settled_text_model(settings)
    try:  # a restore must not swap the database and the feature cache under the run
        with home_lock(settings.home, exclusive=False, doing="score"):
            report = score_pool(
                settings, engine, pool=pool, encoder_id=encoder_id,
                device=device or settings.scoring.device, model_version_id=model_version_id,
                engine_kind=engine_kind, progress=sys.stderr.isatty(), workers=workers,
                batch_size=batch_size, address=address, text_model=text_model, prior=not no_prior,
            )
    except (EncoderError, ScoreError, HomeBusy) as exc:
        raise click.ClickException(str(exc)) from None
    _echo_encoding(report)
    _echo_prior(report)
    _echo_head(report)


def _echo_known_encoders() -> None:
    """The known encoder ids, one a line."""
    from scorer.encoders import list_encoders as known

    for e in known():
        click.echo(e)


def _settled_text_model(settings: Settings) -> Callable[[str], tuple[list[float], str]]:
    """The intent model's reading of a text, for the prior's word channel; settled first."""
    # The word channel uses the bot's own intent model: it lives in bot/, so it is
    # handed down to the scorer here rather than imported there (bot -> scorer only).
    from bot.intent import text_model as settled_text_model

    return settled_text_model(settings, notify=lambda line: click.echo(line, err=True))


def _echo_encoding(report: ScoreReport) -> None:
    """What was encoded, how fast, and the first 20 failures (on stderr)."""
    rate = report.encoded / report.seconds if report.seconds > 0 else 0.0
    click.echo(
        f"encoder {report.encoder_id} ({report.sampling}): {report.encoded} encoded "
        f"({report.frames} frames, {rate:.2f} GIFs/s), {report.cached} already cached, "
        f"{len(report.failed)} failed, {report.skipped} skipped (failed before)"
    )
    for sha, reason in report.failed[:20]:
        click.echo(f"  failed {sha[:12]}: {reason}", err=True)


def _echo_prior(report: ScoreReport) -> None:
    """What the zero-shot prior wrote, when it ran."""
    if report.prior_version_id is not None:
        click.echo(
            f"zero-shot prior (model version {report.prior_version_id}): {report.prior_written} GIFs, "
            f"{report.prior_faces} with a face, {report.prior_words} with readable words, "
            f"{report.prior_wide} with only a wide prior (explored more)"
        )
    if report.prior_standing is not None:
        click.echo(f"  {report.prior_standing.describe()}")


def _echo_head(report: ScoreReport) -> None:
    """What the trained head scored, or why none did."""
    if report.model_version_id is None:
        click.echo("no trained head yet: the zero-shot prior ranks these GIFs until votes train one"
                   if report.prior_version_id is not None else
                   "no trained head for this encoder yet: wrote features only")
    else:
        click.echo(f"wrote {report.scored} scores under model version {report.model_version_id}")
        if report.head_skipped:
            click.echo(f"  {report.head_skipped} GIFs are outside the pools that version was "
                       "trained on: the zero-shot prior ranks them")

"""What `--help` promises is what the command does (an operator follows the help literally)."""

from __future__ import annotations

import re

from click.testing import CliRunner

from bot.cli import cli


def _option_help(args: list[str], option: str) -> str:
    """The help text of one option, its wrapped lines joined."""
    out = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.strip().startswith(option))
    return re.sub(r"\s+", " ", line)


def test_retrain_says_its_epochs_and_device_are_for_once_only() -> None:
    # A scheduled run (the worker's `--schedule`, serve's, "retrain now") calls run_retrain
    # with its defaults: `retrain --schedule --device cuda` trained on the CPU while the help
    # offered --device to every run.
    for option in ("--epochs", "--device"):
        said = _option_help(["retrain"], option)
        assert "--once" in said and "scheduled run" in said, said

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


def test_retrain_schedule_refuses_the_options_it_would_ignore() -> None:
    for extra in (["--device", "cuda"], ["--epochs", "5"]):
        out = CliRunner().invoke(cli, ["retrain", "--schedule", *extra])
        assert out.exit_code == 2 and f"{extra[0]} apply to --once only" in out.output, out.output


def test_the_retrain_worker_names_its_next_retrain_not_the_job_poll(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`retrain --schedule` said "next run at <a minute from now> (interval[0:01:00])": the
    admin-jobs poll it also runs, not the retrain at 03:17 UTC."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "MOODGIF_HOME": str(tmp_path), "MOODGIF_RETRAIN_CRON": "17 3 * * *",
           "MOODGIF_DATABASE_URL": f"sqlite:///{tmp_path / 'moodgif.db'}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "retrain", "--schedule"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        line = next((x for x in proc.stderr if x.startswith(("retrain worker:", "Error"))), "")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert re.search(r"next run at \d{4}-\d\d-\d\d 03:17:00 UTC \(cron\[", line), line

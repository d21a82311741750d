"""`moodgif bt-fit`: Bradley-Terry scores of every GIF from a GIFGIF-format comparison dump."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import click

from bot.commands import command_settings
from scorer.emotions import NAMES


def register(group: click.Group) -> None:
    group.add_command(bt_fit)


@click.command("bt-fit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="scores CSV to write: gif_id and one column per emotion")
@click.option("--ties", type=click.Choice(["drop", "half", "davidson"]), default=None,
              help="'neither' answers: drop, half a win each way, or the Davidson tie model "
                   "[default: setting bt_ties]")
@click.option("--alpha", type=float, default=None,
              help="Gamma prior pseudo-count per GIF, > 0 [default: setting bt_alpha]")
@click.option("--scale", type=click.Choice(["minmax", "robust"]), default="minmax",
              show_default=True,
              help="minmax: the paper's per-emotion [0,1]; robust: quartile-anchored logistic")
@click.option("--method", type=click.Choice(["newton", "mm"]), default="newton",
              show_default=True, help="solver (both reach the same optimum)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.pass_context
def bt_fit(ctx: click.Context, file: Path, out: Path, ties: str | None, alpha: float | None,
           scale: str, method: str, as_json: bool) -> None:
    """Fit per-emotion Bradley-Terry scores from FILE (metric,left,right,choice; .gz ok).

    Writes one row per GIF with 17 scores in [0, 1]; a cell is empty where the GIF was never
    compared on that emotion. Bad rows are counted and skipped.
    """
    _reuse_freed_memory()
    # What the command line alone gets wrong fails before the file is read; the settings
    # are loaded (and their defaults checked) while it is read.
    _check_options(ties or "half", 1.0 if alpha is None else alpha, method)
    t0 = time.perf_counter()
    bt, data, ties, alpha = _read_while_importing_the_fit(ctx, file, ties, alpha, method)
    t_read = time.perf_counter() - t0

    t1 = time.perf_counter()
    results = _fit_with_bar(data, ties, alpha, method)
    t_fit = time.perf_counter() - t1

    _write_atomic(out, data.gif_ids, _score_columns(bt, results, data.n_gifs, scale))
    total = time.perf_counter() - t0

    seconds = (t_read, t_fit, total)
    summary = _summary(file, out, data, results, ties=ties, alpha=alpha, method=method,
                       scale=scale, seconds=seconds)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _echo_summary(summary, data, file, out, seconds)


def _check_options(ties: str, alpha: float, method: str) -> None:
    if not (alpha > 0 and math.isfinite(alpha)):
        raise click.ClickException("--alpha must be a finite number > 0 (the prior keeps unbeaten "
                                   "GIFs finite)")
    if method == "mm" and ties == "davidson":
        raise click.ClickException("--method mm supports --ties drop or half, not davidson")


def _read_while_importing_the_fit(ctx: click.Context, file: Path, ties: str | None,
                                  alpha: float | None, method: str):  # type: ignore[no-untyped-def]
    """(the fit module, the parsed file, ties, alpha). Arrow parses in a thread while this
    one loads the settings (pydantic: ~0.17 s of one core) and imports the fit's modules
    (scipy.sparse: ~0.2 s), which would otherwise leave the second core idle; pyarrow is
    imported first so the imports do not take turns on the GIL before the parse can start."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.csv  # noqa: F401

    with ThreadPoolExecutor(1, thread_name_prefix="bt-read") as pool:
        reading = pool.submit(_read_comparisons, file)
        settings = command_settings(ctx)
        ties = ties or settings.training.bt_ties
        alpha = settings.training.bt_alpha if alpha is None else alpha
        _check_options(ties, alpha, method)
        from training import bradley_terry as bt

        return bt, reading.result(), ties, alpha


def _read_comparisons(file: Path):
    """The parsed file; a clear error when it cannot be read or holds nothing usable."""
    from training import bt_csv

    try:
        data = bt_csv.read_gifgif_csv(file)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc}") from None
    if data.kept == 0:
        raise click.ClickException(f"{file}: no usable comparisons ({_skips(data.skipped)})")
    return data


def _fit_with_bar(data, ties: str, alpha: float, method: str) -> list:
    """One fit per emotion; the bar shows only on a terminal so piped output stays clean
    (and tqdm is imported only then: every import counts in this command's time)."""
    from training import bradley_terry as bt

    emotion, winners, losers, tie_mask = data.comparisons()
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(NAMES), desc="bt-fit", unit="emotion", file=sys.stderr)
    results = bt.fit_all(data.n_gifs, emotion, winners, losers, tie_mask, ties=ties,
                         alpha=alpha, method=method, max_iter=200 if method == "newton" else 10000,
                         progress=None if bar is None else lambda _e: bar.update())
    if bar is not None:
        bar.close()
    return results


def _score_columns(bt, results: list, n_gifs: int, scale: str) -> list[list[str]]:
    """One column of formatted scores per emotion; empty where the GIF was never compared."""
    columns = []
    for res in results:
        seen = res.n_compared > 0
        col = [""] * n_gifs
        if seen.any():
            theta = res.theta[seen]
            scaled = bt.minmax_scale(theta) if scale == "minmax" else bt.robust_scale(
                theta, res.se[seen])
            # One %-format of the whole column: the same text as f"{s:.6f}" per cell, ~5x
            # faster than formatting 100k cells one by one.
            texts = ("%.6f\n" * len(scaled) % tuple(scaled.tolist())).split("\n")
            for i, text in zip(seen.nonzero()[0].tolist(), texts, strict=False):
                col[i] = text
        columns.append(col)
    return columns


def _summary(file: Path, out: Path, data, results: list, *, ties: str, alpha: float,
             method: str, scale: str, seconds: tuple[float, float, float]) -> dict:
    t_read, t_fit, total = seconds
    return {
        "file": str(file),
        "out": str(out),
        "rows": data.rows,
        "kept": data.kept,
        "skipped": data.skipped,
        "unknown_emotions": dict(list(data.unknown_emotions.items())[:10]),
        "gifs": data.n_gifs,
        "decisive_per_emotion": dict(zip(NAMES, map(int, data.per_emotion(True)), strict=True)),
        "neither": int(data.per_emotion(False).sum()),
        "ties": ties,
        "alpha": alpha,
        "method": method,
        "scale": scale,
        "converged": all(r.converged for r in results),
        "iterations": [r.iterations for r in results],
        "seconds": {"read": round(t_read, 3), "fit": round(t_fit, 3), "total": round(total, 3)},
    }


def _echo_summary(summary: dict, data, file: Path, out: Path,
                  seconds: tuple[float, float, float]) -> None:
    """The human-readable form of `summary`; `seconds` unrounded, so the text matches before."""
    t_read, t_fit, total = seconds
    ties, alpha, method, scale = summary["ties"], summary["alpha"], summary["method"], summary["scale"]
    decisive = data.per_emotion(True)
    click.echo(f"read {data.rows:,} rows from {file} in {t_read:.2f} s: kept {data.kept:,} "
               f"({int(decisive.sum()):,} decisive, {summary['neither']:,} neither); "
               f"skipped {sum(data.skipped.values()):,} ({_skips(data.skipped)})")
    if data.unknown_emotions:
        top = ", ".join(f"{k!r} x{v}" for k, v in list(data.unknown_emotions.items())[:5])
        click.echo(f"unknown emotions: {top}")
    click.echo(f"{data.n_gifs:,} GIFs; decisive comparisons per emotion: "
               + ", ".join(f"{n} {int(c):,}" for n, c in zip(NAMES, decisive, strict=True)))
    state = "converged" if summary["converged"] else "NOT converged on some emotions"
    click.echo(f"fitted 17 emotions (ties={ties}, alpha={alpha:g}, {method}, {state}) in "
               f"{t_fit:.2f} s; wrote {out} ({scale} scale); total {total:.2f} s")

def _reuse_freed_memory() -> None:
    """Let glibc keep freed blocks of this short-lived process for reuse.

    The fit makes many ~1 MB numpy temporaries; by default glibc hands each back to the OS
    and the next one page-faults in fresh, which measured 10x the cost of the arithmetic
    (1 / (1 + x) on 140k floats: 1.5 ms vs 0.09 ms). Raising the mmap and trim thresholds
    keeps them in the heap. Only this command does it: its memory is released at exit.
    Does nothing where mallopt is not glibc's. The C library is reached through the
    interpreter's own symbols (dlopen(NULL)): `ctypes.util.find_library` would import
    subprocess and run `ldconfig -p`, 20-100 ms of this command's start-up.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_trim_threshold, 1 << 30)
        libc.mallopt(m_mmap_threshold, 1 << 28)
    except (OSError, AttributeError):
        pass


def _skips(skipped: dict[str, int]) -> str:
    parts = [f"{k} {v:,}" for k, v in skipped.items() if v]
    return ", ".join(parts) if parts else "none"


def _csv_field(text: str) -> str:
    """``text`` as csv.writer writes a field (QUOTE_MINIMAL)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_atomic(out: Path, gif_ids: list[str], columns: list[list[str]]) -> None:
    """Write to a temporary file next to OUT and rename it: never a half-written file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            # csv.writer's own text (QUOTE_MINIMAL, CRLF), one join per row instead of a
            # writerow call: the scores never need quoting, an id only if it holds , " CR LF.
            fh.write(",".join(["gif_id", *NAMES]) + "\r\n")
            ids = [_csv_field(g) for g in gif_ids]
            fh.write("".join(",".join(row) + "\r\n" for row in zip(ids, *columns, strict=True)))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the scores are not secret
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

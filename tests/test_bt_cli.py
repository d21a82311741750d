"""`moodgif bt-fit` end to end on small GIFGIF-format files (the benchmark's generator)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from bot.cli import cli
from scorer.emotions import NAMES

REPO = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_gifgif_like", REPO / "benchmarks" / "gen_gifgif_like.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run(tmp_path: Path):
    def invoke(*args: str):
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        return CliRunner().invoke(cli, ["bt-fit", *args], env={"MOODGIF_HOME": str(home)})
    return invoke


def read_scores(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("gen") / "small.csv"
    info = load_generator().generate(path, n_gifs=40, rows=12000, seed=3, empty_frac=0.01)
    return path, info


def test_bt_fit_writes_scores_that_follow_the_truth(run, generated, tmp_path) -> None:
    path, info = generated
    out = tmp_path / "scores.csv"
    res = run(str(path), "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["rows"] == info["rows"] == 12000
    assert summary["skipped"]["empty_id"] == info["empty_id"] > 0
    assert sum(summary["decisive_per_emotion"].values()) == info["decisive"]
    assert summary["gifs"] == 40 and summary["converged"]
    header, rows = read_scores(out)
    assert header == ["gif_id", *NAMES]
    assert sorted(r[0] for r in rows) == sorted(info["ids"])
    scores = np.array([[float(x) for x in r[1:]] for r in rows])
    assert np.allclose(scores.min(axis=0), 0) and np.allclose(scores.max(axis=0), 1)
    order = [info["ids"].index(r[0]) for r in rows]
    rho = [spearmanr(scores[:, e], info["theta"][order, e]).statistic for e in range(len(NAMES))]
    assert np.median(rho) > 0.8


def test_bt_fit_options_and_text_summary(run, generated, tmp_path) -> None:
    path, _ = generated
    out = tmp_path / "robust.csv"
    res = run(str(path), "--out", str(out), "--scale", "robust", "--ties", "davidson",
              "--alpha", "0.5")
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "empty_id" in res.output
    assert "ties=davidson" in res.output and "decisive comparisons per emotion" in res.output
    _, rows = read_scores(out)
    scores = np.array([[float(x) for x in r[1:]] for r in rows])
    assert np.all((scores > 0) & (scores < 1))  # the logistic never reaches the ends


def test_never_compared_cells_are_empty_and_bad_rows_counted(run, tmp_path) -> None:
    path = tmp_path / "one-emotion.csv"
    path.write_text(
        "metric,left,right,choice\n"
        "happiness,a,b,left\nhappiness,b,c,left\nhappiness,c,a,right\n"
        "happiness,a,,left\nsympathy,a,b,left\nhappiness,a,b\n"
        "fear,d,d,left\n"
    )
    out = tmp_path / "s.csv"
    res = run(str(path), "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["skipped"] == {"malformed": 1, "unknown_emotion": 1, "empty_id": 1,
                                  "same_gif": 1}
    assert summary["unknown_emotions"] == {"sympathy": 1}
    header, rows = read_scores(out)
    by_id = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows}
    assert set(by_id) == {"a", "b", "c"}  # d only appeared against itself
    assert float(by_id["a"]["happiness"]) == 1.0 and float(by_id["c"]["happiness"]) == 0.0
    assert all(by_id[g][e] == "" for g in by_id for e in NAMES if e != "happiness")


def test_bad_files_fail_cleanly_and_write_nothing(run, tmp_path) -> None:
    out = tmp_path / "never.csv"
    res = run(str(tmp_path / "missing.csv"), "--out", str(out))
    assert res.exit_code == 2 and not out.exists()
    junk = tmp_path / "junk.csv"
    junk.write_text("metric,left,right,choice\nnot,a,valid\nrow\n")
    res = run(str(junk), "--out", str(out))
    assert res.exit_code == 1 and "no usable comparisons" in res.output
    assert "malformed 2" in res.output and not out.exists()
    for alpha in ("0", "inf", "nan"):  # inf once ran a minute on three rows
        res = run(str(junk), "--out", str(out), "--alpha", alpha)
        assert res.exit_code == 1 and "--alpha must be a finite number" in res.output, alpha
    gz = tmp_path / "broken.csv.gz"
    gz.write_bytes(b"not gzip at all")
    res = run(str(gz), "--out", str(out))
    assert res.exit_code == 1 and "cannot read" in res.output and not out.exists()
    assert list(tmp_path.glob(".never.csv.*")) == []

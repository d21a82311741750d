"""The fine-tuned sentence model (bot.sentence_tuning): its build, its cache key, a damaged
cache, the background build, and that the parser reads sentences with it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bot import intent as intent_mod
from bot.intent import IntentParser, bank_texts
from bot.sentence_tuning import (
    BUILD_TIMEOUT_S,
    BackgroundBuild,
    Recipe,
    TunedFiles,
    bank_key,
    fine_tune,
    load_no_feeling,
    load_reader,
    tuned_files,
)
from scorer.emotions import INDEX


def _small_bank() -> tuple[list[str], list[int]]:
    """Twelve bank lines of each of four clearly different emotions."""
    texts, owner = bank_texts()
    picked: list[tuple[str, int]] = []
    for name in ("amusement", "anger", "fear", "relief"):
        picked += [(t, k) for t, k in zip(texts, owner, strict=True) if k == INDEX[name]][:12]
    return [t for t, _ in picked], [k for _, k in picked]


SMALL_NO_FEELING = ["can we move the sync to 3pm", "the doc is in the shared drive",
                    "which branch is the hotfix on", "lorem ipsum dolor sit amet",
                    "train leaves at 8:15 from platform 2", "test test 123, ignore this",
                    "ticket 4821 is assigned to the platform team", "noted, will do"]


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[TunedFiles, list[str], list[int]]:
    texts, owner = _small_bank()
    root = tmp_path_factory.mktemp("tuned")
    files = tuned_files(texts, owner, Recipe(epochs=1, batch=16), root=root,
                        no_feeling=SMALL_NO_FEELING)
    steps: list[int] = []
    fine_tune(texts, owner, files, Recipe(epochs=1, batch=16, threads=1),
              progress=lambda step, total, loss: steps.append(step), no_feeling=SMALL_NO_FEELING)
    assert steps == [1, 2, 3, 4]  # 48 + 8 lines, batches of 16, one epoch
    return files, texts, owner


def test_a_build_writes_a_whole_model_that_reads_its_own_lines(small_build) -> None:  # type: ignore[no-untyped-def]
    files, texts, owner = small_build
    assert files.complete()
    assert not list(files.folder.parent.glob("*.tmp"))  # built aside, then renamed
    assert not (files.folder / "hf").exists()  # only the ONNX file and the head are kept
    assert not (files.folder / "fp32.onnx").exists()
    # int8 weights: about 23 MB, where the float export is 90 MB.
    assert files.onnx.stat().st_size < 40_000_000
    reader = load_reader(files)
    assert reader is not None
    assert reader.no_feeling
    logits = reader.logits(texts)
    assert logits.shape == (len(texts), 18)
    # Read back through ONNX Runtime, the tuned encoder and its head still sort the lines
    # they were trained on: a broken export or a head that lost its rows would not.
    assert float(np.mean(logits[:, :17].argmax(1) == np.asarray(owner))) >= 0.9
    # ... and it is not the plain model: its vectors moved.
    plain = intent_mod._EMBEDDER
    assert plain.load()
    base = plain._model.encode(texts[:4], normalize_embeddings=True)
    tuned = reader.encoder.encode(texts[:4], normalize_embeddings=True)
    assert not np.allclose(base, tuned, atol=1e-3)


def test_the_cache_key_follows_the_bank_and_the_recipe_but_not_the_threads() -> None:
    texts, owner = _small_bank()
    key = bank_key(texts, owner, Recipe())
    assert bank_key(texts, owner, Recipe(threads=1)) == key
    assert bank_key(texts, owner, Recipe(epochs=4)) != key
    assert bank_key(texts, owner, Recipe(no_feeling_weight=1.0)) != key
    assert bank_key(texts, owner, Recipe(int8=False)) != key
    assert bank_key(texts, owner, Recipe(), ["plain line"]) != key
    assert bank_key([*texts[:-1], texts[-1] + "!"], owner, Recipe()) != key
    assert bank_key(texts, [*owner[:-1], INDEX["shame"]], Recipe()) != key


def test_the_no_feeling_weight_pulls_flat_lines_toward_doubt(tmp_path: Path, small_build) -> None:  # type: ignore[no-untyped-def]
    """The class weight is really in the loss: the same build with the flat class weighted
    more gives flat lines a larger no-feeling share."""
    files, texts, owner = small_build
    heavy = TunedFiles(tmp_path / "tuned-heavy")
    fine_tune(texts, owner, heavy, Recipe(epochs=1, batch=16, threads=1, no_feeling_weight=4.0),
              no_feeling=SMALL_NO_FEELING)

    def flat_log_odds(f: TunedFiles) -> float:
        """The no-feeling class's log-odds on the flat lines (shares saturate near one)."""
        reader = load_reader(f)
        assert reader is not None
        z = reader.logits(SMALL_NO_FEELING).astype(np.float64)
        rest = np.log(np.exp(z[:, :17]).sum(axis=1))
        return float(np.mean(z[:, 17] - rest))

    assert flat_log_odds(heavy) > flat_log_odds(files) + 0.1


def test_a_candidate_build_needs_a_folder_of_its_own() -> None:
    from bot.sentence_tuning import main

    for args in (["--seed", "1"], ["--epochs", "2"], ["--lr", "1e-5"]):
        with pytest.raises(SystemExit) as exc:
            main(args)  # would otherwise pass a candidate off as the bank's model
        assert exc.value.code == 2


def test_a_damaged_model_is_dropped_so_it_is_built_again(tmp_path: Path, small_build) -> None:  # type: ignore[no-untyped-def]
    import shutil

    files, _, _ = small_build
    copy = TunedFiles(tmp_path / "tuned-copy")
    shutil.copytree(files.folder, copy.folder)
    copy.head.write_bytes(b"not an npz file")
    assert load_reader(copy) is None
    assert not copy.folder.exists()
    assert load_reader(TunedFiles(tmp_path / "never-built")) is None


def test_a_bad_bank_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        fine_tune([], [], TunedFiles(tmp_path / "t"), Recipe(epochs=1))
    with pytest.raises(ValueError):
        fine_tune(["one line"], [0, 1], TunedFiles(tmp_path / "t"), Recipe(epochs=1))


def test_the_background_build_hands_over_the_model() -> None:
    """The chat process's path when the model is missing: a child process builds it (here it
    finds the one scripts/setup built, or builds it: about 7 min) and the reader arrives."""
    texts, owner = bank_texts()
    got: list[object] = []
    arrived = threading.Event()

    def done(reader: object) -> None:
        got.append(reader)
        arrived.set()

    files = tuned_files(texts, owner, no_feeling=load_no_feeling())
    assert BackgroundBuild(files, done).start()
    assert arrived.wait(BUILD_TIMEOUT_S)
    assert files.complete() and got and got[0].logits(["the build is green"]).shape == (1, 18)


def test_sentences_are_read_by_the_tuned_model_and_short_requests_by_the_vote() -> None:
    parser = IntentParser()
    emb = intent_mod._EMBEDDER
    assert emb.load() and emb.wait_tuned(BUILD_TIMEOUT_S)
    text = "the rollback went fine in the end"
    logits, tuned = emb.sentence_logits(text)
    assert tuned
    assert logits.shape == (18,)  # 17 emotions and "no feeling"
    words = np.asarray(emb.words.log_likelihood(text))
    words = np.append(words, words.mean())  # no-feeling gets the emotions' mean word evidence
    z = intent_mod.TUNED_WEIGHT * logits + intent_mod.TUNED_WORD_WEIGHT * words
    expected = (np.exp(z - z.max()) / np.exp(z - z.max()).sum())[:17]  # the rest is doubt
    got = parser._sentence_probs(text)
    assert len(got) == 17 and np.allclose(got, expected, atol=1e-6)
    assert parser.parse("we survived the outage").emotion == "relief"
    assert parser.parse("someone ate my lunch from the fridge again").emotion == "anger"
    knn, _ = emb.evidence("rollback went fine")  # three words: the kNN vote, not the tuned model
    z = knn / intent_mod.EMBED_TEMPERATURE + intent_mod.WORD_WEIGHT * np.asarray(
        emb.words.log_likelihood("rollback went fine"))
    assert np.allclose(parser._sentence_probs("rollback went fine"),
                       np.exp(z - z.max()) / np.exp(z - z.max()).sum(), atol=1e-5)


def test_the_regression_setting_keeps_sentences_on_the_bank_regression(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MOODGIF_INTENT_SENTENCE_MODEL", "regression")
    other = intent_mod._Embedder()
    assert other.load()
    assert other.tuned is None
    logits, tuned = other.sentence_logits("the rollback went fine in the end")
    assert not tuned
    assert np.allclose(logits, other.evidence("the rollback went fine in the end")[1])


def test_a_bad_sentence_model_setting_is_refused(tmp_path: Path) -> None:
    from scorer.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="MOODGIF_INTENT_SENTENCE_MODEL"):
        load_settings(env={"MOODGIF_HOME": str(tmp_path), "MOODGIF_INTENT_SENTENCE_MODEL": "bert"})


def test_tuned_readers_swap_in_without_stale_answers() -> None:
    """A reader that lands mid-run replaces the regression's answers, never mixes them."""
    emb = intent_mod._Embedder()
    assert emb.load()
    kept = emb.tuned
    emb.use_tuned(None)
    before, tuned = emb.sentence_logits("the deploy went out without a hitch")
    assert not tuned
    if kept is None:
        assert emb.wait_tuned(BUILD_TIMEOUT_S)
        kept = emb.tuned
    emb.use_tuned(kept)
    after, tuned = emb.sentence_logits("the deploy went out without a hitch")
    assert tuned and not np.allclose(before, after[:17])



def test_settle_waits_for_a_build_and_returns_at_once_when_none_is_coming(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`moodgif score` settles the parser so a pool's prior is read by one model."""
    said: list[str] = []
    parser = IntentParser()
    assert intent_mod._EMBEDDER.load()
    parser.settle(notify=said.append)  # built already (scripts/setup) or being built: waits
    assert intent_mod._EMBEDDER.tuned is not None and not intent_mod._EMBEDDER.building

    monkeypatch.setenv("MOODGIF_INTENT_SENTENCE_MODEL", "regression")
    other = intent_mod._Embedder()
    monkeypatch.setattr(intent_mod, "_EMBEDDER", other)
    IntentParser().settle(notify=said.append)  # nothing to wait for
    assert other.loaded and other.tuned is None and not other.building
    assert other.wait_tuned(BUILD_TIMEOUT_S) is False  # returns at once: no build is coming
    assert said == [] or said[0].startswith("building the tuned sentence model")


FLAT = ["is the staging env up to date", "can you send me the link",
        "which dashboard has the error rate for eu-west"]
FELT = {"we survived the outage": "relief", "someone ate my lunch again": "anger",
        "my pull request got rejected again": "sadness", "free donuts in the kitchen": "pleasure"}


def test_flat_chat_reads_as_doubt_and_feelings_stay() -> None:
    """The no-feeling class: logistics are asked about (no GIF, no watch offer), while a line
    with a feeling keeps it. None of these lines is a training line. On a whole flat set
    (218 lines by someone who saw none of the training lines) a feeling is committed for
    0.229 and watch mode would offer a GIF for 0.115; without the class, 0.743 and 0.317."""
    import csv

    from bot.flows.offers import WATCH_MIN_CONFIDENCE

    assert not set(FLAT) & set(load_no_feeling())
    parser = IntentParser()
    assert intent_mod._EMBEDDER.load() and intent_mod._EMBEDDER.wait_tuned(BUILD_TIMEOUT_S)
    for text in FLAT:
        res = parser.parse(text)
        assert res.emotion is None and res.confidence < WATCH_MIN_CONFIDENCE, (text, res)
        assert sum(parser.distribution(text)[0]) < 0.5, text  # most of it is doubt
    path = Path(__file__).parent / "data" / "no_feeling_eval2.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        results = [parser.parse(r["text"]) for r in csv.DictReader(fh)]
    committed = sum(r.emotion is not None for r in results) / len(results)
    offered = sum(r.emotion is not None and r.confidence >= WATCH_MIN_CONFIDENCE
                  for r in results) / len(results)
    assert committed < 0.35 and offered < 0.2, (committed, offered)
    for text, feeling in FELT.items():
        assert parser.parse(text).emotion == feeling, text


def test_a_background_build_stops_when_its_bot_has_gone(tmp_path: Path) -> None:
    """`moodgif intent` once left a 15-minute fine-tune running after it exited (parent PID 1),
    and each call added another: four at once on two cores."""
    import os
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parent.parent
    child = ("import time; from bot.sentence_tuning import _exit_with; "
             "import sys; _exit_with(int(sys.argv[1])); time.sleep(120)")
    parent = ("import subprocess, sys, os; "
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); "
              "print(p.pid, flush=True)")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True,
                         env=env, check=True, timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() \
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
        time.sleep(0.2)
    gone = not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    if not gone:
        os.kill(pid, 9)
    assert gone, "the build outlived the process that started it"


def test_a_second_build_of_one_model_waits_for_the_first_and_uses_what_it_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.sentence_tuning import build_lock, main

    files = TunedFiles(tmp_path / "model")
    holding, release, result = threading.Event(), threading.Event(), []

    def first_build() -> None:
        with build_lock(files):
            holding.set()
            release.wait(60)
            files.folder.mkdir(parents=True)
            for path in (files.onnx, files.head, files.meta):
                path.write_bytes(b"built by the first")

    first = threading.Thread(target=first_build)
    first.start()
    assert holding.wait(60)
    second = threading.Thread(target=lambda: result.append(main(["--out", str(files.folder)])))
    second.start()
    second.join(1.0)
    assert second.is_alive() and not result  # waiting, not building beside the first
    release.set()
    first.join(60)
    second.join(60)
    assert result == [0]
    assert "built meanwhile" in capsys.readouterr().out
    assert files.onnx.read_bytes() == b"built by the first"


def test_a_build_clears_what_a_stopped_build_left(tmp_path: Path) -> None:
    """A build stopped with its bot (`--exit-with`) leaves its NAME.PID.tmp: the next one to
    hold the lock removes it, as no other build can be running then."""
    from bot.sentence_tuning import build_lock

    files = TunedFiles(tmp_path / "model")
    left = tmp_path / "model.4242.tmp"
    (left / "hf").mkdir(parents=True)
    other = tmp_path / "other-model.4242.tmp"
    other.mkdir()
    with build_lock(files, quiet=True):
        assert not left.exists() and other.exists()  # only this model's leftovers


def test_a_one_off_command_starts_no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """`moodgif intent` / `suggest` read with what is built and say what is missing."""
    import bot.sentence_tuning as tuning

    started: list[object] = []
    monkeypatch.setattr(tuning, "tuned_files", lambda *a, **k: TunedFiles(tmp_path / "missing"))
    monkeypatch.setattr(tuning.BackgroundBuild, "start", lambda self: started.append(self) or True)
    monkeypatch.setattr(intent_mod, "_EMBEDDER", intent_mod._Embedder())
    with intent_mod.without_background_build():
        assert intent_mod._EMBEDDER.load()
    assert started == [] and intent_mod._EMBEDDER.tuned is None
    assert "python -m bot.sentence_tuning" in caplog.text
    assert intent_mod._EMBEDDER.may_build  # the flag does not outlive the command
    monkeypatch.setattr(intent_mod, "_EMBEDDER", intent_mod._Embedder())
    assert intent_mod._EMBEDDER.load() and len(started) == 1  # a bot builds it in the background

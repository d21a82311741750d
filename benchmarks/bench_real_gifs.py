"""The zero-shot prior on real GIFs: per-emotion AUC of each channel and combined, before any vote.

    .venv/bin/python benchmarks/bench_real_gifs.py                # both sets + timing, ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_real_gifs.py --no-timing    # AUCs only
    .venv/bin/python benchmarks/bench_real_gifs.py --timing-only  # the scoring-time ratio only
    .venv/bin/python benchmarks/bench_real_gifs.py --votes        # votes on half, AUC on the rest

For each set (`../shared/data/real-gifs`: 49 GIFs, one weak label each; `real-gifs-more`: 62,
a set of weak labels each) on a fresh temporary home, through the real ingest and
`score_pool` with the bot's own intent model as the word channel:

* names hidden: the files are renamed to their SHA-256, so the words channel gets nothing
  and the prior is the face channel alone;
* names shown: the files carry their original names (without the collection's folder,
  which *is* the label), so ingest gives them titles ("Dwight-Schrute-look-of-disapproval"
  -> "dwight schrute look of disapproval") and the words channel reads them.

AUC of each emotion with at least 4 positive GIFs (a GIF is positive when the emotion is in
its weak label set), ranking all GIFs of the set by that emotion's score; the mean over
those emotions is the headline. The files never leave the temporary folder.

Timing (first set; `--timing-only` runs just this): `score_pool` on three fresh homes:
today's scoring (features only), then with the prior (faces + words; the intent model loaded
before the clock starts), then today's again; the ratio is prior / mean of the two, in wall
and CPU time (this process plus its decode workers). `--timing-workers` sets the decode
workers (default 2, as `moodgif score`; 0 = everything in this process, the worst case for
the face channel, which then cannot run beside the encoder).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from shared_data import SHARED_DATA as DATA  # noqa: E402

SETS = {"real-gifs": "weak_label", "real-gifs-more": "weak_labels"}
MIN_POSITIVES = 4


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def read_set(name: str) -> list[dict]:
    folder = DATA / name
    rows = []
    with (folder / "manifest.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            path = folder / r["file"] if (folder / r["file"]).is_file() else folder / "gifs" / r["file"]
            original = Path(r["file"]).name.split("__", 1)[-1]
            labels = {x.strip() for x in r[SETS[name]].split(";") if x.strip()}
            rows.append({"path": path, "sha": r["sha256"], "original": original, "labels": labels})
    return rows


def _settings(home: Path, **env: str):  # type: ignore[no-untyped-def]
    from scorer.settings import load_settings

    return load_settings(env={"MOODGIF_SCORE_WORKERS": "1", **env}, home=str(home))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the decode workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _score(settings, pool: str, *, prior: bool):  # type: ignore[no-untyped-def]
    """(engine, report, wall s, cpu s) of one score_pool run; the intent model is loaded
    before the clock starts (a once-per-process cost, not a per-GIF one)."""
    from bot.intent import text_model
    from scorer.migrate import init_db
    from scorer.pipeline import score_pool

    engine = init_db(settings.db_url)
    text = None
    if prior:
        text = text_model(settings, notify=print)  # what `moodgif score` uses, loaded (and built)
    t0, c0 = time.perf_counter(), _cpu()
    report = score_pool(settings, engine, pool=pool, device="cpu", prior=prior, text_model=text)
    return engine, report, time.perf_counter() - t0, _cpu() - c0


def _folder(tmp: Path, rows: list[dict], kind: str) -> Path:
    out = tmp / kind
    out.mkdir()
    for r in rows:
        name = f"{r['sha']}.gif" if kind == "hidden" else r["original"]
        shutil.copyfile(r["path"], out / name)
    return out


def channel_scores(settings, engine, rows: list[dict]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """(N, 17) per channel alone and combined, recomputed from what the home stored."""
    from sqlalchemy import select

    from bot.intent import text_model
    from scorer.features import load_features
    from scorer.prior import (
        FACE_FEATURES_ID,
        PRIOR_HEAD_KIND,
        combine,
        face_channel,
        gif_text,
        word_channel,
    )
    from scorer.store import Gif, ModelVersion, Prediction, session_scope, unpack_scores

    model = text_model(settings, notify=print)
    out = {k: np.zeros((len(rows), 17)) for k in ("faces", "words", "combined", "stored")}
    with session_scope(engine) as s:
        gifs = {g.sha256: g for g in s.scalars(select(Gif))}
        mv = s.scalar(select(ModelVersion.id).where(ModelVersion.head_kind == PRIOR_HEAD_KIND)
                      .order_by(ModelVersion.id.desc()))
        stored = {sha: unpack_scores(b) for sha, b in s.execute(
            select(Prediction.gif_sha, Prediction.scores).where(Prediction.model_version_id == mv))}
    for i, r in enumerate(rows):
        g = gifs[r["sha"]]
        f = face_channel(load_features(settings, r["sha"], FACE_FEATURES_ID, settings.scoring.sampling))
        w = word_channel(gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or ""), model)
        out["faces"][i] = combine(w.__class__(w.evidence, 0.0), f)[0]
        out["words"][i] = combine(w, f.__class__(f.evidence, 0.0))[0]
        out["combined"][i] = combine(w, f)[0]
        out["stored"][i] = stored.get(r["sha"], np.full(17, np.nan))
    return out


def report_aucs(title: str, rows: list[dict], scores: dict[str, np.ndarray]) -> dict[str, float]:
    from scorer.emotions import NAMES

    emotions = [e for e in NAMES if sum(e in r["labels"] for r in rows) >= MIN_POSITIVES]
    print(f"\n{title}  ({len(rows)} GIFs; emotions with >= {MIN_POSITIVES} positives)")
    print(f"{'emotion':<14}{'n+':>4}" + "".join(f"{k:>10}" for k in ("faces", "words", "combined")))
    means = {}
    per = {k: [] for k in ("faces", "words", "combined")}
    for e in emotions:
        j = NAMES.index(e)
        pos = np.array([e in r["labels"] for r in rows])
        vals = {k: auc(scores[k][:, j], pos) for k in per}
        for k, v in vals.items():
            per[k].append(v)
        print(f"{e:<14}{int(pos.sum()):>4}" + "".join(f"{vals[k]:>10.3f}" for k in per))
    for k in per:
        means[k] = float(np.nanmean(per[k])) if per[k] else float("nan")
    print(f"{'mean':<18}" + "".join(f"{means[k]:>10.3f}" for k in per))
    return means


def time_scoring(work: Path, folder: Path, n: int, name: str, workers: int = 2) -> dict:
    """Today's scoring (features only) before and after the scoring with the prior, each on
    a fresh home; ratio = prior / mean of the two. `workers` decode processes (2, the
    default, is what `moodgif score` uses: the face work runs there, one torch thread each;
    their CPU is counted once they exit); 0 = all in this process."""
    from scorer.migrate import init_db
    from scorer.pool import ingest
    from scorer.store import dispose_engines

    runs = {}
    for tag, prior in (("today-1", False), ("prior", True), ("today-2", False)):
        settings = _settings(work / f"home-{tag}", MOODGIF_SCORE_WORKERS=str(workers))
        ingest(settings, init_db(settings.db_url), "p", folder)
        _, _, wall, cpu = _score(settings, "p", prior=prior)
        runs[tag] = (wall, cpu)
        dispose_engines()
    today_wall = (runs["today-1"][0] + runs["today-2"][0]) / 2
    today_cpu = (runs["today-1"][1] + runs["today-2"][1]) / 2
    wall, cpu = runs["prior"]
    line = (f"\n{name}: scoring {n} GIFs on the CPU, {workers} decode workers: today (features "
            f"only) {runs['today-1'][0]:.1f} / {runs['today-2'][0]:.1f} s wall; with the prior "
            f"(faces + words) {wall:.1f} s wall: ratio {wall / today_wall:.2f} wall")
    if workers == 0:  # worker processes' CPU is not reliably counted (getrusage children)
        line += (f"; CPU {runs['today-1'][1]:.1f} / {runs['today-2'][1]:.1f} s vs {cpu:.1f} s: ratio "
                 f"{cpu / today_cpu:.2f} ({(cpu - today_cpu) / n * 1000:.0f} ms CPU more per GIF)")
    print(line)
    return {"ratio_wall": wall / today_wall, "ratio_cpu": cpu / today_cpu if workers == 0 else None}


def run_set(name: str, tmp: Path, timing: bool, dump: Path | None = None) -> dict:
    rows = read_set(name)
    work = tmp / name
    work.mkdir()
    hidden, shown = _folder(work, rows, "hidden"), _folder(work, rows, "shown")
    from scorer.migrate import init_db
    from scorer.pool import ingest
    from scorer.store import dispose_engines

    result: dict = {}
    if timing:
        result["timing"] = time_scoring(work, hidden, len(rows), name)
    settings = _settings(work / "home")
    ingest(settings, init_db(settings.db_url), "hidden", hidden)
    engine, rep, _, _ = _score(settings, "hidden", prior=True)
    print(f"{name}: faces found in {rep.prior_faces}/{len(rows)} GIFs")
    scores = channel_scores(settings, engine, rows)
    assert np.allclose(scores["stored"], scores["combined"], atol=1e-5), "stored prior != recomputed"
    result["hidden"] = report_aucs(f"{name}, names hidden", rows, scores)
    # Names shown: the same files under their own names; ingest fills the titles, and the
    # next `score` (features cached) rewrites the prior with the words.
    ingest(settings, engine, "shown", shown)
    _, rep2, _, _ = _score(settings, "shown", prior=True)
    print(f"{name}: readable words in {rep2.prior_words}/{len(rows)} titles")
    scores = channel_scores(settings, engine, rows)
    result["shown"] = report_aucs(f"{name}, names shown", rows, scores)
    if dump is not None:
        dump_channels(settings, engine, rows, dump / f"{name}.npz")
    dispose_engines()
    return result


def dump_channels(settings, engine, rows: list[dict], path: Path) -> None:  # type: ignore[no-untyped-def]
    """Per GIF: the face channel's cached rows summarised (7 classes + confidence), the
    words the word channel read, and the weak labels: enough to study the channels
    without scoring again (`--dump DIR`)."""
    from sqlalchemy import select

    from scorer.features import load_features
    from scorer.prior import FACE_FEATURES_ID, face_classes, gif_text
    from scorer.store import Gif, session_scope

    with session_scope(engine) as s:
        gifs = {g.sha256: gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or "")
                for g in s.scalars(select(Gif))}
    faces, conf, texts, frames = [], [], [], []
    for r in rows:
        got = load_features(settings, r["sha"], FACE_FEATURES_ID, settings.scoring.sampling)
        c, k = face_classes(got)
        faces.append(c)
        conf.append(k)
        frames.append(np.zeros((0, 8)) if got is None else got)
        texts.append(gifs[r["sha"]])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, face_classes=np.array(faces), face_conf=np.array(conf), text=np.array(texts),
             labels=np.array([";".join(sorted(r["labels"])) for r in rows]),
             sha=np.array([r["sha"] for r in rows]),
             face_rows=np.array(frames, dtype=object), allow_pickle=True)
    print(f"channels of {len(rows)} GIFs written to {path}")


# --- votes on half a pool, measured on the other half (issue 11, item 2) ----------------

VOTE_SPLITS = 5  # random halves per set and condition
VOTES_PER_SPLIT = 400


def _simulated_votes(rows: list[dict], voted: np.ndarray, emotions: list[str],
                     rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """Poll answers on the voted half: a GIF labelled with the emotion beats one that is not."""
    out = []
    for _ in range(VOTES_PER_SPLIT):
        e = emotions[int(rng.integers(len(emotions)))]
        pos = [i for i in np.flatnonzero(voted) if e in rows[i]["labels"]]
        neg = [i for i in np.flatnonzero(voted) if e not in rows[i]["labels"]]
        if not pos or not neg:
            continue
        a, b = rows[int(rng.choice(pos))]["sha"], rows[int(rng.choice(neg))]["sha"]
        out.append((e, a, b, "left") if rng.random() < 0.5 else (e, b, a, "right"))
    return out


def _reset_votes(engine, prior_id: int) -> None:  # type: ignore[no-untyped-def]
    """Back to a fresh home's state: no votes, no active fit, the zero-shot prior active."""
    from sqlalchemy import delete, update

    from scorer import versions
    from scorer.store import BTFit, Comparison, session_scope

    with session_scope(engine) as s:
        s.execute(delete(Comparison))
        s.execute(update(BTFit).values(active=False))
        versions.activate(s, prior_id)


def _head_scores(settings, engine, mv_id: int, shas: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The candidate head's own scores (whatever the activation decided)."""
    from scorer.channels import head_channels, head_features
    from scorer.heads import load_head, predict
    from scorer.store import ModelVersion, session_scope
    from scorer.versions import head_path

    with session_scope(engine) as s:
        mv = s.get(ModelVersion, mv_id)
        module, meta = load_head(head_path(settings, mv))
        enc, scheme = mv.encoder_id, mv.sampling
    return predict(module, [head_features(settings, sha, enc, scheme, head_channels(meta)) for sha in shas])


def vote_spread(settings, engine, rows: list[dict], title: str,  # type: ignore[no-untyped-def]
                head: str | None = None) -> dict[str, float]:
    """Mean AUC on the unvoted half: the zero-shot prior, a head retrained on the voted half's
    votes with the prior's channels, and the same without them (frame features only)."""
    from unittest import mock

    from scorer import channels
    from scorer.emotions import NAMES
    from scorer.versions import prediction_matrix, zero_shot_version_id
    from training.comparisons import import_pairs
    from training.retrain import run_retrain

    emotions = [e for e in NAMES if sum(e in r["labels"] for r in rows) >= MIN_POSITIVES]
    shas = [r["sha"] for r in rows]
    prior_id = zero_shot_version_id(engine)
    prior = prediction_matrix(engine, prior_id, shas)
    got: dict[str, list[float]] = {"prior": [], "head+channels": [], "head (frames only)": []}
    taken = []
    for split in range(VOTE_SPLITS):
        rng = np.random.default_rng(split)
        voted = np.zeros(len(rows), bool)
        voted[rng.permutation(len(rows))[: len(rows) // 2]] = True
        held = ~voted
        for name, use in (("head+channels", True), ("head (frames only)", False)):
            _reset_votes(engine, prior_id)
            import_pairs(engine, _simulated_votes(rows, voted, emotions, np.random.default_rng(split)),
                         source="poll")
            with mock.patch.object(channels, "any_channels", return_value=False) if not use else _null():
                out = run_retrain(settings, engine, epochs=100, head_kind=head if use else None)
            pred = _head_scores(settings, engine, out.model_version_id, shas)
            got[name].append(_mean_auc(pred[held], [rows[i] for i in np.flatnonzero(held)], emotions))
            if use:
                taken.append(out.status)
        got["prior"].append(_mean_auc(prior[held], [rows[i] for i in np.flatnonzero(held)], emotions))
    means = {k: float(np.mean(v)) for k, v in got.items()}
    print(f"\n{title}: votes on half the GIFs ({VOTES_PER_SPLIT} per split), mean AUC on the other "
          f"half over {VOTE_SPLITS} splits: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items())
          + f"; retrain outcomes (with channels): {', '.join(taken)}")
    return means


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _mean_auc(scores: np.ndarray, rows: list[dict], emotions: list[str]) -> float:
    from scorer.emotions import NAMES

    vals = [auc(scores[:, NAMES.index(e)], np.array([e in r["labels"] for r in rows])) for e in emotions]
    return float(np.nanmean(vals))


def run_votes(name: str, tmp: Path) -> dict:
    """Both conditions of one set: names hidden (faces only), then shown (faces + words)."""
    from scorer.migrate import init_db
    from scorer.pool import ingest
    from scorer.store import dispose_engines

    rows = read_set(name)
    work = tmp / name
    work.mkdir()
    hidden, shown = _folder(work, rows, "hidden"), _folder(work, rows, "shown")
    settings = _settings(work / "home")
    ingest(settings, init_db(settings.db_url), "hidden", hidden)
    engine, _, _, _ = _score(settings, "hidden", prior=True)
    result = {"hidden": vote_spread(settings, engine, rows, f"{name}, names hidden")}
    ingest(settings, engine, "shown", shown)
    _score(settings, "shown", prior=True)
    result["shown"] = vote_spread(settings, engine, rows, f"{name}, names shown")
    dispose_engines()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of " + ", ".join(SETS))
    ap.add_argument("--no-timing", action="store_true", help="skip the scoring-time comparison")
    ap.add_argument("--timing-only", action="store_true", help="only the scoring-time comparison")
    ap.add_argument("--timing-workers", type=int, default=2,
                    help="decode workers in the timing runs (0 = all in one process)")
    ap.add_argument("--votes", action="store_true",
                    help="simulated votes on half of each set: AUC on the other half, prior vs "
                         "retrained heads with and without the prior's channels")
    ap.add_argument("--dump", type=Path, default=None,
                    help="also write each set's channels (faces, words, labels) to DIR/<set>.npz")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="moodgif-real-") as tmp:
        if args.votes:
            for name in (s for s in args.sets.split(",") if s):
                run_votes(name, Path(tmp))
            return
        if args.timing_only:
            rows = read_set("real-gifs")
            (Path(tmp) / "t").mkdir()
            time_scoring(Path(tmp) / "t", _folder(Path(tmp) / "t", rows, "hidden"), len(rows), "real-gifs",
                         args.timing_workers)
            return
        for i, name in enumerate(s for s in args.sets.split(",") if s):
            if not (DATA / name / "manifest.csv").is_file():
                print(f"{name}: not present under {DATA}, skipped")
                continue
            results[name] = run_set(name, Path(tmp), timing=not args.no_timing and i == 0,
                                    dump=args.dump)
    print("\nsummary (mean AUC over emotions with >= 4 GIFs; targets: hidden >= 0.65, shown >= 0.80)")
    for name, r in results.items():
        print(f"  {name:<16} hidden {r['hidden']['combined']:.3f}   shown {r['shown']['combined']:.3f}")
    os.sys.stdout.flush()


if __name__ == "__main__":
    main()

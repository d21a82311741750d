"""`moodgif pretrain gifgif` end to end on a small synthetic dump in the real formats
(.csv.gz and .tar of <giphy_id>.gif), served by a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _bot_pool import demo_manifest
from _gifgif_dump import Dump, make_dump
from _h1_server import serve
from aiohttp import web
from click.testing import CliRunner
from fake_giphy import FakeGif, FakeGiphy
from sqlalchemy import func, select

from bot.cli import cli
from scorer.migrate import init_db
from scorer.settings import Settings, load_settings
from scorer.store import Comparison, Gif, ModelVersion, Refusal, session_scope
from training.bradley_terry import read_gifgif_csv
from training.gifgif import PretrainError, import_comparisons, ingest_ids, ingest_tar

pytestmark = pytest.mark.slow  # more than ~5 s: outside the `-m "not slow"` loop


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Dump:
    return make_dump(tmp_path_factory.mktemp("dump"), demo_manifest(40, seed=11), rounds=2)


@pytest.fixture
def files(dump: Dump) -> Iterator[tuple[str, list[str]]]:
    ranges: list[str] = []

    @web.middleware
    async def log_ranges(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if "Range" in request.headers:
            ranges.append(request.headers["Range"])
        return await handler(request)

    app = web.Application(middlewares=[log_ranges])
    app.router.add_static("/lum-public/", dump.csv_gz.parent)
    with serve(app) as port:
        yield f"http://127.0.0.1:{port}/lum-public", ranges


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pretrain_end_to_end_resumes_and_never_doubles(tmp_path: Path, dump: Dump, files) -> None:  # type: ignore[no-untyped-def]
    base, ranges = files
    home = tmp_path / "home"
    (home / "gifgif").mkdir(parents=True)
    # an earlier download stopped half-way: it must resume with a Range request
    half = dump.tar.read_bytes()[: dump.tar.stat().st_size // 2]
    (home / "gifgif" / f"{dump.tar.name}.part").write_bytes(half)
    env = {"MOODGIF_HOME": str(home)}
    args = ["pretrain", "gifgif", "--csv", f"{base}/{dump.csv_gz.name}", "--images",
            f"{base}/{dump.tar.name}", "--csv-sha256", _sha(dump.csv_gz), "--images-sha256",
            _sha(dump.tar), "--epochs", "20", "--device", "cpu", "--json"]
    res = CliRunner().invoke(cli, args, env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert ranges == [f"bytes={len(half)}-"]
    assert (home / "gifgif" / dump.tar.name).read_bytes() == dump.tar.read_bytes()
    assert not (home / "gifgif" / f"{dump.tar.name}.part").exists()
    assert out["gifs"] == {"added": 40, "already": 0, "refused": 0, "first_refusals": [], "in_pool": 40}
    data = read_gifgif_csv(dump.csv_gz)
    assert out["comparisons"]["added"] == data.kept == dump.rows - 1
    assert out["comparisons"]["skipped"] == {"empty_id": 1}
    assert Path(out["table_report"]).is_file()
    m = out["metrics"]
    assert m["held_out_pairs"] > 0 and 0.0 <= m["pair_accuracy"] <= 1.0
    # The head read the zero-shot prior's channels (its pool was scored with the prior
    # first), so the prior is in place and is one of the bars it must beat (with chance and
    # the active version).
    assert out["channels"] and out["head"] in ("fc-maxpool-2", "prior-residual")
    bars = [0.5] + [m[k] for k in ("pair_accuracy_active", "pair_accuracy_prior")
                    if m.get(k) is not None and m[k] == m[k]]
    assert m.get("pair_accuracy_prior") is not None
    assert out["activated"] == (m["pair_accuracy"] > max(bars)), out["decision"]
    engine = init_db(load_settings(env=env).db_url)
    with session_scope(engine) as s:
        mv = s.get(ModelVersion, out["model_version_id"])
        assert mv.config["trained_on"]["pool"] == "gifgif" and mv.config["domain"] == "real"
        assert mv.status == ("active" if out["activated"] else "candidate")
        gifs = list(s.scalars(select(Gif)))
        assert sorted(g.external_id for g in gifs) == sorted(f"giphy:{i}" for i in dump.ids)
        assert all(g.attribution["provider"] == "giphy" for g in gifs)
        n_comparisons = s.scalar(select(func.count(Comparison.id)))
    assert n_comparisons == data.kept

    # the same command again: nothing downloaded, no GIF decoded again, no comparison doubled
    res = CliRunner().invoke(cli, [*args[:-1], "--no-table", "--json"], env=env)
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["gifs"]["added"] == 0 and again["gifs"]["already"] == 40
    assert again["comparisons"]["skipped_step"] == "already imported"
    assert len(ranges) == 1
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(Comparison.id))) == n_comparisons


def test_checksum_mismatch_and_bad_files(tmp_path: Path, dump: Dump, files) -> None:  # type: ignore[no-untyped-def]
    base, _ = files
    env = {"MOODGIF_HOME": str(tmp_path / "home")}
    res = CliRunner().invoke(cli, ["pretrain", "gifgif", "--csv", f"{base}/{dump.csv_gz.name}",
                                   "--csv-sha256", "0" * 64], env=env)
    assert res.exit_code == 1 and "does not match the expected" in res.output
    assert not list((tmp_path / "home" / "gifgif").iterdir())  # no part, no final file
    res = CliRunner().invoke(cli, ["pretrain", "gifgif", "--csv", f"{base}/missing.csv.gz"], env=env)
    assert res.exit_code == 1 and "HTTP 404" in res.output
    res = CliRunner().invoke(cli, ["pretrain", "gifgif", "--csv", str(tmp_path / "nope.csv")], env=env)
    assert res.exit_code == 1 and "no such file" in res.output


def test_tar_is_streamed_safely(sqlite_settings: Settings, dump: Dump, tmp_path: Path) -> None:
    engine = init_db(sqlite_settings.db_url)
    report = ingest_tar(sqlite_settings, engine, dump.tar, wanted=set(dump.ids[:5]))
    assert len(report.added) == 5 and report.ok  # README and the symlink are ignored
    assert not (sqlite_settings.home / "gifgif-images").exists()  # nothing unpacked
    again = ingest_tar(sqlite_settings, engine, dump.tar)
    assert len(again.added) == 35 and len(again.duplicates) == 5
    cut = tmp_path / "cut.tar"
    cut.write_bytes(dump.tar.read_bytes()[:30_000])
    damaged = ingest_tar(sqlite_settings, engine, cut, pool="cut")
    assert any("ends early or is damaged" in why for _, why in damaged.refused)
    notatar = tmp_path / "x.tar"
    notatar.write_bytes(b"hello")
    with pytest.raises(PretrainError, match="not a readable tar"):
        ingest_tar(sqlite_settings, engine, notatar)


def test_tar_refuses_oversized_members_and_records_every_batch(
        sqlite_settings: Settings, dump: Dump, monkeypatch: pytest.MonkeyPatch) -> None:
    # 40 GIFs never fill a batch of 64: a small batch makes batches be recorded mid-tar.
    monkeypatch.setattr("training.gifgif._BATCH", 3)
    cap = sorted(len(b) for b in dump.gifs.values())[len(dump.gifs) // 2]  # one GIF is exactly at it
    over = [gid for gid in dump.ids if len(dump.gifs[gid]) > cap]
    assert 0 < len(over) < len(dump.ids)
    settings = sqlite_settings.override(fetch__max_gif_bytes=cap)
    engine = init_db(settings.db_url)
    report = ingest_tar(settings, engine, dump.tar)
    assert report.refused == [(f"giphy:{gid}", f"too large: {len(dump.gifs[gid]):,} bytes (cap {cap:,})")
                              for gid in over]
    assert len(report.added) == len(dump.ids) - len(over) and not report.duplicates
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Gif)) == len(report.added)
        recorded = s.execute(select(Refusal.source_ref, Refusal.reason).order_by(Refusal.id)).all()
    assert [tuple(r) for r in recorded] == report.refused


def test_a_failure_to_record_a_batch_is_not_called_a_damaged_tar(
        sqlite_settings: Settings, dump: Dump, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("training.gifgif._BATCH", 3)  # a batch is recorded mid-tar

    from training import gifgif

    record, calls = gifgif.record_giphy_gifs, []

    def full_disk_once(*args: object) -> None:  # the first batch fails, later ones would not
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        record(*args)  # type: ignore[arg-type]

    monkeypatch.setattr("training.gifgif.record_giphy_gifs", full_disk_once)
    engine = init_db(sqlite_settings.db_url)
    with pytest.raises(OSError, match="No space left"):  # not a refusal of the tar as damaged
        ingest_tar(sqlite_settings, engine, dump.tar)
    assert calls == [1]


def test_gifs_by_giphy_id_then_comparisons(sqlite_settings: Settings, dump: Dump) -> None:
    fake = FakeGiphy()
    for gid in dump.ids[:10]:
        fake.add(FakeGif(gid, "", renditions={"original": dump.gifs[gid]}))
    with serve(fake.media_app()) as media_port, serve(fake.api_app()) as api_port:
        fake.media_base = f"http://127.0.0.1:{media_port}"
        s = sqlite_settings.override(giphy__api_key=fake.key,
                                     giphy__api_url=f"http://127.0.0.1:{api_port}")
        engine = init_db(s.db_url)
        report = ingest_ids(s, engine, dump.ids[:12], trusted_endpoints=[("127.0.0.1", media_port)])
        assert len(report.added) == 10 and len(report.refused) == 2
        assert all("GIPHY has no GIF" in why for _, why in report.refused)
        assert [p for p, _ in fake.api_calls] == ["/v1/gifs"]
        again = ingest_ids(s, engine, dump.ids[:10], trusted_endpoints=[("127.0.0.1", media_port)])
        assert len(fake.api_calls) == 1 and not again.added and len(again.duplicates) == 10
    data = read_gifgif_csv(dump.csv_gz)
    out = import_comparisons(s, engine, dump.csv_gz, data)
    # only pairs between the 10 stored GIFs are kept: 45 pairs x 4 emotions x 2 rounds
    assert out["added"] == 45 * 4 * 2 and out["skipped"]["GIF not in any pool"] > 0
    assert import_comparisons(s, engine, dump.csv_gz, data)["skipped_step"] == "already imported"
    with session_scope(engine) as sess:
        assert sess.scalar(select(func.count(Comparison.id))) == 45 * 8

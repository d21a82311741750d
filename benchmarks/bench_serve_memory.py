"""Resident memory of the chat process: `moodgif serve` with the Slack and Discord adapters.

Runs the real `moodgif serve` command in a child process (Slack HTTP events with real bolt
and signature checks; Discord with a token, so discord.py is imported and the bot built; it
cannot connect offline and logs that), against a fake Slack in this process
(tests/fake_slack.py). Measures the child's RSS (VmRSS and its peak VmHWM from /proc)

1. after start-up (ready, and the background warm-up settled),
2. after N signed `/gif` slash commands (default 1,000; 8 at a time), each answered with
   a preview at its response_url,

on a small pool (the demo-sized 40 GIFs) and on a 100k-GIF pool (synthetic rows: GIFs,
pool, one active model version's predictions). It also lists which heavy native libraries
the process mapped (torch, onnxruntime, ...) - the point of the lean chat process.

    .venv/bin/python benchmarks/bench_serve_memory.py [--requests 1000] [--sizes 40,100000]
        [--embedder auto|onnx|torch]
    .venv/bin/python benchmarks/bench_serve_memory.py --compare-embedders

Pools are cached in bench-out/serve-memory-N/ (git ignores bench-out/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
HEAVY = ("libtorch", "onnxruntime", "libcudnn", "libopenblas", "libarrow", "transformers",
         "libgomp", "_C.cpython")


def build_pool(home: Path, n: int) -> None:
    """A SQLite home with n pooled GIFs and an active model version's predictions."""
    from bench_sizing import TABLES, _rows
    from sqlalchemy import update

    from scorer.migrate import init_db
    from scorer.settings import load_settings
    from scorer.store import ModelVersion, Pool, dispose_engines, session_scope

    marker = home / "built"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(env={}, home=str(home))
    engine = init_db(settings.db_url)
    rows = _rows(n, 0, random.Random(n))
    from sqlalchemy import insert

    with engine.begin() as conn:
        conn.execute(insert(Pool).values(id=1, name="demo"))
        conn.execute(insert(ModelVersion).values(id=1, name="v1", encoder_id="e", head_kind="fc"))
    for table in ("gifs", "pool_gifs", "predictions"):
        data = rows[table]
        for i in range(0, len(data), 5000):
            with engine.begin() as conn:
                conn.execute(insert(TABLES[table]), data[i : i + 5000])
    with session_scope(engine) as s:
        s.execute(update(ModelVersion).values(status="active"))
    dispose_engines()
    marker.write_text(str(n))


def status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


def heavy_libs(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({name for name in HEAVY if name in maps})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def settle(pid: int, quiet_s: float = 4.0, timeout: float = 180.0) -> dict[str, float]:
    """Wait until RSS stops growing (the warm-up thread is done), then read it."""
    t0 = time.monotonic()
    last = status(pid)["VmRSS"]
    while time.monotonic() - t0 < timeout:
        await asyncio.sleep(quiet_s)
        now = status(pid)["VmRSS"]
        if abs(now - last) < 2.0:
            break
        last = now
    return status(pid)


async def measure(n_gifs: int, requests: int, embedder: str) -> dict:
    import aiohttp
    from fake_slack import FakeSlack
    from slack_sdk.signature import SignatureVerifier

    home = ROOT / "bench-out" / f"serve-memory-{n_gifs}"
    await asyncio.to_thread(build_pool, home, n_gifs)
    port = free_port()
    verifier = SignatureVerifier(SECRET)
    async with FakeSlack() as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MOODGIF_", "SLACK_", "DISCORD_"))}
        env = {**env, "PYTHONPATH": str(ROOT), "MOODGIF_HOME": str(home),
               "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
               "MOODGIF_SLACK_API_URL": fake.api_url, "MOODGIF_HTTP_PORT": str(port),
               "MOODGIF_HTTP_HOST": "127.0.0.1", "MOODGIF_PUBLIC_URL": "https://gifs.example.org",
               "DISCORD_TOKEN": "bench.discord.token", "MOODGIF_COOLDOWN_S": "0",
               "MOODGIF_POLL_SHARE": "0"}
        if embedder != "auto":
            env["MOODGIF_INTENT_EMBEDDER"] = embedder
        log = (home / "serve.log").open("wb")
        t0 = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve"], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{port}"
                while True:
                    if child.poll() is not None:
                        raise SystemExit(f"serve exited {child.returncode}; see {home}/serve.log")
                    try:
                        async with http.get(url + "/healthz") as r:  # readyz: 503, Discord is offline
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.2)
                ready_s = time.perf_counter() - t0
                start = await settle(child.pid)
                libs_start = heavy_libs(child.pid)
                sem = asyncio.Semaphore(8)
                acks: list[int] = []

                async def one(i: int) -> None:
                    body = urllib.parse.urlencode({
                        "team_id": "T0BENCH", "channel_id": "C0BENCH", "user_id": f"U{i % 50:04d}",
                        "user_name": f"user{i}", "command": "/gif",
                        "text": ["happy", "ugh", "phew", "lol", "so proud of you", "cat"][i % 6],
                        "response_url": fake.response_url(f"m{i}"), "trigger_id": f"m.{i}"})  # unique, as Slack sends them
                    ts = str(int(time.time()))
                    headers = {"X-Slack-Request-Timestamp": ts,
                               "X-Slack-Signature": verifier.generate_signature(timestamp=ts,
                                                                                body=body),
                               "Content-Type": "application/x-www-form-urlencoded"}
                    async with sem, http.post(url + "/slack/events", data=body,
                                              headers=headers) as r:
                        await r.read()
                        acks.append(r.status)

                t1 = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(requests)))
                await fake.wait_for("webhook", requests, timeout=300)
                load_s = time.perf_counter() - t1
                after = await settle(child.pid, quiet_s=2.0, timeout=30)
                libs_after = heavy_libs(child.pid)
        finally:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
            log.close()
    return {"gifs": n_gifs, "ready_s": ready_s, "start": start, "after": after,
            "libs_start": libs_start, "libs_after": libs_after, "requests": requests,
            "ok": sum(s == 200 for s in acks), "previews": len(fake.calls_to("webhook")),
            "load_s": load_s}


EMBED_PROBE = """
import json, resource, sys, time
import numpy as np
from bot import embedder
kind = sys.argv[1]
t0 = time.perf_counter()
model = embedder.load_sentence_model(kind)
load = time.perf_counter() - t0
texts = [f"{w} {i}" for i, w in enumerate(["so happy", "ugh mondays", "proud of you team",
         "that was close phew", "lol what", "my cat knocked it over"] * 40)]
model.encode(texts[:8], normalize_embeddings=True, show_progress_bar=False)
lat = []
for t in texts:
    a = time.perf_counter()
    model.encode([t], normalize_embeddings=True, show_progress_bar=False)
    lat.append(time.perf_counter() - a)
rss = [int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS")][0]
print(json.dumps({"kind": kind, "load_s": load, "p50_ms": float(np.percentile(lat, 50) * 1e3),
                  "p99_ms": float(np.percentile(lat, 99) * 1e3), "rss_mb": rss / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def compare_embedders() -> None:
    """ONNX Runtime vs sentence-transformers (torch), each alone in a fresh process: load
    time, per-sentence latency (one text at a time, as a request does) and RSS."""
    home = ROOT / "bench-out" / "serve-memory-40"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MOODGIF_HOME": str(home)}
    print("\n| sentence model runtime | load | encode p50 | encode p99 | RSS after 240 "
          "encodes | peak RSS |")
    print("|---|---|---|---|---|---|")
    for kind in ("onnx", "torch"):
        out = subprocess.run([sys.executable, "-c", EMBED_PROBE, kind], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {kind} | {r['load_s']:.1f} s | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
              f"{r['rss_mb']:.0f} MB | {r['peak_mb']:.0f} MB |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--sizes", default="40,100000")
    ap.add_argument("--embedder", default="auto", choices=["auto", "onnx", "torch"],
                    help="the intent sentence model's runtime (setting intent_embedder)")
    ap.add_argument("--budget-mb", type=float, default=600.0)
    ap.add_argument("--compare-embedders", action="store_true",
                    help="only compare the ONNX and torch sentence models (latency, RSS)")
    args = ap.parse_args()
    if args.compare_embedders:
        compare_embedders()
        return 0
    print(f"# moodgif serve memory - {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}, embedder "
          f"{args.embedder}")
    print("| pool | ready after | RSS after start-up | requests (200s / previews) | RSS after | "
          "peak RSS | heavy libraries mapped | budget |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for n in (int(x) for x in args.sizes.split(",")):
        r = asyncio.run(measure(n, args.requests, args.embedder))
        within = max(r["start"]["VmRSS"], r["after"]["VmRSS"]) <= args.budget_mb
        ok &= within and r["ok"] == r["requests"] == r["previews"]
        print(f"| {n:,} GIFs | {r['ready_s']:.1f} s | {r['start']['VmRSS']:.0f} MB | "
              f"{r['ok']} / {r['previews']} in {r['load_s']:.1f} s | {r['after']['VmRSS']:.0f} MB | "
              f"{r['after']['VmHWM']:.0f} MB | {', '.join(r['libs_after']) or 'none'} | "
              f"{'<=' if within else 'OVER'} {args.budget_mb:.0f} MB |", flush=True)
    print(json.dumps({"all_within_budget_and_delivered": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

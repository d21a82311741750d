"""GIPHY import (issue 16): a new admin's path from an empty home to `/gif happy`, timed.

    .venv/bin/python benchmarks/bench_giphy_import.py                 # 17 x 4 GIFs, a few minutes
    .venv/bin/python benchmarks/bench_giphy_import.py --per-emotion 8

Runs the real `moodgif` commands in subprocesses, as an admin would, against a local fake of
GIPHY's API (tests/fake_giphy.py, GIPHY's answer shapes) and a local media server:

1. `moodgif pool starter --per-emotion N`   (plan: 17 x N searches; downloads; ingest)
2. the same command again                   (the resume path: no search, no download)
3. `moodgif score --pool starter`           (features, scores)
4. `moodgif serve` until `/healthz` answers, then `/api/request "happy"` until a preview
   with a GIF comes back (the playground's `/gif happy`)

The media server serves the real reaction GIFs of ../shared/data/real-gifs and
real-gifs-more (read in place, never copied) when they exist, else demo-pool GIFs. The
network is loopback, so the times are this machine's work, not GIPHY's latency: a real
import adds the round trips to GIPHY (17 x N searches at about 0.1-0.3 s each, and the
downloads). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from shared_data import SHARED_DATA as SHARED  # noqa: E402


def _gif_bytes(min_count: int) -> tuple[list[bytes], str]:
    files = sorted(p for d in ("real-gifs", "real-gifs-more") for p in (SHARED / d).glob("**/*.gif"))
    if len(files) >= min_count:
        return [p.read_bytes() for p in files], f"{len(files)} real GIFs from ../shared/data"
    from scorer.demo_pool import make_demo_pool

    out = Path(tempfile.mkdtemp(prefix="bench-giphy-demo-"))
    manifest = make_demo_pool(out, min_count, seed=5)
    gifs = sorted((manifest.parent / "gifs").glob("*.gif"))
    return [p.read_bytes() for p in gifs], f"{len(gifs)} demo-pool GIFs (no real GIFs found)"


def _fill(fake, gifs: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    """Three results per starter phrase; the first of each phrase is a distinct GIF (the
    starter picks first results while it needs at most one GIF per phrase)."""
    from fake_giphy import FakeGif

    from scorer.starter_phrases import PHRASES

    phrases = [p for ps in PHRASES.values() for p in ps]
    n = 0
    for rank in range(3):
        for k, phrase in enumerate(phrases):
            data = gifs[(k + rank * len(phrases)) % len(gifs)]
            fake.add(FakeGif(id=f"bench{n:05d}", title=f"{phrase} GIF {rank}",
                             username="benchuser" if n % 3 == 0 else "", rating="g",
                             alt_text=f"someone reacting: {phrase}",
                             renditions={"original": data}))
            n += 1


CPU: dict[str, float] = {}


def _run(cmd: list[str], env: dict[str, str], timeout: float, label: str) -> tuple[float, str]:
    """Wall seconds and stdout; the step's CPU seconds (user + sys) go to CPU[step]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[label] = round(after.ru_utime + after.ru_stime
                                    - before.ru_utime - before.ru_stime, 2)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[1:])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_until_happy(env: dict[str, str], timeout: float) -> dict:
    port = _free_port()
    env = {**env, "MOODGIF_HTTP_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "moodgif"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    out: dict = {}
    try:
        base = f"http://127.0.0.1:{port}"
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    out.setdefault("healthz_s", round(time.perf_counter() - start, 2))
                req = urllib.request.Request(f"{base}/api/request", method="POST",
                                             data=json.dumps({"text": "happy"}).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    reply = json.load(resp)
                if reply.get("kind") == "preview" and reply["preview"]["cards"]:
                    card = reply["preview"]["cards"][0]
                    out["first_gif_happy_s"] = round(time.perf_counter() - start, 2)
                    out["first_card"] = {"title": card["title"], "credit": card.get("credit", "")}
                    return out
            except (OSError, ValueError):
                pass
            time.sleep(0.25)
        out["error"] = f"no preview within {timeout:.0f} s"
        return out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-emotion", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=900.0, help="per step, seconds")
    args = ap.parse_args()

    from _h1_server import serve
    from fake_giphy import FakeGiphy

    gifs, what = _gif_bytes(85)  # the first result of each of the 85 phrases is distinct
    fake = FakeGiphy(key="bench-key-0123456789")
    _fill(fake, gifs)
    moodgif = str(REPO / ".venv" / "bin" / "moodgif")
    with tempfile.TemporaryDirectory(prefix="bench-giphy-") as tmp, \
            serve(fake.media_app()) as media_port, serve(fake.api_app()) as api_port:
        fake.media_base = f"http://127.0.0.1:{media_port}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "MOODGIF_HOME": str(Path(tmp) / "home"),
               "GIPHY_API_KEY": fake.key, "MOODGIF_GIPHY_API_URL": f"http://127.0.0.1:{api_port}",
               # loopback stands in for GIPHY's CDN here; a real deployment keeps this off
               "MOODGIF_ALLOW_PRIVATE_URLS": "true"}
        result: dict = {"load_average_1min_at_start": round(os.getloadavg()[0], 1),
                        "gifs_served": what, "per_emotion": args.per_emotion,
                        "cpu_count": os.cpu_count()}
        took, out = _run([moodgif, "pool", "starter", "--per-emotion", str(args.per_emotion),
                          "--json"], env, args.timeout, "starter")
        rep = json.loads(out)
        result["starter_s"] = round(took, 2)
        result["starter_counts"] = rep["counts"]
        result["api_calls"] = len(fake.api_calls)
        result["downloads"] = sum(fake.downloads.values())
        result["mb_downloaded"] = round(sum(
            len(g.renditions["original"]) * c for g in fake.gifs
            for k, c in fake.downloads.items() if k.startswith(f"{g.id}/")) / 1e6, 1)
        took, out = _run([moodgif, "pool", "starter", "--per-emotion", str(args.per_emotion),
                          "--json"], env, args.timeout, "starter_again")
        result["starter_again_s"] = round(took, 2)
        result["starter_again"] = {"api_calls": len(fake.api_calls) - result["api_calls"],
                                   "downloads": sum(fake.downloads.values()) - result["downloads"],
                                   **json.loads(out)["counts"]}
        took, out = _run([moodgif, "score", "--pool", "starter"], env, args.timeout, "score")
        result["score_s"] = round(took, 2)
        result["score_output"] = out.strip().splitlines()[-1:] if out.strip() else []
        result["cpu_s"] = dict(CPU)
        result["serve"] = _serve_until_happy(env, args.timeout)
        result["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

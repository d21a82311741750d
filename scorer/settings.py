"""The one settings object of moodgif.

Values come from, in rising order of precedence: the defaults below, a TOML file
(`MOODGIF_CONFIG`, else `$MOODGIF_HOME/moodgif.toml` when it exists), and environment
variables. Every field has one environment name (`MOODGIF_<FIELD>` unless the field says
otherwise, e.g. the platforms' own `SLACK_BOT_TOKEN`). Secrets are masked whenever the
settings are shown.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

RATINGS: tuple[str, ...] = ("g", "pg", "pg-13", "r")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _f(default: Any, *, env: str | None = None, secret: bool = False, doc: str = "") -> Any:
    meta = {"env": env, "secret": secret, "doc": doc}
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    # --- where things live -------------------------------------------------------------
    home: Path = _f(Path(), doc="data directory (database, pool files, features, models)")
    database_url: str = _f("", doc="SQLAlchemy URL; empty = SQLite file in home")
    config_file: str = _f("", env="MOODGIF_CONFIG", doc="optional TOML file with these keys")

    # --- HTTP server (Slack events, playground, /gifs/) ---------------------------------
    http_host: str = _f("127.0.0.1", doc="address the one HTTP server binds")
    http_port: int = _f(8080, doc="port of the one HTTP server")
    public_url: str = _f("", doc="how the outside world reaches the HTTP server")
    admin_token: str = _f("", secret=True, doc="token for the playground and admin pages (Bearer, or the "
                          "password of HTTP Basic); required when the server is exposed (not bound to "
                          "loopback, or public_url set): without it those pages are off")
    allowed_hosts: list[str] = _f([], doc="Host names the playground and admin pages answer to, besides "
                                  "the loopback names and public_url's host (DNS-rebinding guard)")
    secret_key: str = _f("", secret=True, doc="key that encrypts the Slack OAuth bot tokens in the "
                         "database (a Fernet key; `moodgif config secret-key` makes one); "
                         "required for multi-workspace Slack")

    # --- Slack --------------------------------------------------------------------------
    slack_bot_token: str = _f("", env="SLACK_BOT_TOKEN", secret=True, doc="xoxb- bot token")
    slack_signing_secret: str = _f("", env="SLACK_SIGNING_SECRET", secret=True)
    slack_app_token: str = _f("", env="SLACK_APP_TOKEN", secret=True, doc="xapp- token (Socket Mode)")
    slack_api_url: str = _f("https://slack.com/api/", doc="Slack Web API base URL")
    slack_socket_mode: bool = _f(False, doc="use Socket Mode instead of HTTP events")
    slack_client_id: str = _f("", env="SLACK_CLIENT_ID", doc="OAuth (multi-workspace) client id")
    slack_client_secret: str = _f("", env="SLACK_CLIENT_SECRET", secret=True)
    slack_admin_user_ids: list[str] = _f([], doc="Slack user ids allowed to use /gif-admin")

    # --- Discord ------------------------------------------------------------------------
    discord_token: str = _f("", env="DISCORD_TOKEN", secret=True)
    discord_sharded: bool = _f(False, doc="run as AutoShardedClient")
    discord_upload_limit_bytes: int = _f(10 * 1024 * 1024)

    # --- pools and fetching -------------------------------------------------------------
    allow_private_urls: bool = _f(False, doc="allow fetching from loopback/private addresses")
    allowed_source_dirs: list[str] = _f([], doc="folders a manifest may point into (besides its own)")
    admin_source_dirs: list[str] = _f([], doc="server folders that chat and web admins (`/gif-admin "
                                      "pools add`, the admin page) may add pools from; empty = URLs "
                                      "only (the CLI is not limited)")
    fetch_concurrency: int = _f(8)
    fetch_timeout_s: float = _f(20.0)
    fetch_retries: int = _f(3)
    max_gif_bytes: int = _f(20 * 1024 * 1024)
    max_gif_pixels: int = _f(4096 * 4096, doc="cap on width x height")
    max_gif_frames: int = _f(2000)
    max_gif_total_pixels: int = _f(1_000_000_000, doc="cap on width x height x frames (decoded "
                                   "pixels per file): stops a GIF bomb before it is decoded")

    # --- GIPHY (pool add NAME giphy:QUERY, pool starter) ---------------------------------
    giphy_api_key: str = _f("", env="GIPHY_API_KEY", secret=True,
                            doc="GIPHY API key (developers.giphy.com); using it accepts GIPHY's API terms")
    giphy_api_url: str = _f("https://api.giphy.com", doc="GIPHY API base URL (tests point it at a local fake)")

    # --- scoring ------------------------------------------------------------------------
    encoder: str = _f("nsfw-resnet50thin+motion", doc="default encoder id")
    sampling: str = _f("sparse", doc="frame sampling scheme: sparse or dense")
    device: str = _f("auto", doc="auto, cpu or cuda")
    score_batch_size: int = _f(0, doc="frames per encoder batch; 0 = auto (8 on CPU, 64 on CUDA)")
    score_workers: int = _f(2, doc="decode worker processes")
    torchvision_weights_dir: str = _f("", doc="folder with torchvision checkpoints")
    clip_weights: str = _f("", doc="open_clip checkpoint file for the zero-shot prior")
    face_channel: bool = _f(True, doc="zero-shot prior: read facial expressions in sampled "
                            "frames (needs the face-api weights scripts/setup fetches)")
    face_model_dir: str = _f("", doc="folder with face-api's face_expression_model files; "
                             "empty = where scripts/setup puts them (<venv>/share/moodgif)")
    nsfw_r_threshold: float = _f(0.8, doc="NSFW probability at or above which a GIF is rated r")
    nsfw_pg13_threshold: float = _f(0.4)
    nsfw_pg_threshold: float = _f(0.15)

    # --- Bradley-Terry and training ------------------------------------------------------
    bt_ties: str = _f("half", doc="'neither' answers: drop, half or davidson")
    bt_alpha: float = _f(0.1, doc="Gamma prior pseudo-count per GIF")
    bt_prior_strength: float = _f(2.0, doc="weight of the scorer's prediction as a prior in the "
                                  "fit (on that model's own scale); 0 = votes alone (the ranker "
                                  "still adds the prediction); 2 won the closed-loop benchmark, "
                                  "docs/bench/learning-loop.md")
    seed: int = _f(0)

    # --- ranking and sessions -----------------------------------------------------------
    exploration: str = _f("bounded", doc="bounded (the best-known GIF first; shuffles explore "
                          "near-top uncertain GIFs, cooling with evidence), thompson, ucb or none")
    exploration_rate: float = _f(1.0, doc="scale of the exploration bonus/noise")
    repeat_window_hours: float = _f(24.0, doc="a GIF shown in a channel is not reshown within this")
    rating_ceiling: str = _f("pg-13", doc="default rating ceiling: g, pg, pg-13 or r")
    preview_count: int = _f(1, doc="GIFs per preview: 1 or 3")
    cooldown_s: float = _f(3.0, doc="per-user seconds between /gif requests")
    preview_ttl_s: float = _f(900.0, doc="a preview expires after this")
    poll_share: float = _f(0.0, doc="share of requests that also get a 'which is more X?' poll; "
                           "0 = off: at 0.15 they cost P@1 in the closed-loop benchmark "
                           "(docs/learning-loop.md)")
    intent_threshold: float = _f(0.45, doc="below this confidence the answer is 'did you mean'")
    intent_embedder: str = _f("auto", doc="sentence model runtime: auto (ONNX, else torch), onnx or torch")
    watch_cooldown_min: float = _f(30.0, doc="watched channels: at most one offer per person per N min")
    user_hash_salt: str = _f("", secret=True, doc="salt for hashing user ids; generated if empty")

    # --- retraining ---------------------------------------------------------------------
    retrain_cron: str = _f("17 3 * * *", doc="crontab for the scheduled retrain; empty = off")
    retrain_interval_min: float = _f(0.0, doc="if > 0, retrain every N minutes instead of cron")
    retrain_min_new_comparisons: int = _f(1, doc="skip a scheduled retrain with fewer new comparisons")

    # --- logs ---------------------------------------------------------------------------
    log_level: str = _f("INFO")
    log_json: bool = _f(False)

    # ------------------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'moodgif.db'}"

    @property
    def gifs_dir(self) -> Path:
        return self.home / "gifs"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def masked(self) -> dict[str, Any]:
        """All settings as plain values, secrets shown only as set/unset."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                value = "***" if value else ""
            elif isinstance(value, Path):
                value = str(value)
            elif f.name == "database_url":
                value = _mask_url(value)
            out[f.name] = value
        out["db_url (effective)"] = _mask_url(self.db_url)
        return out

    def secret_values(self) -> list[str]:
        """The secret values in use, for scrubbing them from logs."""
        values = [
            str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.metadata.get("secret") and getattr(self, f.name)
        ]
        # The database password too: a driver error can print the whole URL.
        if "://" in self.database_url and "@" in self.database_url:
            creds = self.database_url.split("://", 1)[1].split("?", 1)[0].rsplit("@", 1)[0]
            if ":" in creds and creds.split(":", 1)[1]:
                values.append(creds.split(":", 1)[1])
        values += [v for _k, v in _QUERY_SECRET.findall(self.database_url) if v]
        return values


def env_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("env") or f"MOODGIF_{f.name.upper()}"


# ...?password=x or &sslpassword=x in a URL's query (libpq takes the password there too)
_QUERY_SECRET = re.compile(r"(?i)[?&]((?:ssl)?password|passfile|sslkey)=([^&#]*)")


def _mask_url(url: str) -> str:
    # postgresql://user:password@host/db -> postgresql://user:***@host/db
    url = _QUERY_SECRET.sub(lambda m: m.group(0)[: m.group(0).index("=") + 1] + "***", url)
    base, sep, query = url.partition("?")
    if "://" in base and "@" in base:
        scheme, rest = base.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}{sep}{query}"
    return url


def _coerce(name: str, typ: Any, raw: Any, source: str) -> Any:
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(text)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is Path:
            return Path(os.path.expanduser(str(raw)))
        if typ == list[str]:
            if isinstance(raw, list):
                return [str(x) for x in raw]
            return [x.strip() for x in str(raw).split(",") if x.strip()]
        return str(raw)
    except ValueError:
        raise SettingsError(f"{source}: cannot read {raw!r} as {getattr(typ, '__name__', typ)} for {name}") from None


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, the TOML file, the environment and overrides."""
    env = dict(os.environ if env is None else env)
    hints = get_type_hints(Settings)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    home_raw = overrides.get("home") or env.get("MOODGIF_HOME")
    home = Path(os.path.expanduser(str(home_raw))) if home_raw else Path(
        platformdirs.user_data_dir("moodgif", appauthor=False)
    )
    config_file = overrides.get("config_file") or env.get("MOODGIF_CONFIG") or ""
    path = Path(config_file) if config_file else home / "moodgif.toml"
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
        data = data.get("moodgif", data)
        for key, raw in data.items():
            if key not in fields:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, hints[key], raw, str(path))
    for name, f in fields.items():
        var = env_name(f)
        if var in env:
            values[name] = _coerce(name, hints[name], env[var], var)
    for key, raw in overrides.items():
        if key not in fields:
            raise SettingsError(f"unknown setting {key!r}")
        values[key] = _coerce(key, hints[key], raw, "override")
    values["home"] = Path(values.get("home") or home)
    values["config_file"] = str(path) if path.is_file() else ""
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.rating_ceiling not in RATINGS:
        raise SettingsError(f"MOODGIF_RATING_CEILING must be one of {RATINGS}, not {s.rating_ceiling!r}")
    if s.sampling not in {"sparse", "dense"}:
        raise SettingsError(f"MOODGIF_SAMPLING must be sparse or dense, not {s.sampling!r}")
    if s.device not in {"auto", "cpu", "cuda"} and not s.device.startswith("cuda:"):
        raise SettingsError(f"MOODGIF_DEVICE must be auto, cpu or cuda, not {s.device!r}")
    if s.intent_embedder not in {"auto", "onnx", "torch"}:
        raise SettingsError(f"MOODGIF_INTENT_EMBEDDER must be auto, onnx or torch, not {s.intent_embedder!r}")
    if s.bt_ties not in {"drop", "half", "davidson"}:
        raise SettingsError(f"MOODGIF_BT_TIES must be drop, half or davidson, not {s.bt_ties!r}")
    if s.exploration not in {"bounded", "thompson", "ucb", "none"}:
        raise SettingsError("MOODGIF_EXPLORATION must be bounded, thompson, ucb or none, "
                            f"not {s.exploration!r}")
    if s.preview_count not in {1, 3}:
        raise SettingsError(f"MOODGIF_PREVIEW_COUNT must be 1 or 3, not {s.preview_count}")
    if s.score_batch_size < 0:
        raise SettingsError("MOODGIF_SCORE_BATCH_SIZE must be 0 (auto) or a positive number of frames")
    if not 0.0 <= s.poll_share <= 1.0:
        raise SettingsError("MOODGIF_POLL_SHARE must be between 0 and 1")


def rating_allowed(rating: str | None, ceiling: str) -> bool:
    """A GIF with no known rating counts as 'pg-13' (unknown is not assumed safe)."""
    r = rating if rating in RATINGS else "pg-13"
    return RATINGS.index(r) <= RATINGS.index(ceiling)

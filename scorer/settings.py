"""The one settings object of moodgif (pydantic-settings, in nested groups).

Values come from, in rising order of precedence: the defaults below, a TOML file
(`MOODGIF_CONFIG`, else `$MOODGIF_HOME/moodgif.toml` when it exists), environment
variables, and keyword overrides. Every field has one environment name: `MOODGIF_<KEY>`
where KEY is the field's flat key (`settings.http.port` is `http_port`, so
`MOODGIF_HTTP_PORT`), unless the field names another (the platforms' own
`SLACK_BOT_TOKEN`). The TOML file takes nested tables (`[http] port = 8080`) or the flat
keys (`http_port = 8080`). Secrets are masked whenever the settings are shown.

`Settings()` is the defaults alone; `load_settings()` reads the file and the environment.
The settings a workspace or channel may override are declared once here too
(`ChannelSettings`); `bot.scoped_settings` stores and resolves them.
"""

from __future__ import annotations

import contextvars
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

RATINGS: tuple[str, ...] = ("g", "pg", "pg-13", "r")


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


# ---------------------------------------------------------------------------------------
# value types shared by the global settings and the scoped (workspace, channel) ones


def _check_rating(v: str) -> str:
    if v not in RATINGS:
        raise ValueError(f"rating ceiling must be one of {', '.join(RATINGS)}, not {v!r}")
    return v


def _check_preview_count(v: int) -> int:
    if v not in {1, 3}:
        raise ValueError(f"preview count must be 1 or 3, not {v!r}")
    return v


def _database_url(v: str) -> str:
    """SQLite or PostgreSQL only. "postgres://", what hosted databases often hand out, is
    SQLAlchemy's "postgresql://"; any other scheme is refused here rather than as a driver's
    traceback later."""
    v = v.strip()
    if v.startswith("postgres://"):
        v = "postgresql://" + v[len("postgres://"):]
    scheme = v.split("://", 1)[0] if "://" in v else ""
    # psycopg (3) is the driver moodgif ships; +psycopg2 or +asyncpg would fail at connect
    if v and scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
        said = f"not {scheme}://..." if scheme else "a URL with a scheme"
        raise ValueError(f"database URL must be sqlite:///PATH or postgresql://... ({said})")
    return v


def _split_commas(v: Any) -> Any:
    # A list setting written as text (an env var): "a, b,c"; a folder name may hold spaces.
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return v


def _split_words(v: Any) -> Any:
    # Pool names typed in chat: "a b, c".
    return _split_commas(v.replace(" ", ",")) if isinstance(v, str) else v


def _pool_names(v: list[str]) -> list[str]:
    if any(n in {"all", "*"} for n in v):
        return []  # [] means every pool
    return sorted(dict.fromkeys(v))


def _empty_is_off(v: Any) -> Any:
    return False if isinstance(v, str) and not v.strip() else v


def _lower(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


Rating = Annotated[str, BeforeValidator(_lower), AfterValidator(_check_rating)]
PreviewCount = Annotated[int, AfterValidator(_check_preview_count)]
CooldownS = Annotated[float, Field(ge=0, le=3600)]
OnOff = Annotated[bool, BeforeValidator(_empty_is_off)]
Names = Annotated[list[str], BeforeValidator(_split_commas)]
PoolNames = Annotated[list[str], BeforeValidator(_split_words), AfterValidator(_pool_names)]


def _gif_shas(v: list[str]) -> list[str]:
    bad = [s for s in v if not re.fullmatch(r"[0-9a-f]{64}", s)]
    if bad:
        raise ValueError(f"not a GIF's SHA-256: {bad[0][:70]!r}")
    return sorted(dict.fromkeys(v))


GifShas = Annotated[list[str], AfterValidator(_gif_shas)]


def _home(v: Any) -> Path:
    return Path(os.path.expanduser(str(v))) if str(v) else Path()


def _s(default: Any, key: str, *, env: str | None = None, secret: bool = False, doc: str = "",
       **constraints: Any) -> Any:
    """A setting: its default, flat key (the TOML key and `MOODGIF_<KEY>`), env name, doc."""
    extra = {"key": key, "env": env or f"MOODGIF_{key.upper()}", "secret": secret}
    if isinstance(default, list):
        return Field(default_factory=list, description=doc, json_schema_extra=extra, **constraints)
    return Field(default=default, description=doc, json_schema_extra=extra, **constraints)


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------------------------------
# the groups


class HttpSettings(Group):
    """HTTP server (Slack events, playground, /gifs/)."""

    host: str = _s("127.0.0.1", "http_host", doc="address the one HTTP server binds")
    port: int = _s(8080, "http_port", ge=0, le=65535, doc="port of the one HTTP server (0: any free one)")
    public_url: str = _s("", "public_url", doc="how the outside world reaches the HTTP server")
    admin_token: str = _s("", "admin_token", secret=True, doc="token for the playground and admin "
                          "pages (Bearer, or the password of HTTP Basic); required when the server "
                          "is exposed (not bound to loopback, or public_url set): without it those "
                          "pages are off")
    allowed_hosts: Names = _s([], "allowed_hosts", doc="Host names the playground and admin pages "
                              "answer to, besides the loopback names and public_url's host "
                              "(DNS-rebinding guard)")


class SlackSettings(Group):
    """Slack."""

    bot_token: str = _s("", "slack_bot_token", env="SLACK_BOT_TOKEN", secret=True,
                        doc="xoxb- bot token")
    signing_secret: str = _s("", "slack_signing_secret", env="SLACK_SIGNING_SECRET", secret=True)
    app_token: str = _s("", "slack_app_token", env="SLACK_APP_TOKEN", secret=True,
                        doc="xapp- token (Socket Mode)")
    api_url: str = _s("https://slack.com/api/", "slack_api_url", doc="Slack Web API base URL")
    socket_mode: OnOff = _s(False, "slack_socket_mode", doc="use Socket Mode instead of HTTP events")
    client_id: str = _s("", "slack_client_id", env="SLACK_CLIENT_ID",
                        doc="OAuth (multi-workspace) client id")
    client_secret: str = _s("", "slack_client_secret", env="SLACK_CLIENT_SECRET", secret=True)
    admin_user_ids: Names = _s([], "slack_admin_user_ids",
                               doc="Slack user ids allowed to use /gif-admin: U0123 in every "
                                   "workspace, T0456:U0123 in that workspace only")
    secret_key: str = _s("", "secret_key", secret=True, doc="key that encrypts the Slack OAuth bot "
                         "tokens in the database (a Fernet key; `moodgif config secret-key` makes "
                         "one); required for multi-workspace Slack")


class DiscordSettings(Group):
    """Discord."""

    token: str = _s("", "discord_token", env="DISCORD_TOKEN", secret=True)
    sharded: OnOff = _s(False, "discord_sharded", doc="run as AutoShardedClient")
    upload_limit_bytes: int = _s(10 * 1024 * 1024, "discord_upload_limit_bytes", gt=0)
    watch: OnOff = _s(True, "discord_watch", doc="let channels that opted in to watching ask for "
                      "the Message Content intent; off = never ask (watching waits), the way out "
                      "when Discord refuses the intent")


class FetchSettings(Group):
    """Pools and fetching."""

    allow_private_urls: OnOff = _s(False, "allow_private_urls",
                                   doc="allow fetching from loopback/private addresses")
    allowed_source_dirs: Names = _s([], "allowed_source_dirs",
                                    doc="folders a manifest may point into (besides its own)")
    admin_source_dirs: Names = _s([], "admin_source_dirs", doc="server folders that chat and web "
                                  "admins (`/gif-admin pools add`, the admin page) may add pools "
                                  "from; empty = URLs only (the CLI is not limited)")
    concurrency: int = _s(8, "fetch_concurrency", ge=1)
    timeout_s: float = _s(20.0, "fetch_timeout_s", gt=0, allow_inf_nan=False)
    retries: int = _s(3, "fetch_retries", ge=0)
    max_gif_bytes: int = _s(20 * 1024 * 1024, "max_gif_bytes", gt=0)
    max_gif_pixels: int = _s(4096 * 4096, "max_gif_pixels", gt=0, doc="cap on width x height")
    max_gif_frames: int = _s(2000, "max_gif_frames", gt=0)
    max_gif_total_pixels: int = _s(1_000_000_000, "max_gif_total_pixels", gt=0, doc="cap on width x "
                                   "height x frames (decoded pixels per file): stops a GIF bomb "
                                   "before it is decoded")


class GiphySettings(Group):
    """GIPHY (pool add NAME giphy:QUERY, pool starter)."""

    api_key: str = _s("", "giphy_api_key", env="GIPHY_API_KEY", secret=True,
                      doc="GIPHY API key (developers.giphy.com); using it accepts GIPHY's API terms")
    api_url: str = _s("https://api.giphy.com", "giphy_api_url",
                      doc="GIPHY API base URL (tests point it at a local fake)")


def _check_device(v: str) -> str:
    if v not in {"auto", "cpu", "cuda"} and not v.startswith("cuda:"):
        raise ValueError(f"must be auto, cpu or cuda, not {v!r}")
    return v


def _one_of(*choices: str) -> AfterValidator:
    def check(v: str) -> str:
        if v not in choices:
            raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}, not {v!r}")
        return v

    return AfterValidator(check)


class ScoringSettings(Group):
    """Scoring."""

    encoder: str = _s("nsfw-resnet50thin+motion", "encoder", doc="default encoder id")
    sampling: Annotated[str, _one_of("sparse", "dense")] = _s(
        "sparse", "sampling", doc="frame sampling scheme: sparse or dense")
    device: Annotated[str, AfterValidator(_check_device)] = _s("auto", "device",
                                                               doc="auto, cpu or cuda")
    batch_size: int = _s(0, "score_batch_size", ge=0,
                         doc="frames per encoder batch; 0 = auto (8 on CPU, 64 on CUDA)")
    workers: int = _s(2, "score_workers", ge=0, doc="decode worker processes; when not set, "
                      "up to 8 on CUDA (decoding is a GPU's limit)")
    torchvision_weights_dir: str = _s("", "torchvision_weights_dir",
                                      doc="folder with torchvision checkpoints")
    clip_weights: str = _s("", "clip_weights", doc="open_clip checkpoint file for the zero-shot prior")
    face_channel: OnOff = _s(True, "face_channel", doc="zero-shot prior: read facial expressions "
                             "in sampled frames (needs the face-api weights scripts/setup fetches)")
    face_model_dir: str = _s("", "face_model_dir", doc="folder with face-api's "
                             "face_expression_model files; empty = where scripts/setup puts them "
                             "(<venv>/share/moodgif)")
    nsfw_r_threshold: float = _s(0.8, "nsfw_r_threshold", ge=0, le=1,
                                 doc="NSFW probability at or above which a GIF is rated r")
    nsfw_pg13_threshold: float = _s(0.4, "nsfw_pg13_threshold", ge=0, le=1)
    nsfw_pg_threshold: float = _s(0.15, "nsfw_pg_threshold", ge=0, le=1)


class TrainingSettings(Group):
    """Bradley-Terry, training and retraining."""

    bt_ties: Annotated[str, _one_of("drop", "half", "davidson")] = _s(
        "half", "bt_ties", doc="'neither' answers: drop, half or davidson")
    bt_alpha: float = _s(0.1, "bt_alpha", gt=0, allow_inf_nan=False,
                         doc="Gamma prior pseudo-count per GIF (> 0: it keeps unbeaten GIFs finite)")
    bt_prior_strength: float = _s(2.0, "bt_prior_strength", ge=0, allow_inf_nan=False, doc="weight of the scorer's "
                                  "prediction as a prior in the fit (on that model's own scale); "
                                  "0 = votes alone (the ranker still adds the prediction); 2 won "
                                  "the closed-loop benchmark, docs/bench/learning-loop.md")
    seed: int = _s(0, "seed")
    retrain_cron: str = _s("17 3 * * *", "retrain_cron",
                           doc="crontab for the scheduled retrain; empty = off")
    retrain_interval_min: float = _s(0.0, "retrain_interval_min", ge=0, allow_inf_nan=False,
                                     doc="if > 0, retrain every N minutes instead of cron")
    retrain_min_new_comparisons: int = _s(1, "retrain_min_new_comparisons", ge=0,
                                          doc="skip a scheduled retrain with fewer new comparisons")
    keep_versions: int = _s(5, "keep_versions", ge=0, doc="after each retrain, keep the newest N "
                            "Bradley-Terry fits and trained model versions whole (rollback "
                            "targets) and drop older ones' scores, predictions and head files "
                            "(`moodgif db prune`); 0 = keep everything")


class RankingSettings(Group):
    """Ranking and polls."""

    exploration: Annotated[str, _one_of("bounded", "thompson", "ucb", "none")] = _s(
        "bounded", "exploration", doc="bounded (the best-known GIF first; shuffles explore "
        "near-top uncertain GIFs, cooling with evidence), thompson, ucb or none")
    exploration_rate: float = _s(1.0, "exploration_rate", ge=0, allow_inf_nan=False, doc="scale of the exploration bonus/noise")
    repeat_window_hours: float = _s(24.0, "repeat_window_hours", ge=0, allow_inf_nan=False,
                                    doc="a GIF shown in a channel is not reshown within this")
    poll_share: float = _s(0.0, "poll_share", ge=0.0, le=1.0, doc="share of requests that also "
                           "get a 'which is more X?' poll; 0 = off: at 0.15 they cost P@1 in the "
                           "closed-loop benchmark (docs/learning-loop.md)")


class ChatSettings(Group):
    """Chat sessions; rating_ceiling, preview_count and cooldown_s are also scoped."""

    rating_ceiling: Rating = _s("pg-13", "rating_ceiling",
                                doc="default rating ceiling: g, pg, pg-13 or r")
    preview_count: PreviewCount = _s(1, "preview_count", doc="GIFs per preview: 1 or 3")
    cooldown_s: CooldownS = _s(3.0, "cooldown_s", doc="per-user seconds between /gif requests")
    preview_ttl_s: float = _s(900.0, "preview_ttl_s", gt=0, allow_inf_nan=False, doc="a preview expires after this")
    intent_threshold: float = _s(0.45, "intent_threshold", ge=0, le=1,
                                 doc="below this confidence the answer is 'did you mean'")
    intent_embedder: Annotated[str, _one_of("auto", "onnx", "torch")] = _s(
        "auto", "intent_embedder", doc="sentence model runtime: auto (ONNX, else torch), onnx or torch")
    intent_sentence_model: Annotated[str, _one_of("tuned", "regression")] = _s(
        "tuned", "intent_sentence_model",
        doc="sentences of 4+ words: tuned (MiniLM fine-tuned on the situation bank, built once "
            "per bank) or regression (the bank regression on plain MiniLM vectors)")
    watch_cooldown_min: float = _s(30.0, "watch_cooldown_min", ge=0, allow_inf_nan=False,
                                   doc="watched channels: at most one offer per person per N min")
    phrase_memory_days: Annotated[float, Field(ge=0)] = _s(
        90.0, "phrase_memory_days",
        doc="a request is read the way people in its workspace sent the same words in the "
            "last N days (bot.learned_phrases); 0 = never")
    user_hash_salt: str = _s("", "user_hash_salt", secret=True,
                             doc="salt for hashing user ids; generated if empty")


class LogSettings(Group):
    """Logs."""

    level: str = _s("INFO", "log_level")
    json_output: OnOff = _s(False, "log_json")


class ChannelSettings(BaseModel):
    """What a workspace or channel may set for itself (Red-DiscordBot's scopes).

    A key also in `ChatSettings` takes its global value from there; the others have their
    default here. `bot.scoped_settings` layers global < workspace < channel.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating_ceiling: Rating
    pools: PoolNames = Field(default_factory=list, description="[] = every pool")
    cooldown_s: CooldownS
    preview_count: PreviewCount
    watch: OnOff = Field(default=False, description="opt-in: the bot reads a channel only when asked")
    hidden_gifs: GifShas = Field(
        default_factory=list, description="GIFs an admin hid here (`hide`): never offered, in previews or polls")
    learn_phrases: OnOff = Field(
        default=True, description="read a request the way people in this workspace sent the same words "
                                  "before, and keep this channel's sent words for that (phrase_memory_days)")
    watch_strict: OnOff = Field(
        default=False, description="watched channel: offer only when the sentence model finds a feeling "
                                   "more likely than none (about half the offers on flat chat)")


# ---------------------------------------------------------------------------------------
# the settings


class Settings(BaseSettings):
    """Every setting; `load_settings()` builds one from the file and the environment."""

    model_config = SettingsConfigDict(extra="forbid", validate_assignment=True)

    home: Annotated[Path, BeforeValidator(_home)] = _s(
        Path(), "home", doc="data directory (database, pool files, features, models)")
    database_url: Annotated[str, AfterValidator(_database_url)] = _s(
        "", "database_url", doc="SQLAlchemy URL (sqlite or postgresql); empty = SQLite file in home")
    config_file: str = _s("", "config_file", env="MOODGIF_CONFIG",
                          doc="optional TOML file with these keys")
    http: HttpSettings = Field(default_factory=HttpSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    giphy: GiphySettings = Field(default_factory=GiphySettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_defaults: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings()` is the defaults; only load_settings() adds the environment and the file.
        return (init_settings, *_SOURCES.get())

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

    def override(self, **changes: Any) -> Settings:
        """A validated copy with some values changed: `override(ranking__poll_share=0.2)`.

        Keys are `group__field`, a top-level field, or an old flat key (`poll_share`).
        """
        merged = _deep_merge(self.model_dump(), _nest(changes, "override"))
        return _validated(lambda: Settings(**merged), {})

    def masked(self) -> dict[str, Any]:
        """All settings by dotted path as plain values, secrets shown only as set/unset."""
        out: dict[str, Any] = {}
        for spec in SPECS:
            value = spec.get(self)
            if spec.secret:
                value = "***" if value else ""
            elif isinstance(value, Path):
                value = str(value)
            elif spec.path == "database_url":
                value = _mask_url(value)
            out[spec.path] = value
        out["db_url (effective)"] = _mask_url(self.db_url)
        return out

    def secret_values(self) -> list[str]:
        """The secret values in use, for scrubbing them from logs."""
        values = [str(spec.get(self)) for spec in SPECS if spec.secret and spec.get(self)]
        # The database password too: a driver error can print the whole URL.
        url = self.database_url
        if "://" in url and "@" in url:
            creds = url.split("://", 1)[1].split("?", 1)[0].rsplit("@", 1)[0]
            if ":" in creds and creds.split(":", 1)[1]:
                values.append(creds.split(":", 1)[1])
        values += [v for _k, v in _QUERY_SECRET.findall(url) if v]
        return values


# ---------------------------------------------------------------------------------------
# the field table: one row per setting, read off the models above


class Spec:
    """One setting: its dotted path, flat key, environment name, doc and secrecy."""

    def __init__(self, group: str | None, name: str, info: FieldInfo) -> None:
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        self.group, self.name = group, name
        self.path = f"{group}.{name}" if group else name
        self.key = str(extra["key"])
        self.env = str(extra["env"])
        self.secret = bool(extra["secret"])
        self.doc = info.description or ""
        self.info = info

    def get(self, settings: Settings) -> Any:
        owner = getattr(settings, self.group) if self.group else settings
        return getattr(owner, self.name)

    def __repr__(self) -> str:
        return f"Spec({self.path!r}, env={self.env!r})"


def _specs() -> Iterator[Spec]:
    for name, info in Settings.model_fields.items():
        group_cls = info.annotation
        if isinstance(group_cls, type) and issubclass(group_cls, Group):
            for sub, sub_info in group_cls.model_fields.items():
                yield Spec(name, sub, sub_info)
        else:
            yield Spec(None, name, info)


SPECS: tuple[Spec, ...] = tuple(_specs())
BY_KEY: dict[str, Spec] = {spec.key: spec for spec in SPECS}
BY_PATH: dict[str, Spec] = {spec.path: spec for spec in SPECS}
# old flat key -> dotted path: the TOML file's flat keys, and scripts/codemod_settings.py
FLAT_KEYS: dict[str, str] = {spec.key: spec.path for spec in SPECS}


# ---------------------------------------------------------------------------------------
# loading


class _DictSource(PydanticBaseSettingsSource):
    """Values already read (from the environment or a TOML file), as nested dicts."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


_SOURCES: contextvars.ContextVar[tuple[PydanticBaseSettingsSource, ...]] = contextvars.ContextVar(
    "moodgif_settings_sources", default=())


def _nest(flat: dict[str, Any], where: str) -> dict[str, Any]:
    """{"http_port": 1, "http__host": "x", "home": p} -> {"http": {"port": 1, "host": "x"}, ...}"""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        path = key.replace("__", ".")
        spec = BY_PATH.get(path) or BY_KEY.get(key)
        if spec is None:
            raise SettingsError(f"{where}: unknown setting {key!r}")
        if spec.group:
            out.setdefault(spec.group, {})[spec.name] = value
        else:
            out[spec.name] = value
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's settings as flat `group__field` / flat keys (tables and flat keys mixed)."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    data = data.get("moodgif", data)
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in Settings.model_fields:
                raise SettingsError(f"{path}: unknown setting table [{key}]")
            flat.update({f"{key}__{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    return flat


def _read_env(env: dict[str, str]) -> dict[str, Any]:
    return {spec.path.replace(".", "__"): env[spec.env] for spec in SPECS if spec.env in env}


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, the TOML file, the environment and overrides.

    Override keys are `group__field` (`ranking__poll_share=0.2`), top-level fields, or flat keys.
    """
    env = dict(os.environ if env is None else env)
    home_raw = overrides.get("home") or env.get("MOODGIF_HOME")
    home = _home(home_raw) if home_raw else Path(platformdirs.user_data_dir("moodgif", appauthor=False))
    config_file = overrides.get("config_file") or env.get("MOODGIF_CONFIG") or ""
    path = Path(config_file) if config_file else home / "moodgif.toml"
    if config_file and not path.is_file():  # named on purpose: a typo must not drop its settings
        raise SettingsError(f"MOODGIF_CONFIG names {path}, which is not a file")
    from_file = _nest(_read_toml(path), str(path)) if path.is_file() else {}
    from_env = _nest(_read_env(env), "environment")
    init = _nest(overrides, "override")
    init["home"] = init.get("home") or from_env.get("home") or from_file.get("home") or home
    init["config_file"] = str(path) if path.is_file() else ""
    sources = (_DictSource(Settings, from_env), _DictSource(Settings, from_file))
    where = {"file": str(path), "env": from_env}
    token = _SOURCES.set(sources)
    try:
        return _validated(lambda: Settings(**init), where)
    finally:
        _SOURCES.reset(token)


def _validated(build: Any, where: dict[str, Any]) -> Settings:
    try:
        return build()
    except ValidationError as exc:
        raise SettingsError(_explain(exc.errors()[0], where)) from None


def _explain(err: Any, where: dict[str, Any]) -> str:
    """One line naming the variable: 'MOODGIF_HTTP_PORT (http.port): ... got 'eighty''."""
    loc = [str(x) for x in err.get("loc", ())]
    spec = BY_PATH.get(".".join(loc[:2])) or BY_PATH.get(loc[0] if loc else "")
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if spec is None:
        return f"unknown setting {'.'.join(loc)!r}: {msg}"
    from_env = where.get("env", {})
    in_env = spec.name in (from_env.get(spec.group, {}) if spec.group else from_env)
    source = "" if in_env or "file" not in where else f" (from {where['file']})"
    got = repr(_shown(spec, err.get("input")))
    return f"{spec.env} ({spec.path}){source}: {msg}" + ("" if got in msg else f"; got {got}")


def _shown(spec: Spec, value: Any) -> Any:
    """A refused value as an error may print it (to a terminal, a journal): never a secret,
    never a database password, even in a URL too broken to parse."""
    if spec.secret:
        return "***"
    if spec.path == "database_url" and isinstance(value, str):
        return _mask_url(value) if "://" in value else "(hidden: it may hold a password)"
    return value


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


def rating_allowed(rating: str | None, ceiling: str) -> bool:
    """A GIF with no known rating counts as 'pg-13' (unknown is not assumed safe)."""
    r = rating if rating in RATINGS else "pg-13"
    return RATINGS.index(r) <= RATINGS.index(ceiling)

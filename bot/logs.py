"""Logging setup: plain or JSON lines, with every configured secret scrubbed."""

from __future__ import annotations

import json
import logging
import sys

from scorer.settings import Settings


class SecretScrubber(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class ScrubbingFormatter(logging.Formatter):
    """Scrubs the finished line too: tracebacks and exception messages carry secrets as well."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = [s for s in secrets if len(s) >= 4]

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def setup_logging(settings: Settings, level: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretScrubber(settings.secret_values()))
    if settings.log.json_output:
        handler.setFormatter(ScrubbingFormatter(JsonFormatter(), settings.secret_values()))
    else:
        handler.setFormatter(ScrubbingFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"), settings.secret_values()
        ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or getattr(logging, settings.log.level.upper(), logging.INFO))
    # apscheduler.executors: "Running job ..." and "... executed successfully" twice a minute
    # for good from the worker's job poll; its warnings (a missed run) and errors still show.
    for noisy in ("urllib3", "httpx", "sentence_transformers", "filelock", "alembic",
                  "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Logging setup: text or one JSON object per line, and secrets never reach the logs.

Secrets are masked twice over: by shape (``token=`` and ``key=`` query values,
bearer tokens, JWTs, URL passwords, fields named like secrets) and by value (the
configured HS256 secret and webhook secrets, given to the filter at start).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from live.settings import Settings

REDACTED = "[redacted]"
_SECRET_SHAPES = (
    (re.compile(r"((?:access_token|overlay_key|key|token|secret)=)[^&\s\"']+", re.I), r"\1"),
    (re.compile(r"(bearer\s+)[^\s\"',]+", re.I), r"\1"),
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), ""),  # a JWT
    (re.compile(r"(://[^/\s:@]*:)[^/\s@]+(?=@)"), r"\1"),  # a URL's password
)
_SECRET_FIELD = re.compile(r"token|secret|password|overlay_key|api_key|authorization", re.I)
CONTEXT_FIELDS = ("connection", "request_id", "room", "user")
"""``extra`` fields a JSON line carries when a log call gives them."""
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the HTTP request being handled (set by ``live.http.request_ids``):
every record logged while handling it carries it, uvicorn's access line included."""


def redact(text: str, known: Iterable[str] = ()) -> str:
    for pattern, keep in _SECRET_SHAPES:
        text = pattern.sub(keep + REDACTED, text)
    for secret in known:
        text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and context fields with secrets
    masked; ``secrets`` are values to mask wherever they appear. A record logged
    while an HTTP request is handled gets its ``request_id`` here (this filter is
    on every handler), masked like the other fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Short values would mask ordinary words: only real secrets are listed.
        self.secrets = tuple(s for s in secrets if len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a, self.secrets) if isinstance(a, str) else a for a in record.args
            )
        for name, value in list(vars(record).items()):
            if _SECRET_FIELD.search(name) and name not in CONTEXT_FIELDS:
                setattr(record, name, REDACTED)
            elif name in CONTEXT_FIELDS and isinstance(value, str):
                setattr(record, name, redact(value, self.secrets))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields
    the call gave, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def known_secrets(settings: Settings) -> list[str]:
    """The configured secret values: the HS256 secret, the metrics token, the
    webhook secrets and the payment and payout providers' keys."""
    return [
        settings.secret,
        settings.metrics_token,
        *settings.webhook_secrets().values(),
        settings.stripe_api_key,
        *settings.stripe_connect_secrets(),
    ]


def configure_logging(settings: Settings) -> None:
    """The root logger of a ``live`` command: its format, with secrets masked."""
    root = logging.getLogger()
    root.setLevel(settings.log_level.upper())
    for handler in root.handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactSecrets)]
        handler.addFilter(RedactSecrets(known_secrets(settings)))
        if settings.log_format == "json":
            handler.setFormatter(JsonFormatter())


def uvicorn_log_config(
    level: str, *, log_format: str = "text", secrets: Iterable[str] = ()
) -> dict[str, Any]:
    """uvicorn's default logging config with the redaction filter on every handler,
    and every formatter JSON when ``log_format`` is ``json``."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {
        "()": "live.logs.RedactSecrets",
        "secrets": list(secrets),
    }
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    if log_format == "json":
        config["formatters"] = {
            name: {"()": "live.logs.JsonFormatter"} for name in config.get("formatters", {})
        }
    config.setdefault("loggers", {})["live"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config

"""Logging setup: secrets in URLs (tokens, overlay keys) never reach the logs."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_SECRET_PARAMS = re.compile(r"((?:access_token|overlay_key|key|token)=)[^&\s\"']+", re.I)


def redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and arguments with query secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's default logging config with the redaction filter on every handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "live.logs.RedactSecrets"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    config.setdefault("loggers", {})["live"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config

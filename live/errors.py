"""Errors of the ``live`` package and how every error reaches a client.

Tree::

    LiveError                 code given per instance (a protocol error code)
    └── (store.errors.StoreError, protocol.ProtocolError, live.auth.AuthError are
         raised by the layers below and mapped here, never wrapped)

HTTP bodies are ``{"error": {"code": …, "message": …}}``; WebSocket clients get
an ``error`` event with the same code.
"""

from __future__ import annotations

from starlette.responses import Response

from live.json import json_response
from store.domain import refusals

BANNED = refusals.BANNED.template
"""The ``forbidden`` message of a banned user, wherever they are refused."""

STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "insufficient_funds": 402,
    "payment_declined": 402,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "room_not_live": 409,
    "price_changed": 409,
    "too_large": 413,
    "limit_exceeded": 422,
    "rate_limited": 429,
    "internal": 500,
    "provider_unavailable": 503,
}


class LiveError(Exception):
    """An error with a public code raised by the app itself (validation, auth)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_code(exc: BaseException) -> tuple[str, str]:
    """``(code, message)`` for any error we raise on purpose; ``internal`` otherwise."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(code, str) and code in STATUS_BY_CODE:
        return code, message
    return "internal", "internal error"


def error_response(code: str, message: str, *, status: int | None = None) -> Response:
    return json_response(
        {"error": {"code": code, "message": message}},
        status=status or STATUS_BY_CODE.get(code, 500),
    )

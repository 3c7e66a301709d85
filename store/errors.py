"""Errors raised by the storage layer.

Every error carries a stable ``code`` that maps one-to-one onto the wire
protocol's error codes, so the hub and the HTTP API can forward it unchanged.

Tree::

    StoreError                      code "internal"
    ├── BadRequest                  code "bad_request"
    ├── NotFound                    code "not_found"
    ├── Forbidden                   code "forbidden"
    ├── InsufficientFunds           code "insufficient_funds"
    ├── LimitExceeded               code "limit_exceeded"
    ├── RoomNotLive                 code "room_not_live"
    ├── Conflict                    code "conflict"
    ├── PriceChanged                code "price_changed"
    ├── RateLimited                 code "rate_limited"
    └── Unavailable                 code "internal" (a backend is down; retry)
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every storage error. ``code`` is stable and public."""

    code: str = "internal"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class BadRequest(StoreError):
    code = "bad_request"


class NotFound(StoreError):
    code = "not_found"


class Forbidden(StoreError):
    code = "forbidden"


class InsufficientFunds(StoreError):
    code = "insufficient_funds"


class LimitExceeded(StoreError):
    code = "limit_exceeded"


class RoomNotLive(StoreError):
    code = "room_not_live"


class Conflict(StoreError):
    """The idempotency key was already used for a request with other content."""

    code = "conflict"


class PriceChanged(StoreError):
    """The client showed a price that is no longer the gift's: nothing was charged."""

    code = "price_changed"


class Unavailable(StoreError):
    """A backend (database, Redis) cannot be reached; the operation did not happen."""

    code = "internal"


ERRORS_BY_CODE: dict[str, type[StoreError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        NotFound,
        Forbidden,
        InsufficientFunds,
        LimitExceeded,
        RoomNotLive,
        Conflict,
        PriceChanged,
    )
}


def error_from_code(code: str, message: str) -> StoreError:
    """Rebuild a typed error from its code (used by backends that report codes as strings)."""
    return ERRORS_BY_CODE.get(code, StoreError)(message)


class RateLimited(StoreError):
    """Too many actions of one user in a short time (chat comments in a room)."""

    code = "rate_limited"


ERRORS_BY_CODE[RateLimited.code] = RateLimited

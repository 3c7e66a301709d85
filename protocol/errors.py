"""Error codes, close codes and the exceptions of the wire protocol.

Every exception about data crossing the wire derives from ``ProtocolError`` and
carries a stable, public ``code`` (an ``ErrorCode``), so the hub can turn any of
them into an ``error`` event without knowing which one it caught.

Tree::

    ProtocolError               code "internal"
    ├── MalformedFrame          code "bad_request"  the connection closes with 1008
    ├── FrameTooLarge           code "too_large"    the connection closes with 1009
    ├── InvalidCommand          code "bad_request"  the connection stays open
    └── EncodeError             code "internal"     the server built an event it can't send

Misuse by the calling code (a wrong argument, an impossible configuration)
raises the usual ``TypeError`` or ``ValueError`` instead: that is a bug to fix,
not a condition to handle.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` event and of an HTTP error body; stable and public."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    LIMIT_EXCEEDED = "limit_exceeded"
    RATE_LIMITED = "rate_limited"
    ROOM_NOT_LIVE = "room_not_live"
    CONFLICT = "conflict"
    PRICE_CHANGED = "price_changed"
    TOO_LARGE = "too_large"
    INTERNAL = "internal"


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server sends, and what a client should do.

    - ``NORMAL`` 1000: the session is over; don't reconnect.
    - ``GOING_AWAY`` 1001: this server is shutting down; reconnect (and resume).
    - ``POLICY`` 1008: bad credentials, a forbidden action or a malformed frame;
      reconnecting unchanged fails again.
    - ``TOO_LARGE`` 1009: the client sent a frame over the size limit; a client bug.
    - ``INTERNAL_ERROR`` 1011: the server failed; reconnect with backoff.
    - ``RESTART`` 1012: the server restarts; reconnect (and resume).
    - ``TRY_AGAIN_LATER`` 1013: the room is full on this server; reconnect with
      backoff.
    - ``TOKEN_EXPIRED`` 4001: the access token expired and the server is set to
      close such connections; get a fresh token, then reconnect (with
      ``?since=<last seq>``). Not an automatic reconnect (``reconnect`` is false):
      with the old token it fails with 1008.
    - ``ROOM_NOT_FOUND`` 4004: no such room; don't reconnect.
    - ``TOO_SLOW`` 4008: the client fell too far behind the room; reconnect with
      ``?since=<last seq>`` to catch up.
    - ``ROOM_ENDED`` 4010: the creator ended the stream; don't reconnect.
    - ``RATE_LIMITED`` 4029: the client kept sending after being rate limited, or
      opened too many connections; a client bug, don't reconnect in a loop.
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_LARGE = 1009
    INTERNAL_ERROR = 1011
    RESTART = 1012
    TRY_AGAIN_LATER = 1013
    TOKEN_EXPIRED = 4001
    ROOM_NOT_FOUND = 4004
    TOO_SLOW = 4008
    ROOM_ENDED = 4010
    RATE_LIMITED = 4029

    @property
    def reconnect(self) -> bool:
        """Whether a well-behaved client reconnects (with backoff) after this close."""
        return self in _RECONNECT


_RECONNECT = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.INTERNAL_ERROR,
        CloseCode.RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.TOO_SLOW,
    }
)


class ProtocolError(Exception):
    """Root of the protocol's exceptions; ``code`` and ``message`` go to the client as is."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, command_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The offending command's id when it had a valid one, so the client can
        # match the error to its request.
        self.command_id = command_id


class MalformedFrame(ProtocolError):
    """The frame can't be decoded as a map of the negotiated codec: close with 1008."""

    code = ErrorCode.BAD_REQUEST


class FrameTooLarge(ProtocolError):
    """The frame is over ``Limits.max_frame_bytes``: close with 1009, before decoding it."""

    code = ErrorCode.TOO_LARGE


class InvalidCommand(ProtocolError):
    """A well-formed map that is not a valid command: reply with an error, stay open."""

    code = ErrorCode.BAD_REQUEST


class EncodeError(ProtocolError):
    """An event batch can't be encoded (empty, or a value the codec can't carry).

    A server bug, but one the fan-out loop must survive: it catches this, logs
    it and drops the batch instead of dying with the room.
    """

    code = ErrorCode.INTERNAL

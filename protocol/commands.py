"""Client-to-server commands: their types, the limits they obey, and validation.

Validation is strict about what the server reads and lenient about the rest:
unknown fields are ignored so that newer clients keep working against older
servers, but a field the server uses must have exactly the right type (a
``true`` or ``1.0`` is never a count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final, TypeGuard

from protocol.errors import InvalidCommand

__all__ = [
    "AlertDone",
    "Auth",
    "Chat",
    "Command",
    "Like",
    "Limits",
    "Ping",
    "SendGift",
    "command_id_of",
    "parse_command",
]


@dataclass(frozen=True, slots=True)
class SendGift:
    """Spend coins on ``count`` gifts; ``id`` is also the idempotency key of the charge."""

    TYPE: ClassVar[str] = "send_gift"
    id: str
    gift: str
    count: int
    coins: int | None = None
    """The unit price the client showed (optional): refused with ``price_changed``
    when the gift costs something else now."""


@dataclass(frozen=True, slots=True)
class Like:
    """Tap the like button ``count`` times (clients batch their taps)."""

    TYPE: ClassVar[str] = "like"
    id: str
    count: int


@dataclass(frozen=True, slots=True)
class Chat:
    """Post a comment to the room; ``text`` is already stripped."""

    TYPE: ClassVar[str] = "chat"
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Ping:
    """Ask for an ``ack``: lets a client measure latency and detect dead links."""

    TYPE: ClassVar[str] = "ping"
    id: str


@dataclass(frozen=True, slots=True)
class Auth:
    """Replace the connection's access token with a fresh one of the same user, so a
    long session outlives its token without reconnecting. ``token`` is only
    checked for shape here; the server verifies it."""

    TYPE: ClassVar[str] = "auth"
    id: str
    token: str


@dataclass(frozen=True, slots=True)
class AlertDone:
    """A paced connection finished showing ``alert`` (an ``alert`` event's id), so
    the server may send the next one (``protocol.pacing``)."""

    TYPE: ClassVar[str] = "alert_done"
    id: str
    alert: str


Command = SendGift | Like | Chat | Ping | Auth | AlertDone


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """What one connection may send; the defaults are the public, documented ones."""

    max_frame_bytes: int = 65_536
    max_id_chars: int = 64
    max_gift_id_chars: int = 64
    max_gift_count: int = 99
    max_like_count: int = 100
    max_chat_chars: int = 150
    # Token bucket: refilled at ``command_rate`` per second, holding at most ``command_burst``.
    command_rate: float = 10.0
    command_burst: int = 20
    max_token_chars: int = 8_192
    """An ``auth`` command's token: longer ones are refused before anyone parses them."""
    # Consecutive rate-limited commands after which the connection is closed with 4029.
    flood_strikes: int = 20

    def __post_init__(self) -> None:
        for name in (
            "max_frame_bytes",
            "max_id_chars",
            "max_gift_id_chars",
            "max_gift_count",
            "max_like_count",
            "max_chat_chars",
            "command_burst",
            "max_token_chars",
            "flood_strikes",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if not self.command_rate > 0:
            raise ValueError(f"Limits.command_rate must be positive, got {self.command_rate!r}")


_TYPES: Final = ("send_gift", "like", "chat", "ping", "auth", "alert_done")
_TOKEN = re.compile(r"^[A-Za-z0-9_=+/.-]+$")
"""The characters of a compact JWS (base64url parts and dots, lenient on padding)."""
_MISSING: Final = object()
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _valid_token(value: object, max_chars: int) -> TypeGuard[str]:
    """A non-empty, printable string of at most ``max_chars`` characters."""
    return isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable()


def _required_token(obj: dict[str, object], name: str, max_chars: int, command_id: str) -> str:
    """The field ``name``, a non-empty printable string of at most ``max_chars``."""
    value = obj.get(name, _MISSING)
    if value is _MISSING:
        raise InvalidCommand(f"missing field '{name}'", command_id=command_id)
    if not _valid_token(value, max_chars):
        raise InvalidCommand(
            f"{name} must be a non-empty string of at most {max_chars} printable characters",
            command_id=command_id,
        )
    return value


def _show(value: object) -> str:
    """A short, safe rendering of a client value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def command_id_of(obj: object, *, limits: Limits) -> str | None:
    """The command's ``id`` if the map has a valid one, so errors can carry it."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if _valid_token(value, limits.max_id_chars):
            return value
    return None


def _count(obj: dict[str, object], maximum: int, command_id: str) -> int:
    value = obj.get("count", _MISSING)
    if value is _MISSING:
        return 1
    if type(value) is not int or not 1 <= value <= maximum:
        raise InvalidCommand(f"count must be an integer from 1 to {maximum}", command_id=command_id)
    return value


def _shown_coins(obj: dict[str, object], command_id: str) -> int | None:
    value = obj.get("coins")
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise InvalidCommand("coins must be a positive integer", command_id=command_id)
    return value


def parse_command(obj: object, *, limits: Limits) -> Command:
    """Turn a decoded frame into a command, or raise ``InvalidCommand`` saying what's wrong."""
    if not isinstance(obj, dict):
        raise InvalidCommand("a command must be a map")
    command_id = command_id_of(obj, limits=limits)
    for key in obj:
        if not isinstance(key, str):
            raise InvalidCommand("map keys must be strings", command_id=command_id)

    kind = obj.get("type", _MISSING)
    if kind is _MISSING:
        raise InvalidCommand("missing field 'type'", command_id=command_id)
    if not isinstance(kind, str):
        raise InvalidCommand("type must be a string", command_id=command_id)
    if kind not in _TYPES:
        raise InvalidCommand(
            f"unknown command type {_show(kind)}; expected: {', '.join(_TYPES)}",
            command_id=command_id,
        )

    if command_id is None:
        if "id" not in obj:
            raise InvalidCommand("missing field 'id'")
        raise InvalidCommand(
            f"id must be a non-empty string of at most {limits.max_id_chars} printable characters"
        )

    if kind == "send_gift":
        gift = _required_token(obj, "gift", limits.max_gift_id_chars, command_id)
        count = _count(obj, limits.max_gift_count, command_id)
        return SendGift(command_id, gift, count, _shown_coins(obj, command_id))

    if kind == "like":
        return Like(command_id, _count(obj, limits.max_like_count, command_id))

    if kind == "chat":
        text = obj.get("text", _MISSING)
        if text is _MISSING:
            raise InvalidCommand("missing field 'text'", command_id=command_id)
        if not isinstance(text, str):
            raise InvalidCommand("text must be a string", command_id=command_id)
        text = text.strip()
        if not text:
            raise InvalidCommand("text must not be empty", command_id=command_id)
        if len(text) > limits.max_chat_chars:
            raise InvalidCommand(
                f"text must be at most {limits.max_chat_chars} characters",
                command_id=command_id,
            )
        if _CONTROL.search(text):
            raise InvalidCommand("text must not contain control characters", command_id=command_id)
        return Chat(command_id, text)

    if kind == "auth":
        return _auth(obj, limits, command_id)

    if kind == "alert_done":
        return AlertDone(command_id, _required_token(obj, "alert", limits.max_id_chars, command_id))

    return Ping(command_id)


def _auth(obj: dict[str, object], limits: Limits, command_id: str) -> Auth:
    token = obj.get("token", _MISSING)
    if token is _MISSING:
        raise InvalidCommand("missing field 'token'", command_id=command_id)
    if not isinstance(token, str) or not token:
        raise InvalidCommand("token must be a non-empty string", command_id=command_id)
    if len(token) > limits.max_token_chars:
        raise InvalidCommand(
            f"token must be at most {limits.max_token_chars} characters", command_id=command_id
        )
    if not _TOKEN.match(token):
        raise InvalidCommand("token must be a compact JWT", command_id=command_id)
    return Auth(command_id, token)

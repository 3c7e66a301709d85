"""Event subscriptions of creators' integrations: what is stored and queued.

A subscription sends a room's events of some types to a callback URL (the
webhook transport). Each event becomes a ``Delivery`` queued for it, delivered
in queue order, at least once; the engines keep both durably
(``store.roles.Subscriptions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

EVENT_TYPES: Final = (
    "gift",
    "like",
    "like_milestone",
    "chat",
    "join",
    "goal_progress",
    "goal_reached",
    "stream_started",
    "stream_ended",
    "item_purchase",
)
"""What a subscription may ask for (``gift`` includes each combo's end)."""

STATUSES: Final = ("enabled", "paused", "disabled")
"""``enabled`` queues and delivers; ``paused`` queues nothing new and delivers
nothing until resumed (what was queued waits); ``disabled`` was revoked after
failing too long (its queue was dropped), and may be resumed."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    id: str
    owner_id: str
    """The creator whose room it follows."""
    room_id: str
    types: tuple[str, ...]
    callback: str
    secret: str
    """The HMAC key of its signatures (kept to sign; never shown after creation
    or rotation)."""
    status: str = "enabled"
    app_id: str = ""
    """The integration app that created it, empty when the creator did."""
    created_at: int = 0
    failing_since: int | None = None
    """When deliveries started failing (None while they succeed)."""
    next_attempt_at: int = 0
    """No delivery before this (ms): the backoff after a failure."""
    last_error: str = ""
    disabled_reason: str = ""

    def public(self, *, pending: int | None = None) -> dict[str, Any]:
        """What its owner sees (never the secret)."""
        shown: dict[str, Any] = {
            "id": self.id,
            "room_id": self.room_id,
            "types": list(self.types),
            "callback": self.callback,
            "status": self.status,
            "app_id": self.app_id or None,
            "created_at": self.created_at,
            "failing_since": self.failing_since,
            "last_error": self.last_error or None,
            "disabled_reason": self.disabled_reason or None,
        }
        if pending is not None:
            shown["pending"] = pending
        return shown


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One message queued for one subscription."""

    subscription_id: str
    message_id: str
    """Unique per message, the same on every attempt (receivers de-duplicate by it)."""
    source: str
    """What it was made from (``room:seq:ts``, or the message id): the same event
    queued twice (by two nodes) is queued once."""
    type: str
    body: str
    """The JSON body, fixed when queued, so every attempt sends the same bytes."""
    created_at: int
    attempts: int = 0
    position: int = 0
    """Its place in the subscription's queue (set by the store)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class App:
    """An integration a creator authorized: its own client credentials, acting on
    that creator's subscriptions only."""

    client_id: str
    owner_id: str
    name: str
    secret_hash: str
    """SHA-256 of the client secret (a random secret: no slow hash needed)."""
    created_at: int

    def public(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "created_at": self.created_at,
        }


SUBSCRIPTION_COLUMNS: Final = (
    "id, owner_id, room_id, types, callback, secret, status, app_id, created_at,"
    " failing_since, next_attempt_at, last_error, disabled_reason"
)
"""The stored columns of a subscription, in ``subscription_from_row``'s order
(the same on both engines; ``types`` is comma-separated)."""
DELIVERY_COLUMNS: Final = (
    "subscription_id, message_id, source, type, body, created_at, attempts, position"
)
APP_COLUMNS: Final = "client_id, owner_id, name, secret_hash, created_at"


def _columns(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def subscription_row(s: Subscription) -> tuple[Any, ...]:
    """The values of ``SUBSCRIPTION_COLUMNS``, in order."""
    values = {name: getattr(s, name) for name in _columns(SUBSCRIPTION_COLUMNS)}
    values["types"] = ",".join(s.types)
    return tuple(values.values())


def subscription_from_row(row: Any) -> Subscription:
    values = dict(zip(_columns(SUBSCRIPTION_COLUMNS), row, strict=True))
    values["types"] = tuple(t for t in values["types"].split(",") if t)
    return Subscription(**values)


def delivery_from_row(row: Any) -> Delivery:
    return Delivery(**dict(zip(_columns(DELIVERY_COLUMNS), row, strict=True)))


def app_from_row(row: Any) -> App:
    return App(**dict(zip(_columns(APP_COLUMNS), row, strict=True)))


MAX_ERROR_CHARS: Final = 300
"""A failure's note is cut to this."""

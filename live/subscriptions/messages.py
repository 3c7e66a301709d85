"""What a subscription is sent: which room events it gets, and the JSON body.

``ROOM_EVENT_TYPES`` maps a room event (``protocol.events``) to the
subscription type it is delivered as; a new room event is offered to
subscriptions by adding it here. Events that are not room events (a stream
started, an item bought in the room) are handed to ``Subscriptions.notify``.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from store.domain.subscriptions import Delivery, Subscription
from store.ids import new_id

ROOM_EVENT_TYPES: Final[dict[str, str]] = {
    "gift": "gift",
    "like": "like",
    "chat": "chat",
    "join": "join",
    "goal": "goal_progress",
    "goal_reached": "goal_reached",
    "room_ended": "stream_ended",
}
"""Room event type -> subscription type (``gift`` includes each combo's end:
``combo.end`` true)."""


def like_milestone(event: dict[str, Any], every: int) -> dict[str, Any] | None:
    """The ``like_milestone`` a ``like`` event reaches (its running total passed a
    multiple of ``every``), if any."""
    total, count = event.get("total"), event.get("count")
    if not isinstance(total, int) or not isinstance(count, int):
        return None
    if total // every <= (total - count) // every:
        return None
    return {"type": "like_milestone", "milestone": total // every * every, "total": total}


def delivery(
    subscription: Subscription,
    *,
    event_type: str,
    event: dict[str, Any],
    source: str,
    created_at: int,
    test: bool = False,
) -> Delivery:
    """One notification of ``event`` for ``subscription``, its body fixed now."""
    message_id = new_id("msg")
    body = {
        "id": message_id,
        "type": event_type,
        "subscription_id": subscription.id,
        "room_id": subscription.room_id,
        "created_at": created_at,
        "test": test,
        "event": event,
    }
    return Delivery(
        subscription_id=subscription.id,
        message_id=message_id,
        source=source,
        type=event_type,
        body=orjson.dumps(body).decode(),
        created_at=created_at,
    )

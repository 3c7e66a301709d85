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
from store.ids import new_id, now_ms

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


def test_delivery(subscription: Subscription, event_type: str) -> Delivery:
    """A made-up ``event_type`` message for this subscription alone, ``test: true``
    (``POST /v1/subscriptions/{id}/test``, ``live subscriptions trigger``)."""
    return delivery(
        subscription,
        event_type=event_type,
        event=sample_event(event_type),
        source=new_id("test"),
        created_at=now_ms(),
        test=True,
    )


def sample_event(event_type: str) -> dict[str, Any]:
    """A made-up event of the type, for ``send_test`` (``live subscriptions test``)."""
    viewer = {"id": "test", "username": "test_viewer", "display_name": "Test Viewer", "avatar": ""}
    samples: dict[str, dict[str, Any]] = {
        "gift": {
            "type": "gift",
            "tx": "test",
            "gift": {"id": "rose", "name": "Rose", "coins": 1},
            "sender": viewer,
            "count": 1,
            "diamonds": 0,
            "combo": {"id": "test", "count": 1, "end": True},
        },
        "like": {"type": "like", "sender": viewer, "count": 10, "total": 1_000},
        "like_milestone": {"type": "like_milestone", "milestone": 1_000, "total": 1_000},
        "chat": {"type": "chat", "id": "test", "sender": viewer, "text": "hello"},
        "join": {"type": "join", "users": [viewer]},
        "goal_progress": {"type": "goal", "target": 100, "progress": 50, "title": "Test goal"},
        "goal_reached": {"type": "goal_reached", "target": 100, "progress": 100, "title": "Test"},
        "stream_started": {"type": "stream_started", "title": "Test stream", "stream_id": 1},
        "stream_ended": {"type": "room_ended"},
        "item_purchase": {"type": "item_purchase", "buyer": viewer, "item": {"id": "test"}},
    }
    return samples[event_type]

"""Builders for server-to-client events.

Events are plain dicts, not classes: they are built on the hot path, stamped
by the broker, merged by the coalescer and encoded once for every viewer, and
a dict goes through all of that without conversions. The builders exist so
that field names are spelled in one place.

Room events (``ROOM_EVENT_TYPES``) are seen by everyone in the room; the broker
stamps them with ``seq`` and ``ts``, so the builders never set those two.
Connection events (``CONNECTION_EVENT_TYPES``) go to one connection only and
carry no ``seq``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocol.errors import ErrorCode

__all__ = [
    "CONNECTION_EVENT_TYPES",
    "ROOM_EVENT_TYPES",
    "Event",
    "ack",
    "catalog",
    "chat",
    "chat_deleted",
    "entrance",
    "error",
    "gift",
    "goal",
    "goal_reached",
    "join",
    "leaderboard",
    "like",
    "room_ended",
    "stream_effect",
    "viewers",
    "welcome",
]

Event = dict[str, Any]

ROOM_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "gift",
        "like",
        "chat",
        "chat_deleted",
        "join",
        "viewers",
        "leaderboard",
        "goal",
        "goal_reached",
        "room_ended",
        "entrance",
        "stream_effect",
    }
)
CONNECTION_EVENT_TYPES: frozenset[str] = frozenset({"welcome", "ack", "error", "catalog"})


def welcome(
    *,
    session: str,
    room: Mapping[str, Any],
    you: Mapping[str, Any] | None,
    seq: int,
    viewers: int,
    leaderboard: Sequence[Mapping[str, Any]],
    goal: Mapping[str, Any] | None,
    resumed: bool,
    catalog_version: int | None = None,
    stream_effect: Mapping[str, Any] | None = None,
) -> Event:
    """The first frame of a connection: who you are and the room as of ``seq``."""
    event: Event = {
        "type": "welcome",
        "session": session,
        "room": room,
        "you": you,
        "seq": seq,
        "viewers": viewers,
        "leaderboard": leaderboard,
        "goal": goal,
        "resumed": resumed,
    }
    if catalog_version is not None:
        event["catalog_version"] = catalog_version
    if stream_effect is not None:
        event["stream_effect"] = stream_effect
    return event


def gift(
    *,
    tx: str,
    gift: Mapping[str, Any],
    sender: Mapping[str, Any],
    count: int,
    combo: Mapping[str, Any],
    diamonds: int,
) -> Event:
    """A gift was sent; ``combo`` lets overlays merge a streak into one animation."""
    return {
        "type": "gift",
        "tx": tx,
        "gift": gift,
        "sender": sender,
        "count": count,
        "combo": combo,
        "diamonds": diamonds,
    }


def like(*, sender: Mapping[str, Any], count: int, total: int) -> Event:
    """Likes from one sender, aggregated; ``total`` is the room's running total."""
    return {"type": "like", "sender": sender, "count": count, "total": total}


def chat(*, id: str, sender: Mapping[str, Any], text: str) -> Event:
    """A comment; ``id`` is the server's, so moderation can refer to it."""
    return {"type": "chat", "id": id, "sender": sender, "text": text}


def join(*, users: Sequence[Mapping[str, Any]] | None = None, count: int | None = None) -> Event:
    """Viewers joined: named when few, only counted when a crowd arrives at once."""
    if (users is None) == (count is None):
        raise TypeError("join() takes exactly one of users or count")
    if users is not None:
        return {"type": "join", "users": users}
    return {"type": "join", "count": count}


def viewers(*, count: int) -> Event:
    """The viewer count changed (throttled by the hub)."""
    return {"type": "viewers", "count": count}


def leaderboard(*, top: Sequence[Mapping[str, Any]]) -> Event:
    """The room's top gifters changed (throttled by the hub)."""
    return {"type": "leaderboard", "top": top}


def goal(*, target: int, progress: int, title: str, reached: bool = False) -> Event:
    """The creator's diamond goal was set or moved; ``reached`` once progress hit target."""
    return {
        "type": "goal",
        "target": target,
        "progress": progress,
        "title": title,
        "reached": reached,
    }


def goal_reached(*, target: int, progress: int, title: str) -> Event:
    """The creator's goal was reached (sent once per goal)."""
    return {"type": "goal_reached", "target": target, "progress": progress, "title": title}


def chat_deleted(*, id: str, user: str) -> Event:
    """A moderator removed the chat message ``id`` sent by the user with id ``user``."""
    return {"type": "chat_deleted", "id": id, "user": user}


def entrance(*, user: Mapping[str, Any], effect: Mapping[str, Any]) -> Event:
    """``user`` joined with an entrance effect equipped: play ``effect`` (an item:
    ``id``, ``name``, ``image``, ``asset``) for everyone in the room."""
    return {"type": "entrance", "user": user, "effect": effect}


def stream_effect(*, effect: Mapping[str, Any] | None) -> Event:
    """The creator's effect over the stream changed: show ``effect`` (``id``,
    ``name``, ``image``, ``asset``) over the video, or nothing when ``None``."""
    return {"type": "stream_effect", "effect": effect}


def room_ended() -> Event:
    """The creator ended the stream; the server closes with 4010 right after."""
    return {"type": "room_ended"}


# -- the catalog ------------------------------------------------------------------
def catalog(*, version: int) -> Event:
    """The gift catalog changed (to ``version``): read ``GET /v1/gifts`` again."""
    return {"type": "catalog", "version": version}


# ---------------------------------------------------------------------------------
def ack(*, id: str, **result: Any) -> Event:
    """A command succeeded; ``result`` holds its outcome (``tx``, ``balance`` for a gift)."""
    if "type" in result:
        raise TypeError("ack() result cannot be named 'type'")
    return {"type": "ack", "id": id, **result}


def error(*, id: str | None, code: ErrorCode | str, message: str) -> Event:
    """A command failed (``id`` is its id) or the connection is about to close (``id`` null)."""
    return {"type": "error", "id": id, "code": str(code), "message": message}

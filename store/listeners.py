"""A room's local broker listeners, shared by both engines' brokers.

A listener may subscribe to a room several times: it receives each event once
and stays subscribed until every subscription is closed, so listeners are
counted by identity (they need not be hashable). Delivery is safe: a listener
that raises is logged and skipped, the others still get the events.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from store.domain.models import Event
from store.roles import BrokerListener

log = logging.getLogger(__name__)


class RoomListeners:
    """The listeners of one room on this node, with their open subscriptions."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[int, tuple[BrokerListener, int]] = {}
        """id(listener) -> (listener, open subscriptions it holds)."""

    def __len__(self) -> int:
        """Distinct listeners."""
        return len(self._entries)

    def add(self, listener: BrokerListener) -> None:
        _, count = self._entries.get(id(listener), (listener, 0))
        self._entries[id(listener)] = (listener, count + 1)

    def release(self, listener: BrokerListener) -> bool:
        """Close one of the listener's subscriptions; ``True`` when that was the
        room's last one (the room has no listener left)."""
        key = id(listener)
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry[1] > 1:
            self._entries[key] = (listener, entry[1] - 1)
            return False
        del self._entries[key]
        return not self._entries

    def clear(self) -> None:
        self._entries.clear()

    def events(self, room_id: str, events: list[Event]) -> None:
        """Hand the events to every listener (all receive the same list)."""
        for listener in self._listeners():
            try:
                listener.on_events(room_id, events)
            except Exception:
                log.exception("broker listener failed on room %s", room_id)

    def reset(self, room_id: str) -> None:
        for listener in self._listeners():
            try:
                listener.on_reset(room_id)
            except Exception:
                log.exception("broker listener failed on reset of room %s", room_id)

    def signal(self, room_id: str, message: dict[str, Any]) -> None:
        """Hand the message to each listener that has an ``on_signal``."""
        for listener in self._listeners():
            handler = getattr(listener, "on_signal", None)
            if handler is None:
                continue
            try:
                handler(room_id, message)
            except Exception:
                log.exception("broker listener failed on a signal of room %s", room_id)

    def _listeners(self) -> list[BrokerListener]:
        # a copy: a listener may subscribe or close while being called
        return [listener for listener, _count in self._entries.values()]


async def _released() -> None:
    pass


class ListenerSubscription:
    """One ``subscribe`` call; ``close`` releases it once (closing again is a no-op)."""

    __slots__ = ("_closed", "_release")

    def __init__(self, release: Callable[[], Awaitable[None]]) -> None:
        self._release = release
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        release, self._release = self._release, _released
        # Not kept: the release reaches the listener, which often holds this
        # subscription; the pair would wait for the garbage collector.
        await release()

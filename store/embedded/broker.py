"""The embedded engine's broker: room fan-out inside one process.

There is one node, so the guarantees of ``store.base.Broker`` come cheap: a
per-room counter stamps ``seq`` (strictly increasing, gap-free), delivery is a
synchronous call to each listener on the event loop (in order, exactly once),
and a bounded per-room history serves resumes. Nothing here ever interrupts a
subscription, so ``on_reset`` is never called.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store.domain.models import Event
from store.ids import now_ms
from store.roles import BrokerListener

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _RoomState:
    seq: int = 0
    history: deque[Event] = field(default_factory=deque)
    listeners: dict[int, tuple[BrokerListener, int]] = field(default_factory=dict)
    """id(listener) -> (listener, open subscriptions it holds). Keyed by identity so
    listeners need not be hashable."""


class MemorySubscription:
    """One ``subscribe`` call; ``close`` releases it once (closing again is a no-op)."""

    def __init__(self, broker: MemoryBroker, room_id: str, listener: BrokerListener) -> None:
        self._broker = broker
        self._room_id = room_id
        self._listener = listener
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._broker._release(self._room_id, self._listener)


class MemoryBroker:
    """``Broker`` for one process.

    ``history`` keeps, per room, at most ``history_size`` events and none older
    than ``history_seconds``. A listener that subscribes several times receives
    each event once and stays subscribed until every subscription is closed.
    """

    def __init__(
        self,
        *,
        history_size: int,
        history_seconds: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if history_size < 1 or history_seconds <= 0:
            raise ValueError("history_size must be >= 1 and history_seconds > 0")
        self._size = history_size
        self._max_age_ms = int(history_seconds * 1000)
        self._clock = clock
        self._rooms: dict[str, _RoomState] = {}

    def _room(self, room_id: str) -> _RoomState:
        state = self._rooms.get(room_id)
        if state is None:
            state = self._rooms[room_id] = _RoomState(history=deque(maxlen=self._size))
        return state

    def _expire(self, state: _RoomState, now: int) -> None:
        cutoff = now - self._max_age_ms
        history = state.history
        while history and history[0]["ts"] < cutoff:
            history.popleft()

    async def publish(self, room_id: str, events: list[Event]) -> list[Event]:
        """Stamp ``seq``/``ts`` in place, keep them for resume, deliver them now.

        Listeners all receive the same list: they must not mutate it. A listener
        that raises is logged and skipped; the others still get the events."""
        if not events:
            return events
        state = self._room(room_id)
        now = self._clock()
        for event in events:
            state.seq += 1
            event["seq"] = state.seq
            event["ts"] = now
            state.history.append(event)
        self._expire(state, now)
        for listener, _count in list(state.listeners.values()):
            try:
                listener.on_events(room_id, events)
            except Exception:
                log.exception("broker listener failed on room %s", room_id)
        return events

    async def subscribe(self, room_id: str, listener: BrokerListener) -> MemorySubscription:
        state = self._room(room_id)
        _, count = state.listeners.get(id(listener), (listener, 0))
        state.listeners[id(listener)] = (listener, count + 1)
        return MemorySubscription(self, room_id, listener)

    def _release(self, room_id: str, listener: BrokerListener) -> None:
        state = self._rooms.get(room_id)
        if state is None:
            return
        key = id(listener)
        entry = state.listeners.get(key)
        if entry is None:
            return
        if entry[1] > 1:
            state.listeners[key] = (listener, entry[1] - 1)
        else:
            del state.listeners[key]

    async def history(self, room_id: str, *, since: int) -> list[Event] | None:
        """Events with ``seq > since`` in order; ``None`` if any of them has already
        left the window; ``[]`` when ``since`` is at or past the last seq. A
        negative ``since`` counts as 0 (everything)."""
        since = max(since, 0)
        state = self._rooms.get(room_id)
        last = state.seq if state is not None else 0
        if since >= last:
            return []
        if state is None:
            return None
        self._expire(state, self._clock())
        oldest = state.history[0]["seq"] if state.history else last + 1
        if since < oldest - 1:
            return None
        return list(itertools.islice(state.history, since - oldest + 1, None))

    async def last_seq(self, room_id: str) -> int:
        state = self._rooms.get(room_id)
        return state.seq if state is not None else 0

    def listeners(self, room_id: str) -> int:
        """Distinct listeners subscribed to the room (for metrics and tests)."""
        state = self._rooms.get(room_id)
        return len(state.listeners) if state is not None else 0

    async def signal(self, room_id: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to each listener's ``on_signal`` now (no seq, no history)."""
        state = self._rooms.get(room_id)
        if state is None:
            return
        for listener, _count in list(state.listeners.values()):
            handler = getattr(listener, "on_signal", None)
            if handler is None:
                continue
            try:
                handler(room_id, message)
            except Exception:
                log.exception("broker listener failed on a signal of room %s", room_id)

    async def close(self) -> None:
        """Drop every subscription; seq counters and history stay for a late resume."""
        for state in self._rooms.values():
            state.listeners.clear()

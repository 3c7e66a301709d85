"""The embedded engine's broker: room fan-out inside one process.

There is one node, so the guarantees of ``store.roles.Broker`` come cheap: a
per-room counter stamps ``seq`` (strictly increasing, gap-free), delivery is a
synchronous call to each listener on the event loop (in order, exactly once),
and a bounded per-room history serves resumes. Nothing here ever interrupts a
subscription, so ``on_reset`` is never called.

The history keeps each event encoded (``seq``, ``ts`` and its JSON bytes), not
the event's dicts: two minutes of every room's events are the bulk of a busy
process's long-lived objects, and as dicts the garbage collector's full passes
walked all of them, stopping the process for 100 ms and more
(docs/PERFORMANCE.md). Bytes and tuples of numbers are not tracked by the
collector; a resume, which is rare, decodes what it needs. Each event is kept in
bytes of its own size (``_encoded``), and a room that stops publishing loses
its history once it is older than the window, like one that goes on.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from store.domain.models import Event
from store.ids import now_ms
from store.listeners import ListenerSubscription, RoomListeners
from store.roles import BrokerListener

_ENCODE_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def _encoded(event: Event) -> bytes:
    """The event as JSON in bytes of its own size. orjson hands back its working
    buffer, 4 KiB or more, with only the length set, so every kept event of about
    500 bytes held 4 KiB: 12 KiB of memory per gift for the two minutes of the
    window, and for good in rooms that stopped publishing (docs/PERFORMANCE.md)."""
    return bytes(memoryview(orjson.dumps(event, option=_ENCODE_OPTIONS)))


Kept = tuple[int, int, bytes]
"""An event in the history: its ``seq``, its ``ts`` and the event as JSON."""


@dataclass(slots=True)
class _RoomState:
    seq: int = 0
    history: deque[Kept] = field(default_factory=deque)
    listeners: RoomListeners = field(default_factory=RoomListeners)


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
        self._by_last_publish: OrderedDict[str, _RoomState] = OrderedDict()
        """Rooms with a history, the one that published longest ago first: what
        ages out of rooms that no longer publish."""

    def _room(self, room_id: str) -> _RoomState:
        state = self._rooms.get(room_id)
        if state is None:
            state = self._rooms[room_id] = _RoomState(history=deque(maxlen=self._size))
        return state

    @staticmethod
    def _expire(state: _RoomState, cutoff: int) -> None:
        history = state.history
        while history and history[0][1] < cutoff:
            history.popleft()

    def _expire_idle(self, cutoff: int) -> None:
        """Empty the history of every room whose last event is older than the window."""
        rooms = self._by_last_publish
        while rooms:
            room_id, state = next(iter(rooms.items()))
            if state.history and state.history[-1][1] >= cutoff:
                return
            state.history.clear()
            del rooms[room_id]

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
            state.history.append((state.seq, now, _encoded(event)))
        rooms = self._by_last_publish
        rooms[room_id] = state
        rooms.move_to_end(room_id)
        cutoff = now - self._max_age_ms
        self._expire(state, cutoff)
        self._expire_idle(cutoff)
        state.listeners.events(room_id, events)
        return events

    async def subscribe(self, room_id: str, listener: BrokerListener) -> ListenerSubscription:
        state = self._room(room_id)
        state.listeners.add(listener)

        async def release() -> None:
            state.listeners.release(listener)

        return ListenerSubscription(release)

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
        self._expire(state, self._clock() - self._max_age_ms)
        oldest = state.history[0][0] if state.history else last + 1
        if since < oldest - 1:
            return None
        kept = itertools.islice(state.history, since - oldest + 1, None)
        return [orjson.loads(encoded) for _, _, encoded in kept]

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
        if state is not None:
            state.listeners.signal(room_id, message)

    async def close(self) -> None:
        """Drop every subscription; seq counters and history stay for a late resume."""
        for state in self._rooms.values():
            state.listeners.clear()

"""WebSocket keepalive for every connection of a process, from one timer.

uvicorn gives each connection two timers of its own (the next ping, then the
pong's deadline): with 10,000 viewers a process holds 10,000 timer handles and
re-arms one 500 times a second. And the deadline is a plain wall-clock one: a
process that falls behind (a crowd arriving on a busy machine) has its pong
deadlines expire before it has read the pongs waiting in its own sockets, and
closes live peers with 1011 for its own lateness.

``KeepaliveClock`` is one per event loop. Connections wait in slots of one tick
(at most a second, and a quarter of the ping interval or timeout when those are
shorter), and one timer a tick pings those whose interval is up and closes
those whose pong is overdue. Time counts on the keepalive clock, which advances
with the loop's own progress: a tick that comes late counts for at most
``LATE_TICK_CREDIT`` ticks, so the seconds a process spends unable to run are
not held against its peers (while the process is late, it also pings less).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol

LATE_TICK_CREDIT = 2.0
"""A tick counts for at most this many ticks of the keepalive clock, however
late it runs."""
MAX_TICK_SECONDS = 1.0


class KeepalivePeer(Protocol):
    """What the clock needs of a connection (``LiveWebSocketProtocol``)."""

    def keepalive_due(self, clock: KeepaliveClock) -> None:
        """The connection's slot came up: ping it, or close it if its pong is overdue."""


class KeepaliveClock:
    """The keepalive of one event loop's connections (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, interval: float, timeout: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("keepalive interval and timeout must be > 0")
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self.tick = min(MAX_TICK_SECONDS, interval / 4, timeout / 4)
        self.now = 0.0
        """The keepalive clock: seconds the loop kept up with since it started."""
        self._slots: dict[int, set[KeepalivePeer]] = {}
        self._slot_of: dict[KeepalivePeer, int] = {}
        self._next_slot = 0
        self._last_tick = loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def schedule(self, peer: KeepalivePeer, *, after: float) -> None:
        """Call ``peer.keepalive_due`` once ``after`` seconds of the keepalive clock
        have passed (replacing any earlier call it was waiting for)."""
        self.discard(peer)
        # Round up: never early; a slot that has come up already runs at the next tick.
        slot = max(-int(-(self.now + after) // self.tick), self._next_slot)
        self._slots.setdefault(slot, set()).add(peer)
        self._slot_of[peer] = slot
        if self._timer is None:
            self._last_tick = self.loop.time()
            self._timer = self.loop.call_later(self.tick, self._on_tick)

    def discard(self, peer: KeepalivePeer) -> None:
        slot = self._slot_of.pop(peer, None)
        if slot is not None:
            waiting = self._slots[slot]
            waiting.discard(peer)
            if not waiting:
                del self._slots[slot]

    def _on_tick(self) -> None:
        self._timer = None
        now = self.loop.time()
        self.now += min(now - self._last_tick, self.tick * LATE_TICK_CREDIT)
        self._last_tick = now
        current = int(self.now // self.tick)
        while self._next_slot <= current:
            due = self._slots.pop(self._next_slot, None)
            self._next_slot += 1
            if due:
                for peer in due:
                    del self._slot_of[peer]
                for peer in due:
                    peer.keepalive_due(self)
        if self._slot_of:
            self._timer = self.loop.call_later(self.tick, self._on_tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._slot_of.clear()


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KeepaliveClock] = (
    weakref.WeakKeyDictionary()
)


def keepalive_clock(
    loop: asyncio.AbstractEventLoop, *, interval: float, timeout: float
) -> KeepaliveClock:
    """The loop's clock (made on first use; one server per loop sets the times)."""
    clock = _CLOCKS.get(loop)
    if clock is None or clock.interval != interval or clock.timeout != timeout:
        if clock is not None and len(clock):
            raise RuntimeError("one event loop's connections share one keepalive setting")
        clock = _CLOCKS[loop] = KeepaliveClock(loop, interval=interval, timeout=timeout)
    return clock

"""Connection deadlines for every connection of a process, from one timer each:
the WebSocket keepalive and the handshake's deadlines.

uvicorn gives each connection two timers of its own (the next ping, then the
pong's deadline), and ``live serve`` two more while it connects (the request's
headers, then the upgrade's acceptance): with 10,000 viewers a process holds
10,000 timer handles and re-arms one 500 times a second. And each deadline is a
plain wall-clock one: a process that falls behind (a crowd arriving on a busy
machine) has the deadlines expire before it has read what waits in its own
sockets (the pongs, the requests' headers), and closes live peers with 1011, or
aborts a handshake the client made in time, for its own lateness.

``ConnectionClock`` is one per event loop and purpose. Connections wait in slots
of one tick, and one timer a tick calls those whose time is up. Time counts on
the clock's own seconds, which advance with the loop's progress: a tick that
comes late counts for at most ``LATE_TICK_CREDIT`` ticks, so the seconds a
process spends unable to run are not held against its peers (while the process
is late, it also pings less).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable

LATE_TICK_CREDIT = 2.0
"""A tick counts for at most this many ticks of the clock, however late it runs."""
MAX_TICK_SECONDS = 1.0


class ConnectionClock:
    """The deadlines of one event loop's connections for one purpose (see the
    module docstring). The tick is a second, or a quarter of ``shortest`` (the
    shortest delay it is used for) when that is less."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, shortest: float) -> None:
        if shortest <= 0:
            raise ValueError("a connection clock's delays must be > 0")
        self.loop = loop
        self.tick = min(MAX_TICK_SECONDS, shortest / 4)
        self.now = 0.0
        """The clock: seconds the loop kept up with since it started."""
        self._slots: dict[int, dict[Hashable, Callable[[], None]]] = {}
        self._slot_of: dict[Hashable, int] = {}
        self._next_slot = 0
        self._last_tick = loop.time()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def schedule(self, key: Hashable, *, after: float, call: Callable[[], None]) -> None:
        """Call ``call`` once ``after`` seconds of this clock have passed, replacing
        whatever ``key`` (the connection) was waiting for."""
        self.discard(key)
        # Round up: never early; a slot that has come up already runs at the next tick.
        slot = max(-int(-(self.now + after) // self.tick), self._next_slot)
        self._slots.setdefault(slot, {})[key] = call
        self._slot_of[key] = slot
        if self._timer is None:
            self._last_tick = self.loop.time()
            self._timer = self.loop.call_later(self.tick, self._on_tick)

    def discard(self, key: Hashable) -> None:
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            waiting = self._slots[slot]
            del waiting[key]
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
                for key in due:
                    del self._slot_of[key]
                for call in due.values():
                    call()
        if self._slot_of:
            self._timer = self.loop.call_later(self.tick, self._on_tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._slot_of.clear()


_CLOCKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float], ConnectionClock]
] = weakref.WeakKeyDictionary()


def connection_clock(
    loop: asyncio.AbstractEventLoop, purpose: str, *, shortest: float
) -> ConnectionClock:
    """The loop's clock for ``purpose`` (made on first use)."""
    clocks = _CLOCKS.get(loop)
    if clocks is None:
        clocks = _CLOCKS[loop] = {}
    clock = clocks.get((purpose, shortest))
    if clock is None:
        clock = clocks[(purpose, shortest)] = ConnectionClock(loop, shortest=shortest)
    return clock

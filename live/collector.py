"""The garbage collector tuned for a server whose acks are timed in milliseconds.

CPython's cycle collector stops the whole process (the event loop and, through
the GIL, the SQLite writer thread) while it runs. With the default thresholds
(700 allocations per young pass) a gift's short-lived objects, alive across a
group commit's few milliseconds, are promoted into the old generation, and every
few seconds a full pass walks everything the process holds: the imported
modules, the catalog, every connection. Measured on ``bench sustained`` (1,600
gifters in 1,600 rooms at 250 gifts/s) those full passes paused the loop for
80-500 ms every 5-10 s, which was the ack p99.

Three changes, all settings (docs/OPERATIONS.md):

- a larger young generation (``LIVE_GC_YOUNG_THRESHOLD``): a gift's objects
  die young (by reference count or in a short young pass) instead of being
  promoted, so the old generation grows only with what really lives long and
  full passes become rare;
- young passes on the event loop's clock as well (``LIVE_GC_YOUNG_SECONDS``):
  CPython counts allocations *net of frees*, and a server frees its older
  objects (each connection's state of its last message, a room's recent
  events) as fast as it makes new ones, so under steady load the count
  hardly moves. Measured at 375-844 gifts/s, young passes came every 5-20 s
  and walked up to 85,000 objects, 40-76 ms each: the ack p99. A pass every
  second walks only that second's survivors (5-20 ms). The middle
  generation is then collected every 100 young passes, not 10, which keeps
  its passes (tens of ms: every medium-lived object still alive) about as
  rare as the allocation count alone made them;
- ``gc.freeze()`` once start-up is done (``LIVE_GC_FREEZE``): what the process
  built to start (modules, classes, the catalog, the engine's connections) is
  moved out of the collector's view, so a full pass walks only what came since.
  Frozen objects are still freed by reference counting; a cycle among them
  would stay, and start-up leaves none worth collecting (a full pass runs just
  before the freeze).

Each pass is timed into ``live_gc_pause_seconds`` (by generation), so the
effect shows on a dashboard rather than only as an ack tail.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

GC_OLDER_THRESHOLDS: Final = (10, 10)
"""CPython's own thresholds of the middle and old generations, kept when young
passes follow the allocation count alone."""
CLOCKED_OLDER_THRESHOLDS: Final = (100, 10)
"""The middle and old generations' thresholds when young passes also run on the
clock: a middle pass every 100 young ones (see the module docstring)."""

PauseObserver = Callable[[int, float], None]
"""Told of each finished collection: its generation and its pause in seconds."""


@dataclass(slots=True)
class CollectorTuning:
    """Applies the thresholds and the freeze, and times the passes until ``close``."""

    young_threshold: int
    freeze: bool
    observe: PauseObserver | None = None
    young_seconds: float = 0.0
    """A young pass at least this often, on the running event loop (0: only by
    the allocation count)."""
    _previous: tuple[int, int, int] | None = None
    _clock: asyncio.TimerHandle | None = field(default=None, repr=False)
    _started: float = 0.0
    _callback: Callable[[str, dict[str, Any]], None] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Call once the server has started (before it takes connections), on its
        event loop when ``young_seconds`` is set."""
        if self._previous is not None:
            return
        self._previous = gc.get_threshold()
        if self.observe is not None:  # first: the start-up pass below is timed too
            self._callback = self._timed
            gc.callbacks.append(self._callback)
        if self.freeze:
            gc.collect()  # nothing start-up left as garbage gets frozen with the rest
            gc.freeze()
        clocked = self.young_seconds > 0
        if clocked:
            self._clock = asyncio.get_running_loop().call_later(self.young_seconds, self._tick)
        if self.young_threshold > 0 or clocked:
            young = self.young_threshold or self._previous[0]
            older = CLOCKED_OLDER_THRESHOLDS if clocked else GC_OLDER_THRESHOLDS
            gc.set_threshold(young, *older)

    def _tick(self) -> None:
        gc.collect(0)
        self._clock = asyncio.get_running_loop().call_later(self.young_seconds, self._tick)

    def close(self) -> None:
        """Put the thresholds back, unfreeze and stop timing. The process may go on
        (an app embedded in another, a test run): what was frozen would otherwise
        never be collected, cycles holding sockets included."""
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        if self._callback is not None:
            if self._callback in gc.callbacks:
                gc.callbacks.remove(self._callback)
            self._callback = None
        if self._previous is not None:
            gc.set_threshold(*self._previous)
            self._previous = None
            if self.freeze:
                gc.unfreeze()

    def _timed(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.observe is not None and self._started:
            self.observe(int(info["generation"]), time.perf_counter() - self._started)
            self._started = 0.0

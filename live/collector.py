"""The garbage collector tuned for a server whose acks are timed in milliseconds.

CPython's cycle collector stops the whole process (the event loop and, through
the GIL, the SQLite writer thread) while it runs. With the default thresholds
(700 allocations per young pass) a gift's short-lived objects, alive across a
group commit's few milliseconds, are promoted into the old generation, and every
few seconds a full pass walks everything the process holds: the imported
modules, the catalog, every connection. Measured on ``bench sustained`` (1,600
gifters in 1,600 rooms at 250 gifts/s) those full passes paused the loop for
80-500 ms every 5-10 s, which was the ack p99.

Two changes, both settings (docs/OPERATIONS.md):

- a larger young generation (``LIVE_GC_YOUNG_THRESHOLD``): a gift's objects
  die young (by reference count or in a short young pass) instead of being
  promoted, so the old generation grows only with what really lives long and
  full passes become rare;
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

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

GC_OLDER_THRESHOLDS: Final = (10, 10)
"""CPython's own thresholds of the middle and old generations, kept."""

PauseObserver = Callable[[int, float], None]
"""Told of each finished collection: its generation and its pause in seconds."""


@dataclass(slots=True)
class CollectorTuning:
    """Applies the thresholds and the freeze, and times the passes until ``close``."""

    young_threshold: int
    freeze: bool
    observe: PauseObserver | None = None
    _previous: tuple[int, int, int] | None = None
    _started: float = 0.0
    _callback: Callable[[str, dict[str, Any]], None] | None = field(default=None, repr=False)

    def start(self) -> None:
        """Call once the server has started (before it takes connections)."""
        if self._previous is not None:
            return
        self._previous = gc.get_threshold()
        if self.observe is not None:  # first: the start-up pass below is timed too
            self._callback = self._timed
            gc.callbacks.append(self._callback)
        if self.freeze:
            gc.collect()  # nothing start-up left as garbage gets frozen with the rest
            gc.freeze()
        if self.young_threshold > 0:
            gc.set_threshold(self.young_threshold, *GC_OLDER_THRESHOLDS)

    def close(self) -> None:
        """Put the thresholds back, unfreeze and stop timing. The process may go on
        (an app embedded in another, a test run): what was frozen would otherwise
        never be collected, cycles holding sockets included."""
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

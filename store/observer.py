"""What the engines tell an observer (the server's metrics) about their backends.

The store never imports the server: an engine is given an object with these
methods (``EngineConfig.observer``) and calls it; ``None`` means nobody listens.
Call names are fixed by the code (a script's name, a command's name, a ledger
step), so a metrics label made of them stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

Backend = Literal["redis", "postgresql"]


class StoreObserver(Protocol):
    """Told of every backend call and of every outbox batch filed."""

    def backend_call(self, backend: Backend, call: str, seconds: float, *, ok: bool) -> None:
        """One call answered (``ok``) or failed (no connection, an error reply)
        after ``seconds``, waiting for a pipeline included."""
        ...

    def backend_calls(
        self, backend: Backend, calls: Sequence[tuple[str, float]], *, ok: bool
    ) -> None:
        """``backend_call`` for each of ``(call, seconds)``: the calls one pipeline
        answered, told at once so the observer may tally them in one step (a
        pipeline carries tens of calls under load)."""
        ...

    def ledger_filed(self, *, filed: int, parked: int, ages: Sequence[float]) -> None:
        """The ledger worker committed a batch: ``filed`` entries into PostgreSQL,
        ``parked`` as dead letters; ``ages`` (seconds since each entry entered the
        outbox) of the entries it moved."""
        ...

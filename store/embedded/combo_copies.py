"""The file's copy of the open gift combos, brought up to date once per group commit.

Every streakable gift changes its combo, and the copy must be on disk before the
gift is answered (a combo open when the process dies ends after the restart).
The gift's own operation writes it (``continue_in``), in the gift's transaction:
the gift and its combo become durable together, in one commit. What that
cannot see (the combos ended by their timers, a change the room's memory made
differently) waits in a table of its own, one entry per combo (the latest
change wins: the file only needs the combo's state now), and one operation
writes all of them in the next group commit, with one ``executemany`` per kind
of change. Each caller still returns only once its change is durable.

A combo ended by its timer has had its final event published already, and
nothing answers a user once its end is on disk: its write waits up to
``FORGET_DELAY_SECONDS`` for others to join it (or goes with the next change
that must not wait). Where every gift is a combo of its own, each gift's combo
ends on its own timer, and each end was a write of its own for the writer
thread, queued ahead of the gifts that came after it (docs/PERFORMANCE.md).
The cost is that window: a process killed within it ends those combos again
after its restart, as one killed between the publish and the commit always did
(docs/PROTOCOL.md: credit a combo's end once).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from typing import Final

import orjson

from store.embedded.database import SQLiteDatabase
from store.ids import now_ms

ComboKey = tuple[str, str, str]
"""(room, sender, gift): one open combo per sender and gift in a room."""

ComboRow = tuple[str, str, str, str, int, int, int, int, int, bytes]
"""An open combo as ``open_combos`` keeps it (``ComboKey`` first)."""

_KEEP: Final = (
    "INSERT INTO open_combos (room_id, sender_id, gift_id, combo_id, stream_id, count, "
    "coins, diamonds, deadline, end_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (room_id, sender_id, gift_id) DO UPDATE SET combo_id = excluded.combo_id, "
    "stream_id = excluded.stream_id, count = excluded.count, coins = excluded.coins, "
    "diamonds = excluded.diamonds, deadline = excluded.deadline, "
    "end_event = excluded.end_event "
    # a write that arrives late (an older count of the same combo) changes nothing
    "WHERE excluded.combo_id != combo_id OR excluded.count >= count"
)
FORGET_DELAY_SECONDS: Final = 0.025
"""How long an ended combo's write waits for others to join it."""

_FORGET: Final = (
    "DELETE FROM open_combos WHERE room_id = ? AND sender_id = ? AND gift_id = ? AND combo_id = ?"
)


def combo_row(
    key: ComboKey,
    *,
    combo_id: str,
    stream_id: int,
    totals: tuple[int, int, int],
    deadline: int,
    end_event: object,
) -> ComboRow:
    """The row of an open combo (``deadline`` in wall-clock ms)."""
    count, coins, diamonds = totals
    return (*key, combo_id, stream_id, count, coins, diamonds, deadline, orjson.dumps(end_event))


@dataclass(frozen=True, slots=True)
class ComboState:
    """What a combo adds up to: compared with the room's memory of it."""

    combo_id: str
    stream_id: int
    count: int
    coins: int
    diamonds: int


def continue_in(
    conn: sqlite3.Connection,
    key: ComboKey,
    *,
    tx: str,
    stream_id: int,
    totals: tuple[int, int, int],
    window_ms: int,
    end_event: object,
) -> ComboState:
    """In a gift's own transaction: its combo as the file has it, continued when
    that is still open (its deadline not passed), else a new one named after the
    gift's ``tx``; written back open for ``window_ms`` more. This is the rule the
    room's memory applies when it publishes the gift; where the two differ (a
    gift right at the deadline, a change of the memory's not written yet) the
    memory's state is written after (``ComboCopies.keep``)."""
    now = now_ms()
    found = conn.execute(
        "SELECT combo_id, stream_id, count, coins, diamonds, deadline FROM open_combos "
        "WHERE room_id = ? AND sender_id = ? AND gift_id = ?",
        key,
    ).fetchone()
    count, coins, diamonds = totals
    if found is not None and found[5] > now:
        state = ComboState(
            found[0], found[1], found[2] + count, found[3] + coins, found[4] + diamonds
        )
    else:
        state = ComboState(tx, stream_id, count, coins, diamonds)
    conn.execute(
        _KEEP,
        combo_row(
            key,
            combo_id=state.combo_id,
            stream_id=state.stream_id,
            totals=(state.count, state.coins, state.diamonds),
            deadline=now + window_ms,
            end_event=end_event,
        ),
    )
    return state


def write_changes(conn: sqlite3.Connection, changes: dict[ComboKey, ComboRow | str]) -> None:
    """Apply the changes: a row keeps its combo open, a combo id ends that combo."""
    keep = [change for change in changes.values() if not isinstance(change, str)]
    forget = [(*key, change) for key, change in changes.items() if isinstance(change, str)]
    if keep:
        conn.executemany(_KEEP, keep)
    if forget:
        conn.executemany(_FORGET, forget)


class ComboCopies:
    """Changes of the open combos waiting for their write (see the module docstring).

    ``_pending`` is shared with the writer thread, which takes it as a whole when
    the write runs: under ``_lock``, a change either joins the write that is
    queued or, once that write has taken its changes, queues the next one. Each
    change has a future of its own, resolved by its write: a caller that gives up
    cancels only its own (cheaper than ``asyncio.shield`` per change, which the
    busiest path paid for every streakable gift). Only ended combos wait for
    their write to start (``_timer``); ``flush`` starts it at once."""

    def __init__(self, db: SQLiteDatabase, *, delay: float = FORGET_DELAY_SECONDS) -> None:
        self._db = db
        self._delay = delay
        self._lock = threading.Lock()
        self._pending: dict[ComboKey, ComboRow | str] = {}
        self._waiting: list[asyncio.Future[None]] = []
        """The futures of the changes in ``_pending`` (taken with them)."""
        self._write: asyncio.Task[None] | None = None
        """The write queued that has not taken ``_pending`` yet."""
        self._timer: asyncio.TimerHandle | None = None
        """Starts the write of ended combos that nothing else started."""

    def keep(self, row: ComboRow) -> asyncio.Future[None]:
        """The combo is open with this state: done once that is on disk."""
        return self._change((row[0], row[1], row[2]), row, wait=False)

    def forget(self, key: ComboKey, combo_id: str) -> asyncio.Future[None]:
        """The combo ended (a newer combo of the same key is left alone): done once
        that is on disk, within ``FORGET_DELAY_SECONDS`` and a commit."""
        return self._change(key, combo_id, wait=True)

    async def flush(self) -> None:
        """Write what waits now (before the database closes)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pending and self._write is None:
                self._start(loop)
            write = self._write
        if write is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(write)

    def _change(self, key: ComboKey, change: ComboRow | str, *, wait: bool) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._pending[key] = change
            self._waiting.append(waiter)
            if self._write is None:
                if not wait or self._delay <= 0:
                    self._start(loop)
                elif self._timer is None:
                    self._timer = loop.call_later(self._delay, self._started_late, loop)
        return waiter

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue the write of ``_pending`` (with ``_lock`` held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._write = loop.create_task(self._run())

    def _started_late(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._timer = None
            if self._write is None and self._pending:
                self._start(loop)

    async def _run(self) -> None:
        taken: list[tuple[dict[ComboKey, ComboRow | str], list[asyncio.Future[None]]]] = []

        def write(conn: sqlite3.Connection) -> None:
            if not taken:  # a batch run again writes the same changes
                with self._lock:
                    taken.append((self._pending, self._waiting))
                    self._pending, self._waiting = {}, []
                    self._write = None
            write_changes(conn, taken[0][0])

        error: BaseException | None = None
        try:
            await self._db.write(write)
        except BaseException as exc:  # each waiter gets it (cancelled: cancelled too)
            error = exc
        if taken:
            waiters = taken[0][1]
        else:  # refused before it ran (a closed store): the next change retries
            with self._lock:
                waiters = self._waiting
                self._waiting = []
                if self._write is asyncio.current_task():
                    self._write = None
        _settle(waiters, error)
        if isinstance(error, asyncio.CancelledError):
            raise error


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """Hand each change's caller the write's outcome (one that gave up has none)."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            waiter.cancel()
        else:
            waiter.set_exception(error)

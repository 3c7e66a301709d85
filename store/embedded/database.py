"""One SQLite file for the embedded engine: a group-committing writer thread, a
few reader threads and a background checkpointer.

Durability: WAL with ``synchronous=FULL``, so a gift that was acknowledged is
on disk and survives ``kill -9`` and power loss.

The event loop never touches the disk. One writer thread owns the only write
connection and does *group commit*: callers submit an operation (a function of
the connection) and await a future; the thread takes everything queued (up to
``max_batch``), runs the operations one after another within one
``BEGIN IMMEDIATE … COMMIT``, commits once (one fsync for the whole batch) and
then resolves the callers' futures on their loop, one wake-up per batch.

An operation that raises affects no other: every operation does all its checks
before its first write, so a failing one has written nothing and is just
reported; one that fails *after* writing makes the writer roll the batch back
and run it again without it. That is what a SAVEPOINT per operation would
give, without the statement journal that (measured on this code) costs a third
of each gift's time. Operations must therefore be functions of the database
alone: they may run more than once before their batch commits.

Reads run on a few reader threads, each with its own read-only connection;
WAL lets them run beside the writer and see every acknowledged write. A read is
handed over on a plain queue and its result comes back with one
``call_soon_threadsafe``: reads are small and many (stream totals, leaderboards,
goals), and ``run_in_executor``'s futures, locks and conditions cost the event
loop more than the query itself.

What the operations are: ``store.embedded.wallet`` (money), ``rooms``,
``ledger`` and ``activity``; the tables: ``store.embedded.schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from store.domain.models import Restriction, Room
from store.embedded.boards import RoomBoards, Rows
from store.embedded.schema import migrate
from store.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

WAL_AUTOCHECKPOINT_PAGES: Final = 16_000
MAX_ATTEMPTS: Final = 8
"""Passes over one batch before the writer gives up on it (each pass drops one
op that failed after writing)."""
MAX_GIFT_TOTALS: Final = 10_000
"""Streams whose gift totals ``SQLiteDatabase.gift_totals`` keeps at most."""

Op = Callable[[sqlite3.Connection], Any]


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise Unavailable(f"cannot switch {path} to WAL (journal mode {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA cache_size = -32768")  # KiB: keeps hot index pages in memory
        # The background checkpointer keeps the WAL short; COMMIT checkpoints
        # itself only if the WAL grows past this many pages anyway.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    return conn


@dataclass(slots=True)
class _Op:
    fn: Op
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    committed: Callable[[Any], None] | None = None


Outcome = tuple[asyncio.Future[Any], bool, Any, Callable[[Any], None] | None]
"""A caller's future, whether its operation succeeded, its result or error, and
what to do on the loop with a committed result before the caller sees it."""

_STOP: Final = object()


def _resolve(outcomes: list[Outcome]) -> None:
    """Runs on the callers' loop: apply each committed result to the in-memory
    state that follows the file, then hand each caller its result or error."""
    for future, ok, value, committed in outcomes:
        if ok and committed is not None:
            try:  # even if the caller gave up: the op happened
                committed(value)
            except Exception:
                log.exception("applying a committed sqlite operation failed")
        if future.done():  # the caller gave up (cancelled); the op still happened
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _hand_over(loop: asyncio.AbstractEventLoop, outcomes: list[Outcome]) -> None:
    """From a worker thread: resolve the futures on their loop, in one wake-up."""
    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
        loop.call_soon_threadsafe(_resolve, outcomes)


class SQLiteDatabase:
    """One SQLite file: a group-committing writer thread and a pool of readers.

    Open with ``await SQLiteDatabase.open(path)``; ``write`` and ``read`` run a
    function of a connection off the event loop; ``close`` drains the queue.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 512,
        max_pending: int = 8_192,
        readers: int = 2,
        checkpoint_interval: float = 1.0,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or readers < 1:
            raise ValueError("max_batch, max_pending and readers must be >= 1")
        self.path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        # Backpressure: at most max_pending writes queued or running, so a
        # burst beyond the disk's pace waits on the loop instead of growing RAM.
        self._slots = asyncio.Semaphore(max_pending)
        self._closed = False
        self._dead: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._read_queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._readers = [
            threading.Thread(target=self._run_reader, name=f"sqlite-read-{n}", daemon=True)
            for n in range(readers)
        ]
        self._readers_started = False
        # WAL checkpoints copy pages back into the main file and fsync it; done
        # inside COMMIT they would stall the writer, so a third thread does them.
        self._checkpoint_interval = checkpoint_interval
        self._checkpoint_wake = threading.Event()
        self._checkpoint_stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._run_checkpointer, name="sqlite-checkpoint", daemon=True
        )
        self.checkpoints = 0
        """Background WAL checkpoints run, for metrics and tests."""
        self.batches = 0
        """Committed (or attempted) group commits, for metrics and tests."""
        self.ops = 0
        """Operations run by the writer, for metrics and tests."""
        self.restarts = 0
        """Batches rolled back and run again because an op failed after writing."""
        self.batch_seconds = 0.0
        """Wall time the writer spent in batches, from BEGIN to the end of COMMIT
        (fsync included): its share of a second is how busy the writer is."""
        self.gift_totals: dict[tuple[str, int], tuple[int, int, int]] = {}
        """(room, stream) -> (gifts, coins, diamonds) as of the latest gift committed
        through this process (the only writer of the file): the room events' stream
        totals without a read per gift. See ``note_gift_totals``."""
        self.boards = RoomBoards()
        """The rooms' leaderboards and goals, followed from the commits."""
        self.rooms: Rows[str, Room | None] = Rows()
        """Room rows as read, until this process changes them (every handshake reads one)."""
        self.restrictions: Rows[str, list[Restriction]] = Rows()
        """Each room's bans and mutes as read (unexpired then), until changed here."""
        self.inventories: Rows[str, tuple[list[Any], dict[str, str]]] = Rows(size=50_000)
        """Each user's item rows and equipped items as read, until changed here."""

    @classmethod
    async def open(cls, path: Path, **options: Any) -> SQLiteDatabase:
        """Open (creating if needed) the file and bring its schema up to date."""
        db = cls(path, **options)
        db._thread.start()
        try:
            await db.write(migrate)
        except BaseException:
            await db.close()
            raise
        db._checkpointer.start()
        return db

    def note_gift_totals(self, room_id: str, stream_id: int, totals: tuple[int, int, int]) -> None:
        """Remember a stream's gift totals read in a committed transaction. Coins only
        grow within a stream, so the entry with more coins is the later one whatever
        order the callers resume in."""
        key = (room_id, stream_id)
        known = self.gift_totals.get(key)
        if known is None or totals[1] > known[1]:
            if known is None and len(self.gift_totals) >= MAX_GIFT_TOTALS:
                self.gift_totals.clear()  # a cache: what is missing is read again
            self.gift_totals[key] = totals

    @property
    def queued(self) -> int:
        """Operations waiting for the writer (approximate)."""
        return self._queue.qsize()

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        committed: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``fn`` in the writer thread inside one group commit; return its result
        once it is durable. If ``fn`` raises, its changes are rolled back and the
        error is raised here; the rest of the batch is unaffected.

        ``committed`` runs on the loop with the result once it is durable, in commit
        order and even if the caller was cancelled meanwhile: how in-memory state
        that follows the file (``boards``, ``gift_totals``) stays equal to it."""
        self._check_open()
        async with self._slots:
            self._check_open()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[T] = loop.create_future()
            self._queue.put(_Op(fn, loop, future, committed))
            return await future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a read-only connection in a reader thread."""
        self._check_open()
        if not self._readers_started:
            self._readers_started = True
            for thread in self._readers:
                thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._read_queue.put(_Op(fn, loop, future))
        try:
            return await future
        except sqlite3.Error as exc:
            raise Unavailable(f"sqlite read failed: {exc}") from exc

    async def close(self) -> None:
        """Stop taking writes, let the writer finish everything queued, close all
        connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        self._checkpoint_stop.set()
        self._checkpoint_wake.set()
        if self._checkpointer.is_alive():
            await asyncio.to_thread(self._checkpointer.join)
        await asyncio.to_thread(self._close_readers)

    # -- internals ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")
        if self._dead is not None:
            raise Unavailable(f"the sqlite writer stopped: {self._dead}")

    def _run_reader(self) -> None:
        """A reader thread: its own connection, one read at a time until told to stop."""
        conn: sqlite3.Connection | None = None
        try:
            while True:
                item = self._read_queue.get()
                if not isinstance(item, _Op):
                    return
                ok, value = True, None
                try:
                    if conn is None:
                        conn = _connect(self.path, readonly=True)
                    value = item.fn(conn)
                except BaseException as exc:  # handed to the caller, like an executor
                    ok, value = False, exc
                finally:
                    if conn is not None and conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.rollback()
                _hand_over(item.loop, [(item.future, ok, value, None)])
        finally:
            if conn is not None:
                conn.close()

    def _close_readers(self) -> None:
        if not self._readers_started:
            return
        for _ in self._readers:
            self._read_queue.put(_STOP)
        for thread in self._readers:
            thread.join()
        # reads queued behind the stops (none once closed: read() checks first)
        self._fail_queued(self._read_queue, Unavailable("the store is closed"))

    def _run(self) -> None:
        """The writer thread: connect, then batch and commit until told to stop."""
        conn: sqlite3.Connection | None = None
        stopping = False
        try:
            conn = _connect(self.path, readonly=False)
            while not stopping:
                batch: list[_Op] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    if isinstance(item, _Op):
                        batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._deliver(batch, self._commit(conn, batch))
                    self._checkpoint_wake.set()
        except BaseException as exc:  # the thread must never die silently
            log.exception("sqlite writer stopped")
            self._dead = exc
            self._fail_pending(exc)
        finally:
            if conn is not None:
                conn.close()

    def _run_checkpointer(self) -> None:
        """After commits, at most every ``checkpoint_interval`` seconds, run a PASSIVE
        checkpoint: it never blocks the writer, and lets SQLite restart the WAL
        from its beginning instead of growing it."""
        try:
            conn = _connect(self.path, readonly=False)
        except Exception:
            log.exception("sqlite checkpointer could not connect; the writer checkpoints")
            return
        try:
            while not self._checkpoint_stop.is_set():
                self._checkpoint_wake.wait()
                self._checkpoint_wake.clear()
                if self._checkpoint_stop.is_set():
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    log.exception("sqlite checkpoint failed")
                self._checkpoint_stop.wait(self._checkpoint_interval)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction and commit it once.

        An op that raised with ``total_changes`` unchanged wrote nothing and is
        simply reported; one that raised after writing makes this pass roll
        back, and the batch runs again without it (see the module docstring)."""
        self.batches += 1
        self.ops += len(batch)
        started = time.perf_counter()
        try:
            settled: dict[int, BaseException] = {}
            for _ in range(MAX_ATTEMPTS):
                outcomes = self._attempt(conn, batch, settled)
                if outcomes is not None:
                    return outcomes
                self.restarts += 1
            error = Unavailable("the sqlite batch kept failing; nothing was written")
            return [(False, settled.get(i, error)) for i in range(len(batch))]
        finally:
            self.batch_seconds += time.perf_counter() - started

    def _attempt(
        self, conn: sqlite3.Connection, batch: list[_Op], settled: dict[int, BaseException]
    ) -> list[tuple[bool, Any]] | None:
        """One pass over the batch; ``None`` means: roll back and run it again."""
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for index, op in enumerate(batch):
                if index in settled:
                    outcomes.append((False, settled[index]))
                    continue
                before = conn.total_changes
                try:
                    result = op.fn(conn)
                except Exception as exc:
                    settled[index] = exc
                    if conn.in_transaction and conn.total_changes == before:
                        outcomes.append((False, exc))
                        continue
                    if isinstance(exc, sqlite3.Error) and not conn.in_transaction:
                        raise  # SQLite aborted the transaction (I/O error, disk full)
                    conn.execute("ROLLBACK")  # undo its partial writes, run the rest again
                    return None
                outcomes.append((True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            log.error("sqlite group commit of %d ops failed: %s", len(batch), exc)
            error = Unavailable(f"sqlite commit failed: {exc}")
            return [(False, settled.get(i, error)) for i in range(len(batch))]
        return outcomes

    @staticmethod
    def _deliver(batch: list[_Op], outcomes: list[tuple[bool, Any]]) -> None:
        """One wake-up per loop per batch, not one per operation."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, ok, value, op.committed))
        for loop, items in by_loop.items():
            _hand_over(loop, items)

    def _fail_pending(self, exc: BaseException) -> None:
        self._fail_queued(self._queue, Unavailable(f"the sqlite writer stopped: {exc}"))

    @classmethod
    def _fail_queued(cls, waiting: queue.SimpleQueue[_Op | object], error: Exception) -> None:
        """Answer every operation still queued with ``error``."""
        batch: list[_Op] = []
        while True:
            try:
                item = waiting.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Op):
                batch.append(item)
        cls._deliver(batch, [(False, error)] * len(batch))

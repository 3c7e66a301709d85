"""The embedded engine's wallet, rooms and ledger over one SQLite file.

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

Money semantics (the scaled engine copies them exactly, the conformance suite
checks both):

- ``send_gift`` validates the request (``BadRequest``), then checks, in this
  order and before any write: (1) idempotency, scope ``gift:<sender id>`` and
  key ``request.key``: a key seen with the same fingerprint returns the stored
  first receipt with ``replayed=True``, with another fingerprint raises
  ``Conflict``; (2) the room exists (``NotFound``); (3) it is live
  (``RoomNotLive``); (4) the sender is an adult, (5) is not the creator and (6)
  the creator is an adult (``Forbidden``); (7) to (11) the sender's account
  (``store.sqlite_accounts.check_gift_rules``): not locked by debt, gifting
  not turned off (``Forbidden``), the gift rate (``RateLimited``), the daily
  and monthly spending caps (``LimitExceeded``); (12) the sender has the coins
  (``InsufficientFunds``). Only then it writes the ``gift`` transaction, moves
  the balances, adds the coins to the room's current stream leaderboard, counts
  the sender's spending and the creator's earnings, and stores the receipt
  under the key. A failed gift stores nothing, so its key may be retried.
- ``purchase``: idempotency on scope ``payment:<provider>``, key the payment
  id; then only adults may buy (``Forbidden``); with ``enforce_limits`` the
  account must not be locked nor have purchases turned off (``Forbidden``);
  credits coins plus bonus plus promotions, paying off debt first.
- the other money operations (refunds, debt, limits, withdrawals, earnings):
  ``store.embedded.wallet_money``, with the check orders of ``store.base.Wallet``.
- the ledger is append-only: triggers reject any UPDATE or DELETE of
  ``transactions`` and ``postings``; corrections are new transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from store.domain.accounts import MoneyPolicy, debt_account, purchase_receipt, withdrawing_account
from store.domain.models import (
    ASSETS,
    COIN,
    DIAMOND,
    AuditReport,
    Balance,
    GiftReceipt,
    GiftRequest,
    LeaderEntry,
    Mismatch,
    Posting,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    Room,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.domain.postings import gift_postings, is_balanced, split_gift
from store.embedded.accounts import (
    ACCOUNT_SCHEMA,
    check_gift_rules,
    check_purchase_rules,
    record_gift_money,
    record_purchase,
)
from store.embedded.room_totals import ROOM_SCHEMA, record_gift
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    NotFound,
    RoomNotLive,
    StoreError,
    Unavailable,
)
from store.ids import new_id, new_secret, now_ms

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION: Final = 1
MAX_KEY_LENGTH: Final = 200
MAX_ID_LENGTH: Final = 200
WAL_AUTOCHECKPOINT_PAGES: Final = 16_000
MAX_ATTEMPTS: Final = 8
MAX_GIFT_TOTALS: Final = 10_000
"""Streams whose gift totals ``SQLiteDatabase.gift_totals`` keeps at most."""
"""Passes over one batch before the writer gives up on it (each pass drops one
op that failed after writing)."""

Op = Callable[[sqlite3.Connection], Any]

# Postings carry a position ``n`` so they are clustered by transaction (the
# primary key) and keep their order; the (account, tx_id) index serves the
# per-user history.
_SCHEMA: Final[tuple[str, ...]] = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS transactions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        meta TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS postings (
        tx_id TEXT NOT NULL REFERENCES transactions(id),
        n INTEGER NOT NULL,
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (tx_id, n)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS postings_account ON postings (account, tx_id)",
    """CREATE TABLE IF NOT EXISTS balances (
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (account, asset)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rooms (
        id TEXT PRIMARY KEY,
        creator TEXT NOT NULL,
        creator_adult INTEGER NOT NULL,
        title TEXT NOT NULL,
        live INTEGER NOT NULL,
        stream_id INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        overlay_key TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS room_gifters (
        room_id TEXT NOT NULL REFERENCES rooms(id),
        stream_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        user TEXT NOT NULL,
        coins INTEGER NOT NULL,
        PRIMARY KEY (room_id, stream_id, user_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS room_gifters_top
        ON room_gifters (room_id, stream_id, coins DESC, user_id)""",
    *ROOM_SCHEMA,
    *(
        f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()}
            BEFORE {action} ON {table}
            BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"""
        for table in ("transactions", "postings")
        for action in ("UPDATE", "DELETE")
    ),
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_ID_LENGTH} characters")


def _check_key(value: str, what: str) -> None:
    if not value or len(value) > MAX_KEY_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_KEY_LENGTH} characters")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise BadRequest("limit must be at least 1")


# --------------------------------------------------------------------------- #
# Connections and threads
# --------------------------------------------------------------------------- #


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


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Runs on the caller's loop: hand one caller its result or error."""
    if not future.done():  # else the caller gave up (cancelled)
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_STOP: Final = object()


def _resolve(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """Runs on the caller's loop: hand each caller its result or error."""
    for future, ok, value in outcomes:
        if future.done():  # the caller gave up (cancelled); the op still happened
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


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
        self.gift_totals: dict[tuple[str, int], tuple[int, int, int]] = {}
        """(room, stream) -> (gifts, coins, diamonds) as of the latest gift committed
        through this process (the only writer of the file): the room events' stream
        totals without a read per gift. See ``note_gift_totals``."""

    @classmethod
    async def open(cls, path: Path, **options: Any) -> SQLiteDatabase:
        """Open (creating if needed) the file and bring its schema up to date."""
        db = cls(path, **options)
        db._thread.start()
        try:
            await db.write(_migrate)
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

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the writer thread inside one group commit; return its result
        once it is durable. If ``fn`` raises, its changes are rolled back and the
        error is raised here; the rest of the batch is unaffected."""
        self._check_open()
        async with self._slots:
            self._check_open()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[T] = loop.create_future()
            self._queue.put(_Op(fn, loop, future))
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
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    item.loop.call_soon_threadsafe(_settle, item.future, ok, value)
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
        while True:
            try:
                item = self._read_queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Op):
                with contextlib.suppress(RuntimeError):
                    item.loop.call_soon_threadsafe(
                        _settle, item.future, False, Unavailable("the store is closed")
                    )

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
        settled: dict[int, BaseException] = {}
        for _ in range(MAX_ATTEMPTS):
            outcomes = self._attempt(conn, batch, settled)
            if outcomes is not None:
                return outcomes
            self.restarts += 1
        error = Unavailable("the sqlite batch kept failing; nothing was written")
        return [(False, settled.get(i, error)) for i in range(len(batch))]

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
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
        by_loop = {}
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(op.loop, []).append((op.future, ok, value))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, items)

    def _fail_pending(self, exc: BaseException) -> None:
        error = Unavailable(f"the sqlite writer stopped: {exc}")
        batch: list[_Op] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Op):
                batch.append(item)
        self._deliver(batch, [(False, error)] * len(batch))


def _migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing; refuse (before touching anything) a newer file."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    version = None
    if known:
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"the database schema is version {version}, newer than this server's {SCHEMA_VERSION}"
        )
    for statement in (*_SCHEMA, *ACCOUNT_SCHEMA):
        conn.execute(statement)
    if version is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction, so several queries see the same state."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


# --------------------------------------------------------------------------- #
# Shared row helpers (run in the writer or reader threads)
# --------------------------------------------------------------------------- #

_ROOM_COLUMNS: Final = (
    "id, creator, creator_adult, title, live, stream_id, started_at, ended_at, overlay_key"
)


def _room_from_row(row: tuple[Any, ...]) -> Room:
    return Room(
        id=row[0],
        creator=orjson.loads(row[1]),
        creator_adult=bool(row[2]),
        title=row[3],
        live=bool(row[4]),
        stream_id=row[5],
        started_at=row[6],
        ended_at=row[7],
        overlay_key=row[8],
    )


def _load_room(conn: sqlite3.Connection, room_id: str) -> Room | None:
    row = conn.execute(f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,)).fetchone()
    return None if row is None else _room_from_row(row)


def _lookup_key(
    conn: sqlite3.Connection, scope: str, key: str, fingerprint: str
) -> dict[str, Any] | None:
    """The stored first result for this key, ``None`` if unseen; ``Conflict`` if the
    key was used for a request with other content."""
    row = conn.execute(
        "SELECT fingerprint, result FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    if row is None:
        return None
    if row[0] != fingerprint:
        raise Conflict("this idempotency key was already used for a different request")
    result: dict[str, Any] = orjson.loads(row[1])
    return result


def _store_key(
    conn: sqlite3.Connection, scope: str, key: str, fingerprint: str, result: Any
) -> None:
    body = {name: getattr(result, name) for name in _RECEIPT_FIELDS[type(result)]}
    conn.execute(
        "INSERT INTO idempotency (scope, key, fingerprint, result) VALUES (?, ?, ?, ?)",
        (scope, key, fingerprint, _dumps(body)),
    )


_RECEIPT_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name != "replayed")
    for cls in (GiftReceipt, PurchaseReceipt)
}
"""What a receipt stores under its key: every field but ``replayed``. (Not
``dataclasses.asdict``: it deep-copies, and receipts are flat.)"""


def _coins(conn: sqlite3.Connection, user_id: str) -> int:
    row = conn.execute(
        "SELECT amount FROM balances WHERE account = ? AND asset = ?",
        (coins_account(user_id), COIN),
    ).fetchone()
    return int(row[0]) if row else 0


def _journal(
    conn: sqlite3.Connection,
    *,
    tx_id: str,
    kind: str,
    created_at: int,
    meta: dict[str, Any],
    postings: tuple[Posting, ...],
) -> None:
    """Append one transaction and move the hot balances in the same SQLite transaction."""
    if not is_balanced(postings):  # a bug, never a user error: refuse to journal it
        raise StoreError(f"refusing an unbalanced {kind} transaction")
    conn.execute(
        "INSERT INTO transactions (id, kind, created_at, meta) VALUES (?, ?, ?, ?)",
        (tx_id, kind, created_at, _dumps(meta)),
    )
    conn.executemany(
        "INSERT INTO postings (tx_id, n, account, asset, amount) VALUES (?, ?, ?, ?, ?)",
        [(tx_id, n, p.account, p.asset, p.amount) for n, p in enumerate(postings)],
    )
    conn.executemany(
        "INSERT INTO balances (account, asset, amount) VALUES (?, ?, ?) "
        "ON CONFLICT (account, asset) DO UPDATE SET amount = amount + excluded.amount",
        [(p.account, p.asset, p.amount) for p in postings],
    )


# --------------------------------------------------------------------------- #
# Roles
# --------------------------------------------------------------------------- #


class SQLiteWallet:
    """``Wallet`` over SQLite. See the module docstring for the exact semantics."""

    def __init__(
        self,
        db: SQLiteDatabase,
        *,
        creator_share_percent: int = 50,
        policy: MoneyPolicy | None = None,
    ) -> None:
        if not 0 <= creator_share_percent <= 100:
            raise ValueError("creator_share_percent must be within 0..100")
        self._db = db
        self._share = creator_share_percent
        self._policy = policy or MoneyPolicy()

    async def purchase(self, request: PurchaseRequest) -> PurchaseReceipt:
        _check_id(request.user.id, "user id")
        _check_key(request.payment_id, "payment id")
        _check_id(request.provider, "payment provider")
        credit = request.package.coins + request.package.bonus
        if request.package.coins < 0 or request.package.bonus < 0 or credit < 1:
            raise BadRequest("a coin package must credit at least one coin")
        if any(g.coins < 0 for g in request.promotions):
            raise BadRequest("a promotion cannot take coins away")
        tx = new_id("tx")
        created_at = request.now if request.now is not None else now_ms()
        return await self._db.write(
            lambda conn: self._purchase(conn, request, credit, tx, created_at)
        )

    def _purchase(
        self,
        conn: sqlite3.Connection,
        request: PurchaseRequest,
        credit: int,
        tx: str,
        created_at: int,
    ) -> PurchaseReceipt:
        """Checks and credit: see ``store.base.Wallet.purchase``."""
        scope = f"payment:{request.provider}"
        fingerprint = request.fingerprint()
        stored = _lookup_key(conn, scope, request.payment_id, fingerprint)
        if stored is not None:
            return purchase_receipt(stored, replayed=True)
        if not request.user.adult:
            raise Forbidden("only adults can buy coins")
        user_id = request.user.id
        package = request.package
        plan = check_purchase_rules(conn, request, credit)
        receipt = PurchaseReceipt(
            tx=tx,
            package_id=package.id,
            coins=credit + plan.bonus,
            balance=_coins(conn, user_id) + credit + plan.bonus - plan.debt_paid,
            created_at=created_at,
            bonus=plan.bonus,
            user_id=user_id,
            debt_paid=plan.debt_paid,
            promotions=plan.promotions,
        )
        _journal(
            conn,
            tx_id=receipt.tx,
            kind="purchase",
            created_at=receipt.created_at,
            meta={
                "package_id": package.id,
                "coins": package.coins,
                "bonus": package.bonus,
                "price_minor": package.price_minor,
                "currency": package.currency,
                "provider": request.provider,
                "payment_id": request.payment_id,
                "user_id": user_id,
                **plan.meta,
            },
            postings=plan.postings,
        )
        record_purchase(conn, user_id)
        _store_key(conn, scope, request.payment_id, fingerprint, receipt)
        return receipt

    async def send_gift(self, request: GiftRequest) -> GiftReceipt:
        """Debit the sender, credit the creator and the platform, bump the leaderboard.
        Check order: see the module docstring."""
        _check_id(request.sender.id, "sender id")
        _check_id(request.room_id, "room id")
        _check_key(request.key, "request id")
        if request.count < 1:
            raise BadRequest("count must be at least 1")
        if request.gift.coins < 1:
            raise BadRequest("a gift must cost at least one coin")
        # Pure work happens here, on the caller's side, so the writer thread (the
        # bottleneck) only runs the checks and the SQL.
        total = request.total_coins
        diamonds, _platform = split_gift(total, self._share)
        plan = _GiftPlan(
            request=request,
            scope=f"gift:{request.sender.id}",
            fingerprint=request.fingerprint(),
            sender_json=_dumps(request.sender.public()),
            tx=new_id("tx"),
            created_at=request.now if request.now is not None else now_ms(),
            total=total,
            diamonds=diamonds,
            policy=self._policy,
        )
        receipt, totals = await self._db.write(lambda conn: _send_gift(conn, plan))
        if totals is not None:
            self._db.note_gift_totals(receipt.room_id, receipt.stream_id, totals)
        return receipt

    async def balance(self, user_id: str) -> Balance:
        """Coins and diamonds; zero for a user never seen."""
        return await self._db.read(lambda conn: _balance(conn, user_id))


@dataclass(frozen=True, slots=True)
class _GiftPlan:
    """A validated gift request plus everything computable without the database."""

    request: GiftRequest
    scope: str
    fingerprint: str
    sender_json: str
    tx: str
    created_at: int
    total: int
    diamonds: int
    policy: MoneyPolicy


_GIFT_CONTEXT: Final = (
    "SELECT i.fingerprint, i.result, json_extract(r.creator, '$.id'), r.creator_adult, "
    "r.live, r.stream_id, "
    "(SELECT amount FROM balances WHERE account = :account AND asset = 'coin') "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN idempotency AS i ON i.scope = :scope AND i.key = :key "
    "LEFT JOIN rooms AS r ON r.id = :room"
)
"""Everything a gift checks, in one statement (one round trip instead of three)."""


def _send_gift(
    conn: sqlite3.Connection, plan: _GiftPlan
) -> tuple[GiftReceipt, tuple[int, int, int] | None]:
    """The gift's receipt, and its stream's gift totals with it (None for a replay)."""
    request = plan.request
    sender = request.sender
    scope = plan.scope
    fingerprint = plan.fingerprint
    seen, stored, creator_id, creator_adult, live, stream_id, coins = conn.execute(
        _GIFT_CONTEXT,
        {
            "account": coins_account(sender.id),
            "scope": scope,
            "key": request.key,
            "room": request.room_id,
        },
    ).fetchone()
    if seen is not None:
        if seen != fingerprint:
            raise Conflict("this idempotency key was already used for a different request")
        return GiftReceipt(**orjson.loads(stored), replayed=True), None
    if creator_id is None:
        raise NotFound("room not found")
    if not live:
        raise RoomNotLive("the room is not live")
    if not sender.adult:
        raise Forbidden("only adults can send gifts")
    if sender.id == creator_id:
        raise Forbidden("you cannot gift yourself")
    if not creator_adult:
        raise Forbidden("this creator cannot receive gifts")
    rules = check_gift_rules(
        conn, sender_id=sender.id, total=plan.total, now=plan.created_at, policy=plan.policy
    )
    total = plan.total
    coins = coins or 0
    if coins < total:
        raise InsufficientFunds(f"this gift costs {total} coins, you have {coins}")

    diamonds = plan.diamonds
    receipt = GiftReceipt(
        tx=plan.tx,
        room_id=request.room_id,
        stream_id=stream_id,
        creator_id=creator_id,
        gift_id=request.gift.id,
        count=request.count,
        coins=total,
        diamonds=diamonds,
        balance=coins - total,
        created_at=plan.created_at,
    )
    _journal(
        conn,
        tx_id=receipt.tx,
        kind="gift",
        created_at=receipt.created_at,
        meta={
            "room_id": request.room_id,
            "stream_id": stream_id,
            "gift_id": request.gift.id,
            "count": request.count,
            "sender_id": sender.id,
            "creator_id": creator_id,
            "key": request.key,
        },
        postings=gift_postings(
            sender_id=sender.id,
            creator_id=creator_id,
            total_coins=total,
            diamonds=diamonds,
        ),
    )
    conn.execute(
        "INSERT INTO room_gifters (room_id, stream_id, user_id, user, coins) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id, user_id) "
        "DO UPDATE SET coins = coins + excluded.coins, user = excluded.user",
        (request.room_id, stream_id, sender.id, plan.sender_json, total),
    )
    totals = record_gift(
        conn,
        room_id=receipt.room_id,
        stream_id=receipt.stream_id,
        creator_id=receipt.creator_id,
        sender_id=sender.id,
        sender_json=plan.sender_json,
        count=request.count,
        coins=total,
        diamonds=diamonds,
        created_at=receipt.created_at,
    )
    record_gift_money(
        conn,
        rules,
        sender_id=sender.id,
        creator_id=receipt.creator_id,
        room_id=receipt.room_id,
        stream_id=receipt.stream_id,
        diamonds=diamonds,
        created_at=receipt.created_at,
    )
    _store_key(conn, scope, request.key, fingerprint, receipt)
    return receipt, totals


def _balance(conn: sqlite3.Connection, user_id: str) -> Balance:
    coins, diamonds, debt = coins_account(user_id), diamonds_account(user_id), debt_account(user_id)
    rows = conn.execute(
        "SELECT account, amount FROM balances WHERE (account = ? AND asset = ?) "
        "OR (account = ? AND asset = ?) OR (account = ? AND asset = ?)",
        (coins, COIN, diamonds, DIAMOND, debt, COIN),
    ).fetchall()
    amounts = dict(rows)
    return Balance(
        coins=int(amounts.get(coins, 0)),
        diamonds=int(amounts.get(diamonds, 0)),
        debt=-int(amounts.get(debt, 0)),
    )


class SQLiteRooms:
    """``Rooms`` over SQLite: room state plus per-stream gifter totals."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def go_live(self, *, room_id: str, creator: Profile, title: str) -> Room:
        """New room: stream 1 with a fresh overlay key. Same creator, ended: the next
        stream (title and creator profile refreshed). Same creator, live: only the
        title changes. Another creator's room: ``Conflict``."""
        _check_id(room_id, "room id")
        _check_id(creator.id, "creator id")
        return await self._db.write(lambda conn: _go_live(conn, room_id, creator, title))

    async def end(self, room_id: str, *, by: Profile) -> Room:
        """``NotFound``; ``Forbidden`` unless ``by`` is the creator or an admin; an
        ended room is returned unchanged."""
        _check_id(room_id, "room id")
        return await self._db.write(lambda conn: _end(conn, room_id, by))

    async def get(self, room_id: str) -> Room | None:
        return await self._db.read(lambda conn: _load_room(conn, room_id))

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[LeaderEntry]:
        """The current stream's gifters, coins descending, ties by user id; ``[]`` for
        an unknown room."""
        _check_limit(limit)
        return await self._db.read(lambda conn: _leaderboard(conn, room_id, limit))


def _go_live(conn: sqlite3.Connection, room_id: str, creator: Profile, title: str) -> Room:
    room = _load_room(conn, room_id)
    now = now_ms()
    profile = _dumps(creator.public())
    if room is None:
        conn.execute(
            f"INSERT INTO rooms ({_ROOM_COLUMNS}) VALUES (?, ?, ?, ?, 1, 1, ?, NULL, ?)",
            (room_id, profile, int(creator.adult), title, now, new_secret()),
        )
    elif room.creator_id != creator.id:
        raise Conflict("this room belongs to another creator")
    elif room.live:
        conn.execute("UPDATE rooms SET title = ? WHERE id = ?", (title, room_id))
    else:
        conn.execute(
            "UPDATE rooms SET creator = ?, creator_adult = ?, title = ?, live = 1, "
            "stream_id = stream_id + 1, started_at = ?, ended_at = NULL WHERE id = ?",
            (profile, int(creator.adult), title, now, room_id),
        )
    updated = _load_room(conn, room_id)
    if updated is None:  # cannot happen inside one transaction
        raise StoreError("room vanished while going live")
    return updated


def _end(conn: sqlite3.Connection, room_id: str, by: Profile) -> Room:
    room = _load_room(conn, room_id)
    if room is None:
        raise NotFound("room not found")
    if by.id != room.creator_id and not by.is_admin:
        raise Forbidden("only the creator or an admin can end this stream")
    if not room.live:
        return room
    ended_at = now_ms()
    conn.execute("UPDATE rooms SET live = 0, ended_at = ? WHERE id = ?", (ended_at, room_id))
    return dataclasses.replace(room, live=False, ended_at=ended_at)


def _leaderboard(conn: sqlite3.Connection, room_id: str, limit: int) -> list[LeaderEntry]:
    rows = conn.execute(
        "SELECT g.user, g.coins FROM room_gifters AS g "
        "JOIN rooms AS r ON r.id = g.room_id AND r.stream_id = g.stream_id "
        "WHERE g.room_id = ? ORDER BY g.coins DESC, g.user_id ASC LIMIT ?",
        (room_id, limit),
    ).fetchall()
    return [LeaderEntry(user=orjson.loads(user), coins=coins) for user, coins in rows]


class SQLiteLedger:
    """``Ledger`` over the same SQLite file as the wallet (no outbox: always final)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        """Transactions touching the user's accounts (``user:<id>:coins``,
        ``:diamonds``, ``:debt``, ``:withdrawing``), by id descending (ids sort by
        time), strictly older than ``before``."""
        _check_limit(limit)
        return await self._db.read(lambda conn: _transactions(conn, user_id, before, limit))

    async def audit(self) -> AuditReport:
        """Totals per asset, unbalanced transactions, hot-vs-ledger mismatches and
        negative coin accounts, all from one consistent snapshot."""
        return await self._db.read(_audit)


def _transactions(
    conn: sqlite3.Connection, user_id: str, before: str | None, limit: int
) -> list[TransactionRecord]:
    # One backwards range scan per account, each stopping after ``limit`` rows,
    # so a page costs the same however long the user's history is.
    cursor = "AND tx_id < :before" if before is not None else ""
    newest = (
        f"SELECT tx_id FROM (SELECT tx_id FROM postings WHERE account = {{}} {cursor} "
        "ORDER BY tx_id DESC LIMIT :limit)"
    )
    rows = conn.execute(
        "SELECT t.id, t.kind, t.created_at, t.meta, p.account, p.asset, p.amount "
        f"FROM ({newest.format(':coins')} UNION {newest.format(':diamonds')} "
        f"UNION {newest.format(':debt')} UNION {newest.format(':withdrawing')} "
        "ORDER BY tx_id DESC LIMIT :limit) AS page "
        "JOIN transactions AS t ON t.id = page.tx_id "
        "JOIN postings AS p ON p.tx_id = t.id "
        "ORDER BY t.id DESC, p.n ASC",
        {
            "coins": coins_account(user_id),
            "diamonds": diamonds_account(user_id),
            "debt": debt_account(user_id),
            "withdrawing": withdrawing_account(user_id),
            "before": before,
            "limit": limit,
        },
    ).fetchall()
    records: list[TransactionRecord] = []
    current: tuple[Any, ...] | None = None
    postings: list[Posting] = []
    for tx_id, kind, created_at, meta, account, asset, amount in rows:
        if current is None or current[0] != tx_id:
            if current is not None:
                records.append(_record(current, postings))
            current, postings = (tx_id, kind, created_at, meta), []
        postings.append(Posting(account, asset, amount))
    if current is not None:
        records.append(_record(current, postings))
    return records


def _record(head: tuple[Any, ...], postings: list[Posting]) -> TransactionRecord:
    tx_id, kind, created_at, meta = head
    return TransactionRecord(
        id=tx_id,
        kind=kind,
        created_at=created_at,
        postings=tuple(postings),
        meta=orjson.loads(meta),
    )


def _audit(conn: sqlite3.Connection) -> AuditReport:
    with _snapshot(conn):
        count = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        totals = dict.fromkeys(ASSETS, 0)
        for asset, total in conn.execute("SELECT asset, sum(amount) FROM postings GROUP BY asset"):
            totals[asset] = int(total)
        unbalanced = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT tx_id FROM (SELECT tx_id, asset FROM postings "
                "GROUP BY tx_id, asset HAVING sum(amount) != 0) ORDER BY tx_id"
            )
        ]
        ledger = {
            (account, asset): int(amount)
            for account, asset, amount in conn.execute(
                "SELECT account, asset, sum(amount) FROM postings GROUP BY account, asset"
            )
        }
        hot = {
            (account, asset): int(amount)
            for account, asset, amount in conn.execute(
                "SELECT account, asset, amount FROM balances"
            )
        }
    mismatches: list[Mismatch] = []
    negative: list[str] = []
    for account, asset in sorted(ledger.keys() | hot.keys()):
        hot_amount = hot.get((account, asset), 0)
        ledger_amount = ledger.get((account, asset), 0)
        if hot_amount != ledger_amount:
            mismatches.append(Mismatch(account, asset, hot_amount, ledger_amount))
        is_user_coins = asset == COIN and account.startswith("user:") and account.endswith(":coins")
        if is_user_coins and min(hot_amount, ledger_amount) < 0:
            negative.append(account)
    return AuditReport(
        transactions=int(count),
        totals=totals,
        unbalanced=unbalanced,
        mismatches=mismatches,
        negative=negative,
        pending=0,
    )

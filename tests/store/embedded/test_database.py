"""Embedded-engine specifics: durability across restarts, the append-only ledger,
and the writer's group commit. Real SQLite files in ``tmp_path``, no mocks."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from store.domain.catalog import Catalog
from store.domain.models import GiftRequest, Profile, PurchaseRequest
from store.embedded.database import SQLiteDatabase
from store.embedded.engine import DATABASE_FILE, open_embedded_engine
from store.errors import Conflict, Forbidden, StoreError, Unavailable
from store.roles import Engine, EngineConfig

ALICE = Profile(id="alice", username="alice", adult=True)
BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))


async def open_engine_at(data_dir: Path) -> Engine:
    return await open_embedded_engine(EngineConfig(data_dir=data_dir), catalog=Catalog())


def gift_request(engine: Engine, key: str, count: int = 1) -> GiftRequest:
    rose = engine.catalog.gift("rose")
    assert rose is not None
    return GiftRequest(sender=ALICE, room_id="room", gift=rose, count=count, key=key)


def purchase_request(engine: Engine) -> PurchaseRequest:
    package = engine.catalog.package("us_70")
    assert package is not None
    return PurchaseRequest(user=ALICE, package=package, payment_id="pay-1")


def raw_connection(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def test_restart_keeps_balances_rooms_and_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = await open_engine_at(data)
    try:
        room = await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
        bought = await engine.wallet.purchase(purchase_request(engine))
        sent = await engine.wallet.send_gift(gift_request(engine, "k1", count=4))
        history = await engine.ledger.transactions(ALICE.id)
    finally:
        await engine.close()
    assert (data / DATABASE_FILE).exists()

    engine = await open_engine_at(data)
    try:
        assert await engine.rooms.get("room") == room
        alice, bob = await engine.wallet.balance(ALICE.id), await engine.wallet.balance(BOB.id)
        assert (alice.coins, bob.diamonds) == (66, 2)
        again = await engine.wallet.send_gift(gift_request(engine, "k1", count=4))
        assert again.replayed and again.tx == sent.tx
        with pytest.raises(Conflict):
            await engine.wallet.send_gift(gift_request(engine, "k1", count=5))
        rebought = await engine.wallet.purchase(purchase_request(engine))
        assert rebought.replayed and rebought.tx == bought.tx
        assert [e.coins for e in await engine.rooms.leaderboard("room")] == [4]
        assert await engine.ledger.transactions(ALICE.id) == history
        assert (await engine.ledger.audit()).ok
    finally:
        await engine.close()


async def test_durability_settings(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:
        mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        sync, fks = await db.write(
            lambda c: (
                c.execute("PRAGMA synchronous").fetchone()[0],
                c.execute("PRAGMA foreign_keys").fetchone()[0],
            )
        )
        assert (mode, sync, fks) == ("wal", 2, 1)  # 2 = FULL
    finally:
        await db.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE transactions SET kind = 'edited'",
        "DELETE FROM transactions",
        "UPDATE postings SET amount = amount * 2",
        "DELETE FROM postings",
    ],
)
async def test_ledger_rejects_updates_and_deletes(tmp_path: Path, statement: str) -> None:
    data = tmp_path / "data"
    engine = await open_engine_at(data)
    try:
        await engine.wallet.purchase(purchase_request(engine))
        before = await engine.ledger.transactions(ALICE.id)
    finally:
        await engine.close()

    def tamper() -> None:
        conn = raw_connection(data / DATABASE_FILE)
        try:
            conn.execute(statement)
        finally:
            conn.close()

    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await asyncio.to_thread(tamper)

    engine = await open_engine_at(data)
    try:
        assert await engine.ledger.transactions(ALICE.id) == before
        assert (await engine.ledger.audit()).ok
    finally:
        await engine.close()


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    db = await SQLiteDatabase.open(path)
    await db.write(lambda c: c.execute("UPDATE schema_version SET version = 99"))
    await db.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteDatabase.open(path)


class Gate:
    """Holds the writer thread inside one op so the next ops queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def op(self, conn: sqlite3.Connection) -> str:
        self.entered.set()
        self.release.wait(30)
        return "gate"

    async def wait_entered(self) -> None:
        await asyncio.to_thread(self.entered.wait, 30)


async def hold_writer(db: SQLiteDatabase) -> tuple[Gate, asyncio.Task[str]]:
    """Create the ``scratch`` table, then hold the writer inside a gate op: the
    writes that follow queue up until ``gate.release`` is set."""
    await db.write(lambda c: c.execute("CREATE TABLE scratch (k TEXT PRIMARY KEY)"))
    gate = Gate()
    held = asyncio.create_task(db.write(gate.op))
    await gate.wait_entered()
    return gate, held


async def wait_queued(db: SQLiteDatabase, count: int) -> None:
    """Let the just-created write tasks run up to their enqueue (a few loop turns)."""
    for _ in range(1_000):
        if db.queued >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"only {db.queued} of {count} writes queued")


def insert(key: str) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO scratch (k) VALUES (?)", (key,))
        return key

    return op


def refuse_before_writing(conn: sqlite3.Connection) -> None:
    raise Forbidden("refused up front")


def refuse_after_writing(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO scratch (k) VALUES ('partial')")
    raise Conflict("refused late")


def crash_after_writing(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO scratch (k) VALUES ('crash')")
    raise RuntimeError("a bug")


def scratch_keys(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT k FROM scratch")}


async def test_a_failing_op_does_not_affect_its_batch(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:
        gate, held = await hold_writer(db)
        ops = [
            insert("a"),
            refuse_before_writing,
            refuse_after_writing,
            insert("b"),
            crash_after_writing,
            insert("c"),
        ]
        tasks = [asyncio.create_task(db.write(op)) for op in ops]
        await wait_queued(db, len(ops))
        batches = db.batches
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert await held == "gate"

        assert db.batches == batches + 1  # all six ran in one group commit
        assert results[0] == "a" and results[3] == "b" and results[5] == "c"
        assert isinstance(results[1], Forbidden)
        assert isinstance(results[2], Conflict)
        assert isinstance(results[4], RuntimeError)
        assert db.restarts == 2  # the two ops that failed after writing
        assert await db.read(scratch_keys) == {"a", "b", "c"}
    finally:
        await db.close()


async def test_close_drains_the_queue(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    db = await SQLiteDatabase.open(path)
    gate, held = await hold_writer(db)
    tasks = [asyncio.create_task(db.write(insert(f"k{n}"))) for n in range(200)]
    await wait_queued(db, 200)
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    gate.release.set()
    await closing
    assert await held == "gate"
    assert [await t for t in tasks] == [f"k{n}" for n in range(200)]

    with pytest.raises(Unavailable):
        await db.write(insert("late"))
    with pytest.raises(Unavailable):
        await db.read(scratch_keys)
    await db.close()  # idempotent

    def count() -> int:
        conn = raw_connection(path)
        try:
            return int(conn.execute("SELECT count(*) FROM scratch").fetchone()[0])
        finally:
            conn.close()

    assert await asyncio.to_thread(count) == 200


async def test_a_cancelled_caller_does_not_stall_the_writer(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:
        gate, held = await hold_writer(db)
        abandoned = asyncio.create_task(db.write(insert("abandoned")))
        await wait_queued(db, 1)
        abandoned.cancel()
        gate.release.set()
        await held
        assert await db.write(insert("next")) == "next"
        # the abandoned op still ran: its caller may retry with the same key
        assert await db.read(scratch_keys) == {"abandoned", "next"}
    finally:
        await db.close()


async def test_the_writer_counts_its_group_commits(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:
        gate, held = await hold_writer(db)
        commits, ops, busy = db.batches, db.ops, db.batch_seconds
        writes = [asyncio.create_task(db.write(insert(key))) for key in "abc"]
        await wait_queued(db, 3)
        gate.release.set()
        assert await held == "gate"
        assert await asyncio.gather(*writes) == ["a", "b", "c"]
        # the three queued behind the gate went in one commit
        assert (db.batches - commits, db.ops - ops) == (1, 3)
        assert db.batch_seconds > busy
        assert db.restarts == 0

        gate = Gate()  # again, with an op that fails after writing in the batch
        held = asyncio.create_task(db.write(gate.op))
        await gate.wait_entered()
        late = asyncio.create_task(db.write(refuse_after_writing))
        fine = asyncio.create_task(db.write(insert("d")))
        await wait_queued(db, 2)
        gate.release.set()
        assert await held == "gate"
        with pytest.raises(Conflict):
            await late
        assert await fine == "d"
        assert db.restarts == 1
    finally:
        await db.close()


async def test_disk_work_stays_off_the_event_loop_thread(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:
        loop_thread = threading.get_ident()
        writer = await db.write(lambda c: threading.get_ident())
        reader = await db.read(lambda c: threading.get_ident())
        assert loop_thread not in (writer, reader)
    finally:
        await db.close()


async def test_check_reads_the_file(tmp_path: Path) -> None:
    engine = await open_engine_at(tmp_path / "data")
    assert engine.name == "embedded"
    assert await engine.ready() == {"sqlite": "ok"}
    gauges = await engine.metric_values()
    assert gauges["sqlite_write_queue"] == 0.0
    assert gauges["sqlite_commits_total"] >= 1  # the schema's, at least
    assert gauges["sqlite_retries_total"] == 0.0
    await engine.close()
    with pytest.raises(Unavailable):
        await engine.ready()


async def test_reads_run_side_by_side_and_errors_reach_their_caller(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / DATABASE_FILE)
    try:

        def boom(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM no_such_table")

        results = await asyncio.gather(
            *(db.read(lambda c, n=n: c.execute("SELECT ?", (n,)).fetchone()[0]) for n in range(50)),
            db.read(boom),
            return_exceptions=True,
        )
        assert results[:50] == list(range(50))
        assert isinstance(results[50], Unavailable)
        assert await db.read(lambda c: 1) == 1  # the reader that failed still reads
    finally:
        await db.close()
    with pytest.raises(Unavailable):
        await db.read(lambda c: 1)


async def test_gift_totals_come_from_the_commits_and_only_grow(tmp_path: Path) -> None:
    engine = await open_engine_at(tmp_path / "data")
    try:
        room = await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
        await engine.wallet.purchase(purchase_request(engine))
        await asyncio.gather(
            *(engine.wallet.send_gift(gift_request(engine, f"k{n}", count=n)) for n in (1, 2, 3))
        )
        await engine.wallet.send_gift(gift_request(engine, "k1", count=1))  # a replay
        stats = await engine.activity.stream_stats("room", room.stream_id)
        assert (stats.gifts, stats.coins) == (6, 6)
        db = engine.wallet._db  # type: ignore[attr-defined]
        key = ("room", room.stream_id)
        assert db.gift_totals[key] == (stats.gifts, stats.coins, stats.diamonds)
        db.note_gift_totals("room", room.stream_id, (1, 1, 1))  # an older answer, resumed late
        assert db.gift_totals[key][1] == 6
    finally:
        await engine.close()

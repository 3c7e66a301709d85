"""The embedded engine's leaderboards and goals in memory (``store.embedded.boards``):
whatever order gifts, reads, goals and streams come in, what the engine answers
equals what the SQLite file says. Real SQLite files in ``tmp_path``."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable
from pathlib import Path

from store.domain.catalog import Catalog
from store.domain.items import DAY_MS, ItemRequest
from store.domain.models import (
    GiftRequest,
    Goal,
    LeaderEntry,
    Profile,
    PurchaseRequest,
    Restriction,
)
from store.embedded.activity import _goal
from store.embedded.boards import TOP, Board, Rows
from store.embedded.engine import DATABASE_FILE, open_embedded_engine
from store.embedded.rooms import stream_leaders
from store.roles import Engine, EngineConfig
from tests.store.embedded.test_database import hold_writer, wait_queued

BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))
FANS = [Profile(id=f"fan{n:02d}", username=f"fan{n:02d}", adult=True) for n in range(TOP + 4)]


async def open_engine(data_dir: Path) -> Engine:
    return await open_embedded_engine(EngineConfig(data_dir=data_dir), catalog=Catalog())


async def fund(engine: Engine, fans: list[Profile]) -> None:
    package = engine.catalog.package("us_70")
    assert package is not None
    for fan in fans:
        await engine.wallet.purchase(PurchaseRequest(user=fan, package=package, payment_id=fan.id))


def gift(engine: Engine, sender: Profile, key: str, count: int) -> GiftRequest:
    rose = engine.catalog.gift("rose")
    assert rose is not None
    return GiftRequest(sender=sender, room_id="room", gift=rose, count=count, key=key)


def from_file(path: Path, limit: int = TOP) -> tuple[list[LeaderEntry], Goal | None]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _, top = stream_leaders(conn, "room", limit)
        return [LeaderEntry(user=user, coins=coins) for _, user, coins in top], _goal(conn, "room")
    finally:
        conn.close()


async def from_engine(engine: Engine, limit: int = TOP) -> tuple[list[LeaderEntry], Goal | None]:
    return await engine.rooms.leaderboard("room", limit=limit), await engine.activity.goal("room")


async def test_reads_racing_gifts_keep_what_the_file_says(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
        await fund(engine, FANS)
        await engine.activity.set_goal("room", target=30, title="goal")
        sends = [
            engine.wallet.send_gift(gift(engine, fan, f"{fan.id}-{round_}", count=1 + n % 5))
            for round_ in range(3)
            for n, fan in enumerate(FANS)
        ]
        db = engine.wallet._db  # type: ignore[attr-defined]

        async def read_again() -> None:
            db.boards.forget("room")  # as a new stream would: the next read fills it
            await from_engine(engine)

        work: list[Awaitable[object]] = []
        for n, send in enumerate(sends):
            work.append(send)
            if n % 4 == 0:  # reads start before, among and after the gifts' commits
                work.append(read_again())
        await asyncio.gather(*work)
        expected = from_file(tmp_path / DATABASE_FILE)
        assert len(expected[0]) == TOP
        assert await from_engine(engine) == expected
        assert await from_engine(engine, limit=3) == (expected[0][:3], expected[1])
        # more than the memory keeps: read from the file, and the same order
        wide = await engine.rooms.leaderboard("room", limit=TOP + 4)
        assert wide == from_file(tmp_path / DATABASE_FILE, TOP + 4)[0]
        assert wide[:TOP] == expected[0]
        goal = expected[1]
        assert goal is not None and goal.progress > goal.target and not goal.reached
        claimed = await engine.activity.claim_goal("room", goal.id)
        assert claimed is not None and claimed.reached
        assert await engine.activity.goal("room") == from_file(tmp_path / DATABASE_FILE)[1]
    finally:
        await engine.close()


async def first_gift(engine: Engine, *, fans: int, target: int, count: int) -> Goal:
    """A live room with a goal and one gift of ``count`` from the first fan, its
    leaderboard and goal read (in memory from then on); the goal."""
    await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
    await fund(engine, FANS[:fans])
    await engine.activity.set_goal("room", target=target, title="goal")
    await engine.wallet.send_gift(gift(engine, FANS[0], "first", count=count))
    board, goal = await from_engine(engine)
    assert [e.coins for e in board] == [count]
    assert goal is not None and goal.progress > 0
    return goal


async def test_a_gift_whose_caller_left_still_counts(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        first = await first_gift(engine, fans=2, target=100, count=2)
        db = engine.wallet._db  # type: ignore[attr-defined]
        gate, held = await hold_writer(db)
        sending = asyncio.create_task(engine.wallet.send_gift(gift(engine, FANS[1], "b", count=5)))
        await wait_queued(db, 1)
        sending.cancel()  # the caller gives up while its gift is queued
        gate.release.set()
        assert await held == "gate"
        await db.write(lambda conn: None)  # the gift's batch is resolved by now
        board, goal = await from_engine(engine)
        assert [e.coins for e in board] == [5, 2]
        assert goal is not None and goal.progress > first.progress
        assert (board, goal) == from_file(tmp_path / DATABASE_FILE)
    finally:
        await engine.close()


async def test_a_new_stream_starts_empty(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        await first_gift(engine, fans=1, target=10, count=3)
        board, goal = await from_engine(engine)
        await engine.rooms.end("room", by=BOB)
        assert await from_engine(engine) == (board, goal)  # the ended stream's, as in the file
        await engine.rooms.go_live(room_id="room", creator=BOB, title="again")
        assert await from_engine(engine) == ([], None)
        await engine.wallet.send_gift(gift(engine, FANS[0], "b", count=1))
        board, goal = await from_engine(engine)
        assert [e.coins for e in board] == [1] and goal is None
        assert (board, goal) == from_file(tmp_path / DATABASE_FILE)
    finally:
        await engine.close()


def test_a_board_keeps_the_largest_totals_whatever_their_order() -> None:
    board = Board(1, [])
    for n in range(TOP + 2):
        board.add(f"u{n:02d}", {"id": f"u{n:02d}"}, 10 + n)
    assert [coins for _, _, coins in board.top] == list(range(21, 11, -1))
    board.add("u11", {"id": "u11"}, 5)  # an older answer for the leader, applied late
    board.add("u00", {"id": "u00"}, 11)  # still below the last kept
    board.add("u05", {"id": "u05"}, 15)  # what it had: no change
    assert board.top[0][0] == "u11"
    assert len(board.top) == TOP and board.top[-1] == ("u02", {"id": "u02"}, 12)
    board.add("u00", {"id": "u00"}, 12)  # ties by user id
    assert board.top[-1] == ("u00", {"id": "u00"}, 12)
    assert "u02" not in {user_id for user_id, _, _ in board.top}


async def test_a_read_that_a_change_overlapped_keeps_nothing() -> None:
    rows: Rows[str, str] = Rows(size=2)
    gate = asyncio.Event()

    async def slow_read() -> str:
        await gate.wait()
        return "before"

    reading = asyncio.create_task(rows.get("room", slow_read))
    await asyncio.sleep(0)
    rows.changed("room")  # committed while the read was on its way
    gate.set()
    assert await reading == "before"

    async def read_after() -> str:
        return "after"

    assert await rows.get("room", read_after) == "after"
    rows.changed("room", "known")
    assert await rows.get("room", slow_read) == "known"  # kept: no read
    for n in range(10):  # more changes than the bound: everything is read again
        rows.changed(f"other{n}")
    assert await rows.get("room", read_after) == "after"


async def test_bans_and_rooms_changed_here_are_seen_at_once(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        room = await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
        assert await engine.rooms.get("room") == room
        assert not await engine.activity.is_banned("room", "fan00")  # read, then kept
        ban = Restriction(user_id="fan00", kind="ban", until=None, by="bob", created_at=1)
        await engine.activity.restrict("room", ban)
        assert await engine.activity.is_banned("room", "fan00")
        assert await engine.activity.lift("room", "fan00", "ban")
        assert not await engine.activity.is_banned("room", "fan00")
        key = await engine.activity.rotate_overlay_key("room")
        assert (await engine.rooms.get("room")) == dataclasses.replace(room, overlay_key=key)
        ended = await engine.rooms.end("room", by=BOB)
        assert await engine.rooms.get("room") == ended and not ended.live
    finally:
        await engine.close()


async def test_items_bought_or_equipped_here_are_seen_at_once(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        package = engine.catalog.package("us_700")
        star = engine.catalog.item("badge_star")  # 30 days
        assert package is not None and star is not None
        fan = FANS[0]
        await engine.wallet.purchase(PurchaseRequest(user=fan, package=package, payment_id="p"))
        now = 1_767_225_600_000
        assert await engine.items.inventory(fan.id, now=now) == []  # read, then kept
        await engine.items.buy(ItemRequest(buyer=fan, item=star, key="k", now=now))
        assert [o.item_id for o in await engine.items.inventory(fan.id, now=now)] == [star.id]
        await engine.items.equip(fan.id, star.id, now=now)
        (owned,) = await engine.items.inventory(fan.id, now=now)
        assert owned.equipped
        later = now + 31 * DAY_MS  # expired: left out without a write
        assert await engine.items.inventory(fan.id, now=later) == []
        await engine.items.unequip(fan.id, star.kind, now=now)
        (owned,) = await engine.items.inventory(fan.id, now=now)
        assert not owned.equipped
    finally:
        await engine.close()

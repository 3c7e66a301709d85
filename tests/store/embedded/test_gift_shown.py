"""The embedded wallet's ``send_gift_shown``: the room's leaderboard and goal
follow a gift's event in the same publish, so in the gift's frame, once per
interval, sharing the lease the separate announcements take; a streakable
gift's combo is copied to the file in the gift's own commit (the rest of the
gift's event: ``tests/store/test_gift_shown.py``)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from store.embedded.activity import SQLiteRoomActivity
from store.embedded.database import SQLiteDatabase
from store.errors import Unavailable
from store.roles import Engine
from tests.engines import embedded_engine
from tests.store.test_conformance import ALICE, ROOM, buy, live
from tests.store.test_gift_shown import WINDOW_MS, published, shown_with_board


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with embedded_engine(tmp_path) as opened:
        yield opened


async def test_the_board_follows_the_gift_in_its_publish_once_per_interval(
    engine: Engine,
) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=3, title="three")
    await buy(engine, ALICE, "us_350")
    first = await shown_with_board(engine, "a1", count=2)
    assert first.board_wait_ms == 0 and first.combo_wait_ms == WINDOW_MS
    found = await engine.broker.history(ROOM, since=0)
    assert found is not None
    assert [e["type"] for e in found] == ["gift", "leaderboard", "goal"]
    assert len({e["ts"] for e in found}) == 1  # one publish: one frame to the room
    assert found[1]["top"] == [{"user": ALICE.public(), "coins": 2}]
    assert found[2]["progress"] == first.receipt.diamonds
    # the lease is the separate announcements' own: they wait for it too
    second = await shown_with_board(engine, "a2", count=2)
    assert second.board_wait_ms is not None and 0 < second.board_wait_ms <= 60_000
    assert await engine.activity.throttle(ROOM, "board", 60_000) > 0
    after = await published(engine, ROOM)
    assert [e["type"] for e in after[3:]] == ["gift"]  # within the interval: no board


async def test_the_gift_that_reaches_the_goal_announces_it_once(engine: Engine) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=1, title="one")
    await buy(engine, ALICE, "us_350")
    first = await shown_with_board(engine, "a1", count=2, board=1)
    assert first.board_wait_ms == 0
    events = await published(engine, ROOM)
    assert [e["type"] for e in events] == ["gift", "leaderboard", "goal", "goal_reached"]
    assert events[3]["target"] == 1 and events[3]["progress"] == first.receipt.diamonds
    goal = await engine.activity.goal(ROOM)
    assert goal is not None and goal.reached
    keys = (f"a{n}" for n in itertools.count(2))  # a new gift each time, never a replay
    while (await shown_with_board(engine, next(keys), count=1, board=1)).board_wait_ms:
        pass  # a 1 ms interval: the next gift's board goes out once it is over
    later = (await published(engine, ROOM))[4:]
    assert [e["type"] for e in later][-3:] == ["gift", "leaderboard", "goal"]
    assert [e for e in later if e["type"] == "goal_reached"] == []


async def test_a_failed_goal_claim_leaves_the_gift_committed_and_shown(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=1, title="one")
    await buy(engine, ALICE, "us_350")

    async def unavailable(self: SQLiteRoomActivity, room_id: str, goal_id: str) -> None:
        raise Unavailable("sqlite commit failed: disk I/O error")

    monkeypatch.setattr(SQLiteRoomActivity, "claim_goal", unavailable)
    first = await shown_with_board(engine, "a1", count=2)
    assert not first.receipt.replayed and first.board_wait_ms == 0
    assert [e["type"] for e in await published(engine, ROOM)] == ["gift", "leaderboard", "goal"]
    monkeypatch.undo()
    # the room's next announcement claims it instead
    goal = await engine.activity.goal(ROOM)
    assert goal is not None and not goal.reached
    assert await engine.activity.claim_goal(ROOM, goal.id) is not None


async def test_a_gift_whose_showing_fails_is_still_answered_for_its_caller_to_show(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")

    async def unreadable(self: SQLiteRoomActivity, room_id: str, stream_id: int) -> None:
        raise Unavailable("sqlite read failed: disk I/O error")

    monkeypatch.setattr(SQLiteRoomActivity, "_gift_stats", unreadable)
    first = await shown_with_board(engine, "a1", count=2)
    assert first.combo_wait_ms is None and first.board_wait_ms is None
    assert not first.receipt.replayed  # committed: the caller publishes its event
    assert await published(engine, ROOM) == []
    assert (await engine.wallet.balance(ALICE.id)).coins == first.receipt.balance


def database(engine: Engine) -> SQLiteDatabase:
    db = engine.wallet._db  # type: ignore[attr-defined]
    assert isinstance(db, SQLiteDatabase)
    return db


def open_combos(db: SQLiteDatabase) -> list[tuple[Any, ...]]:
    """The open combos as a fresh connection reads them from the file."""
    conn = sqlite3.connect(db.path)
    try:
        return conn.execute(
            "SELECT sender_id, gift_id, combo_id, count, coins, diamonds FROM open_combos"
        ).fetchall()
    finally:
        conn.close()


async def test_a_streakable_gift_and_its_combos_copy_are_one_commit(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")
    db = database(engine)
    before = db.batches
    first = await shown_with_board(engine, "a1", count=2, board=0)
    assert first.combo_wait_ms == WINDOW_MS
    assert db.batches == before + 1  # answered after one group commit, not two
    tx, diamonds = first.receipt.tx, first.receipt.diamonds
    assert open_combos(db) == [(ALICE.id, "rose", tx, 2, first.receipt.coins, diamonds)]
    second = await shown_with_board(engine, "a2", count=3, board=0)
    assert db.batches == before + 2
    events = await published(engine, ROOM)
    assert [e["combo"] for e in events] == [
        {"id": tx, "count": 2, "end": False},
        {"id": tx, "count": 5, "end": False},
    ]
    coins = first.receipt.coins + second.receipt.coins
    assert open_combos(db) == [(ALICE.id, "rose", tx, 5, coins, diamonds + second.receipt.diamonds)]


async def test_where_the_commit_saw_the_combo_otherwise_the_rooms_memory_is_written(
    engine: Engine,
) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")
    db = database(engine)
    first = await shown_with_board(engine, "a1", count=2, board=0)
    # the file without the combo the room's memory holds (as when a change of the
    # memory's is still on its way): the next gift's commit starts a combo of its own
    await db.write(lambda conn: conn.execute("DELETE FROM open_combos"))
    before = db.batches
    second = await shown_with_board(engine, "a2", count=3, board=0)
    assert db.batches == before + 2  # the gift, then the memory's combo over the file's
    events = await published(engine, ROOM)
    assert events[-1]["combo"] == {"id": first.receipt.tx, "count": 5, "end": False}
    assert [row[2:4] for row in open_combos(db)] == [(first.receipt.tx, 5)]
    assert second.combo_wait_ms == WINDOW_MS


async def test_a_failed_copy_in_the_commit_leaves_the_gift_and_is_written_after(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")
    db = database(engine)

    def locked(conn: sqlite3.Connection, *args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database table is locked")

    monkeypatch.setattr("store.embedded.activity.continue_in", locked)
    before = db.batches
    first = await shown_with_board(engine, "a1", count=2, board=0)
    assert not first.receipt.replayed and first.combo_wait_ms == WINDOW_MS
    assert db.batches == before + 2  # the gift, then its combo's copy on its own
    assert [row[2:4] for row in open_combos(db)] == [(first.receipt.tx, 2)]
    assert (await engine.wallet.balance(ALICE.id)).coins == first.receipt.balance

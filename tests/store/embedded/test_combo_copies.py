"""The file's copy of the open combos: the changes asked for together are written
by one operation of the group commit, the latest change of a combo wins, and each
is on disk when its wait returns; ended combos wait a little for each other, and
are written before the engine closes. Real SQLite files in ``tmp_path``."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from store.domain.models import Event
from store.embedded.combo_copies import ComboCopies, ComboKey, ComboRow, combo_row
from store.embedded.database import SQLiteDatabase
from store.errors import Unavailable
from tests.engines import embedded_engine
from tests.store.embedded.test_gift_shown import database
from tests.store.test_conformance import ALICE, ROOM, buy, live
from tests.store.test_gift_shown import shown_with_board


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    opened = await SQLiteDatabase.open(tmp_path / "live.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


def row(key: ComboKey, combo_id: str, count: int) -> ComboRow:
    return combo_row(
        key,
        combo_id=combo_id,
        stream_id=1,
        totals=(count, count * 10, count * 5),
        deadline=1_000 + count,
        end_event={"type": "gift", "tx": f"{combo_id}-{count}", "count": 0},
    )


def stored(path: Path) -> dict[tuple[str, ...], tuple[Any, ...]]:
    """The open combos as a fresh connection reads them from the file."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT room_id, sender_id, gift_id, combo_id, count, end_event FROM open_combos"
        ).fetchall()
    finally:
        conn.close()
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


A: ComboKey = ("room", "alice", "rose")
B: ComboKey = ("room", "bob", "rose")
C: ComboKey = ("other", "alice", "heart")


async def test_changes_asked_together_are_one_write_and_durable_when_awaited(
    db: SQLiteDatabase,
) -> None:
    copies = ComboCopies(db)
    ops = db.ops
    waits = [
        copies.keep(row(A, "c1", 1)),
        copies.keep(row(B, "c2", 3)),
        copies.keep(row(C, "c3", 2)),
    ]
    await asyncio.gather(*waits)
    assert db.ops == ops + 1
    found = stored(db.path)
    assert {key: value[:2] for key, value in found.items()} == {
        A: ("c1", 1),
        B: ("c2", 3),
        C: ("c3", 2),
    }
    assert b'"tx":"c2-3"' in found[B][2]


async def test_the_latest_change_of_a_combo_wins(db: SQLiteDatabase) -> None:
    copies = ComboCopies(db)
    await asyncio.gather(copies.keep(row(A, "c1", 1)), copies.keep(row(B, "c2", 1)))
    # within one write: a count raised, a combo ended, and one ended then reopened
    await asyncio.gather(
        copies.keep(row(A, "c1", 2)),
        copies.keep(row(A, "c1", 3)),
        copies.keep(row(B, "c2", 2)),
        copies.forget(B, "c2"),
        copies.forget(C, "c9"),
        copies.keep(row(C, "c4", 1)),
    )
    assert {key: value[:2] for key, value in stored(db.path).items()} == {
        A: ("c1", 3),
        C: ("c4", 1),
    }
    # ending an older combo leaves the newer one of the same sender and gift
    await copies.forget(C, "c9")
    await copies.forget(A, "c1")
    assert {key: value[:2] for key, value in stored(db.path).items()} == {C: ("c4", 1)}


async def test_a_caller_that_gives_up_leaves_the_write_to_the_others(
    db: SQLiteDatabase,
) -> None:
    copies = ComboCopies(db)
    gives_up = asyncio.ensure_future(copies.keep(row(A, "c1", 1)))
    waits = copies.keep(row(B, "c2", 1))
    gives_up.cancel()
    await waits
    assert set(stored(db.path)) == {A, B}


async def test_a_closed_store_refuses_every_change(tmp_path: Path) -> None:
    db = await SQLiteDatabase.open(tmp_path / "live.sqlite3")
    copies = ComboCopies(db)
    await db.close()
    for n in range(2):  # the refused write is not kept as the one to join
        with pytest.raises(Unavailable, match="closed"):
            await copies.keep(row(A, "c1", n + 1))


async def two_open(db: SQLiteDatabase) -> ComboCopies:
    """Copies whose ended combos wait (an hour: until something starts their
    write), with A's and B's combos open in the file."""
    copies = ComboCopies(db, delay=3600)
    await asyncio.gather(copies.keep(row(A, "c1", 1)), copies.keep(row(B, "c2", 1)))
    return copies


async def test_ended_combos_wait_for_each_other_and_go_in_one_write(
    db: SQLiteDatabase,
) -> None:
    copies = await two_open(db)
    ops = db.ops
    first = copies.forget(A, "c1")
    for _ in range(5):
        await asyncio.sleep(0)
    assert not first.done() and db.ops == ops  # not written yet: waiting for others
    second = copies.forget(B, "c2")
    await copies.flush()
    await asyncio.gather(first, second)
    assert db.ops == ops + 1
    assert stored(db.path) == {}


async def test_an_ended_combo_is_written_after_the_delay_on_its_own(
    db: SQLiteDatabase,
) -> None:
    copies = ComboCopies(db, delay=0.001)
    await copies.keep(row(A, "c1", 1))
    await copies.forget(A, "c1")  # nothing else comes: the timer starts the write
    assert stored(db.path) == {}


async def test_a_change_that_must_not_wait_takes_the_ended_combos_along(
    db: SQLiteDatabase,
) -> None:
    copies = await two_open(db)
    ops = db.ops
    ended = copies.forget(A, "c1")
    await copies.keep(row(B, "c2", 2))
    assert ended.done() and ended.exception() is None
    assert db.ops == ops + 1
    assert {key: value[:2] for key, value in stored(db.path).items()} == {B: ("c2", 2)}


class Ends:
    """A room's listener that notes the first combo end it is sent."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def on_events(self, room_id: str, events: list[Event]) -> None:
        if any(e["type"] == "gift" and e["combo"]["end"] for e in events):
            self.ended.set()

    def on_reset(self, room_id: str) -> None:
        pass


async def test_the_engine_writes_the_ended_combos_before_it_closes(tmp_path: Path) -> None:
    async with embedded_engine(tmp_path) as engine:
        await live(engine)
        await buy(engine, ALICE, "us_350")
        await shown_with_board(engine, "a1", board=0)
        path = database(engine).path
        assert len(stored(path)) == 1
        engine.activity._copies._delay = 3600  # type: ignore[attr-defined]
        shown = Ends()
        await engine.broker.subscribe(ROOM, shown)
        ending = asyncio.ensure_future(engine.activity.end_combos(ROOM, everything=True))
        await shown.ended.wait()
        assert len(stored(path)) == 1  # ended and shown; its write still waits
    assert stored(path) == {}
    assert ending.done()

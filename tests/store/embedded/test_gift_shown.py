"""The embedded wallet's ``send_gift_shown``: a committed gift's event goes out at
once within its combo, as the separate combo call (``publish_gift``) gives it,
and the room's leaderboard and goal follow it in the same publish, so in the
gift's frame, once per interval, sharing the lease the separate announcements
take; a replay or a refusal publishes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.embedded.activity import SQLiteRoomActivity
from store.errors import InsufficientFunds, Unavailable
from store.roles import Engine
from tests.engines import embedded_engine
from tests.store.scaled.test_gift_shown import (
    DAN,
    OTHER_ROOM,
    SEEN,
    WINDOW_MS,
    published,
    shown,
    shown_with_board,
    two_step,
    without_ids,
)
from tests.store.test_conformance import ALICE, ROOM, buy, live


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with embedded_engine(tmp_path) as opened:
        yield opened


async def test_the_event_is_the_separate_calls_within_the_same_combo(engine: Engine) -> None:
    await live(engine)
    await live(engine, DAN, OTHER_ROOM)
    await buy(engine, ALICE, "us_350")
    first, wait = await shown(engine, "a1", count=2)
    second, wait_again = await shown(engine, "a2", count=3)
    assert wait == wait_again == WINDOW_MS
    one = await two_step(engine, "b1", count=2)
    two = await two_step(engine, "b2", count=3)
    assert one == two == WINDOW_MS
    mine = await published(engine, ROOM)
    theirs = await published(engine, OTHER_ROOM)
    assert [e["combo"] for e in mine] == [
        {"id": first.tx, "count": 2, "end": False},
        {"id": first.tx, "count": 5, "end": False},
    ]
    assert mine[1]["tx"] == second.tx and mine[1]["sender"] == SEEN
    their_tx = [e["tx"] for e in theirs]
    assert without_ids(mine, first.tx, second.tx) == without_ids(theirs, *their_tx)
    assert await engine.activity.end_combos(ROOM, everything=True) == 0
    ended = (await published(engine, ROOM))[2:]
    assert [e["combo"] for e in ended] == [{"id": first.tx, "count": 5, "end": True}]


async def test_a_replay_or_a_refusal_publishes_nothing(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")
    receipt, wait = await shown(engine, "a1", gift_id="confetti", count=1)
    assert wait == 0  # not streakable: a combo of its own, ended at once
    events = await published(engine, ROOM)
    assert [e["combo"]["end"] for e in events] == [True]
    again, none = await shown(engine, "a1", gift_id="confetti", count=1)
    assert again.replayed and again.tx == receipt.tx and none is None
    with pytest.raises(InsufficientFunds):
        await shown(engine, "a2", gift_id="lion")
    assert await published(engine, ROOM) == events


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
    while (await shown_with_board(engine, "a2", count=1, board=1)).board_wait_ms:
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

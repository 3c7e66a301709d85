"""On a single Redis the room's leaderboard and goal follow a gift's event from
the gift's own script (``send_gift_shown``) and are those the separate
announcement (``announce_board``) gives, once per interval (the rest of the
gift's event: ``tests/store/test_gift_shown.py``)."""

from __future__ import annotations

import pytest

from store.roles import BoardAnnouncer, Engine
from store.scaled.keys import BOARD_LEASE, throttle_key
from tests.services import Urls, redis_client
from tests.store.test_conformance import ALICE, ROOM, buy, live
from tests.store.test_gift_shown import WINDOW_MS, published, shown_with_board


@pytest.mark.scaled
async def test_the_board_follows_the_gift_once_per_interval(engine: Engine, urls: Urls) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=3, title="three")
    await buy(engine, ALICE, "us_350")
    first = await shown_with_board(engine, "a1", count=2)
    assert first.board_wait_ms == 0 and first.combo_wait_ms == WINDOW_MS
    events = await published(engine, ROOM)
    assert [e["type"] for e in events] == ["gift", "leaderboard", "goal"]
    second = await shown_with_board(engine, "a2", count=2)
    assert second.board_wait_ms is not None and 0 < second.board_wait_ms <= 60_000
    after = await published(engine, ROOM)
    assert [e["type"] for e in after[3:]] == ["gift"]  # within the interval: no board
    # once the interval is over, the separate announcement gives what the gift's did
    await redis_delete_lease(urls)
    assert isinstance(engine.activity, BoardAnnouncer)
    third = await shown_with_board(engine, "a3", count=1)
    assert third.board_wait_ms == 0
    from_gift = (await published(engine, ROOM))[5:]
    assert [e["type"] for e in from_gift] == ["leaderboard", "goal", "goal_reached"]
    assert from_gift[1]["progress"] >= 3 and from_gift[1]["reached"] is True
    await redis_delete_lease(urls)
    assert await engine.activity.announce_board(ROOM, interval_ms=60_000, limit=10) == 0
    separate = (await published(engine, ROOM))[8:]
    assert separate == from_gift[:2]
    # goal_reached went out once, after the gift that reached it
    reached = [e for e in await published(engine, ROOM) if e["type"] == "goal_reached"]
    assert len(reached) == 1


async def redis_delete_lease(urls: Urls) -> None:
    redis = await redis_client(urls)
    try:
        await redis.delete(throttle_key(ROOM, BOARD_LEASE))
    finally:
        await redis.aclose()

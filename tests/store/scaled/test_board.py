"""The scaled engine's one-step leaderboard and goal announcement
(``announce_board``, ``lua/room_board.lua``): the events it publishes are those
the separate reads would give, once per interval across callers, and
``goal_reached`` once per goal."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol import events as ev
from store.domain.models import Event
from store.roles import BoardAnnouncer, Engine
from store.scaled import keys
from store.scaled.activity import BOARD_LEASE, RedisRoomActivity
from store.scaled.broker import RedisBroker
from store.scaled.client import CommandBatcher, connect_redis
from store.scaled.keys import room_key, throttle_key
from tests.services import Recorder, Services, Urls, eventually
from tests.store.test_conformance import ALICE, BEN, BOB, CARA, ROOM, buy, live, send

TITLE = 'the "big" one / ünïcode \\ \u2603'


def announcer(engine: Engine) -> BoardAnnouncer:
    assert isinstance(engine.activity, BoardAnnouncer)
    return engine.activity


async def announce(engine: Engine, *, interval_ms: int, limit: int = 10) -> int:
    return await announcer(engine).announce_board(ROOM, interval_ms=interval_ms, limit=limit)


async def announce_after_the_interval(engine: Engine, urls: Urls) -> None:
    """Announce as if the interval of the earlier announcement was over."""
    redis = connect_redis(urls.redis)
    try:
        await redis.delete(throttle_key(ROOM, BOARD_LEASE))
    finally:
        await redis.aclose()
    assert await announce(engine, interval_ms=60_000) == 0


async def published(engine: Engine, since: int) -> list[Event]:
    found = await engine.broker.history(ROOM, since=since)
    assert found is not None
    return [{k: v for k, v in e.items() if k not in ("seq", "ts")} for e in found]


async def expected(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """What the separate reads (leaderboard, goal) say should be announced."""
    top = await engine.rooms.leaderboard(ROOM, limit=limit)
    events: list[dict[str, Any]] = [ev.leaderboard(top=[entry.public() for entry in top])]
    goal = await engine.activity.goal(ROOM)
    if goal is not None:
        events.append(ev.goal(**goal.public()))
    return events


async def test_an_announcement_equals_the_reads_once_per_interval(engine: Engine) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=1_000, title=TITLE)
    for user, count in ((CARA, 1), (BEN, 2), (ALICE, 2)):
        await buy(engine, user)
        await send(engine, user, f"{user.id}-1", count=count)
    want = await expected(engine, limit=2)
    assert [e["user"]["id"] for e in want[0]["top"]] == ["alice", "ben"]  # a tie: by id
    answers = await asyncio.gather(
        *(announce(engine, interval_ms=60_000, limit=2) for _ in range(5))
    )
    assert sorted(answers)[0] == 0 and all(wait > 0 for wait in sorted(answers)[1:])
    assert await published(engine, 0) == want
    assert want[1]["title"] == TITLE and want[1]["reached"] is False


async def test_goal_reached_is_announced_once_after_the_goal(engine: Engine, urls: Urls) -> None:
    await live(engine)
    goal = await engine.activity.set_goal(ROOM, target=3, title=TITLE)
    await buy(engine, ALICE, "us_350")
    await send(engine, ALICE, "k1", gift_id="finger_heart")
    await send(engine, ALICE, "k2", gift_id="finger_heart")
    now = await engine.activity.goal(ROOM)
    assert now is not None and now.progress >= now.target and not now.reached
    want = await expected(engine, limit=10)
    answers = await asyncio.gather(*(announce(engine, interval_ms=60_000) for _ in range(5)))
    assert answers.count(0) == 1
    events = await published(engine, 0)
    reached = ev.goal_reached(target=3, progress=now.progress, title=TITLE)
    assert events == [*want, reached]
    # claimed: a later announcement shows the goal reached, without goal_reached
    assert await engine.activity.claim_goal(ROOM, goal.id) is None
    last = await engine.broker.last_seq(ROOM)
    await announce_after_the_interval(engine, urls)
    again = await published(engine, last)
    assert again == await expected(engine, limit=10)
    assert again[1]["reached"] is True


async def test_a_goal_of_an_earlier_stream_is_not_announced(engine: Engine, urls: Urls) -> None:
    await live(engine)
    await engine.activity.set_goal(ROOM, target=5, title="old")
    await engine.rooms.end(ROOM, by=BOB)
    await live(engine)
    await announce_after_the_interval(engine, urls)
    assert await published(engine, 0) == [ev.leaderboard(top=[])]


async def test_an_announcement_runs_on_a_redis_cluster(services: Services) -> None:
    """Every key of the script is in the room's slot: on a cluster each room's
    announcement goes to its own primary and out by sharded pub/sub."""
    cluster = await services.cluster()
    await cluster.flush()
    batcher = CommandBatcher(cluster.url)
    broker = RedisBroker(batcher, url=cluster.url, history_size=50)
    activity = RedisRoomActivity(batcher, history_size=50, history_seconds=60)
    rooms = [f"room-{n}" for n in range(6)]  # spread over the primaries' slots
    listeners = {room: Recorder() for room in rooms}
    try:
        for room, recorder in listeners.items():
            await broker.subscribe(room, recorder)
            await batcher.execute("HSET", room_key(room, keys.ROOM), "stream_id", "1")
            await batcher.execute(
                "HSET",
                room_key(room, keys.GOAL),
                *("stream_id", "1", "target", "3", "progress", "5", "title", room),
                *("reached", "0"),
            )
            await batcher.execute("ZADD", room_key(room, keys.LEADERBOARD), 5, "alice")
            await batcher.execute(
                "HSET", room_key(room, keys.LEADERBOARD_PROFILES), "alice", '{"id":"alice"}'
            )
        answers = await asyncio.gather(
            *(activity.announce_board(room, interval_ms=60_000, limit=10) for room in rooms)
        )
        assert answers == [0] * len(rooms)
        for room, recorder in listeners.items():
            await eventually(lambda: len(recorder.events) == 3)  # noqa: B023
            assert [
                {k: v for k, v in e.items() if k not in ("seq", "ts")} for e in recorder.events
            ] == [
                ev.leaderboard(top=[{"user": {"id": "alice"}, "coins": 5}]),
                ev.goal(target=3, progress=5, title=room, reached=True),
                ev.goal_reached(target=3, progress=5, title=room),
            ]
    finally:
        await broker.close()
        await batcher.close()

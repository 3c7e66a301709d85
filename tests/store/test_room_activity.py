"""Conformance of ``RoomActivity`` and ``Broker.signal``: the same inputs give the
same state and the same events on every engine of ``tests.engines.ENGINES``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from store.domain.models import ComboHit, Event, LeaderEntry, Restriction, StreamStats
from store.errors import BadRequest, Forbidden, NotFound, RateLimited, RoomNotLive
from store.ids import now_ms
from store.roles import Engine
from tests.engines import opened
from tests.store.test_catalog_conformance import node_config
from tests.store.test_conformance import (
    ALICE,
    BEN,
    BOB,
    CARA,
    ROOM,
    Recorder,
    buy,
    gift,
    live,
    recording,
    send,
)


def gift_event(engine: Engine, tx: str, gift_id: str = "rose", count: int = 1) -> Event:
    return {
        "type": "gift",
        "tx": tx,
        "gift": gift(engine, gift_id).public(),
        "sender": ALICE.public(),
        "count": count,
        "diamonds": count,
    }


async def hit(
    engine: Engine,
    tx: str,
    *,
    gift_id: str = "rose",
    count: int = 1,
    window_ms: int = 150,
    sender: str = "alice",
) -> int:
    found = gift(engine, gift_id)
    hit = ComboHit(
        event=gift_event(engine, tx, gift_id, count),
        stream_id=1,
        sender_id=sender,
        gift_id=gift_id,
        streakable=found.streakable,
        count=count,
        coins=found.coins * count,
        diamonds=count,
    )
    return await engine.activity.publish_gift(ROOM, hit, window_ms=window_ms)


def gifts(recorder: Recorder) -> list[Event]:
    return [e for _, e in recorder.events if e["type"] == "gift"]


class Signals:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def on_events(self, room_id: str, events: list[Event]) -> None:
        self.events.extend(events)

    def on_reset(self, room_id: str) -> None:
        pass

    def on_signal(self, room_id: str, message: dict[str, Any]) -> None:
        self.messages.append((room_id, message))
        self.arrived.set()


# --------------------------------------------------------------------------- #
# totals written by the gift itself
# --------------------------------------------------------------------------- #


async def test_gift_totals_equal_the_ledger(engine: Engine) -> None:
    await live(engine)
    for user in (ALICE, BEN):
        await buy(engine, user, "us_350")
    await send(engine, ALICE, "a1", gift_id="perfume", count=2)  # 40 coins, 20 diamonds
    goal = await engine.activity.set_goal(ROOM, target=25, title="new mic")
    assert (goal.progress, goal.reached, goal.stream_id) == (0, False, 1)
    await send(engine, BEN, "b1", gift_id="doughnut")  # 30 coins, 15 diamonds
    await send(engine, ALICE, "a2", gift_id="rose", count=3)  # 3 coins, 2 diamonds
    await send(engine, ALICE, "a2", gift_id="rose", count=3)  # replay: nothing

    stats = await engine.activity.stream_stats(ROOM, 1)
    assert stats == StreamStats(gifts=6, coins=73, diamonds=37, likes=0, peak_viewers=0)
    assert (await engine.wallet.balance(BOB.id)).diamonds == stats.diamonds
    current = await engine.activity.goal(ROOM)
    assert current is not None and current.id == goal.id
    assert (current.progress, current.target, current.title) == (17, 25, "new mic")

    for period in ("day", "all"):
        top = await engine.activity.supporters(BOB.id, period=period)
        assert [(e.user["id"], e.coins) for e in top] == [("alice", 43), ("ben", 30)]
        assert top[0].user == ALICE.public()
    assert len(await engine.activity.supporters(BOB.id, period="all", limit=1)) == 1
    assert await engine.activity.supporters("nobody", period="day") == []
    with pytest.raises(BadRequest):
        await engine.activity.supporters(BOB.id, period="week")

    # All-time supporters outlive the stream; the stream's totals and goal do not.
    await engine.rooms.end(ROOM, by=BOB)
    await live(engine)
    await send(engine, BEN, "b2", gift_id="rose")
    assert await engine.activity.goal(ROOM) is None
    assert await engine.activity.stream_stats(ROOM, 2) == StreamStats(gifts=1, coins=1, diamonds=1)
    assert (await engine.activity.stream_stats(ROOM, 1)).coins == 73
    all_time = await engine.activity.supporters(BOB.id, period="all")
    assert [(e.user["id"], e.coins) for e in all_time] == [("alice", 43), ("ben", 31)]


async def test_goals(engine: Engine) -> None:
    with pytest.raises(NotFound):
        await engine.activity.set_goal(ROOM, target=10, title="t")
    await live(engine)
    with pytest.raises(BadRequest):
        await engine.activity.set_goal(ROOM, target=0, title="t")
    goal = await engine.activity.set_goal(ROOM, target=3, title="three")
    await buy(engine, ALICE)
    await send(engine, ALICE, "k1", gift_id="rose", count=2)  # 1 diamond
    assert await engine.activity.claim_goal(ROOM, goal.id) is None  # not there yet
    await send(engine, ALICE, "k2", gift_id="finger_heart")  # 3 diamonds
    claims = await asyncio.gather(*(engine.activity.claim_goal(ROOM, goal.id) for _ in range(5)))
    won = [c for c in claims if c is not None]
    assert len(won) == 1, "reaching a goal is announced once"
    assert (won[0].progress, won[0].reached) == (4, True)
    assert await engine.activity.claim_goal(ROOM, goal.id) is None
    # A new goal starts from zero.
    again = await engine.activity.set_goal(ROOM, target=100, title="more")
    assert again.id != goal.id
    current = await engine.activity.goal(ROOM)
    assert current is not None and (current.progress, current.reached) == (0, False)
    await engine.rooms.end(ROOM, by=BOB)
    with pytest.raises(RoomNotLive):
        await engine.activity.set_goal(ROOM, target=5, title="late")


async def test_a_goal_set_after_reads_without_one_is_seen(engine: Engine) -> None:
    await live(engine)
    assert await engine.activity.goal(ROOM) is None
    assert await engine.activity.goal(ROOM) is None
    goal = await engine.activity.set_goal(ROOM, target=7, title="seven")
    current = await engine.activity.goal(ROOM)
    assert current is not None and current.id == goal.id
    # reads racing a new stream's goal: once it is set, reads see it
    await engine.rooms.end(ROOM, by=BOB)
    await live(engine)
    reads = [engine.activity.goal(ROOM) for _ in range(5)]
    _, again = await asyncio.gather(asyncio.gather(*reads), set_goal(engine, "again"))
    current = await engine.activity.goal(ROOM)
    assert current is not None and current.id == again.id


async def set_goal(engine: Engine, title: str) -> Any:
    return await engine.activity.set_goal(ROOM, target=9, title=title)


# --------------------------------------------------------------------------- #
# combos
# --------------------------------------------------------------------------- #


async def test_combo_counts_up_then_ends_once(engine: Engine) -> None:
    await live(engine)
    async with recording(engine) as recorder:
        assert await hit(engine, "tx_1", count=2) == 150
        assert await hit(engine, "tx_2", count=3) == 150
        await recorder.wait_for(2)
        first, second = gifts(recorder)
        assert first["combo"] == {"id": "tx_1", "count": 2, "end": False}
        assert second["combo"] == {"id": "tx_1", "count": 5, "end": False}
        assert (second["tx"], second["count"]) == ("tx_2", 3)
        assert second["overlay"]["combo"] == {"coins": 5, "diamonds": 5}
        assert set(second["overlay"]["stream"]) == {"gifts", "coins", "diamonds"}
        assert 0 < await engine.activity.end_combos(ROOM) <= 150  # not due yet
        await asyncio.sleep(0.2)
        waits = await asyncio.gather(*(engine.activity.end_combos(ROOM) for _ in range(6)))
        assert waits == [0] * 6
        await recorder.wait_for(3)
        await asyncio.sleep(0.05)
        ends = [g for g in gifts(recorder) if g["combo"]["end"]]
        assert len(ends) == 1, "a combo ends exactly once"
        end = ends[0]
        assert end["combo"] == {"id": "tx_1", "count": 5, "end": True}
        assert (end["tx"], end["count"], end["diamonds"]) == ("tx_2", 0, 0)
        assert end["overlay"]["combo"] == {"coins": 5, "diamonds": 5}
        assert end["sender"] == ALICE.public() and end["gift"]["id"] == "rose"
        seqs = recorder.seqs(ROOM)
        assert seqs == list(range(seqs[0], seqs[0] + 3))


async def test_combos_are_per_sender_and_gift_and_not_for_big_gifts(engine: Engine) -> None:
    await live(engine)
    async with recording(engine) as recorder:
        await hit(engine, "tx_a", window_ms=5_000)
        await hit(engine, "tx_b", gift_id="finger_heart", window_ms=5_000)
        await hit(engine, "tx_c", sender="ben", window_ms=5_000)
        assert await hit(engine, "tx_d", gift_id="galaxy", window_ms=5_000) == 0
        await recorder.wait_for(4)
        combos = [g["combo"] for g in gifts(recorder)]
        assert combos == [
            {"id": "tx_a", "count": 1, "end": False},
            {"id": "tx_b", "count": 1, "end": False},
            {"id": "tx_c", "count": 1, "end": False},
            {"id": "tx_d", "count": 1, "end": True},
        ]
        # The stream ends: every open combo ends now, window or not.
        assert await engine.activity.end_combos(ROOM, everything=True) == 0
        await recorder.wait_for(7)
        ended = sorted(g["combo"]["id"] for g in gifts(recorder)[4:])
        assert ended == ["tx_a", "tx_b", "tx_c"]
        assert all(g["combo"]["end"] for g in gifts(recorder)[4:])


async def test_a_gift_after_the_window_ends_the_old_combo_first(engine: Engine) -> None:
    await live(engine)
    async with recording(engine) as recorder:
        await hit(engine, "tx_1", window_ms=50)
        await asyncio.sleep(0.1)  # nobody ended it: the next gift does
        await hit(engine, "tx_2", window_ms=50)
        await recorder.wait_for(3)
        assert [(g["tx"], g["combo"]) for g in gifts(recorder)] == [
            ("tx_1", {"id": "tx_1", "count": 1, "end": False}),
            ("tx_1", {"id": "tx_1", "count": 1, "end": True}),
            ("tx_2", {"id": "tx_2", "count": 1, "end": False}),
        ]


async def test_a_combo_left_open_by_a_stopped_node_is_ended_once_later(
    engine_name: str, engine_services: Any, tmp_path: Path
) -> None:
    async with node_config(engine_name, engine_services, tmp_path) as config:
        async with opened(config, None) as first:
            await live(first)
            assert await hit(first, "tx_1", count=2, window_ms=100) == 100
            assert await hit(first, "tx_2", window_ms=100) == 100
            await hit(first, "tx_3", sender="ben", window_ms=60_000)
            assert set(await first.activity.open_combo_rooms()) == {ROOM}
            # closed without ending its combos: as a node that died
        await asyncio.sleep(0.15)
        async with opened(config, None) as second:
            rooms = await second.activity.open_combo_rooms()
            assert list(rooms) == [ROOM] and rooms[ROOM] == 0  # alice's is due
            async with recording(second) as recorder:
                waits = await asyncio.gather(*(second.activity.end_combos(ROOM) for _ in range(4)))
                assert all(0 < wait <= 60_000 for wait in waits)  # ben's stays open
                await recorder.wait_for(1)
                await asyncio.sleep(0.05)
                ended = gifts(recorder)
                assert len(ended) == 1, "a combo ends exactly once"
                assert ended[0]["combo"] == {"id": "tx_1", "count": 3, "end": True}
                assert (ended[0]["tx"], ended[0]["count"], ended[0]["diamonds"]) == ("tx_2", 0, 0)
                assert ended[0]["overlay"]["combo"] == {"coins": 3, "diamonds": 3}
                assert ended[0]["sender"] == ALICE.public()
                # ben's combo goes on where it was, and ends with the stream
                await hit(second, "tx_4", sender="ben", window_ms=60_000)
                await recorder.wait_for(2)
                assert gifts(recorder)[1]["combo"] == {"id": "tx_3", "count": 2, "end": False}
                assert await second.activity.end_combos(ROOM, everything=True) == 0
                await recorder.wait_for(3)
                assert gifts(recorder)[2]["combo"] == {"id": "tx_3", "count": 2, "end": True}
            assert await second.activity.open_combo_rooms() == {}
        async with opened(config, None) as third:
            assert await third.activity.open_combo_rooms() == {}  # nothing ends twice
            async with recording(third) as recorder:
                assert await third.activity.end_combos(ROOM, everything=True) == 0
                await asyncio.sleep(0.05)
                assert gifts(recorder) == []


# --------------------------------------------------------------------------- #
# likes, viewers, throttles
# --------------------------------------------------------------------------- #


async def test_likes_publish_running_totals(engine: Engine) -> None:
    await live(engine)
    async with recording(engine) as recorder:
        a = {"type": "like", "sender": ALICE.public(), "count": 3}
        b = {"type": "like", "sender": BEN.public(), "count": 4}
        assert await engine.activity.add_likes(ROOM, stream_id=1, likes=[(a, 3), (b, 4)]) == [3, 7]
        assert await engine.activity.add_likes(ROOM, stream_id=1, likes=[(a, 1)]) == [8]
        assert await engine.activity.add_likes(ROOM, stream_id=1, likes=[]) == []
        await recorder.wait_for(3)
        assert [(e["sender"]["id"], e["count"], e["total"]) for _, e in recorder.events] == [
            ("alice", 3, 3),
            ("ben", 4, 7),
            ("alice", 3, 8),
        ]
        assert (await engine.activity.stream_stats(ROOM, 1)).likes == 8


async def test_viewer_counts_add_up_across_nodes_and_expire(engine: Engine) -> None:
    await live(engine)
    report = engine.activity.report_viewers
    async with recording(engine) as recorder:
        assert await report(ROOM, node="a", count=3, ttl_ms=60_000, interval_ms=200) == (3, 0)
        total, wait = await report(ROOM, node="b", count=2, ttl_ms=300, interval_ms=200)
        assert total == 5 and 0 < wait <= 200  # changed, but published 3 just now
        assert await engine.activity.viewers(ROOM) == 5
        await asyncio.sleep(wait / 1000 + 0.01)
        assert await report(ROOM, node="b", count=2, ttl_ms=300, interval_ms=200) == (5, 0)
        assert await report(ROOM, node="b", count=2, ttl_ms=300, interval_ms=200) == (5, 0)
        await recorder.wait_for(2)
        assert [e["count"] for _, e in recorder.events] == [3, 5]  # unchanged: not again
        await asyncio.sleep(0.35)  # node b stopped reporting (it died)
        assert await engine.activity.viewers(ROOM) == 3
        assert await report(ROOM, node="a", count=0, ttl_ms=60_000, interval_ms=200) == (0, 0)
        assert await engine.activity.viewers(ROOM) == 0
        assert (await engine.activity.stream_stats(ROOM, 1)).peak_viewers == 5


async def test_throttle_is_one_lease_per_room_and_name(engine: Engine) -> None:
    results = await asyncio.gather(
        *(engine.activity.throttle(ROOM, "board", 200) for _ in range(5))
    )
    assert sorted(results)[0] == 0 and all(0 < r <= 200 for r in sorted(results)[1:])
    assert await engine.activity.throttle(ROOM, "other", 200) == 0
    assert await engine.activity.throttle("room-2", "board", 200) == 0
    await asyncio.sleep(0.25)
    assert await engine.activity.throttle(ROOM, "board", 200) == 0


# --------------------------------------------------------------------------- #
# moderation and the overlay key
# --------------------------------------------------------------------------- #


async def test_bans_mutes_and_the_chat_rate(engine: Engine) -> None:
    await live(engine)
    check = engine.activity.check_chat
    for _ in range(3):
        await check(ROOM, ALICE.id, limit=3, window_ms=60_000)
    with pytest.raises(RateLimited) as limited:
        await check(ROOM, ALICE.id, limit=3, window_ms=60_000)
    assert limited.value.code == "rate_limited"
    await check(ROOM, BEN.id, limit=3, window_ms=60_000)  # per user
    await check(ROOM, CARA.id, limit=1, window_ms=100)
    await asyncio.sleep(0.15)
    await check(ROOM, CARA.id, limit=1, window_ms=100)  # a new window

    now = now_ms()
    await engine.activity.restrict(ROOM, Restriction(BEN.id, "mute", None, BOB.id, now))
    await engine.activity.restrict(ROOM, Restriction(CARA.id, "ban", None, BOB.id, now))
    with pytest.raises(Forbidden, match="muted"):
        await check(ROOM, BEN.id, limit=3, window_ms=60_000)
    with pytest.raises(Forbidden, match="banned"):
        await check(ROOM, CARA.id, limit=3, window_ms=60_000)
    assert await engine.activity.is_banned(ROOM, CARA.id)
    assert not await engine.activity.is_banned(ROOM, BEN.id)
    assert not await engine.activity.is_banned("room-2", CARA.id)
    listed = await engine.activity.restrictions(ROOM)
    assert [(r.user_id, r.kind, r.until, r.by) for r in listed] == [
        ("ben", "mute", None, "bob"),
        ("cara", "ban", None, "bob"),
    ]
    assert await engine.activity.lift(ROOM, BEN.id, "mute")
    assert not await engine.activity.lift(ROOM, BEN.id, "mute")
    await check(ROOM, BEN.id, limit=3, window_ms=60_000)
    with pytest.raises(BadRequest):
        await engine.activity.lift(ROOM, BEN.id, "exile")

    # A timed mute lapses by itself.
    await engine.activity.restrict(ROOM, Restriction(BEN.id, "mute", now_ms() + 100, BOB.id, 0))
    with pytest.raises(Forbidden):
        await check(ROOM, BEN.id, limit=10, window_ms=60_000)
    await asyncio.sleep(0.15)
    await check(ROOM, BEN.id, limit=10, window_ms=60_000)
    assert [r.user_id for r in await engine.activity.restrictions(ROOM)] == ["cara"]


async def test_rotating_the_overlay_key(engine: Engine) -> None:
    room = await live(engine)
    key = await engine.activity.rotate_overlay_key(ROOM)
    assert key and key != room.overlay_key
    after = await engine.rooms.get(ROOM)
    assert after is not None and after.overlay_key == key
    assert after.stream_id == room.stream_id and after.live
    with pytest.raises(NotFound):
        await engine.activity.rotate_overlay_key("missing")


async def test_signals_reach_listeners_without_seq(engine: Engine) -> None:
    listener = Signals()
    sub = await engine.broker.subscribe(ROOM, listener)
    try:
        await engine.broker.signal(ROOM, {"kind": "kick", "user": "cara"})
        await asyncio.wait_for(listener.arrived.wait(), 5)
        assert listener.messages == [(ROOM, {"kind": "kick", "user": "cara"})]
        assert await engine.broker.last_seq(ROOM) == 0
        assert await engine.broker.history(ROOM, since=0) == []
        await engine.broker.signal("room-nobody-watches", {"kind": "kick"})
    finally:
        await sub.close()


async def test_leaderboard_and_supporters_use_the_same_order(engine: Engine) -> None:
    await live(engine)
    for user in (ALICE, BEN, CARA):
        await buy(engine, user, "us_350")
        await send(engine, user, f"{user.id}-1", gift_id="finger_heart")
    board = await engine.rooms.leaderboard(ROOM)
    supporters = await engine.activity.supporters(BOB.id, period="day")
    assert board == supporters
    assert board == [LeaderEntry(p.public(), 5) for p in (ALICE, BEN, CARA)]

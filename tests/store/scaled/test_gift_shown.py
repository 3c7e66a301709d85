"""A gift's event published by the gift's own script (``send_gift_shown``,
``gift.lua`` with ``lua/lib_combo.lua``) is the event the separate combo call
(``publish_gift``) gives, within the same combo, and the room's leaderboard and
goal after it are those the separate announcement (``announce_board``) gives,
once per interval; a replay or a refusal publishes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from store.domain.models import (
    Event,
    GiftReceipt,
    GiftRequest,
    Profile,
    ShownGift,
    combo_hit,
)
from store.errors import InsufficientFunds
from store.roles import BoardAnnouncer, Engine, GiftShower
from store.scaled import keys
from store.scaled.keys import BOARD_LEASE, throttle_key
from tests.services import Urls, redis_client
from tests.store.test_conformance import ALICE, ROOM, buy, gift, live

DAN = Profile(id="dan", username="dan", adult=True, roles=frozenset({"creator"}))
OTHER_ROOM = "room-dan"
WINDOW_MS = 60_000
SEEN = {**ALICE.public(), "look": {"badge": "gold"}}
"""The sender as the room sees it (dressed), not as the ledger keeps it."""


def shower(engine: Engine) -> GiftShower:
    assert isinstance(engine.wallet, GiftShower)
    return engine.wallet


async def shown(
    engine: Engine, key: str, *, gift_id: str = "rose", count: int = 1, board: int = 0
) -> tuple[GiftReceipt, int | None]:
    result = await shown_with_board(engine, key, gift_id=gift_id, count=count, board=board)
    return result.receipt, result.combo_wait_ms


async def shown_with_board(
    engine: Engine, key: str, *, gift_id: str = "rose", count: int = 1, board: int = 60_000
) -> ShownGift:
    request = GiftRequest(ALICE, ROOM, gift(engine, gift_id), count, key)
    return await shower(engine).send_gift_shown(
        request, sender=SEEN, window_ms=WINDOW_MS, board_interval_ms=board, board_limit=10
    )


async def two_step(engine: Engine, key: str, *, gift_id: str = "rose", count: int = 1) -> int:
    """The same gift in the other room, its event by the separate combo call."""
    found = gift(engine, gift_id)
    receipt = await engine.wallet.send_gift(GiftRequest(ALICE, OTHER_ROOM, found, count, key))
    hit = combo_hit(receipt, gift=found, sender_id=ALICE.id, sender=SEEN)
    return await engine.activity.publish_gift(OTHER_ROOM, hit, window_ms=WINDOW_MS)


async def published(engine: Engine, room_id: str) -> list[Event]:
    found = await engine.broker.history(room_id, since=0)
    assert found is not None
    return [{k: v for k, v in e.items() if k not in ("seq", "ts")} for e in found]


def without_ids(events: list[Event], *tx_ids: str) -> list[dict[str, Any]]:
    """The events with each gift's tx (and the combo id it gave) made alike."""
    text = orjson.dumps(events).decode()
    for index, tx in enumerate(tx_ids):
        text = text.replace(tx, f"tx-{index}")
    result: list[dict[str, Any]] = orjson.loads(text)
    return result


@pytest.mark.scaled
async def test_the_event_is_the_separate_calls_within_the_same_combo(
    engine: Engine, urls: Urls
) -> None:
    await live(engine)
    await live(engine, DAN, OTHER_ROOM)
    await buy(engine, ALICE, "us_350")
    first, wait = await shown(engine, "a1", count=2)
    second, wait_again = await shown(engine, "a2", count=3)
    assert wait == wait_again == WINDOW_MS
    assert not first.replayed
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
    diamonds = first.diamonds + second.diamonds
    assert mine[1]["overlay"]["stream"] == {"gifts": 5, "coins": 5, "diamonds": diamonds}
    their_tx = [e["tx"] for e in theirs]
    assert without_ids(mine, first.tx, second.tx) == without_ids(theirs, *their_tx)
    redis = await redis_client(urls)
    try:
        listed = await redis.zrange(keys.COMBO_ROOMS, 0, -1)
    finally:
        await redis.aclose()
    assert ROOM.encode() in listed  # for every node's sweep
    # the combo ends as one the separate call opened: once, after its gifts
    assert await engine.activity.end_combos(ROOM, everything=True) == 0
    ended = (await published(engine, ROOM))[2:]
    assert [e["combo"] for e in ended] == [{"id": first.tx, "count": 5, "end": True}]


@pytest.mark.scaled
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

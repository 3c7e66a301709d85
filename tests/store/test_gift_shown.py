"""A committed gift's event published by the engine's wallet in the gift's own
step (``store.roles.GiftShower.send_gift_shown``: the scaled engine's gift script
on a single Redis, the embedded wallet right after its commit) is the event the
separate combo call (``publish_gift``) gives, within the same combo; a replay or
a refusal publishes nothing. Each engine's module has the rest: the room's
leaderboard and goal after the gift, once per interval."""

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
from store.roles import Engine, GiftShower
from tests.store.test_conformance import ALICE, ROOM, buy, gift, live


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("scaled", marks=pytest.mark.scaled)])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engines that show gifts (on a Redis Cluster the node publishes them)."""
    return str(request.param)


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


async def test_the_event_is_the_separate_calls_within_the_same_combo(engine: Engine) -> None:
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
    assert ROOM in await engine.activity.open_combo_rooms()  # for every node's sweep
    # the combo ends as one the separate call opened: once, after its gifts
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

"""A creator effect that runs out while its creator is live: the room gets a
``stream_effect`` with no effect, on both engines (the item is bought "a month
ago" through the engine's clock so it expires within a second)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from live.actions.items import Items, Looks
from live.metrics import Metrics
from live.settings import Settings
from store.domain.items import DAY_MS, ItemRequest
from store.ids import now_ms
from store.roles import Engine
from tests.engines import ENGINES
from tests.services import Services
from tests.store.test_money_rules import BOB, ROOM, live, purchase


@pytest.fixture
async def engine(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[Engine]:
    name = "embedded" if engine_services is None else "scaled"
    async with ENGINES[name](tmp_path, engine_services) as opened:
        yield opened


async def test_an_expiring_creator_effect_clears_the_rooms_effect(engine: Engine) -> None:
    items = Items(settings=Settings(), engine=engine, metrics=Metrics(), looks=Looks(engine=engine))
    await live(engine)  # BOB live in ROOM
    await purchase(engine, BOB, "us_1400", "pay-1")
    sparkles = engine.catalog.item("effect_sparkles")
    assert sparkles is not None and sparkles.duration_days == 30
    bought_at = now_ms() - 30 * DAY_MS + 800  # runs out 0.8 s from now
    request = ItemRequest(buyer=BOB, item=sparkles, key="fx", now=bought_at)
    receipt = await engine.items.buy(request)
    assert receipt.expires_at is not None and receipt.expires_at > now_ms()

    await items.equip(user=BOB, item_id="effect_sparkles", room_id=ROOM)
    room = await engine.rooms.get(ROOM)
    assert room is not None
    assert await items.looks.stream_effect(room) == sparkles.effect()
    # the clearing waits for the expiry in the background: wait for it to finish
    assert await asyncio.gather(*list(items._tasks)) == [True]

    history: list[dict[str, Any]] | None = await engine.broker.history(ROOM, since=0)
    assert history is not None
    effects = [e["effect"] for e in history if e["type"] == "stream_effect"]
    assert effects == [sparkles.effect(), None]
    assert await items.looks.stream_effect(room) is None
    await items.close()

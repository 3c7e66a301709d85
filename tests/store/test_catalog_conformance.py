"""The catalog as data, on both engines: a fresh store starts with the default
catalog; admins create, update and retire entries; an import is all or nothing;
a second node serves a change within a second; and a gift refused for its price
or its window charges nothing, while history keeps what a gift was when sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from store.domain.catalog import DEFAULT_GIFTS, DEFAULT_PACKAGES
from store.domain.catalog_entries import EntryError, catalog_document, gift_document
from store.domain.models import GiftRequest
from store.errors import BadRequest, Conflict, NotFound, PriceChanged
from store.roles import Engine, EngineConfig
from tests.engines import opened
from tests.services import adult, fund
from tests.store.test_conformance import ROOM, all_transactions, live

ALICE = adult("alice")

SEASONAL: dict[str, Any] = {
    "id": "pumpkin",
    "name": "Pumpkin",
    "coins": 66,
    "image": "https://cdn.example/pumpkin.png",
    "asset": {"url": "https://cdn.example/pumpkin.json", "format": "lottie"},
    "sound": "https://cdn.example/pumpkin.mp3",
    "tier": 3,
    "translations": {"fr": "Citrouille", "pt-BR": "Abóbora"},
    "regions": ["US", "GB"],
}


async def balance(engine: Engine, user_id: str = ALICE.id) -> int:
    return (await engine.wallet.balance(user_id)).coins


async def send(engine: Engine, key: str, gift_id: str, **extra: Any) -> Any:
    gift = engine.catalog.gift(gift_id)
    assert gift is not None
    return await engine.wallet.send_gift(
        GiftRequest(sender=ALICE, room_id=ROOM, gift=gift, count=1, key=key, **extra)
    )


async def test_a_fresh_store_serves_the_default_catalog_at_version_one(engine: Engine) -> None:
    catalog = await engine.catalogs.refresh()
    assert catalog.version == 1
    assert catalog.all_gifts() == sorted(DEFAULT_GIFTS, key=lambda g: (g.coins, g.id))
    assert {p.id: p for p in catalog.all_packages()} == {p.id: p for p in DEFAULT_PACKAGES}
    assert [g.id for g in catalog.gifts()] == [g.id for g in catalog.all_gifts()]


async def test_create_update_retire_each_increase_the_version(engine: Engine) -> None:
    created = await engine.catalogs.create("gift", SEASONAL)
    assert created.version == 2
    pumpkin = created.gift("pumpkin")
    assert pumpkin is not None
    assert gift_document(pumpkin) == {
        **SEASONAL,
        "animation": "pop",
        "streakable": False,
        "regions": ["GB", "US"],
        "retired": False,
    }
    assert pumpkin.public()["translations"] == {"fr": "Citrouille", "pt-BR": "Abóbora"}

    updated = await engine.catalogs.update("gift", "pumpkin", {"coins": 77, "sound": None})
    assert updated.version == 3
    pumpkin = updated.gift("pumpkin")
    assert pumpkin is not None and (pumpkin.coins, pumpkin.sound) == (77, None)
    assert (await engine.catalogs.update("gift", "pumpkin", {"coins": 77})).version == 3

    retired = await engine.catalogs.retire("gift", "pumpkin")
    assert retired.version == 4
    assert "pumpkin" not in [g.id for g in retired.gifts()]
    assert retired.gift("pumpkin") is not None  # still named in history
    assert "pumpkin" in [g.id for g in retired.all_gifts()]

    package = await engine.catalogs.update("package", "us_70", {"price_minor": 99})
    found = package.package("us_70")
    assert found is not None and found.price_minor == 99
    package = await engine.catalogs.retire("package", "us_70")
    assert "us_70" not in [p.id for p in package.packages("US")]


async def test_bad_changes_name_their_field_and_change_nothing(engine: Engine) -> None:
    for document, field in (
        ({**SEASONAL, "coins": 0}, "coins"),
        ({**SEASONAL, "coins": True}, "coins"),
        ({**SEASONAL, "asset": {"url": "x", "format": "lottie"}}, "asset.url"),
        ({**SEASONAL, "asset": {"url": "/a.gif", "format": "flash"}}, "asset.format"),
        ({**SEASONAL, "regions": ["usa"]}, "regions"),
        ({**SEASONAL, "available_from": 10, "available_until": 5}, "available_until"),
        ({**SEASONAL, "colour": "red"}, "colour"),
        ({k: v for k, v in SEASONAL.items() if k != "name"}, "name"),
    ):
        with pytest.raises(EntryError) as caught:
            await engine.catalogs.create("gift", document)
        assert caught.value.field == field
        assert caught.value.code == "bad_request"
    with pytest.raises(Conflict):
        await engine.catalogs.create("gift", {**SEASONAL, "id": "rose"})
    with pytest.raises(NotFound):
        await engine.catalogs.update("gift", "nope", {"coins": 3})
    with pytest.raises(BadRequest):
        await engine.catalogs.update("gift", "rose", {"id": "lily"})
    with pytest.raises(Conflict):
        await engine.catalogs.update("gift", "rose", {"coins": 2}, expected_version=0)
    assert (await engine.catalogs.refresh()).version == 1
    rose = engine.catalog.gift("rose")
    assert rose is not None and rose.coins == 1


async def test_an_import_is_validated_whole_and_applied_at_once(engine: Engine) -> None:
    before = catalog_document(await engine.catalogs.refresh())
    bad = {
        "gifts": [
            {**gift_document(DEFAULT_GIFTS[0]), "coins": 5},  # valid on its own
            {**SEASONAL, "tier": 9},
        ]
    }
    with pytest.raises(EntryError) as caught:
        await engine.catalogs.import_entries(bad)
    assert caught.value.field == "gifts[1].tier"
    assert catalog_document(await engine.catalogs.refresh()) == before

    good = {
        "gifts": [{**gift_document(DEFAULT_GIFTS[0]), "coins": 5}, SEASONAL],
        "packages": [
            {
                "id": "us_70",
                "region": "US",
                "currency": "USD",
                "coins": 70,
                "bonus": 0,
                "price_minor": 109,
            }
        ],
    }
    dry = await engine.catalogs.import_entries(good, dry_run=True)
    assert (dry.added, dry.changed, dry.unchanged) == (
        ("gift:pumpkin",),
        ("gift:rose",),
        ("package:us_70",),
    )
    assert dry.version == 1
    assert catalog_document(await engine.catalogs.refresh()) == before

    applied = await engine.catalogs.import_entries(good)
    assert applied.version == 2  # one change for the whole file
    catalog = engine.catalog
    rose, pumpkin = catalog.gift("rose"), catalog.gift("pumpkin")
    assert rose is not None and rose.coins == 5
    assert pumpkin is not None and pumpkin.tier == 3
    assert catalog.gift("lion") is not None  # left out of the file: kept
    again = await engine.catalogs.import_entries(good)
    assert again.version == 2 and not again.added and not again.changed


async def test_a_stale_price_or_an_unoffered_gift_charges_nothing(engine: Engine) -> None:
    await live(engine)
    await fund(engine, ALICE)
    coins = await balance(engine)
    await engine.catalogs.update("gift", "rose", {"coins": 2})
    with pytest.raises(PriceChanged) as caught:
        await send(engine, "g1", "rose", shown_coins=1)
    assert caught.value.code == "price_changed"
    assert "now costs 2 coins" in caught.value.message

    now = int(time.time() * 1000)
    limited = {**SEASONAL, "available_from": now + 60_000, "available_until": now + 120_000}
    await engine.catalogs.create("gift", limited)
    assert "pumpkin" not in [g.id for g in engine.catalog.gifts()]
    with pytest.raises(NotFound):
        await send(engine, "g2", "pumpkin")
    with pytest.raises(NotFound):
        await send(engine, "g3", "pumpkin", now=now + 120_000)  # the window has closed
    await engine.catalogs.retire("gift", "galaxy")
    with pytest.raises(NotFound):
        await send(engine, "g4", "galaxy")
    assert await balance(engine) == coins
    assert [t.kind for t in await all_transactions(engine, ALICE.id)] == ["purchase"]

    receipt = await send(engine, "g5", "pumpkin", now=now + 60_000, shown_coins=66)
    assert receipt.coins == 66
    receipt = await send(engine, "g6", "rose", shown_coins=2)
    assert receipt.coins == 2
    assert await balance(engine) == coins - 68


async def test_a_resend_of_a_charged_gift_replays_whatever_the_catalog_says_since(
    engine: Engine,
) -> None:
    """A client resends a gift after a drop with the same id and the price it
    showed: it was charged once, so the receipt comes back, not a refusal."""
    await live(engine)
    await fund(engine, ALICE)
    first = await send(engine, "g1", "rose", shown_coins=1)
    await engine.catalogs.update("gift", "rose", {"coins": 3})
    again = await send(engine, "g1", "rose", shown_coins=1)
    assert again.replayed and again.tx == first.tx and again.coins == 1
    await engine.catalogs.retire("gift", "rose")
    assert (await send(engine, "g1", "rose")).tx == first.tx
    with pytest.raises(NotFound):
        await send(engine, "g2", "rose")
    assert [t.kind for t in await all_transactions(engine, ALICE.id)] == ["gift", "purchase"]


async def test_history_keeps_what_a_gift_was_when_sent(engine: Engine) -> None:
    await live(engine)
    await fund(engine, ALICE)
    receipt = await send(engine, "g1", "rose")
    await engine.catalogs.update("gift", "rose", {"coins": 9, "name": "Red Rose"})
    [tx, _purchase] = await all_transactions(engine, ALICE.id)
    assert tx.id == receipt.tx
    assert (tx.meta["gift_name"], tx.meta["gift_coins"], tx.meta["count"]) == ("Rose", 1, 1)
    assert sum(p.amount for p in tx.postings if p.account == "user:alice:coins") == -1
    [top] = await engine.rooms.leaderboard(ROOM)
    assert (top.user["id"], top.coins) == (ALICE.id, 1)  # coins paid then, not now


# --------------------------------------------------------------------------- #
# two nodes on one store
# --------------------------------------------------------------------------- #


@contextlib.asynccontextmanager
async def node_config(
    engine_name: str, engine_services: Any, tmp_path: Path
) -> AsyncIterator[EngineConfig]:
    if engine_name == "embedded":
        yield EngineConfig(data_dir=tmp_path / "data")
        return
    cluster = engine_name == "cluster"
    urls = await (engine_services.reset_cluster() if cluster else engine_services.reset())
    yield EngineConfig(data_dir=tmp_path / "data", redis_url=urls.redis, database_url=urls.database)


async def test_a_change_on_one_node_is_served_by_another_within_a_second(
    engine_name: str, engine_services: Any, tmp_path: Path
) -> None:
    async with (
        node_config(engine_name, engine_services, tmp_path) as config,
        opened(config, None) as node_a,
        opened(config, None) as node_b,
    ):
        assert node_a.catalog.version == node_b.catalog.version == 1  # seeded once
        heard: asyncio.Queue[int] = asyncio.Queue()
        node_b.catalogs.watch(heard.put_nowait)
        started = time.monotonic()
        await node_a.catalogs.update("gift", "rose", {"coins": 3})
        assert await asyncio.wait_for(heard.get(), timeout=1.0) == 2
        assert time.monotonic() - started < 1.0
        rose = node_b.catalog.gift("rose")
        assert rose is not None and rose.coins == 3


async def test_a_reopened_store_keeps_its_catalog(
    engine_name: str, engine_services: Any, tmp_path: Path
) -> None:
    async with node_config(engine_name, engine_services, tmp_path) as config:
        async with opened(config, None) as first:
            await first.catalogs.create("gift", SEASONAL)
        async with opened(config, None) as second:
            assert second.catalog.version == 2
            assert second.catalog.gift("pumpkin") is not None

"""In-app items on both engines: the catalog's items, buying one exactly once
under every money rule a gift obeys, the inventory with expiry and what is
equipped, the creator's share, and refunds that treat coins spent on items like
coins spent on gifts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from store.domain.accounts import CHARGEBACK, MoneyPolicy
from store.domain.catalog_entries import EntryError, item_document
from store.domain.items import DAY_MS, DEFAULT_ITEMS, ItemReceipt, ItemRequest
from store.domain.models import (
    COIN,
    DIAMOND,
    PLATFORM_EXCHANGE,
    PLATFORM_REVENUE,
    Profile,
)
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    LimitExceeded,
    NotFound,
    PriceChanged,
    RateLimited,
    StoreError,
)
from store.roles import Engine
from tests.store.test_money_rules import (
    ALICE,
    BOB,
    NOW,
    ROOM,
    TEEN,
    Opener,
    assert_audit,
    by_account,
    limits,
    live,
    open_engine,
    purchase,
    refund,
    send,
    snapshot,
)

__all__ = ["open_engine"]  # the fixture, shared with the money rules

HALO: dict[str, Any] = {
    "id": "halo",
    "kind": "badge",
    "name": "Halo",
    "coins": 50,
    "image": "https://cdn.example/halo.png",
    "duration_days": 7,
}


async def buy(
    engine: Engine,
    key: str,
    item_id: str = "badge_star",
    *,
    buyer: Profile = ALICE,
    now: int = NOW,
    **extra: Any,
) -> ItemReceipt:
    item = engine.catalog.item(item_id)
    assert item is not None
    return await engine.items.buy(ItemRequest(buyer=buyer, item=item, key=key, now=now, **extra))


async def test_a_fresh_catalog_has_the_default_items_and_admins_add_more(engine: Engine) -> None:
    catalog = engine.catalog
    assert {i.id for i in catalog.items()} == {i.id for i in DEFAULT_ITEMS}
    assert {i.kind for i in catalog.items()} == {
        "badge",
        "name_style",
        "entrance_effect",
        "creator_effect",
    }
    created = await engine.catalogs.create("item", HALO)
    halo = created.item("halo")
    assert halo is not None and item_document(halo) == {
        **HALO,
        "creator_share": 0,
        "retired": False,
    }
    retired = await engine.catalogs.retire("item", "halo")
    assert "halo" not in {i.id for i in retired.items()} and retired.item("halo") is not None
    with pytest.raises(EntryError) as bad:
        await engine.catalogs.create("item", {**HALO, "id": "x", "kind": "hat"})
    assert bad.value.field == "kind"
    with pytest.raises(EntryError) as colour:
        await engine.catalogs.create(
            "item", {**HALO, "id": "y", "kind": "name_style", "color": "red"}
        )
    assert colour.value.field == "color"
    with pytest.raises(EntryError) as effect:
        await engine.catalogs.create("item", {**HALO, "id": "z", "kind": "entrance_effect"})
    assert effect.value.field == "asset"


async def test_buying_an_item_pays_the_platform_once_per_key(engine: Engine) -> None:
    await purchase(engine, ALICE, "us_700", "p1")  # 707 coins
    receipt = await buy(engine, "k1")
    assert (receipt.item_id, receipt.kind, receipt.coins, receipt.balance) == (
        "badge_star",
        "badge",
        99,
        608,
    )
    assert receipt.expires_at == NOW + 30 * DAY_MS and receipt.diamonds == 0
    again = await buy(engine, "k1")
    assert again.replayed and again.tx == receipt.tx and again.balance == 608
    with pytest.raises(Conflict):
        await buy(engine, "k1", "name_gold")
    with pytest.raises(BadRequest):
        await buy(engine, "")
    with pytest.raises(BadRequest):
        await engine.items.unequip(ALICE.id, "hat")
    # concurrent retries of one key: one charge
    racing = await asyncio.gather(*(buy(engine, "k2", "name_neon") for _ in range(8)))
    assert len({r.tx for r in racing}) == 1 and sum(not r.replayed for r in racing) == 1
    assert (await engine.wallet.balance(ALICE.id)).coins == 707 - 99 - 149

    [tx, *_] = [t for t in await engine.ledger.transactions(ALICE.id) if t.id == receipt.tx]
    assert tx.kind == "item"
    assert by_account(tx.postings) == {
        ("user:alice:coins", COIN): -99,
        (PLATFORM_REVENUE, COIN): 99,
    }
    assert tx.meta["item_id"] == "badge_star" and tx.meta["item_coins"] == 99
    assert tx.meta["expires_at"] == NOW + 30 * DAY_MS and tx.meta["key"] == "k1"
    owned = await engine.items.inventory(ALICE.id, now=NOW)
    assert {(o.item_id, o.kind, o.expires_at, o.equipped) for o in owned} == {
        ("badge_star", "badge", NOW + 30 * DAY_MS, False),
        ("name_neon", "name_style", NOW + 7 * DAY_MS, False),
    }
    await assert_audit(engine)


async def test_item_refusals_come_in_order_and_change_nothing(open_engine: Opener) -> None:
    async with open_engine(policy=MoneyPolicy(daily_spend_cap=1_100)) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_1400", "p1")  # 1428 coins
        await buy(engine, "crown", "badge_crown")  # 999, permanent
        before = await snapshot(engine, ALICE, TEEN)
        await engine.catalogs.create("item", HALO)
        await engine.catalogs.retire("item", "halo")
        cases: list[tuple[Any, type[StoreError], str]] = [
            (buy(engine, "r1", "halo"), NotFound, "'halo' is not sold now"),
            (
                buy(engine, "r2", shown_coins=98),
                PriceChanged,
                "'badge_star' now costs 99 coins, not 98; nothing was charged",
            ),
            (buy(engine, "r3", room_id="room-none"), NotFound, "room not found"),
            (
                buy(engine, "r4", buyer=TEEN),
                Forbidden,
                "only adults can spend coins on items",
            ),
            (
                buy(engine, "r5", "name_gold"),
                LimitExceeded,
                "this item would pass your daily spending cap of 1100 coins (999 spent today)",
            ),
            (
                buy(engine, "r6", "badge_crown", now=NOW + DAY_MS),
                Conflict,
                "you already own 'badge_crown' for good; nothing was charged",
            ),
            (
                buy(engine, "r7", "entrance_comet", now=NOW + DAY_MS),
                InsufficientFunds,
                "this item costs 499 coins, you have 429",
            ),
        ]
        for call, error, message in cases:
            with pytest.raises(error) as refused:
                await call
            assert refused.value.message == message
        assert await snapshot(engine, ALICE, TEEN) == before
        # a refused key is not burnt
        assert not (await buy(engine, "r2", now=NOW + DAY_MS)).replayed

        await limits(engine, ALICE, gifting_enabled=False)
        with pytest.raises(Forbidden) as off:
            await buy(engine, "r8", now=NOW + DAY_MS)
        assert off.value.message == (
            "spending coins is turned off for this account (parental controls)"
        )
        await assert_audit(engine)


async def test_items_share_the_gift_rate_limit(open_engine: Opener) -> None:
    policy = MoneyPolicy(gift_rate_per_minute=1, gift_burst=2)
    async with open_engine(policy=policy) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        await send(engine, ALICE, "g1")
        await buy(engine, "i1")
        with pytest.raises(RateLimited) as limited:
            await buy(engine, "i2", "name_neon")
        assert limited.value.message.startswith("too many item purchases: try again in")


async def test_timed_items_extend_expire_and_leave_the_slot(engine: Engine) -> None:
    await purchase(engine, ALICE, "us_700", "p1")
    first = await buy(engine, "k1", "name_neon")  # 7 days
    second = await buy(engine, "k2", "name_neon", now=NOW + DAY_MS)
    assert second.expires_at == NOW + 14 * DAY_MS  # extended from the first one's end
    [owned] = await engine.items.equip(ALICE.id, "name_neon", now=NOW + DAY_MS)
    assert owned.equipped and owned.acquired_at == NOW
    with pytest.raises(NotFound) as unknown:
        await engine.items.equip(ALICE.id, "badge_crown", now=NOW)
    assert unknown.value.message == "you don't own 'badge_crown' (or it has expired)"

    # expired: gone from the inventory by itself, listed as expired, not equippable
    later = NOW + 14 * DAY_MS
    assert await engine.items.inventory(ALICE.id, now=later) == []
    [gone] = await engine.items.expired(ALICE.id, now=later)
    assert (gone.item_id, gone.expires_at) == ("name_neon", later)
    with pytest.raises(NotFound):
        await engine.items.equip(ALICE.id, "name_neon", now=later)
    # bought again after it ran out: a fresh period from now
    third = await buy(engine, "k3", "name_neon", now=later + 5)
    assert third.expires_at == later + 5 + 7 * DAY_MS
    [back] = await engine.items.inventory(ALICE.id, now=later + 5)
    assert back.acquired_at == later + 5 and first.tx != third.tx


async def test_one_item_per_slot(engine: Engine) -> None:
    await purchase(engine, ALICE, "us_3500", "p1")
    for key, item_id in (("a", "badge_star"), ("b", "badge_crown"), ("c", "name_gold")):
        await buy(engine, key, item_id)
    await engine.items.equip(ALICE.id, "badge_star", now=NOW)
    await engine.items.equip(ALICE.id, "name_gold", now=NOW)
    owned = await engine.items.equip(ALICE.id, "badge_crown", now=NOW)
    assert {o.item_id for o in owned if o.equipped} == {"badge_crown", "name_gold"}
    owned = await engine.items.unequip(ALICE.id, "badge", now=NOW)
    assert {o.item_id for o in owned if o.equipped} == {"name_gold"}
    assert len(owned) == 3


async def test_bought_in_a_room_the_creator_earns_the_share(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_700", "p1")
    receipt = await buy(engine, "k1", "effect_sparkles", room_id=ROOM)  # 299, share 50%
    assert (receipt.diamonds, receipt.creator_id, receipt.room_id) == (149, BOB.id, ROOM)
    assert (await engine.wallet.balance(BOB.id)).diamonds == 149
    [tx, *_] = await engine.ledger.transactions(BOB.id)
    assert tx.id == receipt.tx and by_account(tx.postings) == {
        ("user:alice:coins", COIN): -299,
        (PLATFORM_REVENUE, COIN): 150,
        (PLATFORM_EXCHANGE, COIN): 149,
        (PLATFORM_EXCHANGE, DIAMOND): -149,
        ("user:bob:diamonds", DIAMOND): 149,
    }
    # the creator buying in their own room earns nothing from themselves
    await purchase(engine, BOB, "us_700", "p2")
    own = await buy(engine, "k2", "effect_sparkles", buyer=BOB, room_id=ROOM)
    assert (own.diamonds, own.creator_id) == (0, "")
    # no share configured: all of it is the platform's, in a room too
    plain = await buy(engine, "k3", "badge_star", room_id=ROOM)
    assert plain.diamonds == 0
    await assert_audit(engine)


async def test_a_chargeback_treats_coins_spent_on_items_like_gifts(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_700", "p1")  # 707
    await send(engine, ALICE, "g1", gift_id="confetti", now=NOW)  # 100, 50 diamonds to bob
    await buy(engine, "k1", "effect_sparkles", room_id=ROOM, now=NOW + 1)  # 299, 149 to bob
    await buy(engine, "k2", "badge_star", now=NOW + 2)  # 99, no share
    # 209 coins left: 498 were spent, newest first: badge 99, effect 299, gift 100
    receipt = await refund(engine, "p1", kind=CHARGEBACK, now=NOW + 3)
    assert (receipt.taken, receipt.debt) == (209, 498)
    assert receipt.clawed_back == 149 + 50
    assert receipt.debt_after == 498 - 199
    assert (await engine.wallet.balance(BOB.id)).diamonds == 0
    with pytest.raises(Forbidden) as locked:
        await buy(engine, "k3", "name_neon", now=NOW + 4)
    assert locked.value.message == (
        "your account is locked until its chargeback debt of 299 coins is settled"
    )
    await assert_audit(engine)


async def test_a_partial_refund_attributes_the_newest_item_first(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_350", "p1")  # 350
    await send(engine, ALICE, "g1", gift_id="confetti", now=NOW)  # 100: 50 diamonds to bob
    await buy(engine, "k1", "badge_star", now=NOW + 1)  # 99: nothing to claw back
    await purchase(engine, ALICE, "us_70", "p2", now=NOW + 2)  # 70 more
    # 221 coins; refunding p1 (350) misses 129: the badge's 99, then 30 of the gift
    receipt = await refund(engine, "p1", now=NOW + 3)
    assert (receipt.taken, receipt.debt, receipt.clawed_back) == (221, 129, 15)
    await assert_audit(engine)

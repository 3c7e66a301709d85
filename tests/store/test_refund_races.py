"""Refunds racing the gifts and items their coins paid for, on every engine.

Each fan buys one package and then fires many gifts at two creators (and, in
the second test, item purchases too: some in a room, where the creator earns a
share, some with nothing to claw back) while the purchase is refunded, all at
once (``asyncio.gather``). Whatever the order the
engine serializes them in, the refund must see exactly the gifts that landed
before it: every one of them is clawed back in full (the creators hold all they
earned, nothing was withdrawn), the fan's debt is exactly the platform's share
of what was spent, no gift lands after the refund took the coins, and the
ledger still balances.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

import pytest

from store.domain.accounts import CHARGEBACK, REFUND, RefundReceipt
from store.domain.items import ItemReceipt
from store.domain.models import GiftReceipt, Profile
from store.errors import Forbidden, InsufficientFunds
from store.roles import Engine
from tests.store.test_items_conformance import buy
from tests.store.test_money_rules import (
    BOB,
    CARA,
    ROOM,
    ROOM_CARA,
    assert_audit,
    live,
    purchase,
    refund,
    send,
)

FANS = tuple(Profile(id=f"fan{n}", username=f"fan{n}", adult=True) for n in range(4))
GIFTS = ("confetti", "doughnut", "perfume")
"""Even prices: every gift's diamonds are exactly half its coins."""
PACKAGE_COINS = 707
"""``us_700``: 700 coins and a 7 coin bonus."""
ITEMS = (
    ("effect_sparkles", ROOM),  # 299 coins, half of it (149 diamonds) to bob
    ("effect_sparkles", ROOM_CARA),  # the same, to cara
    ("badge_star", ROOM),  # 99 coins, no creator share: nothing to claw back
    ("badge_star", None),  # bought outside any room
)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_refunds_racing_gifts_claw_back_exactly(engine: Engine, seed: int) -> None:
    await _race(engine, random.Random(seed), items=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_refunds_racing_item_purchases_claw_back_exactly(engine: Engine, seed: int) -> None:
    await _race(engine, random.Random(seed), items=True)


def _spend(engine: Engine, rng: random.Random, fan: Profile, key: str, *, items: bool) -> Any:
    """One gift, or (one time in two when ``items``) one item purchase."""
    if items and rng.random() < 0.5:
        item_id, room_id = rng.choice(ITEMS)
        return buy(engine, key, item_id, buyer=fan, room_id=room_id)
    return send(engine, fan, key, gift_id=rng.choice(GIFTS), room_id=rng.choice((ROOM, ROOM_CARA)))


async def _race(engine: Engine, rng: random.Random, *, items: bool) -> None:
    await live(engine, BOB, ROOM)
    await live(engine, CARA, ROOM_CARA)
    for fan in FANS:
        await purchase(engine, fan, "us_700", f"p-{fan.id}")

    calls: list[tuple[str, Awaitable[Any]]] = []
    for fan in FANS:
        sends = [
            (fan.id, _spend(engine, rng, fan, f"{fan.id}-g{n}", items=items)) for n in range(12)
        ]
        kind = rng.choice((REFUND, CHARGEBACK))
        sends.insert(rng.randrange(4), ("refund", refund(engine, f"p-{fan.id}", kind=kind)))
        calls += sends
    order = list(range(len(calls)))
    rng.shuffle(order)
    results = await asyncio.gather(*(calls[i][1] for i in order), return_exceptions=True)
    by_call = dict(zip(order, results, strict=True))

    receipts: dict[str, RefundReceipt] = {}
    landed: dict[str, list[GiftReceipt | ItemReceipt]] = {fan.id: [] for fan in FANS}
    fan_of_refund = iter(FANS)
    for n, (who, _) in enumerate(calls):
        result = by_call[n]
        if who == "refund":
            assert isinstance(result, RefundReceipt), result
            receipts[next(fan_of_refund).id] = result
        elif isinstance(result, GiftReceipt | ItemReceipt):
            landed[who].append(result)
        else:
            # after the refund took the coins: no funds, or locked by the debt
            assert isinstance(result, InsufficientFunds | Forbidden), result

    for fan in FANS:
        spent = sum(r.coins for r in landed[fan.id])
        earned = sum(r.diamonds for r in landed[fan.id])
        receipt = receipts[fan.id]
        assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
            PACKAGE_COINS - spent,
            spent,
            earned,
            spent - earned,
        ), fan.id
        balance = await engine.wallet.balance(fan.id)
        assert (balance.coins, balance.debt) == (0, spent - earned)
    for creator in (BOB, CARA):
        assert (await engine.wallet.balance(creator.id)).diamonds == 0
    assert any(landed.values())
    if items:
        bought = [r for rs in landed.values() for r in rs if isinstance(r, ItemReceipt)]
        assert bought, "no item purchase landed before its refund"
    await assert_audit(engine)

"""The scaled engine's money scripts: every key in KEYS, and every operation still
works after Redis lost its script cache (restart, failover, SCRIPT FLUSH)."""

from __future__ import annotations

import re

import pytest

from store.domain.accounts import (
    DebtSettlement,
    LimitsRequest,
    RefundRequest,
    UserLimits,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.roles import Engine
from store.scaled.client import load_script
from tests.services import Urls, adult, fund, redis_client, rose

MONEY_SCRIPTS = (
    "gift",
    "purchase",
    "refund",
    "settle_debt",
    "withdraw",
    "settle_withdrawal",
    "limits",
    "rate",
    "item",
    "item_equip",
)
_CALL = re.compile(r"redis\.call\(\s*'([A-Z]+)'\s*,\s*([^,)]+)")


@pytest.mark.parametrize("name", MONEY_SCRIPTS)
def test_money_scripts_name_every_key_in_keys(name: str) -> None:
    """Redis Cluster routes a script by its KEYS: a key built inside the script
    could live on another shard, so every command's key must come from KEYS."""
    source = load_script(name).source.decode()  # with its includes
    calls = _CALL.findall(source)
    assert calls
    for command, key in calls:
        assert key.strip().startswith("KEYS["), f"{name}.lua: {command} {key}"


@pytest.mark.scaled
async def test_money_operations_survive_a_flushed_script_cache(engine: Engine, urls: Urls) -> None:
    creator = adult("creator")
    await engine.rooms.go_live(room_id="room", creator=creator, title="t")
    fan = adult("fan")
    await fund(engine, fan, package_id="us_350")
    await engine.wallet.send_gift(rose(engine, fan, "g1", count=10))
    client = await redis_client(urls)
    try:
        await client.script_flush()
        refund = await engine.wallet.refund(
            RefundRequest(provider="sandbox", payment_id="pay-fan-us_350")
        )
        assert (refund.taken, refund.debt, refund.clawed_back) == (340, 10, 5)
        await client.script_flush()
        settled = await engine.wallet.settle_debt(
            DebtSettlement(user_id=fan.id, method="paid", key="s1", by="admin")
        )
        assert settled.coins == 5
        await client.script_flush()
        await engine.wallet.set_limits(
            LimitsRequest(user_id=fan.id, limits=UserLimits(daily_cap=10), new_pin="1234")
        )
        await client.script_flush()
        await engine.wallet.rate_limit(fan.id, "purchases", per_hour=10, burst=1)
        await engine.wallet.set_verified(creator.id, verified=True, by="admin")
        other = adult("other")
        await fund(engine, other, package_id="us_70")
        await engine.wallet.send_gift(rose(engine, other, "g2", count=2))  # 1 diamond
        await client.script_flush()
        withdrawal = await engine.wallet.reserve_withdrawal(
            WithdrawalRequest(user_id=creator.id, diamonds=1, key="w1")
        )
        await client.script_flush()
        paid = await engine.wallet.settle_withdrawal(
            WithdrawalSettlement(withdrawal_id=withdrawal.id, status="paid")
        )
        assert paid.status == "paid"
    finally:
        await client.aclose()
    report = await engine.ledger.audit()
    assert report.ok, report.public()

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
_FUNCTION = re.compile(r"local function ([a-z_]+)\(([^)]*)\)")


def _arguments(source: str, start: int) -> list[str]:
    """The arguments of the call whose ``(`` is at ``start``, split at top level."""
    depth, current, found = 0, "", []
    for char in source[start + 1 :]:
        if char in "({":
            depth += 1
        elif char in ")}":
            if depth == 0:
                return [*found, current.strip()]
            depth -= 1
        if char == "," and depth == 0:
            found.append(current.strip())
            current = ""
        else:
            current += char
    raise AssertionError("unbalanced call")


def _from_keys(source: str, key: str, *, seen: frozenset[str] = frozenset()) -> bool:
    """``key`` is a ``KEYS[...]`` entry, or a parameter of a shared function
    (``lib_*.lua``) that every call in the script passes one (or such a parameter)."""
    key = key.strip()
    if key.startswith("KEYS["):
        return True
    owners = [
        (m.group(1), [p.strip() for p in m.group(2).split(",")].index(key))
        for m in _FUNCTION.finditer(source)
        if key in [p.strip() for p in m.group(2).split(",")]
    ]
    if not owners or key in seen:
        return False
    for function, position in owners:
        calls = [m.end() - 1 for m in re.finditer(rf"(?<![\w.]){function}\(", source)]
        uses = [c for c in calls if not source[: c - len(function)].endswith("local function ")]
        if not uses:
            return False
        for call in uses:
            passed = _arguments(source, call)[position]
            if passed == key:
                continue  # a function of the same parameter: checked here too
            if not _from_keys(source, passed, seen=seen | {key}):
                return False
    return True


@pytest.mark.parametrize("name", MONEY_SCRIPTS)
def test_money_scripts_name_every_key_in_keys(name: str) -> None:
    """Redis Cluster routes a script by its KEYS: a key built inside the script
    could live on another shard, so every command's key must come from KEYS
    (directly, or through the parameters of a shared function)."""
    source = load_script(name).source.decode()  # with its includes
    calls = _CALL.findall(source)
    assert calls
    for command, key in calls:
        if command == "PUBLISH":
            continue  # a channel, not a key (gift.lua runs on a single Redis only)
        assert _from_keys(source, key), f"{name}.lua: {command} {key}"


def test_a_key_built_in_a_script_is_found() -> None:
    """The check above fails a key not from KEYS, also through a function."""
    source = (
        "local function f(a_key, n)\n  redis.call('GET', a_key)\nend\n"
        "f(KEYS[1], 1)\nf('room:' .. ARGV[1], 2)\n"
    )
    assert not _from_keys(source, "a_key")
    assert _from_keys(source.replace("f('room:' .. ARGV[1], 2)", "f(KEYS[2], 2)"), "a_key")


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

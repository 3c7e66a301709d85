"""Conformance of the money rules (DESIGN.md section 3) on every engine: promotions,
refunds and chargebacks with debt and clawbacks, spending caps in the user's
time zone, parental controls, rate limits, held diamonds and withdrawals.

Time is driven through the requests' ``now``, never by sleeping. Every test
ends with a clean audit (conservation, balanced transactions, hot balances
equal to the ledger, no negative coin balance).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from store.domain.accounts import (
    CHARGEBACK,
    PLATFORM_PROMOTIONS,
    PLATFORM_WRITEOFF,
    REFUND,
    DebtSettlement,
    LimitsRequest,
    MoneyPolicy,
    RefundRequest,
    UserLimits,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.models import (
    COIN,
    DIAMOND,
    PAYOUT,
    PLATFORM_EXCHANGE,
    WORLD,
    GiftReceipt,
    Posting,
    Profile,
    PromotionGrant,
    PurchaseReceipt,
    PurchaseRequest,
)
from store.domain.rules import DAY_MS, HOUR_MS
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    LimitExceeded,
    NotFound,
    RateLimited,
    RoomNotLive,
    StoreError,
)
from store.roles import Engine
from tests.engines import ENGINES
from tests.store.test_conformance import send as send_at

ALICE = Profile(id="alice", username="alice", adult=True)
BEN = Profile(id="ben", username="ben", adult=True)
TEEN = Profile(id="teen", username="teen", adult=False)
BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))
CARA = Profile(id="cara", username="cara", adult=True, roles=frozenset({"creator"}))
ROOM = "room-bob"
ROOM_CARA = "room-cara"
NOW = 1_767_225_600_000
"""2026-01-01T00:00:00Z, the start of an hour, a day and a month in UTC."""

FIRST = PromotionGrant(id="welcome", coins=35, first_purchase=True)
CAMPAIGN = PromotionGrant(id="spring", coins=70)


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

Opener = Callable[..., contextlib.AbstractAsyncContextManager[Engine]]


@pytest.fixture
def open_engine(engine_name: str, engine_services: Any, tmp_path: Path) -> Opener:
    """Open an engine with a money policy: ``async with open_engine(policy=...)``."""

    @contextlib.asynccontextmanager
    async def opener(**config: Any) -> AsyncIterator[Engine]:
        async with ENGINES[engine_name](tmp_path, engine_services, **config) as opened:
            yield opened

    return opener


async def purchase(
    engine: Engine,
    user: Profile,
    package_id: str,
    payment_id: str,
    *,
    promotions: tuple[PromotionGrant, ...] = (),
    enforce: bool = True,
    now: int = NOW,
) -> PurchaseReceipt:
    package = engine.catalog.package(package_id)
    assert package is not None
    request = PurchaseRequest(user, package, payment_id, promotions=promotions, now=now)
    if not enforce:
        request = dataclasses.replace(request, enforce_limits=False)
    return await engine.wallet.purchase(request)


async def send(
    engine: Engine, sender: Profile, key: str, *, now: int = NOW, **options: Any
) -> GiftReceipt:
    """A gift at ``now`` (the rules' clock), else as the conformance suite sends one."""
    return await send_at(engine, sender, key, now=now, **options)


async def refund(engine: Engine, payment_id: str, *, kind: str = REFUND, now: int = NOW) -> Any:
    return await engine.wallet.refund(
        RefundRequest(provider="sandbox", payment_id=payment_id, kind=kind, now=now)
    )


async def limits(
    engine: Engine,
    user: Profile,
    *,
    pin: str | None = None,
    new_pin: str | None = None,
    **values: Any,
) -> Any:
    current = (await engine.wallet.account(user.id)).limits
    fields = {
        "daily_cap": current.daily_cap,
        "monthly_cap": current.monthly_cap,
        "purchases_enabled": current.purchases_enabled,
        "gifting_enabled": current.gifting_enabled,
        "tz": current.tz,
        **values,
    }
    return await engine.wallet.set_limits(
        LimitsRequest(user_id=user.id, limits=UserLimits(**fields), pin=pin, new_pin=new_pin)
    )


async def withdraw(
    engine: Engine, user: Profile, diamonds: int, key: str, *, now: int = NOW
) -> Withdrawal:
    return await engine.wallet.reserve_withdrawal(
        WithdrawalRequest(user_id=user.id, diamonds=diamonds, key=key, now=now)
    )


async def settle(engine: Engine, withdrawal_id: str, status: str, *, now: int = NOW) -> Withdrawal:
    return await engine.wallet.settle_withdrawal(
        WithdrawalSettlement(withdrawal_id=withdrawal_id, status=status, reference="ref", now=now)
    )


async def live(engine: Engine, creator: Profile = BOB, room_id: str = ROOM) -> None:
    await engine.rooms.go_live(room_id=room_id, creator=creator, title="t")


async def snapshot(engine: Engine, *users: Profile) -> tuple[Any, ...]:
    """What a refused operation must leave untouched."""
    balances = [await engine.wallet.balance(u.id) for u in users]
    accounts = [await engine.wallet.account(u.id) for u in users]
    histories = [[t.id for t in await engine.ledger.transactions(u.id, limit=1_000)] for u in users]
    report = await engine.ledger.audit()
    return balances, accounts, histories, report.transactions, report.totals


async def assert_audit(engine: Engine) -> None:
    report = await engine.ledger.audit()
    assert report.ok, report.public()


def by_account(postings: tuple[Posting, ...]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = {}
    for p in postings:
        totals[(p.account, p.asset)] = totals.get((p.account, p.asset), 0) + p.amount
    return totals


# --------------------------------------------------------------------------- #
# purchases and promotions
# --------------------------------------------------------------------------- #


async def test_first_purchase_bonus_applies_once(engine: Engine) -> None:
    first = await purchase(engine, ALICE, "us_350", "p1", promotions=(FIRST, CAMPAIGN))
    assert (first.coins, first.bonus, first.balance) == (350 + 35 + 70, 105, 455)
    assert first.promotions == ("welcome", "spring")
    second = await purchase(engine, ALICE, "us_350", "p2", promotions=(FIRST, CAMPAIGN))
    assert (second.coins, second.bonus, second.promotions) == (420, 70, ("spring",))
    assert second.balance == 875

    again = await purchase(engine, ALICE, "us_350", "p1", promotions=(FIRST,))
    assert again.replayed and again.tx == first.tx and again.coins == 455
    assert again.promotions == ("welcome", "spring")
    assert (await engine.wallet.balance(ALICE.id)).coins == 875
    assert (await engine.wallet.account(ALICE.id)).purchases == 2

    [tx2, tx1] = await engine.ledger.transactions(ALICE.id)
    assert tx1.id == first.tx
    assert by_account(tx1.postings) == {
        (WORLD, COIN): -350,
        (PLATFORM_PROMOTIONS, COIN): -105,
        ("user:alice:coins", COIN): 455,
    }
    assert tx1.meta["promotions"] == [
        {"id": "welcome", "coins": 35},
        {"id": "spring", "coins": 70},
    ]
    assert tx2.meta["promotions"] == [{"id": "spring", "coins": 70}]
    await assert_audit(engine)


async def test_concurrent_first_purchases_get_one_bonus(engine: Engine) -> None:
    receipts = await asyncio.gather(
        *(purchase(engine, ALICE, "us_70", f"p{n}", promotions=(FIRST,)) for n in range(10))
    )
    assert sorted(r.bonus for r in receipts) == [0] * 9 + [35]
    assert (await engine.wallet.balance(ALICE.id)).coins == 700 + 35
    await assert_audit(engine)


async def test_purchase_rules_refuse_before_crediting(engine: Engine) -> None:
    with pytest.raises(Forbidden) as minor:
        await purchase(engine, TEEN, "us_70", "p-teen")
    assert minor.value.message == "only adults can buy coins"
    await limits(engine, ALICE, purchases_enabled=False)
    before = await snapshot(engine, ALICE)
    with pytest.raises(Forbidden) as off:
        await purchase(engine, ALICE, "us_70", "p1", promotions=(FIRST,))
    assert off.value.message == "buying coins is turned off for this account (parental controls)"
    assert await snapshot(engine, ALICE) == before
    # the money was already taken (a provider's webhook): the coins are owed
    owed = await purchase(engine, ALICE, "us_70", "p1", promotions=(FIRST,), enforce=False)
    assert (owed.coins, owed.bonus, owed.balance) == (105, 35, 105)
    with pytest.raises(BadRequest):
        await purchase(engine, ALICE, "us_70", "p2", promotions=(PromotionGrant("x", -1),))
    await assert_audit(engine)


# --------------------------------------------------------------------------- #
# refunds, chargebacks, debt
# --------------------------------------------------------------------------- #


async def test_refund_of_unspent_coins_takes_them_back(engine: Engine) -> None:
    bought = await purchase(engine, ALICE, "us_700", "p1", promotions=(CAMPAIGN,))
    assert bought.coins == 777
    receipt = await refund(engine, "p1")
    assert (receipt.kind, receipt.user_id, receipt.purchase_tx) == (REFUND, "alice", bought.tx)
    assert (receipt.coins, receipt.taken, receipt.debt, receipt.clawed_back) == (777, 777, 0, 0)
    assert receipt.debt_after == 0 and not receipt.replayed
    balance = await engine.wallet.balance(ALICE.id)
    assert (balance.coins, balance.debt) == (0, 0)
    [tx, _] = await engine.ledger.transactions(ALICE.id)
    assert tx.kind == REFUND and tx.id == receipt.tx
    assert by_account(tx.postings) == {
        (WORLD, COIN): 707,
        (PLATFORM_PROMOTIONS, COIN): 70,
        ("user:alice:coins", COIN): -777,
    }
    assert tx.meta["purchase_tx"] == bought.tx and tx.meta["clawbacks"] == []

    # one reversal per payment, whatever its kind
    again = await refund(engine, "p1", kind=CHARGEBACK)
    assert again.replayed and again.tx == receipt.tx and again.kind == REFUND
    assert len(await engine.ledger.transactions(ALICE.id)) == 2
    assert not (await engine.wallet.account(ALICE.id)).locked
    await assert_audit(engine)


async def test_refund_errors_change_nothing(engine: Engine) -> None:
    await purchase(engine, ALICE, "us_70", "p1")
    before = await snapshot(engine, ALICE)
    with pytest.raises(NotFound) as unknown:
        await refund(engine, "p-unknown")
    assert unknown.value.message == "no credited purchase with this payment id"
    with pytest.raises(BadRequest):
        await refund(engine, "p1", kind="reversal")
    with pytest.raises(BadRequest):
        await refund(engine, "")
    assert await snapshot(engine, ALICE) == before


async def test_chargeback_of_spent_coins_locks_and_claws_back(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_700", "p1")
    await send(engine, ALICE, "g1", gift_id="confetti")  # 100 coins, 50 diamonds to bob
    receipt = await refund(engine, "p1", kind=CHARGEBACK)
    assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
        607,
        100,
        50,
        50,
    )
    alice, bob = await engine.wallet.balance(ALICE.id), await engine.wallet.balance(BOB.id)
    assert (alice.coins, alice.debt, bob.diamonds) == (0, 50, 0)
    [tx, *_] = await engine.ledger.transactions(ALICE.id)
    assert tx.kind == CHARGEBACK
    assert by_account(tx.postings) == {
        (WORLD, COIN): 707,
        ("user:alice:coins", COIN): -607,
        ("user:alice:debt", COIN): -50,
        ("user:bob:diamonds", DIAMOND): -50,
        (PLATFORM_EXCHANGE, DIAMOND): 50,
        (PLATFORM_EXCHANGE, COIN): -50,
    }
    assert tx.meta["clawbacks"] == [{"creator_id": "bob", "diamonds": 50}]
    # the creator sees the clawback in their history
    assert (await engine.ledger.transactions(BOB.id))[0].id == tx.id

    account = await engine.wallet.account(ALICE.id)
    assert account.locked and account.debt == 50
    locked = "your account is locked until its chargeback debt of 50 coins is settled"
    before = await snapshot(engine, ALICE, BOB)
    with pytest.raises(Forbidden) as no_gift:
        await send(engine, ALICE, "g2")
    assert no_gift.value.message == locked
    assert await snapshot(engine, ALICE, BOB) == before
    # buying stays open to a locked account: the coins pay the debt first
    owed = await purchase(engine, ALICE, "us_70", "p2")
    assert (owed.debt_paid, owed.balance) == (50, 20)
    assert not (await engine.wallet.account(ALICE.id)).locked
    await assert_audit(engine)


@pytest.mark.parametrize(
    ("gifts", "withdrawn", "expected"),
    [
        # (room, gift, count) after the refunded purchase; bob's reserved diamonds;
        # (taken, debt, clawed back, debt after, [(creator, diamonds)])
        ([(ROOM, "doughnut", 3)], 0, (260, 90, 45, 45, [("bob", 45)])),
        ([(ROOM, "perfume", 1), (ROOM, "doughnut", 3)], 0, (240, 110, 55, 55, [("bob", 55)])),
        (
            [(ROOM, "perfume", 5), (ROOM_CARA, "confetti", 1)],
            40,
            (150, 200, 60, 140, [("cara", 50), ("bob", 10)]),
        ),
        ([(ROOM, "rose", 1)], 0, (349, 1, 1, 0, [("bob", 1)])),
    ],
)
async def test_clawback_table(
    open_engine: Opener,
    gifts: list[tuple[str, str, int]],
    withdrawn: int,
    expected: tuple[int, int, int, int, list[tuple[str, int]]],
) -> None:
    async with open_engine() as engine:
        await live(engine)
        await live(engine, CARA, ROOM_CARA)
        await purchase(engine, ALICE, "us_350", "p1")
        for n, (room, gift_id, count) in enumerate(gifts):
            await send(engine, ALICE, f"g{n}", gift_id=gift_id, count=count, room_id=room)
        if withdrawn:
            await engine.wallet.set_verified(BOB.id, verified=True, by="admin")
            await withdraw(engine, BOB, withdrawn, "w1")
        receipt = await refund(engine, "p1", kind=CHARGEBACK)
        taken, debt, clawed, debt_after, claws = expected
        assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
            taken,
            debt,
            clawed,
            debt_after,
        )
        [tx, *_] = await engine.ledger.transactions(ALICE.id)
        assert [(c["creator_id"], c["diamonds"]) for c in tx.meta["clawbacks"]] == claws
        assert (await engine.wallet.balance(ALICE.id)).debt == debt_after
        await assert_audit(engine)


async def test_partly_spent_refund_claws_back_a_share(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_70", "p0")
    await purchase(engine, ALICE, "us_350", "p1")
    await send(engine, ALICE, "g1", gift_id="doughnut", count=3)  # 90 coins, 45 diamonds
    # 330 coins left of 420: 20 of p1's 350 were spent, on 20 of the gift's 90 coins
    receipt = await refund(engine, "p1")
    assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
        330,
        20,
        10,
        10,
    )
    assert (await engine.wallet.balance(BOB.id)).diamonds == 35
    await assert_audit(engine)


async def test_refund_of_an_older_purchase_claws_only_later_gifts(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_70", "p1")
    await send(engine, ALICE, "g1", gift_id="perfume", count=3)  # 60 coins before p2
    await purchase(engine, ALICE, "us_350", "p2")
    await send(engine, ALICE, "g2", gift_id="finger_heart", count=2)  # 10 coins after p2
    # 350 coins left, p2 credited 350: nothing was spent from it
    receipt = await refund(engine, "p2")
    assert (receipt.taken, receipt.debt, receipt.clawed_back) == (350, 0, 0)
    # p1's 70 coins: 0 left, 70 spent; the gifts after p1 are g2 (10) then g1 (60)
    receipt = await refund(engine, "p1")
    assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
        0,
        70,
        35,
        35,
    )
    await assert_audit(engine)


async def test_debt_is_paid_by_owed_purchases_and_settled(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_350", "p1")
    await send(engine, ALICE, "g1", gift_id="confetti", count=3)
    await engine.wallet.set_verified(BOB.id, verified=True, by="admin")
    await withdraw(engine, BOB, 150, "w1")  # bob keeps nothing to claw back
    receipt = await refund(engine, "p1", kind=CHARGEBACK)
    assert (receipt.debt, receipt.clawed_back, receipt.debt_after) == (300, 0, 300)

    # a payment the provider already captured pays the debt first
    owed = await purchase(engine, ALICE, "us_70", "p2", enforce=False)
    assert (owed.coins, owed.debt_paid, owed.balance) == (70, 70, 0)
    [tx, *_] = await engine.ledger.transactions(ALICE.id)
    assert by_account(tx.postings) == {(WORLD, COIN): -70, ("user:alice:debt", COIN): 70}
    assert (await engine.wallet.balance(ALICE.id)).debt == 230

    with pytest.raises(BadRequest):
        await engine.wallet.settle_debt(
            DebtSettlement(user_id=ALICE.id, method="forgiven", key="s1", by="admin")
        )
    settled = await engine.wallet.settle_debt(
        DebtSettlement(user_id=ALICE.id, method="written_off", key="s1", by="admin", note="x")
    )
    assert (settled.coins, settled.method, settled.replayed) == (230, "written_off", False)
    again = await engine.wallet.settle_debt(
        DebtSettlement(user_id=ALICE.id, method="written_off", key="s1", by="admin")
    )
    assert again.replayed and again.tx == settled.tx
    with pytest.raises(Conflict):
        await engine.wallet.settle_debt(
            DebtSettlement(user_id=ALICE.id, method="paid", key="s1", by="admin")
        )
    [tx, *_] = await engine.ledger.transactions(ALICE.id)
    assert tx.kind == "debt_settlement"
    assert by_account(tx.postings) == {
        (PLATFORM_WRITEOFF, COIN): -230,
        ("user:alice:debt", COIN): 230,
    }
    account = await engine.wallet.account(ALICE.id)
    assert not account.locked and account.debt == 0
    with pytest.raises(BadRequest) as nothing:
        await engine.wallet.settle_debt(
            DebtSettlement(user_id=ALICE.id, method="paid", key="s2", by="admin")
        )
    assert nothing.value.message == "this account has no debt to settle"
    # unlocked: buying and gifting work again
    await purchase(engine, ALICE, "us_70", "p3")
    await send(engine, ALICE, "g2")
    await assert_audit(engine)


# --------------------------------------------------------------------------- #
# spending caps, parental controls, rate limits
# --------------------------------------------------------------------------- #


async def test_platform_caps_per_day_and_month(open_engine: Opener) -> None:
    async with open_engine(
        policy=MoneyPolicy(daily_spend_cap=100, monthly_spend_cap=150)
    ) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        await send(engine, ALICE, "g1", gift_id="confetti")  # 100 today
        before = await snapshot(engine, ALICE, BOB)
        with pytest.raises(LimitExceeded) as daily:
            await send(engine, ALICE, "g2", now=NOW + DAY_MS - 1)
        assert daily.value.message == (
            "this gift would pass your daily spending cap of 100 coins (100 spent today)"
        )
        assert await snapshot(engine, ALICE, BOB) == before
        tomorrow = NOW + DAY_MS
        await send(engine, ALICE, "g2", gift_id="perfume", count=2, now=tomorrow)  # 140 this month
        with pytest.raises(LimitExceeded) as monthly:
            await send(engine, ALICE, "g3", gift_id="perfume", now=tomorrow)
        assert monthly.value.message == (
            "this gift would pass your monthly spending cap of 150 coins (140 spent this month)"
        )
        next_month = NOW + 31 * DAY_MS  # 2026-02-01
        await send(engine, ALICE, "g3", gift_id="confetti", now=next_month)
        account = await engine.wallet.account(ALICE.id)
        assert (account.spent_day, account.day_spent) == ("2026-02-01", 100)
        assert (account.spent_month, account.month_spent) == ("2026-02", 100)
        await assert_audit(engine)


async def test_user_caps_are_lower_and_count_in_their_time_zone(open_engine: Opener) -> None:
    async with open_engine(policy=MoneyPolicy(daily_spend_cap=1_000)) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        with pytest.raises(BadRequest):
            await limits(engine, ALICE, daily_cap=1_001)  # above the platform's
        with pytest.raises(BadRequest):
            await limits(engine, ALICE, tz="Mars/Olympus")
        with pytest.raises(BadRequest):
            await limits(engine, ALICE, monthly_cap=-1)
        # UTC+14: 2026-01-01T00:00Z is 14:00 on January 1st there
        await limits(engine, ALICE, daily_cap=30, tz="Pacific/Kiritimati")
        await send(engine, ALICE, "g1", gift_id="doughnut")
        with pytest.raises(LimitExceeded) as capped:
            await send(engine, ALICE, "g2", now=NOW + 9 * HOUR_MS)  # 23:00 local
        assert capped.value.message == (
            "this gift would pass your daily spending cap of 30 coins (30 spent today)"
        )
        await send(engine, ALICE, "g2", now=NOW + 10 * HOUR_MS)  # midnight local, still UTC Jan 1
        account = await engine.wallet.account(ALICE.id)
        assert (account.spent_day, account.day_spent) == ("2026-01-02", 1)
        await assert_audit(engine)


async def test_concurrent_gifts_never_overshoot_a_cap(open_engine: Opener) -> None:
    async with open_engine(policy=MoneyPolicy(daily_spend_cap=50)) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        results = await asyncio.gather(
            *(send(engine, ALICE, f"g{n}") for n in range(120)), return_exceptions=True
        )
        ok = [r for r in results if isinstance(r, GiftReceipt)]
        refused = [r for r in results if not isinstance(r, GiftReceipt)]
        assert len(ok) == 50
        assert all(isinstance(e, LimitExceeded) for e in refused)
        assert (await engine.wallet.balance(ALICE.id)).coins == 707 - 50
        await assert_audit(engine)


async def test_parental_controls_and_the_pin(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_350", "p1")
    account = await limits(engine, ALICE, gifting_enabled=False, new_pin="4321")
    assert account.pin_set and not account.limits.gifting_enabled
    with pytest.raises(Forbidden) as off:
        await send(engine, ALICE, "g1")
    assert off.value.message == "gifting is turned off for this account (parental controls)"

    # tightening never needs the PIN
    await limits(engine, ALICE, daily_cap=100, purchases_enabled=False)
    before = await snapshot(engine, ALICE)
    relax: list[dict[str, Any]] = [
        {"gifting_enabled": True},
        {"purchases_enabled": True},
        {"daily_cap": 200},
        {"daily_cap": None},
        {"tz": "Europe/Paris"},
        {"new_pin": "1111"},
        {"new_pin": ""},
    ]
    for change in relax:
        with pytest.raises(Forbidden) as needs:
            await limits(engine, ALICE, **change)
        assert needs.value.message == "this change needs the account's PIN", change
        with pytest.raises(Forbidden) as wrong:
            await limits(engine, ALICE, pin="0000", **change)
        assert wrong.value.message == "wrong PIN", change
    with pytest.raises(BadRequest):
        await limits(engine, ALICE, pin="4321", new_pin="12")  # not 4..8 digits
    assert await snapshot(engine, ALICE) == before

    await limits(engine, ALICE, pin="4321", gifting_enabled=True, daily_cap=None)
    await send(engine, ALICE, "g1")
    await limits(engine, ALICE, pin="4321", new_pin="")  # remove the PIN
    account = await limits(engine, ALICE, purchases_enabled=True)  # no PIN needed now
    assert not account.pin_set and account.limits == UserLimits()
    await assert_audit(engine)


async def test_gift_rate_limit_charges_only_successes(open_engine: Opener) -> None:
    async with open_engine(policy=MoneyPolicy(gift_rate_per_minute=60, gift_burst=2)) as engine:
        await live(engine)
        with pytest.raises(InsufficientFunds):  # passes the rate check, takes no token
            await send(engine, ALICE, "g0")
        await purchase(engine, ALICE, "us_70", "p1")
        await send(engine, ALICE, "g1")
        await send(engine, ALICE, "g2")
        before = await snapshot(engine, ALICE, BOB)
        with pytest.raises(RateLimited) as limited:
            await send(engine, ALICE, "g3", now=NOW + 999)
        assert limited.value.message == "too many gifts: try again in 1 s"
        assert await snapshot(engine, ALICE, BOB) == before
        again = await send(engine, ALICE, "g2")  # a replay is never rate limited
        assert again.replayed
        await send(engine, ALICE, "g3", now=NOW + 1_000)
        with pytest.raises(RateLimited):
            await send(engine, ALICE, "g4", now=NOW + 1_000)
        await assert_audit(engine)


async def test_rate_limit_buckets_and_claims(engine: Engine) -> None:
    wallet = engine.wallet
    await wallet.rate_limit(ALICE.id, "purchases", per_hour=120, burst=2, now=NOW)
    await wallet.rate_limit(ALICE.id, "purchases", per_hour=120, burst=2, now=NOW)
    with pytest.raises(RateLimited) as limited:
        await wallet.rate_limit(ALICE.id, "purchases", per_hour=120, burst=2, now=NOW)
    assert limited.value.message == "too many purchases: try again in 30 s"
    await wallet.rate_limit(BEN.id, "purchases", per_hour=120, burst=2, now=NOW)  # per user
    await wallet.rate_limit(ALICE.id, "withdrawals", per_hour=120, burst=2, now=NOW)  # per action
    await wallet.rate_limit(ALICE.id, "purchases", per_hour=120, burst=2, now=NOW + 30_000)
    with pytest.raises(RateLimited):
        await wallet.rate_limit(ALICE.id, "purchases", per_hour=120, burst=2, now=NOW + 30_000)
    with pytest.raises(BadRequest):
        await wallet.rate_limit(ALICE.id, "purchases", per_hour=0, burst=2)

    assert await wallet.claim_once("webhook:sandbox", "sig-1", ttl_seconds=60)
    assert not await wallet.claim_once("webhook:sandbox", "sig-1", ttl_seconds=60)
    assert await wallet.claim_once("webhook:other", "sig-1", ttl_seconds=60)
    claims = await asyncio.gather(
        *(wallet.claim_once("webhook:sandbox", "sig-2", ttl_seconds=60) for _ in range(20))
    )
    assert claims.count(True) == 1


async def test_gift_checks_come_in_order(open_engine: Opener) -> None:
    """Each case breaks every later rule too, so only the first applicable one answers."""
    policy = MoneyPolicy(gift_rate_per_minute=1, gift_burst=1)
    async with open_engine(policy=policy) as engine:
        await live(engine)
        await live(engine, CARA, "room-ended")
        await engine.rooms.end("room-ended", by=CARA)
        users = [Profile(id=f"u{n}", username=f"u{n}", adult=True) for n in range(5)]
        locked, off, limited, capped, poor = users
        for user in users:
            await purchase(engine, user, "us_70", f"p-{user.id}")
        # locked: spent 10 of the 70 refunded, 5 of them clawed back
        await send(engine, locked, "x", gift_id="finger_heart", count=2)
        await refund(engine, f"p-{locked.id}")
        await limits(engine, off, gifting_enabled=False)
        await send(engine, limited, "x")  # its one token
        await limits(engine, capped, daily_cap=10)
        await send(engine, capped, "x", gift_id="finger_heart", count=2)
        await send(engine, poor, "x", gift_id="doughnut", count=2, now=NOW - 120_000)
        await send(engine, poor, "y", gift_id="finger_heart", now=NOW - 60_000)  # 5 left
        later = NOW + 180_000
        before = await snapshot(engine, *users)
        cases: list[tuple[Profile, str, type[StoreError], str]] = [
            (locked, "room-ended", RoomNotLive, "the room is not live"),
            (
                locked,
                ROOM,
                Forbidden,
                "your account is locked until its chargeback debt of 5 coins is settled",
            ),
            (off, ROOM, Forbidden, "gifting is turned off for this account (parental controls)"),
            (limited, ROOM, RateLimited, "too many gifts: try again in 60 s"),
            (
                capped,
                ROOM,
                LimitExceeded,
                "this gift would pass your daily spending cap of 10 coins (10 spent today)",
            ),
            (poor, ROOM, InsufficientFunds, "this gift costs 10 coins, you have 5"),
        ]
        for n, (user, room, error, message) in enumerate(cases):
            now = NOW if user is limited else later
            with pytest.raises(error) as caught:
                await send(
                    engine, user, f"k{n}", gift_id="finger_heart", count=2, room_id=room, now=now
                )
            assert caught.value.message == message, n
            assert await snapshot(engine, *users) == before, f"case {n} changed state"


# --------------------------------------------------------------------------- #
# earnings and withdrawals
# --------------------------------------------------------------------------- #

HOLDING = MoneyPolicy(
    hold_seconds=3_600, withdrawal_min=10, withdrawal_daily_max=100, payout_seconds=86_400
)


async def test_earnings_are_held_then_withdrawable(open_engine: Opener) -> None:
    async with open_engine(policy=HOLDING) as engine:
        await live(engine)
        await live(engine, CARA, ROOM_CARA)
        await purchase(engine, ALICE, "us_700", "p1")
        await send(engine, ALICE, "g1", gift_id="confetti", count=2)  # 100 diamonds, hour 0
        await send(engine, ALICE, "g2", gift_id="perfume", now=NOW + 30 * 60_000)  # 10, hour 0
        await engine.rooms.end(ROOM, by=BOB)
        await live(engine)  # stream 2
        await send(engine, ALICE, "g3", gift_id="doughnut", now=NOW + HOUR_MS)  # 15, hour 1

        early = await engine.wallet.earnings(BOB.id, now=NOW + HOUR_MS)
        assert (early.balance, early.held, early.withdrawable, early.lifetime) == (125, 125, 0, 125)
        assert early.next_release_at == NOW + 2 * HOUR_MS
        assert early.hours == ((NOW // HOUR_MS, 110), (NOW // HOUR_MS + 1, 15))
        assert [(s.room_id, s.stream_id, s.diamonds) for s in early.streams] == [
            (ROOM, 2, 15),
            (ROOM, 1, 110),
        ]
        assert not early.verified
        later = await engine.wallet.earnings(BOB.id, now=NOW + 2 * HOUR_MS)
        assert (later.held, later.withdrawable, later.next_release_at) == (
            15,
            110,
            NOW + 3 * HOUR_MS,
        )
        done = await engine.wallet.earnings(BOB.id, now=NOW + 3 * HOUR_MS)
        assert (done.held, done.withdrawable, done.next_release_at) == (0, 125, None)
        empty = await engine.wallet.earnings(CARA.id, now=NOW)
        assert (empty.balance, empty.lifetime, empty.hours, empty.streams) == (0, 0, (), ())


async def test_withdrawal_checks_come_in_order(open_engine: Opener) -> None:
    async with open_engine(policy=HOLDING) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        await send(engine, ALICE, "g1", gift_id="confetti", count=4)  # 200 diamonds
        before = await snapshot(engine, BOB)
        cases: list[tuple[int, type[StoreError], str]] = [
            (5, Forbidden, "only verified creators can withdraw"),
            (5, BadRequest, "the smallest withdrawal is 10 diamonds"),
            (
                150,
                LimitExceeded,
                "this withdrawal would pass the daily maximum of 100 diamonds (0 withdrawn today)",
            ),
            (50, InsufficientFunds, "0 diamonds are withdrawable now (200 still held)"),
        ]
        for n, (diamonds, error, message) in enumerate(cases):
            if n == 1:
                await engine.wallet.set_verified(BOB.id, verified=True, by="admin")
                before = await snapshot(engine, BOB)
            with pytest.raises(error) as caught:
                await withdraw(engine, BOB, diamonds, f"w{n}")
            assert caught.value.message == message
            assert await snapshot(engine, BOB) == before


async def test_withdrawal_lifecycle(open_engine: Opener) -> None:
    async with open_engine(policy=HOLDING) as engine:
        await live(engine)
        await purchase(engine, ALICE, "us_700", "p1")
        await send(engine, ALICE, "g1", gift_id="confetti", count=4)  # 200 diamonds
        await engine.wallet.set_verified(BOB.id, verified=True, by="admin")
        assert (await engine.wallet.account(BOB.id)).verified
        at = NOW + 2 * HOUR_MS
        first = await withdraw(engine, BOB, 50, "w1", now=at)
        assert (first.status, first.diamonds, first.created_at) == ("pending", 50, at)
        assert first.expected_at == at + 86_400_000 and first.settled_at is None
        assert (await engine.wallet.balance(BOB.id)).diamonds == 150
        replay = await withdraw(engine, BOB, 50, "w1", now=at)
        assert replay.replayed and replay.id == first.id
        with pytest.raises(Conflict):
            await withdraw(engine, BOB, 60, "w1", now=at)
        with pytest.raises(LimitExceeded) as daily:
            await withdraw(engine, BOB, 60, "w2", now=at)
        assert daily.value.message.endswith("(50 withdrawn today)")

        failed = await settle(engine, first.id, "failed", now=at + 1)
        assert (failed.status, failed.settled_at, failed.replayed) == ("failed", at + 1, False)
        assert (await engine.wallet.balance(BOB.id)).diamonds == 200  # void returns them
        second = await withdraw(engine, BOB, 60, "w2", now=at)  # the failed one no longer counts
        paid = await settle(engine, second.id, "paid", now=at + 2)
        assert (paid.status, paid.reference) == ("paid", "ref")
        assert (await settle(engine, second.id, "paid")).replayed
        with pytest.raises(Conflict) as settled:
            await settle(engine, second.id, "failed")
        assert settled.value.message == "this withdrawal is already paid"
        with pytest.raises(NotFound):
            await settle(engine, "wd_missing", "paid")
        with pytest.raises(BadRequest):
            await settle(engine, second.id, "lost")
        # the next UTC day has its own maximum
        third = await withdraw(engine, BOB, 100, "w3", now=NOW + DAY_MS)

        listed = await engine.wallet.withdrawals(BOB.id)
        assert [w.id for w in listed] == [third.id, second.id, first.id]
        assert [w.status for w in listed] == ["pending", "paid", "failed"]
        page = await engine.wallet.withdrawals(BOB.id, before=third.id, limit=1)
        assert [w.id for w in page] == [second.id]
        assert await engine.wallet.withdrawal(second.id) == paid
        assert await engine.wallet.withdrawal("wd_missing") is None
        assert await engine.wallet.withdrawals(ALICE.id) == []

        earnings = await engine.wallet.earnings(BOB.id, now=NOW + DAY_MS)
        assert (earnings.balance, earnings.pending, earnings.paid, earnings.lifetime) == (
            40,
            100,
            60,
            200,
        )
        kinds = [t.kind for t in await engine.ledger.transactions(BOB.id)]
        assert kinds == [
            "withdrawal",
            "withdrawal_paid",
            "withdrawal",
            "withdrawal_failed",
            "withdrawal",
            "gift",
        ]
        [reserve, *_] = await engine.ledger.transactions(BOB.id)
        assert by_account(reserve.postings) == {
            ("user:bob:diamonds", DIAMOND): -100,
            ("user:bob:withdrawing", DIAMOND): 100,
        }
        [_, paid_tx, *_] = await engine.ledger.transactions(BOB.id)
        assert by_account(paid_tx.postings) == {
            ("user:bob:withdrawing", DIAMOND): -60,
            (PAYOUT, DIAMOND): 60,
        }
        report = await engine.ledger.audit()
        assert report.ok, report.public()
        assert report.totals == {COIN: 0, DIAMOND: 0}


async def test_concurrent_withdrawals_never_overdraw(engine: Engine) -> None:
    await live(engine)
    await purchase(engine, ALICE, "us_350", "p1")
    await send(engine, ALICE, "g1", gift_id="perfume", count=10)  # 100 diamonds
    await engine.wallet.set_verified(BOB.id, verified=True, by="admin")
    results = await asyncio.gather(
        *(withdraw(engine, BOB, 10, f"w{n}") for n in range(25)), return_exceptions=True
    )
    assert sum(isinstance(r, Withdrawal) for r in results) == 10
    assert all(isinstance(r, (Withdrawal, InsufficientFunds)) for r in results)
    assert (await engine.wallet.balance(BOB.id)).diamonds == 0
    await assert_audit(engine)

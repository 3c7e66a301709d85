"""A stateful property test of the money rules on every engine.

Hypothesis drives random purchases (paid and owed by a captured payment, with
promotions), gifts (some at a price shown before the catalog changed), resends,
in-app item purchases (in a room or not, timed or permanent, at a shown price,
resent), catalog price changes of gifts and items, refunds and chargebacks,
limit and PIN changes, debt settlements, withdrawals and their settlements
across several users, with the clock moving by random steps. After every step the five invariants of
DESIGN.md section 3 are checked:

1. conservation: every posting sums to zero per asset, every transaction balances;
2. no coin balance below zero (debt is recorded in its own account);
3. one effect per idempotency key (payments, reversals, gifts, items), and the same key
   with other content is a conflict;
4. the ledger is append-only: every transaction seen before is still there, as it was;
5. hot balances equal the balances derived from the ledger (the audit, and the
   user accounts summed from the users' histories).

Each rule also checks that what succeeded was allowed and that what was refused
changed nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from store.domain import accounts
from store.domain.items import ItemRequest
from store.domain.models import (
    COIN,
    DIAMOND,
    GiftRequest,
    Profile,
    PromotionGrant,
    PurchaseRequest,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.domain.rules import DAY_MS, HOUR_MS, local_periods, relaxes
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    LimitExceeded,
    PriceChanged,
    RateLimited,
    StoreError,
)
from store.roles import Engine
from tests.engines import ENGINES

T = TypeVar("T")

NOW = 1_767_225_600_000
FANS = ("f0", "f1", "f2")
CREATORS = ("c0", "c1")
PIN = "2468"
POLICY = accounts.MoneyPolicy(
    daily_spend_cap=600,
    monthly_spend_cap=3_000,
    gift_rate_per_minute=600,
    gift_burst=30,
    hold_seconds=600,
    withdrawal_min=5,
    withdrawal_daily_max=400,
    payout_seconds=86_400,
)
PIN_BADGE = {"id": "pin", "kind": "badge", "name": "Pin", "coins": 15, "image": "/pin.svg"}
ITEMS = ("pin", "badge_star", "name_neon", "effect_sparkles")
FIRST = PromotionGrant(id="welcome", coins=20, first_purchase=True)
CAMPAIGN = PromotionGrant(id="spring", coins=7)


def fan(user_id: str) -> Profile:
    return Profile(id=user_id, username=user_id, adult=True)


def creator(user_id: str) -> Profile:
    return Profile(id=user_id, username=user_id, adult=True, roles=frozenset({"creator"}))


class MoneyMachine(RuleBasedStateMachine):
    engine_name: ClassVar[str] = "embedded"
    services: ClassVar[Any] = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="money-machine-"))
        self.opened = ENGINES[self.engine_name](self.tmp, self.services, policy=POLICY)
        self.engine: Engine = self.run(self.opened.__aenter__())
        self.now = NOW
        self.counter = 0
        self.payments: dict[str, tuple[str, str, str]] = {}
        """payment id -> (user, package, tx)"""
        self.reversals: dict[str, str] = {}
        """payment id -> reversal tx"""
        self.gifts: dict[tuple[str, str], tuple[str, int, str, str]] = {}
        """(sender, key) -> (gift, count, room, tx)"""
        self.withdrawals: dict[str, str] = {}
        """withdrawal id -> status"""
        self.limits = {u: accounts.UserLimits() for u in FANS}
        self.pins: dict[str, bool] = dict.fromkeys(FANS, False)
        self.seen: dict[str, TransactionRecord] = {}
        self.model: dict[tuple[str, str], int] = {}
        self.spent: dict[tuple[str, str], int] = {}
        """(user, local day or month) -> coins spent on gifts"""
        self.shown: dict[str, int] = {}
        """gift -> the price it had before its last change (a stale page shows it)"""
        self.unit_price: dict[str, int] = {}
        """gift or item tx -> the price of one gift (or the item) when it was bought"""
        self.items: dict[tuple[str, str], tuple[str, str | None, str]] = {}
        """(buyer, key) -> (item, room or None, tx)"""
        self.forever: set[tuple[str, str]] = set()
        """(buyer, item) owned for good"""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.opened.__aexit__(None, None, None))
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def balances(self) -> dict[str, Any]:
        return {u: self.run(self.engine.wallet.balance(u)) for u in (*FANS, *CREATORS)}

    # -- setup ------------------------------------------------------------------

    @initialize()
    def rooms_and_funds(self) -> None:
        for c in CREATORS:
            self.run(self.engine.rooms.go_live(room_id=f"room-{c}", creator=creator(c), title="t"))
            self.run(self.engine.wallet.set_verified(c, verified=True, by="admin"))
        for user in FANS:  # everyone starts with coins, so most gifts go through
            self.buy(user, "us_700", owed=False, promoted=True)
        self.run(self.engine.catalogs.create("item", PIN_BADGE))  # cheap and permanent

    # -- purchases ----------------------------------------------------------------

    @rule(
        user=st.sampled_from(FANS),
        package=st.sampled_from(["us_70", "us_350", "us_700"]),
        owed=st.booleans(),
        promoted=st.booleans(),
    )
    def buy(self, user: str, package: str, owed: bool, promoted: bool) -> None:
        found = self.engine.catalog.package(package)
        assert found is not None
        payment = self.next_id("pay")
        debt = self.run(self.engine.wallet.balance(user)).debt
        before = self.balances()
        try:
            receipt = self.run(
                self.engine.wallet.purchase(
                    PurchaseRequest(
                        user=fan(user),
                        package=found,
                        payment_id=payment,
                        promotions=(FIRST, CAMPAIGN) if promoted else (),
                        enforce_limits=not owed,
                        now=self.now,
                    )
                )
            )
        except Forbidden:
            assert not owed
            assert not self.limits[user].purchases_enabled
            assert self.balances() == before
            return
        assert owed or self.limits[user].purchases_enabled
        assert receipt.debt_paid == min(debt, receipt.coins)
        self.payments[payment] = (user, package, receipt.tx)

    @precondition(lambda self: self.payments)
    @rule(data=st.data())
    def buy_again(self, data: st.DataObject) -> None:
        payment = data.draw(st.sampled_from(sorted(self.payments)))
        user, package, tx = self.payments[payment]
        found = self.engine.catalog.package(package)
        other = self.engine.catalog.package("us_1400")
        assert found is not None and other is not None
        again = self.run(
            self.engine.wallet.purchase(
                PurchaseRequest(user=fan(user), package=found, payment_id=payment, now=self.now)
            )
        )
        assert again.replayed and again.tx == tx
        before = self.balances()
        with pytest.raises(Conflict):
            self.run(
                self.engine.wallet.purchase(
                    PurchaseRequest(user=fan(user), package=other, payment_id=payment)
                )
            )
        assert self.balances() == before

    # -- gifts ----------------------------------------------------------------------

    GIFT: ClassVar[dict[str, Any]] = {
        "user": st.sampled_from(FANS),
        "to": st.sampled_from(CREATORS),
        "gift_id": st.sampled_from(["rose", "perfume", "doughnut", "confetti", "sunglasses"]),
        "count": st.integers(1, 3),
        "advance": st.sampled_from([0, 1_000, HOUR_MS, DAY_MS, 20 * DAY_MS]),
    }

    # gifts are what the platform does most: three rules, so they are drawn more often
    @rule(**GIFT)
    def gift(self, user: str, to: str, gift_id: str, count: int, advance: int) -> None:
        self.send(user, to, gift_id, count, advance)

    @rule(**GIFT)
    def gift_more(self, user: str, to: str, gift_id: str, count: int, advance: int) -> None:
        self.send(user, to, gift_id, count, advance)

    @rule(**GIFT, stale=st.booleans())
    def gift_at_shown_price(
        self, user: str, to: str, gift_id: str, count: int, advance: int, stale: bool
    ) -> None:
        """A client sends the price it shows: the current one, or one from before the
        gift's last price change (refused, charging nothing)."""
        found = self.engine.catalog.gift(gift_id)
        assert found is not None
        shown = self.shown.get(gift_id, found.coins) if stale else found.coins
        if shown == found.coins:
            self.send(user, to, gift_id, count, advance, shown_coins=shown)
            return
        before = self.balances()
        with pytest.raises(PriceChanged):
            self.send(user, to, gift_id, count, advance, shown_coins=shown)
        assert self.balances() == before

    @rule(gift_id=GIFT["gift_id"], coins=st.integers(1, 60))
    def change_price(self, gift_id: str, coins: int) -> None:
        """An admin reprices a gift: what was sent before keeps its price."""
        found = self.engine.catalog.gift(gift_id)
        assert found is not None
        version = self.engine.catalog.version
        catalog = self.run(self.engine.catalogs.update("gift", gift_id, {"coins": coins}))
        assert catalog.version == version + (coins != found.coins)
        changed = catalog.gift(gift_id)
        assert changed is not None and changed.coins == coins
        if coins != found.coins:
            self.shown[gift_id] = found.coins

    @rule(**GIFT)
    def gift_again(self, user: str, to: str, gift_id: str, count: int, advance: int) -> None:
        self.send(user, to, gift_id, count, advance)

    def send(
        self,
        user: str,
        to: str,
        gift_id: str,
        count: int,
        advance: int,
        shown_coins: int | None = None,
    ) -> None:
        self.now += advance
        found = self.engine.catalog.gift(gift_id)
        assert found is not None
        total = found.coins * count
        key = self.next_id("gift")
        balance = self.run(self.engine.wallet.balance(user))
        limits = self.limits[user]
        day, month = local_periods(self.now, limits.tz)
        caps = [
            (POLICY.daily_spend_cap, limits.daily_cap, self.spent.get((user, day), 0)),
            (POLICY.monthly_spend_cap, limits.monthly_cap, self.spent.get((user, month), 0)),
        ]
        capped = any(
            spent + total > min(c for c in (platform, mine) if c is not None)
            for platform, mine, spent in caps
        )
        before = self.balances()
        try:
            receipt = self.run(
                self.engine.wallet.send_gift(
                    GiftRequest(
                        sender=fan(user),
                        room_id=f"room-{to}",
                        gift=found,
                        count=count,
                        key=key,
                        now=self.now,
                        shown_coins=shown_coins,
                    )
                )
            )
        except PriceChanged:
            raise  # nothing checked yet: the caller expected it (or the test fails)
        except StoreError as exc:
            assert self.balances() == before
            if isinstance(exc, Forbidden):
                assert balance.debt > 0 or not limits.gifting_enabled
            elif isinstance(exc, LimitExceeded):
                assert capped
            elif isinstance(exc, InsufficientFunds):
                assert balance.coins < total
            else:
                assert isinstance(exc, RateLimited), exc
            return
        assert balance.debt == 0 and limits.gifting_enabled
        assert balance.coins >= total and not capped
        assert receipt.balance == balance.coins - total
        self.spent[(user, day)] = self.spent.get((user, day), 0) + total
        self.spent[(user, month)] = self.spent.get((user, month), 0) + total
        self.gifts[(user, key)] = (gift_id, count, f"room-{to}", receipt.tx)
        self.unit_price[receipt.tx] = found.coins

    @precondition(lambda self: self.gifts)
    @rule(data=st.data())
    def resend_gift(self, data: st.DataObject) -> None:
        user, key = data.draw(st.sampled_from(sorted(self.gifts)))
        gift_id, count, room, tx = self.gifts[(user, key)]
        found = self.engine.catalog.gift(gift_id)
        assert found is not None
        request = GiftRequest(
            sender=fan(user), room_id=room, gift=found, count=count, key=key, now=self.now
        )
        again = self.run(self.engine.wallet.send_gift(request))
        assert again.replayed and again.tx == tx
        before = self.balances()
        with pytest.raises(Conflict):
            self.run(
                self.engine.wallet.send_gift(
                    GiftRequest(
                        sender=fan(user), room_id=room, gift=found, count=count + 1, key=key
                    )
                )
            )
        assert self.balances() == before

    # -- in-app items -----------------------------------------------------------------

    @rule(
        user=st.sampled_from(FANS),
        item_id=st.sampled_from(ITEMS),
        to=st.sampled_from([None, *CREATORS]),
        advance=st.sampled_from([0, HOUR_MS, 10 * DAY_MS]),
        stale=st.booleans(),
    )
    def buy_item(self, user: str, item_id: str, to: str | None, advance: int, stale: bool) -> None:
        """Buy an item under the gifts' money rules (a stale shown price is refused,
        charging nothing; a permanent item is bought once)."""
        self.now += advance
        found = self.engine.catalog.item(item_id)
        assert found is not None
        shown = self.shown.get(item_id, found.coins) if stale else found.coins
        key = self.next_id("item")
        balance = self.run(self.engine.wallet.balance(user))
        limits = self.limits[user]
        day, month = local_periods(self.now, limits.tz)
        total = found.coins
        capped = any(
            spent + total > min(c for c in (platform, mine) if c is not None)
            for platform, mine, spent in (
                (POLICY.daily_spend_cap, limits.daily_cap, self.spent.get((user, day), 0)),
                (POLICY.monthly_spend_cap, limits.monthly_cap, self.spent.get((user, month), 0)),
            )
        )
        room = f"room-{to}" if to else None
        request = ItemRequest(
            buyer=fan(user), item=found, key=key, room_id=room, shown_coins=shown, now=self.now
        )
        before = self.balances()
        try:
            receipt = self.run(self.engine.items.buy(request))
        except StoreError as exc:
            assert self.balances() == before
            if isinstance(exc, PriceChanged):
                assert shown != found.coins
            elif isinstance(exc, Forbidden):
                assert balance.debt > 0 or not limits.gifting_enabled
            elif isinstance(exc, LimitExceeded):
                assert capped
            elif isinstance(exc, Conflict):
                assert (user, item_id) in self.forever
            elif isinstance(exc, InsufficientFunds):
                assert balance.coins < total
            else:
                assert isinstance(exc, RateLimited), exc
            return
        assert shown == found.coins and balance.debt == 0 and limits.gifting_enabled
        assert balance.coins >= total and not capped and (user, item_id) not in self.forever
        assert receipt.balance == balance.coins - total
        share = total * found.creator_share // 100 if to else 0
        assert receipt.diamonds == share and receipt.creator_id == (to if share else "")
        self.spent[(user, day)] = self.spent.get((user, day), 0) + total
        self.spent[(user, month)] = self.spent.get((user, month), 0) + total
        self.items[(user, key)] = (item_id, room, receipt.tx)
        self.unit_price[receipt.tx] = found.coins
        if found.duration_days is None:
            self.forever.add((user, item_id))

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def resend_item(self, data: st.DataObject) -> None:
        user, key = data.draw(st.sampled_from(sorted(self.items)))
        item_id, room, tx = self.items[(user, key)]
        found = self.engine.catalog.item(item_id)
        other = self.engine.catalog.item("name_neon" if item_id != "name_neon" else "pin")
        assert found is not None and other is not None
        request = ItemRequest(buyer=fan(user), item=found, key=key, room_id=room, now=self.now)
        again = self.run(self.engine.items.buy(request))
        assert again.replayed and again.tx == tx
        before = self.balances()
        with pytest.raises(Conflict):
            self.run(
                self.engine.items.buy(
                    ItemRequest(buyer=fan(user), item=other, key=key, room_id=room, now=self.now)
                )
            )
        assert self.balances() == before

    @rule(item_id=st.sampled_from(ITEMS), coins=st.integers(5, 120))
    def change_item_price(self, item_id: str, coins: int) -> None:
        """An admin reprices an item: what was bought keeps its price."""
        found = self.engine.catalog.item(item_id)
        assert found is not None
        catalog = self.run(self.engine.catalogs.update("item", item_id, {"coins": coins}))
        changed = catalog.item(item_id)
        assert changed is not None and changed.coins == coins
        if coins != found.coins:
            self.shown[item_id] = found.coins

    # -- refunds and debt -------------------------------------------------------------

    @precondition(lambda self: self.payments)
    @rule(
        data=st.data(),
        kind=st.sampled_from([accounts.REFUND, accounts.CHARGEBACK]),
        dice=st.integers(0, 2),
    )
    def reverse(self, data: st.DataObject, kind: str, dice: int) -> None:
        if dice:  # rarer than purchases: a reversal locks most accounts
            return
        payment = data.draw(st.sampled_from(sorted(self.payments)))
        receipt = self.run(
            self.engine.wallet.refund(
                accounts.RefundRequest(
                    provider="sandbox", payment_id=payment, kind=kind, now=self.now
                )
            )
        )
        if payment in self.reversals:
            assert receipt.replayed and receipt.tx == self.reversals[payment]
            return
        assert not receipt.replayed
        assert receipt.taken + receipt.debt == receipt.coins
        assert 0 <= receipt.clawed_back <= receipt.debt
        self.reversals[payment] = receipt.tx

    @rule(user=st.sampled_from(FANS), method=st.sampled_from(["paid", "written_off"]))
    def settle_debt(self, user: str, method: str) -> None:
        debt = self.run(self.engine.wallet.balance(user)).debt
        request = accounts.DebtSettlement(
            user_id=user, method=method, key=self.next_id("settle"), by="admin", now=self.now
        )
        if debt == 0:
            with pytest.raises(BadRequest):
                self.run(self.engine.wallet.settle_debt(request))
            return
        receipt = self.run(self.engine.wallet.settle_debt(request))
        assert receipt.coins == debt
        assert self.run(self.engine.wallet.balance(user)).debt == 0

    # -- limits -----------------------------------------------------------------------

    @rule(
        user=st.sampled_from(FANS),
        daily=st.sampled_from([None, 0, 40, 300]),
        gifting=st.booleans(),
        purchases=st.booleans(),
        tz=st.sampled_from(["UTC", "Asia/Tokyo"]),
        pin=st.sampled_from([None, PIN, "0000"]),
        set_pin=st.booleans(),
    )
    def change_limits(
        self,
        user: str,
        daily: int | None,
        gifting: bool,
        purchases: bool,
        tz: str,
        pin: str | None,
        set_pin: bool,
    ) -> None:
        old = self.limits[user]
        new = accounts.UserLimits(
            daily_cap=daily,
            monthly_cap=old.monthly_cap,
            purchases_enabled=purchases,
            gifting_enabled=gifting,
            tz=tz,
        )
        new_pin = PIN if set_pin else None
        needs = self.pins[user] and (relaxes(old, new) or new_pin is not None)
        request = accounts.LimitsRequest(user_id=user, limits=new, pin=pin, new_pin=new_pin)
        if needs and pin != PIN:
            with pytest.raises(Forbidden):
                self.run(self.engine.wallet.set_limits(request))
            return
        account = self.run(self.engine.wallet.set_limits(request))
        assert account.limits == new
        self.limits[user] = new
        self.pins[user] = self.pins[user] or set_pin

    # -- withdrawals ------------------------------------------------------------------

    @rule(
        to=st.sampled_from(CREATORS),
        diamonds=st.sampled_from([3, 10, 25, 60, 500]),
        advance=st.sampled_from([0, 2 * HOUR_MS]),
    )
    def withdraw(self, to: str, diamonds: int, advance: int) -> None:
        self.now += advance
        earnings = self.run(self.engine.wallet.earnings(to, now=self.now))
        before = self.balances()
        try:
            withdrawal = self.run(
                self.engine.wallet.reserve_withdrawal(
                    accounts.WithdrawalRequest(
                        user_id=to, diamonds=diamonds, key=self.next_id("wd"), now=self.now
                    )
                )
            )
        except (BadRequest, LimitExceeded, InsufficientFunds) as exc:
            assert self.balances() == before
            if isinstance(exc, BadRequest):
                assert diamonds < POLICY.withdrawal_min
            if isinstance(exc, InsufficientFunds):
                assert diamonds > earnings.withdrawable
            return
        assert POLICY.withdrawal_min <= diamonds <= earnings.withdrawable
        self.withdrawals[withdrawal.id] = "pending"

    @precondition(lambda self: self.withdrawals)
    @rule(data=st.data(), status=st.sampled_from(["paid", "failed"]))
    def settle_withdrawal(self, data: st.DataObject, status: str) -> None:
        withdrawal_id = data.draw(st.sampled_from(sorted(self.withdrawals)))
        current = self.withdrawals[withdrawal_id]
        request = accounts.WithdrawalSettlement(
            withdrawal_id=withdrawal_id, status=status, now=self.now
        )
        if current not in ("pending", status):
            with pytest.raises(Conflict):
                self.run(self.engine.wallet.settle_withdrawal(request))
            return
        settled = self.run(self.engine.wallet.settle_withdrawal(request))
        assert settled.status == status and settled.replayed == (current == status)
        self.withdrawals[withdrawal_id] = status

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def ledger_invariants(self) -> None:
        report = self.run(self.engine.ledger.audit())
        # 1. conservation, 5. hot balances equal the ledger, 2. no negative coins
        assert report.ok, report.public()
        assert all(v == 0 for v in report.totals.values())
        assert report.unbalanced == [] and report.mismatches == [] and report.negative == []

        history: dict[str, TransactionRecord] = {}
        for user in (*FANS, *CREATORS):
            for record in self.run(self.engine.ledger.transactions(user, limit=100_000)):
                history[record.id] = record
        # 4. append-only: what was there is still there, unchanged
        for tx_id, record in self.seen.items():
            assert history.get(tx_id) == record, f"transaction {tx_id} changed or vanished"
        self.seen = history
        # 3. one effect per key
        purchases: dict[str, int] = {}
        reversals: dict[str, int] = {}
        gifts: dict[tuple[str, str], int] = {}
        items: dict[tuple[str, str], int] = {}
        for record in history.values():
            if record.kind == "purchase":
                pid = record.meta["payment_id"]
                purchases[pid] = purchases.get(pid, 0) + 1
            elif record.kind in (accounts.REFUND, accounts.CHARGEBACK):
                pid = record.meta["payment_id"]
                reversals[pid] = reversals.get(pid, 0) + 1
            elif record.kind == "gift":
                gift_key = (record.meta["sender_id"], record.meta["key"])
                gifts[gift_key] = gifts.get(gift_key, 0) + 1
                # the price a gift was sent at, whatever the catalog says now
                assert record.meta["gift_coins"] == self.unit_price[record.id]
            elif record.kind == "item":
                item_key = (record.meta["buyer_id"], record.meta["key"])
                items[item_key] = items.get(item_key, 0) + 1
                assert record.meta["item_coins"] == self.unit_price[record.id]
        assert purchases == dict.fromkeys(self.payments, 1)
        assert reversals == dict.fromkeys(self.reversals, 1)
        assert gifts == dict.fromkeys(self.gifts, 1)
        assert items == dict.fromkeys(self.items, 1)
        # 5. (again, from the users' side) every user account is the sum of its postings
        derived: dict[tuple[str, str], int] = {}
        for record in history.values():
            for p in record.postings:
                if p.account.startswith("user:"):
                    derived[(p.account, p.asset)] = derived.get((p.account, p.asset), 0) + p.amount
        for user, balance in self.balances().items():
            assert balance.coins == derived.get((coins_account(user), COIN), 0)
            assert balance.diamonds == derived.get((diamonds_account(user), DIAMOND), 0)
            assert -balance.debt == derived.get((accounts.debt_account(user), COIN), 0)
            # 2. coins never below zero; debt recorded on its own, never above zero
            assert balance.coins >= 0 and balance.diamonds >= 0 and balance.debt >= 0
            pending = derived.get((accounts.withdrawing_account(user), DIAMOND), 0)
            assert pending >= 0


_SLOWER: Final = {"scaled": 4, "cluster": 20}
"""Fewer examples on the engines whose every audit (an invariant of each step)
reads servers: a cluster's reads every slot's outbox and balances."""


@pytest.mark.parametrize("examples", [40])
def test_money_invariants_hold_under_random_operations(
    engine_name: str, engine_services: Any, examples: int
) -> None:
    MoneyMachine.engine_name = engine_name
    MoneyMachine.services = engine_services
    run_state_machine_as_test(
        MoneyMachine,
        settings=settings(
            max_examples=examples // _SLOWER.get(engine_name, 1),
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )

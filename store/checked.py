"""Request checks run once, in front of either engine.

What a request must look like (ids and keys of a sane length, counts and
amounts of at least one, a known kind or status, a cap the platform allows) does
not depend on where the money is kept. ``open_engine`` puts these wrappers in
front of the engine's roles, so both engines refuse a malformed request with the
same ``BadRequest`` before any database is touched, and the engines only check
what needs their stored state (funds, caps spent, locks, idempotency).

A method without checks is passed straight through (``__getattr__``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from store.domain import accounts, models, subscriptions
from store.domain.checks import (
    check_choice,
    check_id,
    check_key,
    check_limit,
    check_positive,
    check_text,
)
from store.domain.items import ITEM_KINDS, ItemReceipt, ItemRequest, Owned
from store.domain.rules import check_limits, check_pin_format
from store.errors import BadRequest
from store.roles import (
    GiftShower,
    Items,
    Ledger,
    OverlayPresence,
    RoomActivity,
    Rooms,
    Subscriptions,
    Wallet,
)

SUPPORTER_PERIODS: Final = ("day", "all")


class _Wrapper:
    """Passes every attribute it doesn't define to the wrapped role.

    A method passed through is kept on the wrapper after its first use, so calls
    on the hot path (``publish_gift``, ``throttle``...) find it directly instead of
    failing the normal lookup first on every gift. Plain values are always read
    from the role, so they never go stale."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if callable(value):
            setattr(self, name, value)
        return value


class CheckedWallet(_Wrapper):
    """The ``Wallet`` role, its requests checked first."""

    inner: Wallet

    def __init__(self, inner: Wallet, *, policy: accounts.MoneyPolicy) -> None:
        super().__init__(inner)
        self.policy = policy
        self._shower = inner if isinstance(inner, GiftShower) else None
        """The wrapped wallet as a ``GiftShower`` (a protocol check is slow: once)."""

    async def purchase(self, request: models.PurchaseRequest) -> models.PurchaseReceipt:
        check_id(request.user.id, "user id")
        check_key(request.payment_id, "payment id")
        check_id(request.provider, "payment provider")
        package = request.package
        if package.coins < 0 or package.bonus < 0 or package.coins + package.bonus < 1:
            raise BadRequest("a coin package must credit at least one coin")
        if any(grant.coins < 0 for grant in request.promotions):
            raise BadRequest("a promotion cannot take coins away")
        return await self.inner.purchase(request)

    async def send_gift(self, request: models.GiftRequest) -> models.GiftReceipt:
        self._check_gift(request)
        return await self.inner.send_gift(request)

    @staticmethod
    def _check_gift(request: models.GiftRequest) -> None:
        check_id(request.sender.id, "sender id")
        check_id(request.room_id, "room id")
        check_key(request.key, "request id")
        check_positive(request.count, "count must be at least 1")
        check_positive(request.gift.coins, "a gift must cost at least one coin")

    async def send_gift_shown(
        self,
        request: models.GiftRequest,
        *,
        sender: Mapping[str, Any],
        window_ms: int,
        board_interval_ms: int = 0,
        board_limit: int = 0,
    ) -> models.ShownGift:
        """``GiftShower`` when the wrapped wallet is one; else ``send_gift`` and no
        event (the caller publishes it)."""
        if self._shower is None:
            return models.ShownGift(await self.send_gift(request), None)
        self._check_gift(request)
        return await self._shower.send_gift_shown(
            request,
            sender=sender,
            window_ms=window_ms,
            board_interval_ms=board_interval_ms,
            board_limit=board_limit,
        )

    async def account(self, user_id: str) -> accounts.Account:
        check_id(user_id, "user id")
        return await self.inner.account(user_id)

    async def set_limits(self, request: accounts.LimitsRequest) -> accounts.Account:
        check_id(request.user_id, "user id")
        check_limits(
            request.limits,
            policy_daily=self.policy.daily_spend_cap,
            policy_monthly=self.policy.monthly_spend_cap,
        )
        if request.new_pin:
            check_pin_format(request.new_pin)
        return await self.inner.set_limits(request)

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> accounts.Account:
        check_id(user_id, "user id")
        return await self.inner.set_verified(user_id, verified=verified, by=by)

    async def refund(self, request: accounts.RefundRequest) -> accounts.RefundReceipt:
        check_id(request.provider, "payment provider")
        check_key(request.payment_id, "payment id")
        check_choice(request.kind, accounts.REVERSAL_KINDS, "kind")
        check_text(request.reason, "reason")
        return await self.inner.refund(request)

    async def settle_debt(self, request: accounts.DebtSettlement) -> accounts.DebtReceipt:
        check_id(request.user_id, "user id")
        check_key(request.key, "idempotency key")
        check_choice(request.method, accounts.SETTLEMENT_METHODS, "method")
        check_text(request.note, "note")
        return await self.inner.settle_debt(request)

    async def reserve_withdrawal(self, request: accounts.WithdrawalRequest) -> accounts.Withdrawal:
        check_id(request.user_id, "user id")
        check_key(request.key, "idempotency key")
        check_id(request.method, "payout method")
        check_positive(request.diamonds, "diamonds must be at least 1")
        return await self.inner.reserve_withdrawal(request)

    async def settle_withdrawal(
        self, request: accounts.WithdrawalSettlement
    ) -> accounts.Withdrawal:
        check_key(request.withdrawal_id, "withdrawal id")
        check_choice(request.status, accounts.WITHDRAWAL_OUTCOMES, "status")
        check_text(request.reference, "reference")
        check_text(request.reason, "reason")
        return await self.inner.settle_withdrawal(request)

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[accounts.Withdrawal]:
        check_limit(limit)
        return await self.inner.withdrawals(user_id, before=before, limit=limit)

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        check_id(user_id, "user id")
        check_id(action, "action")
        if per_hour < 1 or burst < 1:
            raise BadRequest("per_hour and burst must be at least 1")
        await self.inner.rate_limit(user_id, action, per_hour=per_hour, burst=burst, now=now)

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        check_id(scope, "scope")
        check_key(key, "key")
        check_positive(ttl_seconds, "ttl_seconds must be at least 1")
        return await self.inner.claim_once(scope, key, ttl_seconds=ttl_seconds)


class CheckedItems(_Wrapper):
    """The ``Items`` role, its requests checked first."""

    inner: Items

    async def buy(self, request: ItemRequest) -> ItemReceipt:
        check_id(request.buyer.id, "buyer id")
        check_key(request.key, "Idempotency-Key")
        if request.room_id is not None:
            check_id(request.room_id, "room id")
        check_positive(request.item.coins, "an item must cost at least one coin")
        return await self.inner.buy(request)

    async def equip(self, user_id: str, item_id: str, *, now: int | None = None) -> list[Owned]:
        check_id(user_id, "user id")
        check_id(item_id, "item id")
        return await self.inner.equip(user_id, item_id, now=now)

    async def unequip(self, user_id: str, kind: str, *, now: int | None = None) -> list[Owned]:
        check_id(user_id, "user id")
        check_choice(kind, ITEM_KINDS, "kind")
        return await self.inner.unequip(user_id, kind, now=now)


class CheckedRooms(_Wrapper):
    """The ``Rooms`` role, its requests checked first."""

    inner: Rooms

    async def go_live(self, *, room_id: str, creator: models.Profile, title: str) -> models.Room:
        check_id(room_id, "room id")
        check_id(creator.id, "creator id")
        return await self.inner.go_live(room_id=room_id, creator=creator, title=title)

    async def end(self, room_id: str, *, by: models.Profile) -> models.Room:
        check_id(room_id, "room id")
        return await self.inner.end(room_id, by=by)

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[models.LeaderEntry]:
        check_limit(limit)
        return await self.inner.leaderboard(room_id, limit=limit)


class CheckedLedger(_Wrapper):
    """The ``Ledger`` role, its requests checked first."""

    inner: Ledger

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[models.TransactionRecord]:
        check_limit(limit)
        return await self.inner.transactions(user_id, before=before, limit=limit)


class CheckedActivity(_Wrapper):
    """The ``RoomActivity`` role, its requests checked first."""

    inner: RoomActivity

    async def add_likes(
        self, room_id: str, *, stream_id: int, likes: Sequence[tuple[models.Event, int]]
    ) -> list[int]:
        if any(count < 1 for _, count in likes):
            raise BadRequest("like counts must be positive")
        return await self.inner.add_likes(room_id, stream_id=stream_id, likes=likes)

    async def report_viewers(
        self, room_id: str, *, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        if count < 0:
            raise BadRequest("a viewer count cannot be negative")
        return await self.inner.report_viewers(
            room_id, node=node, count=count, ttl_ms=ttl_ms, interval_ms=interval_ms
        )

    async def set_goal(self, room_id: str, *, target: int, title: str) -> models.Goal:
        check_positive(target, "a goal's target must be at least 1 diamond")
        return await self.inner.set_goal(room_id, target=target, title=title)

    async def restrict(self, room_id: str, restriction: models.Restriction) -> None:
        _check_kind(restriction.kind)
        await self.inner.restrict(room_id, restriction)

    async def lift(self, room_id: str, user_id: str, kind: str) -> bool:
        _check_kind(kind)
        return await self.inner.lift(room_id, user_id, kind)

    async def supporters(
        self, creator_id: str, *, period: str, limit: int = 10
    ) -> list[models.LeaderEntry]:
        check_choice(period, SUPPORTER_PERIODS, "period")
        check_limit(limit)
        return await self.inner.supporters(creator_id, period=period, limit=limit)


def _check_kind(kind: str) -> None:
    if kind not in models.RESTRICTION_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(models.RESTRICTION_KINDS)}")


MAX_CALLBACK_CHARS: Final = 2_048
"""A subscription's callback URL."""


class CheckedSubscriptions(_Wrapper):
    """The ``Subscriptions`` role, its requests checked first."""

    inner: Subscriptions

    async def create(self, subscription: subscriptions.Subscription) -> None:
        check_id(subscription.id, "subscription id")
        check_id(subscription.owner_id, "owner id")
        check_id(subscription.room_id, "room id")
        if not subscription.types or len(set(subscription.types)) != len(subscription.types):
            raise BadRequest("types must list distinct event types")
        for kind in subscription.types:
            check_choice(kind, subscriptions.EVENT_TYPES, "each type")
        if not subscription.callback or len(subscription.callback) > MAX_CALLBACK_CHARS:
            raise BadRequest(f"callback must be 1..{MAX_CALLBACK_CHARS} characters")
        check_choice(subscription.status, subscriptions.STATUSES, "status")
        await self.inner.create(subscription)

    async def set_status(
        self, subscription_id: str, status: str, *, reason: str = ""
    ) -> subscriptions.Subscription | None:
        check_choice(status, subscriptions.STATUSES, "status")
        check_text(reason, "reason")
        return await self.inner.set_status(subscription_id, status, reason=reason)

    async def set_secret(
        self, subscription_id: str, secret: str
    ) -> subscriptions.Subscription | None:
        check_key(secret, "secret")
        return await self.inner.set_secret(subscription_id, secret)

    async def claim(
        self, *, node: str, now: int, lease_ms: int, limit: int
    ) -> list[tuple[subscriptions.Subscription, subscriptions.Delivery]]:
        check_id(node, "node")
        check_positive(lease_ms, "lease_ms must be at least 1")
        check_limit(limit)
        return await self.inner.claim(node=node, now=now, lease_ms=lease_ms, limit=limit)

    async def add_app(self, app: subscriptions.App) -> None:
        check_id(app.client_id, "client id")
        check_id(app.owner_id, "owner id")
        check_text(app.name, "name")
        await self.inner.add_app(app)


class CheckedPresence(_Wrapper):
    """The ``OverlayPresence`` role, its requests checked first."""

    inner: OverlayPresence

    async def report(
        self, room_id: str, *, node: str, overlays: Sequence[dict[str, Any]], ttl_ms: int
    ) -> None:
        check_id(room_id, "room id")
        check_id(node, "node")
        check_positive(ttl_ms, "ttl_ms must be at least 1")
        await self.inner.report(room_id, node=node, overlays=overlays, ttl_ms=ttl_ms)

"""The scaled engine's ``Wallet``: one Lua script per operation in Redis.

Every operation that moves money or checks a rule is one script (see
``store/scaled/lua``), so it is atomic on the Redis primary: every check before
its first write, every key in KEYS (``store.scaled.keys``), the ledger outbox
entry appended in the same script. The outbox is drained into PostgreSQL by the
ledger worker (``store.scaled.ledger``). Calls are pipelined by
``store.scaled.client.CommandBatcher``. The semantics, check orders and
refusals are those of ``store.roles.Wallet`` and ``store.domain.refusals``,
shared with the embedded engine (the conformance suite runs both).

This class only routes: each concept lives in its own module (``gifts``,
``purchases``, ``refunds``, ``withdrawals``, ``accounts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from store.domain import accounts as money
from store.domain import models
from store.ids import now_ms
from store.roles import Ledger
from store.scaled import accounts, purchases, refunds, withdrawals
from store.scaled.client import CommandBatcher
from store.scaled.gifts import GiftSender
from store.scaled.keys import SINGLE, KeyLayout

DEFAULT_GIFT_KEY_TTL: Final = 7 * 24 * 3600
"""A client re-sends a gift's request id within a reconnect; a week is plenty and
keeps Redis memory bounded at any gift rate."""


class RedisWallet:
    """``Wallet`` over Redis (see the module docstring)."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        ledger: Ledger,
        creator_share_percent: int = 50,
        gift_key_ttl: int = DEFAULT_GIFT_KEY_TTL,
        policy: money.MoneyPolicy | None = None,
        layout: KeyLayout = SINGLE,
        history_size: int | None = None,
        history_seconds: float = 120.0,
    ) -> None:
        """``history_size`` (and ``history_seconds``): the rooms' history as the
        broker keeps it; given, on a single Redis a gift's event goes out from the
        gift's own script (``send_gift_shown``)."""
        if not 0 <= creator_share_percent <= 100:
            raise ValueError("creator_share_percent must be within 0..100")
        if gift_key_ttl < 0:
            raise ValueError("gift_key_ttl must be >= 0 (0: never expire)")
        self._batcher = batcher
        self._layout = layout
        """Where the system and payment keys are (a single Redis or a cluster)."""
        self._ledger = ledger
        """Where a refund finds the gifts the refunded coins paid for."""
        self._policy = policy or money.MoneyPolicy()
        self._gifts = GiftSender(
            batcher,
            share_percent=creator_share_percent,
            key_ttl=gift_key_ttl,
            policy=self._policy,
            layout=layout,
            history=(
                None
                if history_size is None
                else (history_size, max(int(history_seconds * 2), 60))  # as the broker's
            ),
        )

    # -- coins in, coins out ---------------------------------------------------

    async def purchase(self, request: models.PurchaseRequest) -> models.PurchaseReceipt:
        return await purchases.purchase(self._batcher, request, layout=self._layout)

    async def send_gift(self, request: models.GiftRequest) -> models.GiftReceipt:
        return await self._gifts.send(request)

    async def send_gift_shown(
        self,
        request: models.GiftRequest,
        *,
        sender: Mapping[str, Any],
        window_ms: int,
        board_interval_ms: int = 0,
        board_limit: int = 0,
    ) -> models.ShownGift:
        return await self._gifts.send_shown(
            request,
            sender=sender,
            window_ms=window_ms,
            board=(board_interval_ms, board_limit) if board_interval_ms > 0 else None,
        )

    async def refund(self, request: money.RefundRequest) -> money.RefundReceipt:
        return await refunds.refund(self._batcher, self._ledger, request, layout=self._layout)

    async def settle_debt(self, request: money.DebtSettlement) -> money.DebtReceipt:
        return await refunds.settle_debt(self._batcher, request, layout=self._layout)

    # -- accounts ----------------------------------------------------------------

    async def balance(self, user_id: str) -> models.Balance:
        return await accounts.balance(self._batcher, user_id)

    async def account(self, user_id: str) -> money.Account:
        return await accounts.account(self._batcher, user_id)

    async def set_limits(self, request: money.LimitsRequest) -> money.Account:
        return await accounts.set_limits(self._batcher, self._policy, request)

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> money.Account:
        return await accounts.set_verified(self._batcher, user_id, verified=verified, by=by)

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        await accounts.rate_limit(
            self._batcher,
            user_id,
            action,
            per_hour=per_hour,
            burst=burst,
            now=now if now is not None else now_ms(),
        )

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        return await accounts.claim_once(self._batcher, scope, key, ttl_seconds=ttl_seconds)

    # -- withdrawals and earnings --------------------------------------------------

    async def reserve_withdrawal(self, request: money.WithdrawalRequest) -> money.Withdrawal:
        return await withdrawals.reserve(self._batcher, self._policy, request, layout=self._layout)

    async def settle_withdrawal(self, request: money.WithdrawalSettlement) -> money.Withdrawal:
        return await withdrawals.settle(self._batcher, request, layout=self._layout)

    async def withdrawal(self, withdrawal_id: str) -> money.Withdrawal | None:
        return await withdrawals.withdrawal(self._batcher, withdrawal_id, layout=self._layout)

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[money.Withdrawal]:
        return await withdrawals.withdrawals(self._batcher, user_id, before=before, limit=limit)

    async def earnings(self, user_id: str, *, now: int | None = None) -> money.Earnings:
        return await withdrawals.earnings(self._batcher, self._policy, user_id, now=now)

"""The creator's side of money: earnings, and withdrawing diamonds as cash
through a payout provider."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from live.errors import LiveError
from live.payments import PayoutProvider
from live.settings import Settings
from store.domain.accounts import (
    FAILED,
    PAID,
    Earnings,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.models import Profile
from store.roles import Engine

log = logging.getLogger("live.money")


@dataclass(kw_only=True)
class Payouts:
    """Earnings and withdrawals."""

    settings: Settings
    engine: Engine
    providers: dict[str, PayoutProvider]
    """The payout providers enabled on this node, by name."""

    async def earnings(self, user_id: str, *, now: int) -> Earnings:
        return await self.engine.wallet.earnings(user_id, now=now)

    async def withdrawals(
        self, user_id: str, *, before: str | None, limit: int
    ) -> list[Withdrawal]:
        return await self.engine.wallet.withdrawals(user_id, before=before, limit=limit)

    async def withdraw(
        self, *, user: Profile, diamonds: int, key: str, provider: str, destination: str
    ) -> Withdrawal:
        """Reserve the diamonds (pending), ask the provider to pay, record the outcome
        (paid, or failed and the diamonds return); a provider answering ``pending``
        leaves it to an admin (``POST /v1/admin/withdrawals/{id}``)."""
        settings, wallet = self.settings, self.engine.wallet
        payout = self.providers.get(provider)
        if payout is None:
            raise LiveError("bad_request", f"payout provider {provider!r} is not enabled")
        if settings.withdrawal_rate_per_hour:
            await wallet.rate_limit(
                user.id,
                "withdrawals",
                per_hour=settings.withdrawal_rate_per_hour,
                burst=settings.withdrawal_burst,
            )
        reserved = await wallet.reserve_withdrawal(
            WithdrawalRequest(user_id=user.id, diamonds=diamonds, key=key, method=provider)
        )
        if reserved.replayed or reserved.status != "pending":
            return reserved  # a retried request: the first one paid (or is paying) it
        try:
            result = await payout.pay(reserved, destination=destination)
        except Exception:
            # the outcome is unknown: it stays pending for an admin to resolve
            log.exception("payout %s of withdrawal %s failed", provider, reserved.id)
            return reserved
        if result.status not in (PAID, FAILED):
            return reserved
        return await self.resolve(
            withdrawal_id=reserved.id,
            status=result.status,
            reference=result.reference,
            reason=result.reason,
        )

    async def resolve(
        self, *, withdrawal_id: str, status: str, reference: str, reason: str
    ) -> Withdrawal:
        """Settle a pending withdrawal: ``paid`` or ``failed`` (the diamonds return)."""
        return await self.engine.wallet.settle_withdrawal(
            WithdrawalSettlement(
                withdrawal_id=withdrawal_id, status=status, reference=reference, reason=reason
            )
        )

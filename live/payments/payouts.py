"""Payout providers: how money goes out when a creator withdraws.

``SandboxPayoutProvider`` is the clearly named fake for development and tests: it
moves no real money and is enabled by ``LIVE_SANDBOX_PAYOUTS``. A real provider
implements the same protocol.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from store.domain.accounts import Withdrawal

SANDBOX_PAYOUT_FAIL = "sandbox_fail"
"""Payout destination that makes the sandbox payout fail (the diamonds return)."""
SANDBOX_PAYOUT_HOLD = "sandbox_hold"
"""Payout destination the sandbox leaves pending (an admin resolves it)."""


@dataclass(frozen=True, slots=True)
class PayoutResult:
    status: str
    """``paid``, ``failed`` or ``pending`` (resolved later by an admin or the provider)."""
    reference: str = ""
    reason: str = ""


class PayoutProvider(Protocol):
    name: str

    async def pay(self, withdrawal: Withdrawal, *, destination: str) -> PayoutResult:
        """Send the withdrawal's cash. Called once per withdrawal id; a provider must
        itself be idempotent on the id if it may be called again after a crash."""
        ...


class SandboxPayoutProvider:
    """Fake bank transfers: paid at once, unless the destination says otherwise."""

    name = "sandbox"

    async def pay(self, withdrawal: Withdrawal, *, destination: str) -> PayoutResult:
        reference = "sbx_po_" + hashlib.sha256(withdrawal.id.encode()).hexdigest()[:24]
        if destination == SANDBOX_PAYOUT_FAIL:
            return PayoutResult("failed", reference, "the sandbox bank refused the transfer")
        if destination == SANDBOX_PAYOUT_HOLD:
            return PayoutResult("pending", reference)
        return PayoutResult("paid", reference)

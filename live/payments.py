"""Payment providers: how money comes in before coins are credited.

``SandboxPaymentProvider`` is the clearly named fake for development and tests:
it moves no real money and is enabled by ``LIVE_SANDBOX_PAYMENTS`` (on in dev,
off by default in production). A real provider implements the same protocol.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from store.models import CoinPackage, Profile

SANDBOX_DECLINE = "sandbox_decline"
"""Payment method that makes the sandbox decline, to test the failure path."""


@dataclass(frozen=True, slots=True)
class PaymentResult:
    provider: str
    payment_id: str
    approved: bool
    reason: str = ""


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, *, user: Profile, package: CoinPackage, idempotency_key: str, method: str
    ) -> PaymentResult:
        """Charge the package's price. The same ``(user, idempotency_key)`` must map
        to the same payment id, so a retried request can never be credited twice."""
        ...


class SandboxPaymentProvider:
    name = "sandbox"

    async def charge(
        self, *, user: Profile, package: CoinPackage, idempotency_key: str, method: str
    ) -> PaymentResult:
        digest = hashlib.sha256(f"{user.id}\x1f{idempotency_key}".encode()).hexdigest()
        payment_id = f"sbx_{digest[:32]}"
        if method == SANDBOX_DECLINE:
            return PaymentResult(self.name, payment_id, approved=False, reason="card declined")
        return PaymentResult(self.name, payment_id, approved=True)

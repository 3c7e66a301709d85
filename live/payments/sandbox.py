"""Payment and payout providers: how money comes in before coins are credited, and
goes out when a creator withdraws.

``SandboxPaymentProvider`` and ``SandboxPayoutProvider`` are the clearly named
fakes for development and tests: they move no real money and are enabled by
``LIVE_SANDBOX_PAYMENTS`` / ``LIVE_SANDBOX_PAYOUTS``. A real provider implements
the same protocols.

Webhooks (``POST /v1/webhooks/payments/{provider}``) are signed like this for the
sandbox, and a real provider's adapter turns its own scheme into the same
``WebhookEvent``:

    Live-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A delivery is refused when the header is missing or malformed, no ``v1`` matches,
``t`` is further than the tolerance from now (stale), or the same signature was
seen before (a replay). Each delivery, retries included, is signed anew.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from store.domain.accounts import Withdrawal
from store.domain.models import CoinPackage, Profile

SANDBOX_DECLINE = "sandbox_decline"
"""Payment method that makes the sandbox decline, to test the failure path."""
SANDBOX_PAYOUT_FAIL = "sandbox_fail"
"""Payout destination that makes the sandbox payout fail (the diamonds return)."""
SANDBOX_PAYOUT_HOLD = "sandbox_hold"
"""Payout destination the sandbox leaves pending (an admin resolves it)."""

SIGNATURE_HEADER: Final = "live-signature"
PAYMENT_SUCCEEDED: Final = "payment.succeeded"
PAYMENT_REFUNDED: Final = "payment.refunded"
PAYMENT_CHARGEBACK: Final = "payment.chargeback"
MAX_WEBHOOK_BYTES: Final = 65_536


@dataclass(frozen=True, slots=True)
class PaymentResult:
    provider: str
    payment_id: str
    approved: bool
    reason: str = ""


class WebhookError(Exception):
    """A webhook delivery that is refused: ``code`` is ``unauthorized`` (not proven
    to come from the provider) or ``bad_request`` (signed but unusable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One provider notification, verified."""

    id: str
    type: str
    created: int
    """When the provider created it, seconds since the epoch."""
    signature: str
    """The delivery's signature: the same one twice is a replay."""
    payment_id: str = ""
    amount_minor: int | None = None
    currency: str = ""
    user: Profile | None = None
    """The buyer, from the metadata this server attached to the payment."""
    package_id: str = ""
    reason: str = ""


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, *, user: Profile, package: CoinPackage, idempotency_key: str, method: str
    ) -> PaymentResult:
        """Charge the package's price. The same ``(user, idempotency_key)`` must map
        to the same payment id, so a retried request can never be credited twice."""
        ...

    def verify_webhook(
        self, *, secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: int
    ) -> WebhookEvent:
        """The delivery's event, or ``WebhookError``."""
        ...


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Live-Signature`` header value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str | None, body: bytes, *, now: float, tolerance: int
) -> int:
    """The signed timestamp of a genuine, fresh delivery, or ``WebhookError``."""
    if not header:
        raise WebhookError("unauthorized", "missing Live-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookError("unauthorized", "malformed Live-Signature header")
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookError("unauthorized", "wrong signature")
    if abs(now - timestamp) > tolerance:
        raise WebhookError("unauthorized", "stale timestamp: the delivery is too old or too new")
    return timestamp


def _str(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or (required and not value) or len(value) > 200:
        raise WebhookError("bad_request", f"{name} must be a string of 1-200 characters")
    return value


def parse_event(body: bytes, *, signature: str) -> WebhookEvent:
    """The event of a sandbox-format body::

    {"id": "evt_…", "type": "payment.succeeded", "created": 1767225600,
     "data": {"payment_id": "…", "amount_minor": 999, "currency": "USD",
              "reason": "…", "metadata": {"user_id": "…", "username": "…",
              "adult": true, "package": "us_700"}}}
    """
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookError("bad_request", "webhook body too large")
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookError("bad_request", "webhook body must be a JSON object") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise WebhookError("bad_request", "webhook body must be an object with data")
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise WebhookError("bad_request", "created must be an integer")
    data: dict[str, Any] = event["data"]
    kind = _str(event, "type")
    result = WebhookEvent(
        id=_str(event, "id"),
        type=kind,
        created=created,
        signature=signature,
        payment_id=_str(data, "payment_id", required=kind.startswith("payment.")),
        reason=_str(data, "reason", required=False),
    )
    if kind != PAYMENT_SUCCEEDED:
        return result
    amount = data.get("amount_minor")
    metadata = data.get("metadata")
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(metadata, dict):
        raise WebhookError("bad_request", "a payment needs amount_minor and metadata")
    adult = metadata.get("adult")
    if not isinstance(adult, bool):
        raise WebhookError("bad_request", "metadata.adult must be a boolean")
    user_id = _str(metadata, "user_id")
    user = Profile(
        id=user_id, username=_str(metadata, "username", required=False) or user_id, adult=adult
    )
    return WebhookEvent(
        id=result.id,
        type=kind,
        created=created,
        signature=signature,
        payment_id=result.payment_id,
        amount_minor=amount,
        currency=_str(data, "currency"),
        user=user,
        package_id=_str(metadata, "package"),
        reason=result.reason,
    )


class SandboxPaymentProvider:
    """Fake card payments: approved unless the method is ``sandbox_decline``."""

    name = "sandbox"

    async def charge(
        self, *, user: Profile, package: CoinPackage, idempotency_key: str, method: str
    ) -> PaymentResult:
        digest = hashlib.sha256(f"{user.id}\x1f{idempotency_key}".encode()).hexdigest()
        payment_id = f"sbx_{digest[:32]}"
        if method == SANDBOX_DECLINE:
            return PaymentResult(self.name, payment_id, approved=False, reason="card declined")
        return PaymentResult(self.name, payment_id, approved=True)

    def verify_webhook(
        self, *, secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: int
    ) -> WebhookEvent:
        header = headers.get(SIGNATURE_HEADER)
        verify_signature(secret, header, body, now=now, tolerance=tolerance)
        return parse_event(body, signature=header or "")


def sandbox_event(
    kind: str,
    *,
    payment_id: str,
    event_id: str,
    created: int | None = None,
    package: CoinPackage | None = None,
    user: Profile | None = None,
    reason: str = "",
) -> bytes:
    """A sandbox webhook body (for development tools and tests)."""
    data: dict[str, Any] = {"payment_id": payment_id, "reason": reason}
    if package is not None and user is not None:
        data.update(
            amount_minor=package.price_minor,
            currency=package.currency,
            metadata={
                "user_id": user.id,
                "username": user.username,
                "adult": user.adult,
                "package": package.id,
            },
        )
    created = int(time.time()) if created is None else created
    return orjson.dumps({"id": event_id, "type": kind, "created": created, "data": data})


# --------------------------------------------------------------------------- #
# Payouts
# --------------------------------------------------------------------------- #


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

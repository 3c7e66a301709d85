"""The sandbox payment provider: fake card payments for development, the demo and
tests. It moves no real money and is enabled by ``LIVE_SANDBOX_PAYMENTS``.

Its webhooks (``POST /v1/webhooks/payments/sandbox``) are signed like this:

    Live-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A delivery is refused when the header is missing or malformed, no ``v1`` matches,
``t`` is further than the tolerance from now (stale), or the same signature was
seen before (a replay). Each delivery, retries included, is signed anew.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from live.payments.base import (
    DECLINED,
    EFFECTS,
    PAYMENT_SUCCEEDED,
    PaymentOrder,
    PaymentResult,
    WebhookError,
    WebhookEvent,
    webhook_json,
)
from store.domain.models import CoinPackage, Profile

SANDBOX_DECLINE = "sandbox_decline"
"""Payment method that makes the sandbox decline, to test the failure path."""
SIGNATURE_HEADER: Final = "live-signature"


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
    event = webhook_json(body)
    if not isinstance(event.get("data"), dict):
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
        effect=kind if kind in EFFECTS else "",
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
    return dataclasses.replace(
        result,
        amount_minor=amount,
        currency=_str(data, "currency"),
        user=user,
        package_id=_str(metadata, "package"),
    )


class SandboxPaymentProvider:
    """Fake card payments: approved unless the method is ``sandbox_decline``.
    Webhooks are on when a ``webhook_secret`` is given."""

    name = "sandbox"

    def __init__(self, *, webhook_secret: str | None = None, tolerance: int = 300) -> None:
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance

    async def charge(self, order: PaymentOrder) -> PaymentResult:
        digest = hashlib.sha256(f"{order.user.id}\x1f{order.idempotency_key}".encode())
        payment_id = f"sbx_{digest.hexdigest()[:32]}"
        if order.method == SANDBOX_DECLINE:
            return PaymentResult(self.name, payment_id, status=DECLINED, reason="card declined")
        return PaymentResult(self.name, payment_id)

    async def verify_webhook(
        self, *, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookEvent:
        if self.webhook_secret is None:
            raise WebhookError("not_found", "no webhooks for payment provider 'sandbox'")
        header = headers.get(SIGNATURE_HEADER)
        verify_signature(self.webhook_secret, header, body, now=now, tolerance=self.tolerance)
        return parse_event(body, signature=header or "")

    async def close(self) -> None:
        return None


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

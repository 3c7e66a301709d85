"""Card payments (and the wallets Stripe offers with them) through Stripe, with the
official ``stripe`` library.

A purchase creates a PaymentIntent for the package at its region's price, with
the buyer, the package, the price and the client's idempotency key in its
metadata, under a Stripe idempotency key derived from the buyer and their key (a
retried request gets the same PaymentIntent back). The client confirms it with
Stripe (Stripe.js / the mobile SDKs, with the returned ``client_secret``); the
coins are credited only when Stripe's signed ``payment_intent.succeeded`` (or
``checkout.session.completed`` for a Checkout Session carrying the same metadata)
reaches ``POST /v1/webhooks/payments/stripe``. A full refund (``charge.refunded``)
and a dispute (``charge.dispute.created`` / ``charge.dispute.funds_withdrawn``)
reverse the purchase.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import stripe

from live.payments.base import (
    PAYMENT_CHARGEBACK,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    PENDING,
    PaymentError,
    PaymentOrder,
    PaymentResult,
    WebhookError,
    WebhookEvent,
    webhook_json,
)
from store.domain.models import Profile

log = logging.getLogger("live.payments")

SIGNATURE_HEADER: Final = "stripe-signature"
CREDIT_EVENTS: Final = (
    "payment_intent.succeeded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
)
DISPUTE_EVENTS: Final = ("charge.dispute.created", "charge.dispute.funds_withdrawn")
REFUND_EVENT: Final = "charge.refunded"
UNREACHABLE: Final = (
    "Stripe could not be reached: nothing was charged; retry with the same Idempotency-Key"
)


def stripe_idempotency_key(user_id: str, key: str) -> str:
    """Stripe's idempotency key of a buyer's purchase request: one PaymentIntent per
    ``(user, Idempotency-Key)``, whatever the retries on either side."""
    digest = hashlib.sha256(f"{user_id}\x1f{key}".encode()).hexdigest()
    return f"live-purchase-{digest[:48]}"


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StripePaymentProvider:
    """Stripe PaymentIntents (see the module docstring)."""

    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        tolerance: int = 300,
        publishable_key: str = "",
        api_base: str = "",
        timeout: float = 10.0,
        max_network_retries: int = 2,
    ) -> None:
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance
        self.publishable_key = publishable_key
        self.livemode = not api_key.startswith(("sk_test_", "rk_test_"))
        self.http = stripe.HTTPXClient(timeout=timeout)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self.http,
            max_network_retries=max_network_retries,
        )

    async def close(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]

    # -- creating the payment ----------------------------------------------------------
    async def charge(self, order: PaymentOrder) -> PaymentResult:
        package, user = order.package, order.user
        params: Any = {
            "amount": package.price_minor,
            "currency": package.currency.lower(),
            "automatic_payment_methods": {"enabled": True},
            "description": f"{package.coins + package.bonus} coins ({package.id})",
            "metadata": {
                "user_id": user.id,
                "username": user.username,
                "adult": "true" if user.adult else "false",
                "package": package.id,
                "region": package.region,
                "price_minor": str(package.price_minor),
                "currency": package.currency,
                "idempotency_key": order.idempotency_key,
            },
        }
        options: Any = {"idempotency_key": stripe_idempotency_key(user.id, order.idempotency_key)}
        try:
            intent = await self.client.v1.payment_intents.create_async(params, options)
        except stripe.IdempotencyError:
            raise PaymentError(
                "conflict", "this Idempotency-Key was used for another purchase"
            ) from None
        except stripe.CardError as exc:
            raise PaymentError(
                "payment_declined", f"payment declined: {exc.user_message}"
            ) from None
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError):
            # unreachable, busy or failing on Stripe's side, retries included
            log.warning("stripe unavailable creating a payment", exc_info=True)
            raise PaymentError("provider_unavailable", UNREACHABLE) from None
        except stripe.StripeError as exc:
            # our request or our keys are wrong: the client can't fix it, the operator can
            log.error("stripe refused a payment: %s %s", exc.http_status, exc.code)
            raise PaymentError(
                "provider_unavailable", "Stripe refused to create the payment; nothing was charged"
            ) from None
        if (intent.amount, intent.currency.upper()) != (package.price_minor, package.currency):
            log.error("stripe created %s for another amount than asked", intent.id)
            raise PaymentError("provider_unavailable", "Stripe created an unexpected payment")
        client: dict[str, Any] = {
            "payment_intent": intent.id,
            "client_secret": intent.client_secret,
            "amount_minor": intent.amount,
            "currency": package.currency,
        }
        if self.publishable_key:
            client["publishable_key"] = self.publishable_key
        return PaymentResult(self.name, intent.id, status=PENDING, client=client)

    # -- events ------------------------------------------------------------------------
    async def verify_webhook(
        self, *, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookEvent:
        event = verified_event(
            headers=headers,
            body=body,
            secret=self.webhook_secret,
            tolerance=self.tolerance,
            now=now,
            livemode=self.livemode,
        )
        return _event(event, event["data"]["object"], signature=headers[SIGNATURE_HEADER])


def verified_event(
    *,
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    tolerance: int,
    now: float,
    livemode: bool,
) -> dict[str, Any]:
    """The JSON of a genuine, fresh Stripe event delivery (with ``data.object``, in
    the key's mode), or ``WebhookError``."""
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise WebhookError("unauthorized", "missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise WebhookError("unauthorized", f"Stripe signature refused: {exc}") from None
    except UnicodeDecodeError:
        raise WebhookError("bad_request", "webhook body must be UTF-8 JSON") from None
    # Stripe's check only refuses old timestamps; one far ahead is as suspect
    stamp = [p[2:] for p in header.split(",") if p.startswith("t=")]
    if stamp and stamp[0].isdigit() and int(stamp[0]) > now + tolerance:
        raise WebhookError("unauthorized", "stale timestamp: the delivery is too new")
    event = webhook_json(body)
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookError("bad_request", "a Stripe event has data.object")
    if event.get("livemode") is not livemode:
        raise WebhookError("bad_request", "the event's livemode is not this account's")
    return event


def _event(event: Mapping[str, Any], obj: Mapping[str, Any], *, signature: str) -> WebhookEvent:
    kind = _text(event, "type")
    base = WebhookEvent(
        id=_text(event, "id"),
        type=kind,
        created=_int(event, "created") or int(time.time()),
        signature=signature,
    )
    if kind in CREDIT_EVENTS:
        return _credit(base, obj)
    if kind == REFUND_EVENT:
        if obj.get("refunded") is not True:
            # a partial refund leaves the coins: an admin reverses it by hand if need be
            log.info("stripe partial refund of %s ignored", _text(obj, "payment_intent"))
            return base
        return _reversal(base, obj, PAYMENT_REFUNDED, "refunded through Stripe")
    if kind in DISPUTE_EVENTS:
        reason = f"card dispute: {_text(obj, 'reason') or 'unspecified'}"
        return _reversal(base, obj, PAYMENT_CHARGEBACK, reason)
    return base


def _reversal(base: WebhookEvent, obj: Mapping[str, Any], effect: str, reason: str) -> WebhookEvent:
    payment_id = _text(obj, "payment_intent")
    if not payment_id:
        raise WebhookError("bad_request", f"{base.type} without a payment_intent")
    return dataclasses.replace(base, effect=effect, payment_id=payment_id, reason=reason)


def _credit(base: WebhookEvent, obj: Mapping[str, Any]) -> WebhookEvent:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not _text(metadata, "package"):
        return base  # not a coin purchase of this server
    if base.type == "payment_intent.succeeded":
        if obj.get("status") != "succeeded":
            raise WebhookError("bad_request", "the PaymentIntent has not succeeded")
        payment_id, amount = _text(obj, "id"), _int(obj, "amount_received")
    else:  # a Checkout Session: credited once paid, under its PaymentIntent's id
        if obj.get("payment_status") != "paid":
            return base
        payment_id, amount = _text(obj, "payment_intent"), _int(obj, "amount_total")
    price = _text(metadata, "price_minor")
    user_id = _text(metadata, "user_id")
    if not payment_id or amount is None or not price.isdigit() or not user_id:
        raise WebhookError("bad_request", "the payment lacks its id, amount or metadata")
    return dataclasses.replace(
        base,
        effect=PAYMENT_SUCCEEDED,
        payment_id=payment_id,
        amount_minor=amount,
        currency=_text(obj, "currency").upper(),
        expected_minor=int(price),
        expected_currency=_text(metadata, "currency").upper(),
        user=Profile(
            id=user_id,
            username=_text(metadata, "username") or user_id,
            adult=_text(metadata, "adult") == "true",
        ),
        package_id=_text(metadata, "package"),
    )

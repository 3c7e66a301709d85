"""In-app purchases on iPhone and iPad through the App Store, with Apple's
``app-store-server-library``.

Coin packages are *consumable* products in App Store Connect, each mapped to one
package (``LIVE_APPLE_PRODUCTS``). After StoreKit 2 completes a purchase, the app
posts the transaction's JWS (``Transaction.jwsRepresentation``) to
``POST /v1/purchases`` with ``provider: "apple"``; the server verifies the
signature and its certificate chain up to the configured Apple roots
(``SignedDataVerifier``), the bundle id, the environment, the product ↔ package
mapping and, when the app set one, the ``appAccountToken`` (see
``account_token``), then credits the package once per transaction id. The app
finishes the transaction once the server answered.

App Store Server Notifications v2 reach ``POST /v1/webhooks/payments/apple`` as
``{"signedPayload": "<JWS>"}``, verified the same way: ``REFUND`` reverses the
purchase, ``CONSUMPTION_REQUEST`` (Apple asking how a refunded-to-be purchase was
used) is acknowledged, everything else is acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.models.NotificationTypeV2 import NotificationTypeV2
from appstoreserverlibrary.models.Type import Type
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)

from live.payments.base import (
    PAYMENT_REFUNDED,
    PaymentError,
    PaymentOrder,
    PaymentResult,
    WebhookError,
    WebhookEvent,
    webhook_json,
)

log = logging.getLogger("live.payments")

ENVIRONMENTS: Final = ("Production", "Sandbox")
"""The environments a server may accept (Xcode and local-testing data is unsigned)."""
MAX_JWS_CHARS: Final = 16_384
_T = TypeVar("_T")


def account_token(bundle_id: str, user_id: str) -> str:
    """The ``appAccountToken`` an app sets on a purchase to bind it to the signed-in
    user: ``uuid5(uuid5(NAMESPACE_URL, bundle_id), user_id)``."""
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, bundle_id), user_id))


def _refusal(exc: VerificationException, what: str) -> PaymentError:
    status = exc.status
    if status == VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
        return PaymentError(
            "provider_unavailable", "Apple's certificate status could not be checked; retry"
        )
    if status == VerificationStatus.INVALID_APP_IDENTIFIER:
        return PaymentError("bad_request", f"the {what} is for another app")
    if status == VerificationStatus.INVALID_ENVIRONMENT:
        return PaymentError(
            "bad_request", f"the {what} is from an environment this server does not accept"
        )
    return PaymentError("bad_request", f"the {what}'s signature or certificate chain is not valid")


class AppleAppStoreProvider:
    """App Store consumables (see the module docstring)."""

    name = "apple"

    def __init__(
        self,
        *,
        bundle_id: str,
        app_apple_id: int | None,
        environments: Sequence[str],
        root_certificates: Sequence[bytes],
        products: Mapping[str, str],
        online_checks: bool = True,
    ) -> None:
        self.bundle_id = bundle_id
        self.products = dict(products)
        """Product id → coin package id."""
        self.verifiers = [
            SignedDataVerifier(
                list(root_certificates),
                online_checks,
                Environment(name),
                bundle_id,
                app_apple_id,
            )
            for name in environments
        ]

    async def close(self) -> None:
        return None

    def _verified(self, call: Callable[[SignedDataVerifier], _T], what: str) -> _T:
        """The first environment's verifier that accepts it (production first)."""
        first: VerificationException | None = None
        for verifier in self.verifiers:
            try:
                return call(verifier)
            except VerificationException as exc:
                first = first or exc
                if exc.status != VerificationStatus.INVALID_ENVIRONMENT:
                    break
        assert first is not None
        raise _refusal(first, what)

    def _transaction(self, signed: str) -> JWSTransactionDecodedPayload:
        return self._verified(
            lambda v: v.verify_and_decode_signed_transaction(signed), "transaction"
        )

    # -- a purchase the app made ---------------------------------------------------------
    async def charge(self, order: PaymentOrder) -> PaymentResult:
        signed = order.proof
        if not signed or len(signed) > MAX_JWS_CHARS:
            raise PaymentError(
                "bad_request", "an Apple purchase needs signed_transaction (the transaction's JWS)"
            )
        # online checks (OCSP) block: off the event loop
        tx = await asyncio.to_thread(self._transaction, signed)
        package = self.products.get(tx.productId or "")
        if package is None:
            raise PaymentError("bad_request", f"product {tx.productId!r} is not a coin package")
        if package != order.package.id:
            raise PaymentError(
                "bad_request",
                f"the transaction bought product {tx.productId!r} (package {package}), "
                f"not package {order.package.id}",
            )
        if tx.type != Type.CONSUMABLE:
            raise PaymentError("bad_request", "coin packages are consumable products")
        if tx.quantity not in (None, 1):
            raise PaymentError("bad_request", "buy one coin package per transaction")
        if tx.revocationDate is not None:
            raise PaymentError("bad_request", "this transaction was refunded or revoked")
        token = tx.appAccountToken
        if token and token.lower() != account_token(self.bundle_id, order.user.id):
            raise PaymentError("forbidden", "this transaction was made for another account")
        if not tx.transactionId:
            raise PaymentError("bad_request", "the transaction has no id")
        return PaymentResult(self.name, tx.transactionId, paid_at=tx.purchaseDate)

    # -- App Store Server Notifications v2 -----------------------------------------------
    async def verify_webhook(
        self, *, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookEvent:
        signed = webhook_json(body).get("signedPayload")
        if not isinstance(signed, str) or not signed:
            raise WebhookError("bad_request", "an App Store notification has signedPayload")
        try:
            return await asyncio.to_thread(self._notification, signed)
        except PaymentError as exc:
            code = "unauthorized" if exc.code == "bad_request" else exc.code
            raise WebhookError(code, exc.message) from None

    def _notification(self, signed: str) -> WebhookEvent:
        note = self._verified(lambda v: v.verify_and_decode_notification(signed), "notification")
        kind = note.rawNotificationType or ""
        event = WebhookEvent(
            id=note.notificationUUID or "",
            type=kind,
            created=(note.signedDate or 0) // 1_000,
            # Apple resends a notification as it was signed: its effect is idempotent
            signature="",
        )
        if note.notificationType == NotificationTypeV2.CONSUMPTION_REQUEST:
            log.info("App Store consumption request %s acknowledged", event.id)
            return event
        if note.notificationType != NotificationTypeV2.REFUND:
            return event
        signed_tx = note.data.signedTransactionInfo if note.data else None
        if not signed_tx:
            raise WebhookError("bad_request", "a REFUND notification carries its transaction")
        tx = self._transaction(signed_tx)
        if not tx.transactionId:
            raise WebhookError("bad_request", "the refunded transaction has no id")
        return dataclasses.replace(
            event,
            effect=PAYMENT_REFUNDED,
            payment_id=tx.transactionId,
            reason=f"refunded by Apple ({tx.rawRevocationReason})",
        )

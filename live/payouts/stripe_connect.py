"""Creator payouts through Stripe Connect, with the official ``stripe`` library.

Each creator gets an Express connected account (created with a manual payout
schedule, so money leaves it only when a withdrawal asks) and finishes Stripe's
hosted onboarding through an Account Link. A withdrawal is then two calls, each
with an idempotency key derived from the withdrawal id, so a retry after a
crash or a timeout returns the same objects instead of paying twice:

1. a Transfer of the withdrawal's cash from the platform balance to the
   creator's account (``<withdrawal>-transfer``);
2. a Payout from that account to the creator's bank (``<withdrawal>-payout``,
   on the connected account).

The payout's ``payout.paid`` / ``payout.failed`` / ``payout.canceled`` events
(Connect webhook, signed ``Stripe-Signature: t=…,v1=…``) or a poll of the payout
settle the withdrawal; a failed one has its transfer reversed
(``<withdrawal>-reversal``) before the diamonds return.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import stripe

from live.payments.base import WebhookError
from live.payments.stripe_cards import verified_event
from live.payouts import (
    ACCOUNT_UPDATED,
    IGNORED,
    PAYOUT_FAILED,
    PAYOUT_PAID,
    TRANSFER_REVERSED,
    AccountState,
    OnboardingLink,
    PayoutEvent,
    PayoutRefused,
    PayoutStatus,
    PayoutUnavailable,
    PayoutWebhookError,
)
from store.domain.accounts import FAILED, PAID, PENDING
from store.domain.models import Profile
from store.domain.payout_accounts import SUBMITTED, PayoutSubmission

NAME: Final = "stripe_connect"
_FAILED_PAYOUT: Final = ("failed", "canceled")


class StripeConnectPayouts:
    """``live.payouts.ConnectedPayoutProvider`` for Stripe Connect."""

    name = NAME

    def __init__(
        self,
        *,
        secret_key: str,
        webhook_secret: str,
        return_url: str,
        refresh_url: str,
        country: str = "US",
        tolerance: int = 300,
        api_base: str = "",
        timeout: float = 10.0,
        max_network_retries: int = 2,
    ) -> None:
        self._webhook_secret = webhook_secret
        self._return_url = return_url
        self._refresh_url = refresh_url
        self._country = country.upper()
        self._tolerance = tolerance
        self._livemode = not secret_key.startswith(("sk_test_", "rk_test_"))
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    # -- the creator's account ----------------------------------------------------
    async def create_account(self, *, user: Profile) -> AccountState:
        params: dict[str, Any] = {
            "type": "express",
            "country": self._country,
            "capabilities": {"transfers": {"requested": True}},
            "settings": {"payouts": {"schedule": {"interval": "manual"}}},
            "metadata": {"user_id": user.id},
        }
        account = await _call(
            self._client.v1.accounts.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"live-account-{user.id}"},
            )
        )
        return _account_state(account)

    async def onboarding_link(self, *, account_id: str) -> OnboardingLink:
        link = await _call(
            self._client.v1.account_links.create_async(
                {
                    "account": account_id,
                    "refresh_url": self._refresh_url,
                    "return_url": self._return_url,
                    "type": "account_onboarding",
                }
            )
        )
        return OnboardingLink(url=link.url, expires_at=int(link.expires_at))

    async def account_state(self, account_id: str) -> AccountState:
        return _account_state(await _call(self._client.v1.accounts.retrieve_async(account_id)))

    # -- paying ---------------------------------------------------------------------
    async def submit(self, submission: PayoutSubmission) -> PayoutSubmission:
        metadata = {"withdrawal_id": submission.withdrawal_id, "user_id": submission.user_id}
        amount, currency = submission.amount_minor, submission.currency.lower()
        transfer_id = submission.transfer_id
        if not transfer_id:
            transfer = await _call(
                self._client.v1.transfers.create_async(
                    {
                        "amount": amount,
                        "currency": currency,
                        "destination": submission.account_id,
                        "transfer_group": submission.withdrawal_id,
                        "metadata": metadata,
                    },
                    {"idempotency_key": f"{submission.withdrawal_id}-transfer"},
                )
            )
            transfer_id = transfer.id
        try:
            payout = await _call(
                self._client.v1.payouts.create_async(
                    {"amount": amount, "currency": currency, "metadata": metadata},
                    {
                        "idempotency_key": f"{submission.withdrawal_id}-payout",
                        "stripe_account": submission.account_id,
                    },
                )
            )
        except PayoutRefused as refused:
            # the money reached the creator's account but cannot leave it: take it back
            await self.recover(_replace(submission, transfer_id=transfer_id))
            raise PayoutRefused(refused.message) from None
        return _replace(submission, state=SUBMITTED, transfer_id=transfer_id, payout_id=payout.id)

    async def status(self, submission: PayoutSubmission) -> PayoutStatus:
        if not submission.payout_id:
            return PayoutStatus(PENDING)
        payout = await _call(
            self._client.v1.payouts.retrieve_async(
                submission.payout_id, options={"stripe_account": submission.account_id}
            )
        )
        return _payout_status(payout.status, payout.id, _failure(payout))

    async def recover(self, submission: PayoutSubmission) -> None:
        if not submission.transfer_id:
            return
        try:
            await _call(
                self._client.v1.transfers.reversals.create_async(
                    submission.transfer_id,
                    {"metadata": {"withdrawal_id": submission.withdrawal_id}},
                    {"idempotency_key": f"{submission.withdrawal_id}-reversal"},
                )
            )
        except PayoutRefused:
            # already reversed (by us before, or from the dashboard): nothing left to take
            return

    # -- events -----------------------------------------------------------------------
    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes, now: float) -> PayoutEvent:
        try:
            event = verified_event(
                headers=headers,
                body=body,
                secret=self._webhook_secret,
                tolerance=self._tolerance,
                now=now,
                livemode=self._livemode,
            )
        except WebhookError as refused:
            raise PayoutWebhookError(refused.code, refused.message) from None
        return _event(event)


def _event(event: dict[str, Any]) -> PayoutEvent:
    obj: dict[str, Any] = event["data"]["object"]
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(kind, str):
        raise PayoutWebhookError("bad_request", "a Stripe event needs an id and a type")
    metadata = obj.get("metadata")
    withdrawal_id = metadata.get("withdrawal_id") if isinstance(metadata, dict) else None
    withdrawal_id = withdrawal_id if isinstance(withdrawal_id, str) else ""
    found = obj.get("id")
    reference = found if isinstance(found, str) else ""
    if kind == "account.updated":
        return PayoutEvent(event_id, ACCOUNT_UPDATED, kind, account=_account_state(obj))
    if kind == "payout.paid" and withdrawal_id:
        return PayoutEvent(event_id, PAYOUT_PAID, kind, withdrawal_id, reference=reference)
    if kind in ("payout.failed", "payout.canceled") and withdrawal_id:
        reason = _failure(obj) or f"the payout was {kind.partition('.')[2]}"
        return PayoutEvent(
            event_id, PAYOUT_FAILED, kind, withdrawal_id, reference=reference, reason=reason
        )
    if kind == "transfer.reversed" and withdrawal_id:
        reason = "the transfer to the creator's account was reversed"
        return PayoutEvent(
            event_id, TRANSFER_REVERSED, kind, withdrawal_id, reference=reference, reason=reason
        )
    return PayoutEvent(event_id, IGNORED, kind, withdrawal_id)


def _field(obj: Any, name: str) -> Any:
    """A field of a Stripe object or of an event's plain JSON object."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _account_state(account: Any) -> AccountState:
    account_id = _field(account, "id")
    if not isinstance(account_id, str) or not account_id:
        raise PayoutWebhookError("bad_request", "an account needs an id")
    return AccountState(
        account_id=account_id,
        payouts_enabled=_field(account, "payouts_enabled") is True,
        details_submitted=_field(account, "details_submitted") is True,
    )


def _failure(payout: Any) -> str:
    message, code = _field(payout, "failure_message"), _field(payout, "failure_code")
    if isinstance(message, str) and message:
        return message
    return f"payout failed: {code}" if isinstance(code, str) and code else ""


def _payout_status(status: str, reference: str, reason: str) -> PayoutStatus:
    if status == "paid":
        return PayoutStatus(PAID, reference)
    if status in _FAILED_PAYOUT:
        return PayoutStatus(FAILED, reference, reason or f"the payout was {status}")
    return PayoutStatus(PENDING, reference)


def _replace(submission: PayoutSubmission, **changes: Any) -> PayoutSubmission:
    from dataclasses import replace

    return replace(submission, updated_at=int(time.time() * 1000), **changes)


async def _call(request: Any) -> Any:
    """Await a Stripe request, its errors as ``PayoutRefused`` (a 4xx answer: the
    request was refused and did nothing) or ``PayoutUnavailable`` (no answer, or
    one that does not say: it may have happened, so ask again with the same key)."""
    try:
        return await request
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.IdempotencyError) as exc:
        raise PayoutUnavailable(f"Stripe did not answer: {_message(exc)}") from None
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        if 400 <= status < 500:
            raise PayoutRefused(f"Stripe refused: {_message(exc)}") from None
        raise PayoutUnavailable(f"Stripe failed: {_message(exc)}") from None


def _message(exc: stripe.StripeError) -> str:
    return exc.user_message or type(exc).__name__

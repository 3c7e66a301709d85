"""Payout providers: how diamonds leave as cash.

``PayoutProvider`` (``live.payments``) is the one-call interface of the sandbox:
pay now, answer paid, failed or pending. A real provider pays a creator's own
account at the provider, which the creator links first, and tells the outcome
later; it implements ``ConnectedPayoutProvider``:

1. ``create_account`` / ``onboarding_link`` / ``account_state``: the creator's
   account, and whether it can receive payouts yet;
2. ``submit``: ask the provider to pay a reserved withdrawal, with idempotency
   keys derived from the withdrawal id (a retry can never pay twice);
3. ``parse_webhook`` (signed events) and ``status`` (a poll): how it ended;
4. ``recover``: take back what reached the creator's account when the payout
   to their bank failed, before the diamonds return.

``live.actions.payouts.Payouts`` drives these against the store's two-phase
withdrawal, so each withdrawal settles exactly once whatever arrives first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from live.errors import LiveError
from live.payments import (
    MAX_WEBHOOK_BYTES,
    PayoutProvider,
    PayoutResult,
    SandboxPayoutProvider,
)
from live.settings import Settings
from store.domain.models import Profile
from store.domain.payout_accounts import PayoutSubmission

ACCOUNT_UPDATED: Final = "account_updated"
PAYOUT_PAID: Final = "payout_paid"
PAYOUT_FAILED: Final = "payout_failed"
TRANSFER_REVERSED: Final = "transfer_reversed"
IGNORED: Final = "ignored"


class PayoutError(LiveError):
    """Root of the payout provider errors; ``code`` is a public error code."""

    default_code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(self.default_code, message)


class PayoutUnavailable(PayoutError):
    """The provider could not be reached or did not answer: what was asked may or
    may not have happened, so it is asked again later with the same keys."""

    default_code = "provider_unavailable"


class PayoutRefused(PayoutError):
    """The provider refused the request for good (nothing was done)."""

    default_code = "bad_request"


class PayoutWebhookError(PayoutError):
    """A webhook delivery that is refused: ``unauthorized`` (not proven to come
    from the provider) or ``bad_request`` (signed but unusable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    payouts_enabled: bool
    details_submitted: bool


@dataclass(frozen=True, slots=True)
class OnboardingLink:
    url: str
    expires_at: int
    """Seconds since the epoch; a new link is needed after it."""


@dataclass(frozen=True, slots=True)
class PayoutStatus:
    """Where a submitted payout stands: ``pending``, ``paid`` or ``failed``."""

    status: str
    reference: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PayoutEvent:
    """One verified provider event, in this server's terms."""

    id: str
    kind: str
    """``ACCOUNT_UPDATED``, ``PAYOUT_PAID``, ``PAYOUT_FAILED``, ``TRANSFER_REVERSED``
    or ``IGNORED`` (a type this server does not act on)."""
    provider_type: str
    """The provider's own event type (``payout.paid``...)."""
    withdrawal_id: str = ""
    account: AccountState | None = None
    reference: str = ""
    reason: str = ""


class ConnectedPayoutProvider(Protocol):
    name: str

    async def create_account(self, *, user: Profile) -> AccountState: ...

    async def onboarding_link(self, *, account_id: str) -> OnboardingLink: ...

    async def account_state(self, account_id: str) -> AccountState: ...

    async def submit(self, submission: PayoutSubmission) -> PayoutSubmission:
        """Pay it (state ``submitted``, with the provider's references);
        ``PayoutRefused`` when the provider will not (nothing left to undo),
        ``PayoutUnavailable`` when the outcome is unknown."""
        ...

    async def status(self, submission: PayoutSubmission) -> PayoutStatus: ...

    async def recover(self, submission: PayoutSubmission) -> None:
        """Take back the money that reached the creator's account of a payout that
        failed (idempotent); ``PayoutUnavailable`` to try again later."""
        ...

    def parse_webhook(
        self, *, headers: Mapping[str, str], body: bytes, now: float
    ) -> PayoutEvent: ...

    async def close(self) -> None:
        """Release the provider's connections."""
        ...


def connected_providers(settings: Settings) -> dict[str, ConnectedPayoutProvider]:
    """The connected payout providers the settings enable, by name."""
    found: dict[str, ConnectedPayoutProvider] = {}
    if settings.stripe_connect_payouts:
        from live.payouts.stripe_connect import StripeConnectPayouts

        secret_key, webhook_secret = settings.stripe_connect_secrets()
        stripe_connect = StripeConnectPayouts(
            secret_key=secret_key,
            webhook_secret=webhook_secret,
            return_url=settings.stripe_connect_return_url,
            refresh_url=settings.stripe_connect_refresh_url,
            country=settings.stripe_connect_country,
            tolerance=settings.webhook_tolerance_seconds,
            api_base=settings.stripe_api_base,
            timeout=settings.stripe_timeout_seconds,
            max_network_retries=settings.stripe_max_network_retries,
        )
        found[stripe_connect.name] = stripe_connect
    return found


__all__ = [
    "ACCOUNT_UPDATED",
    "IGNORED",
    "MAX_WEBHOOK_BYTES",
    "PAYOUT_FAILED",
    "PAYOUT_PAID",
    "TRANSFER_REVERSED",
    "AccountState",
    "ConnectedPayoutProvider",
    "OnboardingLink",
    "PayoutError",
    "PayoutEvent",
    "PayoutProvider",
    "PayoutRefused",
    "PayoutResult",
    "PayoutStatus",
    "PayoutUnavailable",
    "PayoutWebhookError",
    "SandboxPayoutProvider",
    "connected_providers",
]

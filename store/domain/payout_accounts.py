"""Creators' payout accounts at a payout provider, and the provider-side state of
each withdrawal being paid through one.

A creator links an account (a Stripe Connect account, say) once; a withdrawal
through that provider is then submitted to it and settled from the provider's
answer. The store keeps both so that any node can settle a withdrawal from a
webhook or a status poll, whichever arrives first, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

SUBMITTING: Final = "submitting"
"""Reserved, and the provider was (maybe) asked to pay: the answer is not known yet.
A poll submits again with the same idempotency keys."""
SUBMITTED: Final = "submitted"
"""The provider accepted it; its webhook or a poll tells how it ends."""
DONE: Final = "done"
"""The withdrawal is settled (paid, or failed and the diamonds returned)."""
SUBMISSION_STATES: Final = (SUBMITTING, SUBMITTED, DONE)


@dataclass(frozen=True, slots=True)
class PayoutAccount:
    """A creator's account at one payout provider."""

    user_id: str
    provider: str
    account_id: str
    payouts_enabled: bool = False
    """The provider will pay out to it (identity checked, bank account on file)."""
    details_submitted: bool = False
    """The creator finished the provider's onboarding form."""
    created_at: int = 0
    updated_at: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "account_id": self.account_id,
            "payouts_enabled": self.payouts_enabled,
            "details_submitted": self.details_submitted,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class PayoutSubmission:
    """One withdrawal as the payout provider sees it."""

    withdrawal_id: str
    user_id: str
    provider: str
    account_id: str
    amount_minor: int
    currency: str
    state: str = SUBMITTING
    transfer_id: str = ""
    """The money moved to the creator's account (Stripe: ``tr_…``)."""
    payout_id: str = ""
    """The money leaving that account for the creator's bank (Stripe: ``po_…``)."""
    reason: str = ""
    attempts: int = 0
    created_at: int = 0
    updated_at: int = 0

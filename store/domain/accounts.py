"""Value types of the money rules beyond a single gift or purchase: a user's
limits and account state, refunds and debt, withdrawals, earnings. No I/O here.

Accounts (besides those of ``store.domain.models``):

- ``user:<id>:debt`` (coin): chargeback debt, never above zero. A refund takes
  the purchase's coins back from the user's coins; what was already spent goes
  here instead, so a coin account never goes below zero and the debt is
  recorded in the ledger. While it is below zero the account is *locked*: no
  gifting until it is settled. Buying stays open: a purchase pays the debt
  first, and the account unlocks once it is paid.
- ``platform:promotions`` (coin): where promotion bonus coins come from.
- ``platform:writeoff`` (coin): debt the platform gave up on.
- ``user:<id>:withdrawing`` (diamond): the creator's diamonds reserved by
  withdrawals not yet paid (a per-user account, so every phase of a withdrawal
  is in the creator's history).
- ``payout`` (diamond): diamonds paid out as cash (money out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from store.domain.models import PurchaseReceipt, coins_account, diamonds_account, fingerprint

PLATFORM_PROMOTIONS: Final = "platform:promotions"
PLATFORM_WRITEOFF: Final = "platform:writeoff"

REFUND: Final = "refund"
CHARGEBACK: Final = "chargeback"
REVERSAL_KINDS: Final = (REFUND, CHARGEBACK)

SETTLED_PAID: Final = "paid"
SETTLED_WRITTEN_OFF: Final = "written_off"
SETTLEMENT_METHODS: Final = (SETTLED_PAID, SETTLED_WRITTEN_OFF)

PENDING: Final = "pending"
PAID: Final = "paid"
FAILED: Final = "failed"
WITHDRAWAL_OUTCOMES: Final = (PAID, FAILED)


def debt_account(user_id: str) -> str:
    return f"user:{user_id}:debt"


def withdrawing_account(user_id: str) -> str:
    return f"user:{user_id}:withdrawing"


def user_accounts(user_id: str) -> dict[str, str]:
    """A user's ledger accounts by role: what their transaction history spans."""
    return {
        "coins": coins_account(user_id),
        "diamonds": diamonds_account(user_id),
        "debt": debt_account(user_id),
        "withdrawing": withdrawing_account(user_id),
    }


def purchase_receipt(stored: dict[str, Any], *, replayed: bool) -> PurchaseReceipt:
    """A receipt stored under its payment key (older ones lack the newer fields)."""
    fields = dict(stored)
    fields["promotions"] = tuple(fields.get("promotions", ()))
    return PurchaseReceipt(**fields, replayed=replayed)


@dataclass(frozen=True, slots=True)
class MoneyPolicy:
    """The platform's money limits, enforced inside the wallet's atomic operations.

    The defaults here restrict nothing (the store's own tests rely on that); the
    server passes its settings (``LIVE_*``) in."""

    daily_spend_cap: int = 0
    """Coins one user may spend on gifts per day of their time zone (0: no cap)."""
    monthly_spend_cap: int = 0
    """And per calendar month of their time zone (0: no cap)."""
    gift_rate_per_minute: int = 0
    """Gifts per user per minute, sustained (0: no rate limit)."""
    gift_burst: int = 0
    """Gifts one user may send at once before the rate applies."""
    hold_seconds: int = 0
    """Diamonds become withdrawable this long after the hour they were earned in
    ends (the refund window; 0: at once)."""
    withdrawal_min: int = 1
    """Smallest withdrawal, in diamonds."""
    withdrawal_daily_max: int = 0
    """Diamonds one creator may withdraw per UTC day (0: no maximum)."""
    payout_seconds: int = 0
    """How long after a withdrawal its payment is expected (``expected_at``)."""

    def __post_init__(self) -> None:
        for name in (
            "daily_spend_cap",
            "monthly_spend_cap",
            "gift_rate_per_minute",
            "gift_burst",
            "hold_seconds",
            "withdrawal_daily_max",
            "payout_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.withdrawal_min < 1:
            raise ValueError("withdrawal_min must be >= 1")
        if self.gift_rate_per_minute and self.gift_burst < 1:
            raise ValueError("gift_burst must be >= 1 when gifts are rate limited")


@dataclass(frozen=True, slots=True)
class UserLimits:
    """What a user (or their guardian) allows this account. ``None`` caps: only the
    platform's caps apply."""

    daily_cap: int | None = None
    monthly_cap: int | None = None
    purchases_enabled: bool = True
    gifting_enabled: bool = True
    tz: str = "UTC"
    """IANA time zone of the user's day and month (spending caps)."""

    def public(self) -> dict[str, Any]:
        return {
            "daily_cap": self.daily_cap,
            "monthly_cap": self.monthly_cap,
            "purchases_enabled": self.purchases_enabled,
            "gifting_enabled": self.gifting_enabled,
            "tz": self.tz,
        }


@dataclass(frozen=True, slots=True)
class Account:
    """A user's account state (everything but the ledger history)."""

    user_id: str
    coins: int
    diamonds: int
    debt: int
    """Chargeback debt in coins (>= 0); the account is locked while it is above 0."""
    limits: UserLimits
    pin_set: bool
    purchases: int
    """Purchases credited so far (a first-purchase bonus needs 0)."""
    verified_at: int | None
    verified_by: str
    spent_day: str
    """The local day (``YYYY-MM-DD``) of ``day_spent``; other days count 0."""
    day_spent: int
    spent_month: str
    """The local month (``YYYY-MM``) of ``month_spent``."""
    month_spent: int

    @property
    def locked(self) -> bool:
        return self.debt > 0

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


@dataclass(frozen=True, slots=True)
class LimitsRequest:
    """Replace a user's limits. Tightening is always allowed; relaxing anything
    (turning purchases or gifting back on, raising or removing a cap, changing the
    time zone) and changing or removing the PIN need ``pin`` once a PIN is set."""

    user_id: str
    limits: UserLimits
    pin: str | None = None
    """The current PIN, when one is set and the change needs it."""
    new_pin: str | None = None
    """Set (or change) the PIN; ``""`` removes it."""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Reverse a credited purchase (a refund or a chargeback): once per payment."""

    provider: str
    payment_id: str
    kind: str = REFUND
    reason: str = ""
    now: int | None = None
    """Milliseconds since the epoch (default: the clock)."""

    def fingerprint(self) -> str:
        # one reversal per payment, whatever its kind: a chargeback after a refund
        # gets the refund's receipt back
        return fingerprint("reversal", self.provider, self.payment_id)


@dataclass(frozen=True, slots=True)
class RefundReceipt:
    tx: str
    kind: str
    user_id: str
    provider: str
    payment_id: str
    purchase_tx: str
    coins: int
    """Coins the purchase had credited, all reversed."""
    taken: int
    """Of those, taken from the user's coin balance."""
    debt: int
    """The rest (already spent), added to the user's debt before clawbacks."""
    clawed_back: int
    """Diamonds clawed back from creators who earned them from the spent coins
    (each also reduces the debt by as many coins)."""
    debt_after: int
    """The user's debt after this reversal."""
    created_at: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class DebtSettlement:
    """Settle a user's whole debt: ``paid`` (money received outside the app) or
    ``written_off`` (the platform gives it up). Idempotent on ``key``."""

    user_id: str
    method: str
    key: str
    by: str
    note: str = ""
    now: int | None = None

    def fingerprint(self) -> str:
        return fingerprint("settle", self.user_id, self.method)


@dataclass(frozen=True, slots=True)
class DebtReceipt:
    tx: str
    user_id: str
    method: str
    coins: int
    """The debt settled."""
    created_at: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    """Reserve diamonds for a cash payout (the pending phase)."""

    user_id: str
    diamonds: int
    key: str
    """Idempotency key, per user."""
    method: str = "sandbox"
    """Payout provider."""
    now: int | None = None

    def fingerprint(self) -> str:
        return fingerprint("withdrawal", self.diamonds, self.method)

    def pending(self, *, withdrawal_id: str, tx: str, now: int, payout_seconds: int) -> Withdrawal:
        """The withdrawal this request reserves, before any payout."""
        return Withdrawal(
            id=withdrawal_id,
            user_id=self.user_id,
            diamonds=self.diamonds,
            status=PENDING,
            method=self.method,
            created_at=now,
            expected_at=now + payout_seconds * 1_000,
            settled_at=None,
            reference="",
            reason="",
            tx=tx,
            settle_tx="",
        )


@dataclass(frozen=True, slots=True)
class WithdrawalSettlement:
    """Resolve a pending withdrawal once: ``paid`` or ``failed`` (the diamonds return)."""

    withdrawal_id: str
    status: str
    reference: str = ""
    reason: str = ""
    now: int | None = None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    user_id: str
    diamonds: int
    status: str
    """``pending``, ``paid`` or ``failed``."""
    method: str
    created_at: int
    expected_at: int
    """When the payment is expected (``created_at`` plus the payout delay)."""
    settled_at: int | None
    reference: str
    """The payout provider's reference, once paid."""
    reason: str
    """Why it failed."""
    tx: str
    """The reserving transaction."""
    settle_tx: str
    """The paying or voiding transaction ("" while pending)."""
    replayed: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "diamonds": self.diamonds,
            "status": self.status,
            "method": self.method,
            "created_at": self.created_at,
            "expected_at": self.expected_at,
            "settled_at": self.settled_at,
            "reference": self.reference,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StreamEarnings:
    room_id: str
    stream_id: int
    diamonds: int


@dataclass(frozen=True, slots=True)
class Earnings:
    """A creator's diamonds: what they hold, what they may withdraw, where it came from."""

    user_id: str
    balance: int
    """Diamonds held now (``held + withdrawable``)."""
    held: int
    """Earned within the hold period: not withdrawable yet."""
    withdrawable: int
    pending: int
    """Reserved by withdrawals not yet paid."""
    paid: int
    """Paid out so far."""
    lifetime: int
    """Earned from gifts, ever (before clawbacks and withdrawals)."""
    next_release_at: int | None
    """When the oldest held diamonds become withdrawable."""
    hours: tuple[tuple[int, int], ...]
    """``(hour, diamonds)``: earned per hour (``ms // 3_600_000``), oldest first."""
    streams: tuple[StreamEarnings, ...]
    """Earned per stream, newest stream first."""
    verified: bool

"""The payment provider interface: what every way of taking money for coins
implements, whatever the provider's own API and signature scheme.

A purchase goes through ``PaymentProvider.charge``, which either settles at once
(the sandbox; an app store, whose client brings a signed transaction) or starts a
payment the client completes with the provider (a card payment), credited later
by the provider's signed event through ``PaymentProvider.verify_webhook``. Either
way the coins are credited once per ``(provider, payment id)`` by the wallet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from store.domain.models import CoinPackage, Profile

PAYMENT_SUCCEEDED: Final = "payment.succeeded"
PAYMENT_REFUNDED: Final = "payment.refunded"
PAYMENT_CHARGEBACK: Final = "payment.chargeback"
EFFECTS: Final = (PAYMENT_SUCCEEDED, PAYMENT_REFUNDED, PAYMENT_CHARGEBACK)
"""What a verified event does: credit a payment, or reverse one."""
MAX_WEBHOOK_BYTES: Final = 65_536

APPROVED: Final = "approved"
"""The money is taken: credit the coins now."""
PENDING: Final = "pending"
"""The client completes the payment with the provider; its signed event credits it."""
DECLINED: Final = "declined"


class PaymentError(Exception):
    """A payment that cannot go on. ``code`` is a public error code: ``bad_request``
    (unusable input), ``unauthorized`` (not proven to come from the provider),
    ``not_found`` (no such provider or webhook), ``conflict`` (an idempotency key
    reused for another payment) or ``provider_unavailable`` (the provider could not
    be reached or failed; nothing was credited, the client may retry)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WebhookError(PaymentError):
    """A webhook delivery that is refused."""


def webhook_json(body: bytes) -> dict[str, Any]:
    """A webhook body's JSON object, or ``WebhookError`` (``bad_request``)."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise WebhookError("bad_request", "webhook body too large")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise WebhookError("bad_request", "webhook body must be a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """What a buyer asks a provider for: one package, under their idempotency key."""

    user: Profile
    package: CoinPackage
    idempotency_key: str
    """The client's ``Idempotency-Key``: the same key is the same payment."""
    method: str = ""
    """How the client pays, when the provider lets it choose (sandbox test cards)."""
    proof: str = ""
    """What the client brings back from an app store: its signed transaction."""


@dataclass(frozen=True, slots=True)
class PaymentResult:
    provider: str
    payment_id: str
    status: str = APPROVED
    """``approved``, ``pending`` or ``declined``."""
    reason: str = ""
    client: Mapping[str, Any] = field(default_factory=dict)
    """What the client needs to complete a pending payment (a client secret)."""
    paid_at: int | None = None
    """When the buyer paid (ms), if the provider says: promotions of that moment."""

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One provider notification, verified."""

    id: str
    type: str
    """The provider's own event type (``payment_intent.succeeded``, ``REFUND``…)."""
    created: int
    """When the provider created it, seconds since the epoch."""
    signature: str
    """The delivery's signature, refused when seen twice (a replay); ``""`` when
    the provider signs the content rather than the delivery and resends it as is
    (its effect is idempotent then)."""
    effect: str = ""
    """One of ``EFFECTS``, or ``""``: nothing to do (acknowledged and ignored)."""
    payment_id: str = ""
    amount_minor: int | None = None
    currency: str = ""
    expected_minor: int | None = None
    """The price the payment was created for (from its metadata), when the provider
    keeps it; else the package's price now is expected."""
    expected_currency: str = ""
    user: Profile | None = None
    """The buyer, from the metadata this server attached to the payment."""
    package_id: str = ""
    reason: str = ""


class PaymentProvider(Protocol):
    """A way to pay for coins (see the module docstring)."""

    name: str

    async def charge(self, order: PaymentOrder) -> PaymentResult:
        """Charge (or start charging) the package's price. The same ``(user,
        idempotency key)`` must map to the same payment id, so a retried request can
        never be credited twice. ``PaymentError`` when it cannot."""
        ...

    async def verify_webhook(
        self, *, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookEvent:
        """The delivery's event, or ``WebhookError``."""
        ...

    async def close(self) -> None:
        """Release connections (at shutdown)."""
        ...

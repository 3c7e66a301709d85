"""Payment and payout providers: how money comes in before coins are credited, and
goes out when a creator withdraws.

- ``base``: the interface every payment provider implements (``PaymentProvider``)
  and what passes through it;
- ``sandbox``: the clearly named fake provider for development, the demo and tests
  (``LIVE_SANDBOX_PAYMENTS``), with its ``Live-Signature`` webhooks;
- ``stripe_cards``: card payments through Stripe (``LIVE_STRIPE_API_KEY``);
- ``apple_store``: App Store in-app purchases (``LIVE_APPLE_BUNDLE_ID``);
- ``config``: the providers enabled by the settings, and the regions of each;
- ``payouts``: payout providers (the sandbox one).

The real providers' modules import their libraries, so they are imported only
where used (``config.payment_providers``).
"""

from live.payments.base import (
    APPROVED,
    DECLINED,
    MAX_WEBHOOK_BYTES,
    PAYMENT_CHARGEBACK,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    PENDING,
    PaymentError,
    PaymentOrder,
    PaymentProvider,
    PaymentResult,
    WebhookError,
    WebhookEvent,
)
from live.payments.payouts import (
    SANDBOX_PAYOUT_FAIL,
    SANDBOX_PAYOUT_HOLD,
    PayoutProvider,
    PayoutResult,
    SandboxPayoutProvider,
)
from live.payments.sandbox import (
    SANDBOX_DECLINE,
    SIGNATURE_HEADER,
    SandboxPaymentProvider,
    parse_event,
    sandbox_event,
    sign,
    verify_signature,
)

__all__ = [
    "APPROVED",
    "DECLINED",
    "MAX_WEBHOOK_BYTES",
    "PAYMENT_CHARGEBACK",
    "PAYMENT_REFUNDED",
    "PAYMENT_SUCCEEDED",
    "PENDING",
    "SANDBOX_DECLINE",
    "SANDBOX_PAYOUT_FAIL",
    "SANDBOX_PAYOUT_HOLD",
    "SIGNATURE_HEADER",
    "PaymentError",
    "PaymentOrder",
    "PaymentProvider",
    "PaymentResult",
    "PayoutProvider",
    "PayoutResult",
    "SandboxPaymentProvider",
    "SandboxPayoutProvider",
    "WebhookError",
    "WebhookEvent",
    "parse_event",
    "sandbox_event",
    "sign",
    "verify_signature",
]

"""How a subscription's messages are signed, and how a receiver checks them.

Every message carries ``Live-Message-Id``, ``Live-Message-Timestamp`` (seconds
since the epoch), ``Live-Message-Type`` (``notification``, ``challenge``,
``revocation``) and ``Live-Signature: sha256=<hex>``, the HMAC-SHA256 of
``id + timestamp + body`` with the subscription's secret. A receiver recomputes
it over the raw body (``verify``), refuses old timestamps, and de-duplicates by
message id (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

ID_HEADER: Final = "Live-Message-Id"
TIMESTAMP_HEADER: Final = "Live-Message-Timestamp"
TYPE_HEADER: Final = "Live-Message-Type"
SUBSCRIPTION_TYPE_HEADER: Final = "Live-Subscription-Type"
SIGNATURE_HEADER: Final = "Live-Signature"
SIGNATURE_PREFIX: Final = "sha256="


def signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of the message."""
    mac = hmac.new(secret.encode(), message_id.encode() + timestamp.encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def headers(
    *, secret: str, message_id: str, timestamp: int, kind: str, event_type: str, body: bytes
) -> dict[str, str]:
    """The headers of one message (``kind``: notification, challenge, revocation)."""
    stamp = str(timestamp)
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: stamp,
        TYPE_HEADER: kind,
        SUBSCRIPTION_TYPE_HEADER: event_type,
        SIGNATURE_HEADER: signature(secret, message_id, stamp, body),
    }


def verify(secret: str, message_id: str, timestamp: str, body: bytes, signed: str) -> bool:
    """Whether ``signed`` (the signature header) is this message's (constant time)."""
    return hmac.compare_digest(signature(secret, message_id, timestamp, body), signed)

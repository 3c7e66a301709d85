"""Creators' event subscriptions: room events POSTed, signed, to integrations.

- ``signing``: the message headers and the HMAC-SHA256 signature;
- ``sender``: the one outgoing HTTP request, SSRF-safe (checked, pinned address);
- ``service``: creating (with the challenge), listing, pausing, resuming,
  deleting and rotating subscriptions, integration apps, test events, and the
  feed that queues each room event for the subscriptions that want it;
- ``worker``: each node's delivery loop (in order, retries with backoff,
  disabling a subscription that fails too long).

Errors: ``SubscriptionError`` (below) is the package's root, with a stable ``code``.
"""

from __future__ import annotations


class SubscriptionError(Exception):
    """A callback could not be reached or refused a message; ``code`` says why:
    ``refused_url`` (the URL is not allowed: scheme, address), ``unreachable``
    (DNS, connect, TLS, timeout), ``bad_response`` (not a 2xx, a redirect, too
    large, malformed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

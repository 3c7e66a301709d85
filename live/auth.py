"""Access tokens, as the rest of the server uses them: the bearer header, and the
HS256 shortcut for development tokens and tests.

A token is the only source of a user's identity: the sender of a gift or a chat
line is always taken from here, never from a message. The checks themselves are
``live.identity``'s (the node's verifier is ``app.state.identity``).
"""

from __future__ import annotations

from live.identity.claims import AuthError
from live.identity.minting import issue_token
from live.identity.verifier import Verifier
from store.domain.models import Profile

__all__ = ["AuthError", "bearer_token", "issue_token", "verify_token"]


def verify_token(
    token: str, *, secret: str, leeway_seconds: float = 30, now: float | None = None
) -> Profile:
    """The profile of an HS256 token signed with ``secret``, or ``AuthError``."""
    verifier = Verifier(algorithms=("HS256",), secret=secret, leeway_seconds=leeway_seconds)
    return verifier.verify(token, now=now).profile


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()

"""Access tokens on live connections: each signed-in connection holds a lease that
knows when its token expires, and the ``auth`` command renews it.

After expiry (plus the leeway), with ``LIVE_EXPIRED_TOKEN=guest`` (the default)
nothing is sent: the connection keeps receiving the room, and each command that
needs a user is refused with ``unauthorized`` until an ``auth`` command brings a
fresh token, so a client may refresh lazily. With ``close``, a timer closes the
connection with 4001 at expiry. The check on a command is one comparison; the
timer exists only in ``close`` mode and is cancelled when the connection leaves.
Overlay connections (authorized by the room's overlay key) hold no lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from live.identity.claims import AuthError
from live.identity.service import Identity
from live.realtime.hub import Connection, Hub
from protocol import Auth, CloseCode
from protocol import events as ev
from store.domain.models import Event, Profile

EXPIRED = "your access token expired: send an auth command with a fresh one"


class TokenLease:
    """Until when a connection's token holds, and what happens when it stops."""

    __slots__ = ("_on_expiry", "_timer", "expires_at", "identity")

    def __init__(
        self,
        identity: Identity,
        expires_at: float,
        *,
        on_expiry: Callable[[], None] | None = None,
    ) -> None:
        self.identity = identity
        self.expires_at = expires_at
        self._on_expiry = on_expiry
        self._timer: asyncio.TimerHandle | None = None

    def expired(self) -> bool:
        return self.identity.expired(self.expires_at)

    def arm(self) -> None:
        """(Re)start the expiry timer (only when expiry closes the connection)."""
        self.cancel()
        if self._on_expiry is not None:
            delay = self.expires_at + self.identity.verifier.leeway - time.time()
            self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._on_expiry)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def lease_for(
    conn: Connection, identity: Identity, expires_at: float, *, hub: Hub, close: bool
) -> TokenLease:
    """The lease of a connection just signed in; ``close``: expiry closes it (4001)."""

    def expire() -> None:
        if not conn.closed:
            conn.send([ev.error(id=None, code="unauthorized", message="access token expired")])
            hub.close_connection(conn, CloseCode.TOKEN_EXPIRED, "token expired")

    return TokenLease(identity, expires_at, on_expiry=expire if close else None)


def acting_user(conn: Connection, command_id: str) -> Profile | Event:
    """Who runs a command that needs a user on ``conn``, or the error that refuses it
    (a guest, an overlay, a token past its expiry)."""
    if conn.profile is None or conn.overlay:
        return ev.error(id=command_id, code="unauthorized", message="sign in to do that")
    if conn.lease is not None and conn.lease.expired():
        return ev.error(id=command_id, code="unauthorized", message=EXPIRED)
    return conn.profile


async def reauthenticate(conn: Connection, command: Auth) -> Event:
    """Answer an ``auth`` command: a fresh token of the connection's own user renews
    its lease (and profile: a new display name or role applies from now on)."""
    lease, profile = conn.lease, conn.profile
    if conn.overlay or lease is None or profile is None:
        message = "only a connection opened with an access token can renew it"
        return ev.error(id=command.id, code="forbidden", message=message)
    try:
        verified = await lease.identity.authenticate(command.token)
    except AuthError as exc:
        return ev.error(id=command.id, code="unauthorized", message=str(exc))
    if verified.profile.id != profile.id:
        message = "the token is for another user: reconnect to switch users"
        return ev.error(id=command.id, code="forbidden", message=message)
    conn.profile = verified.profile
    lease.expires_at = verified.expires_at
    lease.arm()
    return ev.ack(id=command.id, expires_at=int(verified.expires_at))

"""Admission limits: who may open a connection, how many, and how much they may send.

- **Origins**: a browser says which page opened a WebSocket in its ``Origin``
  header. Only exact matches of the allowlist get through (``https://a.example``
  is not ``https://a.example.evil``, ``https://a.example:443``, ``HTTPS://…`` or
  ``null``); a handshake without ``Origin`` is not from a browser, and a
  non-browser client could send any value anyway, so it is let through to the
  token check like any other.
- **Connections**: ``ConnectionGuard`` counts open WebSockets per signed-in user,
  per client address and viewers per room, in this process. ``admit`` and
  ``release`` never await, so concurrent handshakes can't both take the last slot.
- **Request bodies**: ``RequestLimits`` reads every HTTP request body before the
  app sees it, up to a size (413 beyond, checked against ``Content-Length``
  before reading anything) and within a time (408), so no endpoint ever buffers
  an unbounded body or waits on a client that drips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from live.errors import error_response
from protocol import CloseCode, ErrorCode

_ORIGIN = re.compile(
    r"^[a-z][a-z0-9+.-]*://"
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])"
    r"(?::[0-9]{1,5})?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

APP_STATE_SETTINGS = "live_settings"
"""Key of the settings in the lifespan state, which uvicorn hands every protocol."""


def app_setting(app_state: dict[str, Any], name: str) -> Any:
    """A setting of the app a uvicorn protocol instance serves; None before start-up."""
    settings = app_state.get(APP_STATE_SETTINGS)
    return getattr(settings, name, None)


def parse_origins(raw: str) -> frozenset[str] | None:
    """The allowlist of ``LIVE_ALLOWED_ORIGINS``: ``None`` for ``*`` (any origin but
    ``null``), else the listed origins. Raises ``ValueError`` on an entry that is not
    an origin as a browser writes it (lower case, no path, no trailing slash, no
    default port), since such an entry could never match."""
    text = raw.strip()
    if text == "*":
        return None
    found: set[str] = set()
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            continue
        if entry == "null":
            raise ValueError("'null' (sandboxed frames, local files) is never allowed")
        if not _ORIGIN.match(entry):
            raise ValueError(
                f"{entry!r} is not an origin: write scheme://host[:port] in lower case, "
                "without a path or a trailing slash"
            )
        scheme, _, rest = entry.partition("://")
        port = rest.rpartition(":")[2] if not rest.endswith("]") else ""
        if port.isdigit() and _DEFAULT_PORTS.get(scheme) == int(port):
            raise ValueError(f"{entry!r}: browsers never send the default port; drop it")
        found.add(entry)
    return frozenset(found)


def own_origin(base_url: str) -> str | None:
    """The origin a browser sends for pages of ``base_url`` (``LIVE_PUBLIC_URL``)."""
    try:
        parts = urllib.parse.urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def same_host(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the ``Host`` header's host
    and port, the page's scheme's default port standing in for a missing one."""
    try:
        parts = urllib.parse.urlsplit(origin)
        origin_port = parts.port
        served = urllib.parse.urlsplit(f"//{host.strip()}")
        host_port = served.port
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or not served.hostname:
        return False
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        return False
    if origin != origin.lower() or origin.endswith("."):
        return False
    default = _DEFAULT_PORTS[parts.scheme]
    return parts.hostname == served.hostname.lower() and (origin_port or default) == (
        host_port or default
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a handshake is refused: the ``error`` event and the close code to send."""

    reason: str
    """Metric label: ``user``, ``ip`` or ``room``."""
    code: str
    message: str
    close_code: int


@dataclass(slots=True, eq=False)
class Ticket:
    """One admitted connection's slots, handed back with ``ConnectionGuard.release``."""

    user_id: str | None
    ip: str
    room_id: str | None
    """Set when the connection counts as one of the room's viewers."""
    released: bool = False


class ConnectionGuard:
    """Origin allowlist and per-process connection limits (0 means no limit)."""

    def __init__(
        self,
        *,
        origins: frozenset[str] | None,
        per_user: int = 0,
        per_ip: int = 0,
        per_room: int = 0,
    ) -> None:
        self.origins = origins
        self.per_user = per_user
        self.per_ip = per_ip
        self.per_room = per_room
        self.users: Counter[str] = Counter()
        self.ips: Counter[str] = Counter()
        self.rooms: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Any) -> ConnectionGuard:
        return cls(
            origins=settings.origins(),
            per_user=settings.max_connections_per_user,
            per_ip=settings.max_connections_per_ip,
            per_room=settings.max_viewers_per_room,
        )

    def origin_allowed(self, values: Iterable[str], *, host: str | None = None) -> bool:
        """``values``: every ``Origin`` header of the handshake (normally zero or one);
        ``host``: its ``Host`` header. A page of this very host (the overlay and
        watch pages it serves, by whatever name the browser reached it) is always
        allowed: a page of another site can't make its ``Origin`` name our host."""
        found = list(values)
        if not found:
            return True  # not a browser
        if len(found) > 1:
            return False
        origin = found[0]
        if origin == "null":
            return False
        if self.origins is None or origin in self.origins:
            return True
        return host is not None and same_host(origin, host)

    def admit(
        self, *, user_id: str | None, ip: str, room_id: str, viewer: bool
    ) -> Ticket | Refusal:
        if self.per_ip and self.ips[ip] >= self.per_ip:
            return Refusal(
                "ip",
                ErrorCode.RATE_LIMITED,
                f"too many connections from your address (at most {self.per_ip})",
                CloseCode.RATE_LIMITED,
            )
        if user_id is not None and self.per_user and self.users[user_id] >= self.per_user:
            return Refusal(
                "user",
                ErrorCode.RATE_LIMITED,
                f"too many connections for this account (at most {self.per_user})",
                CloseCode.RATE_LIMITED,
            )
        if viewer and self.per_room and self.rooms[room_id] >= self.per_room:
            return Refusal(
                "room",
                ErrorCode.LIMIT_EXCEEDED,
                "this room is full, try again later",
                CloseCode.TRY_AGAIN_LATER,
            )
        self.ips[ip] += 1
        if user_id is not None:
            self.users[user_id] += 1
        if viewer:
            self.rooms[room_id] += 1
        return Ticket(user_id=user_id, ip=ip, room_id=room_id if viewer else None)

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        _decrement(self.ips, ticket.ip)
        if ticket.user_id is not None:
            _decrement(self.users, ticket.user_id)
        if ticket.room_id is not None:
            _decrement(self.rooms, ticket.room_id)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def set_send_buffer(transport: Any, size: int) -> None:
    """Pin the socket's kernel send buffer (``SO_SNDBUF``; Linux doubles it for its
    bookkeeping). Best effort: a transport without a socket is left alone."""
    sock = transport.get_extra_info("socket")
    if sock is None or size <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


Scope = dict[str, Any]
Message = dict[str, Any]


class RequestLimits:
    """ASGI middleware: read each HTTP request body whole before the app runs, at
    most ``max_bytes`` (else 413) within ``timeout`` seconds (else 408)."""

    def __init__(self, app: Any, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > self.max_bytes):
            await self._refuse(scope, receive, send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message: Message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_bytes:
                        await self._refuse(scope, receive, send, size)
                        return
                    chunks.append(body)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            response = error_response(
                "bad_request", f"request body not received within {self.timeout:g} s", status=408
            )
            await response(scope, receive, send)
            return
        first: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            if first:
                return first.pop()
            message: Message = await receive()
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any, size: int) -> None:
        message = f"request body over {self.max_bytes} bytes"
        if size < 0:
            message = "invalid Content-Length"
        response = error_response("too_large" if size >= 0 else "bad_request", message)
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else -1
    return None

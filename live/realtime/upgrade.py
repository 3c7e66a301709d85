"""The WebSocket upgrade checked and answered from the HTTP parser's own reading.

uvicorn hands an upgrade to its WebSocket protocol by writing the request's
headers back out as bytes for the websockets library to parse a second time,
which then checks them and builds its ``101`` answer in its header structures:
most of a handshake's CPU in a reconnect storm (docs/PERFORMANCE.md).
``plain_upgrade`` takes the headers as the HTTP parser read them and says what
the answer needs, but only for a request that websockets would accept as it
stands, in the simplest form of each header; any other request (a header
missing, repeated or malformed, an unusual but valid form) gets ``None`` and
takes websockets' own way, so every refusal and its answer stay websockets'.
``switching_protocols`` is the ``101`` websockets and uvicorn would write for it,
byte for byte.

The rules are websockets' (``websockets.http11.Request.parse`` and
``ServerProtocol.process_request``, version 17): the tests hold the two side
by side.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS
from websockets.utils import accept_key

_TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_TOKEN_RE: Final = re.compile(_TOKEN)
_TOKEN_LIST_RE: Final = re.compile(_TOKEN + rb"(?:[ \t]*,[ \t]*" + _TOKEN + rb")*")
"""Comma-separated tokens, no empty elements: the plainest form websockets parses."""
_VALUE_RE: Final = re.compile(rb"[\x09\x20-\x7e\x80-\xff]*")
_REQUEST_LINE_EXTRA: Final = len(b"GET  HTTP/1.1")
_HEADER_LINE_EXTRA: Final = len(b": ")

_NOT_PLAIN: Final = frozenset({b"transfer-encoding", b"content-length"})
"""Headers websockets checks further before taking the request: the general way."""


@dataclass(frozen=True, slots=True)
class PlainUpgrade:
    """What a plain upgrade request says, as the general way would have read it."""

    target: str
    """The request target, path and query (ASCII), as websockets' ``Request.path``."""
    key: str
    """``Sec-WebSocket-Key``: 16 bytes, base64."""
    subprotocols: list[str]
    """The offered subprotocols, listed as uvicorn lists them in the ASGI scope."""


def plain_upgrade(
    *,
    method: bytes,
    http_version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    extensions_negotiated: bool = False,
) -> PlainUpgrade | None:
    """The upgrade ``headers`` (lower-case names, values without surrounding
    whitespace, as uvicorn's HTTP parser keeps them) ask for, if websockets would
    accept them as they stand; otherwise ``None``. With ``extensions_negotiated``
    (the server offers permessage-deflate), a request that offers extensions is
    left to websockets too."""
    if method != b"GET" or http_version != "1.1" or not target.isascii():
        return None
    if len(target) + _REQUEST_LINE_EXTRA >= MAX_LINE_LENGTH or len(headers) >= MAX_NUM_HEADERS:
        return None
    connection: bytes | None = None
    upgrade: bytes | None = None
    key: bytes | None = None
    version: bytes | None = None
    origins = 0
    subprotocols: list[str] = []
    for name, value in headers:
        if (
            len(name) + len(value) + _HEADER_LINE_EXTRA >= MAX_LINE_LENGTH
            or _TOKEN_RE.fullmatch(name) is None
            or _VALUE_RE.fullmatch(value) is None
            or name in _NOT_PLAIN
        ):
            return None
        if name == b"connection":
            if connection is not None:
                return None
            connection = value
        elif name == b"upgrade":
            if upgrade is not None:
                return None
            upgrade = value
        elif name == b"sec-websocket-key":
            if key is not None:
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                return None
            version = value
        elif name == b"origin":
            origins += 1
            if origins > 1:  # websockets refuses several (400)
                return None
        elif name == b"sec-websocket-protocol":
            if _TOKEN_LIST_RE.fullmatch(value) is None:
                return None
            subprotocols.extend(token.strip() for token in value.decode("latin-1").split(","))
        elif name == b"sec-websocket-extensions" and extensions_negotiated:
            return None
    if connection is None or _TOKEN_LIST_RE.fullmatch(connection) is None:
        return None
    if b"upgrade" not in [token.strip().lower() for token in connection.split(b",")]:
        return None
    if upgrade is None or upgrade.lower() != b"websocket":
        return None
    if version != b"13" or key is None or not _is_key(key):
        return None
    return PlainUpgrade(
        target=target.decode("ascii"), key=key.decode("ascii"), subprotocols=subprotocols
    )


def _is_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


_SWITCHING: Final = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
)


def switching_protocols(
    *, key: str, default_headers: list[tuple[bytes, bytes]], subprotocol: str | None
) -> bytes | None:
    """The ``101`` answer to a plain upgrade, with the server's default headers
    (``server``, ``date``) and the chosen subprotocol, as websockets serializes it
    when uvicorn accepts; ``None`` if one of them is something websockets would
    check further (not ASCII, not a valid header), for the general way to answer."""
    parts = [_SWITCHING, accept_key(key).encode("ascii"), b"\r\n"]
    for name, value in default_headers:
        if not (name.isascii() and value.isascii() and _VALUE_RE.fullmatch(value)):
            return None
        parts += [name.lower(), b": ", value, b"\r\n"]
    if subprotocol:
        if not subprotocol.isascii():
            return None
        encoded = subprotocol.encode("ascii")
        if _VALUE_RE.fullmatch(encoded) is None:
            return None
        parts += [b"Sec-WebSocket-Protocol: ", encoded, b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)

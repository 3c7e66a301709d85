"""Server-to-client WebSocket frames, built as bytes (RFC 6455, section 5.2).

Server frames are not masked, so without compression a frame is the same bytes
for every viewer: the hub builds each tick's frame once and writes it to every
transport instead of framing it again per connection.
"""

from __future__ import annotations

import struct

__all__ = ["MAX_CLOSE_REASON_BYTES", "close_frame", "server_frame"]

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_FIN_CLOSE = 0x88
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")
_CODE = struct.Struct("!H")

# A control frame's payload is at most 125 bytes, two of which are the code.
MAX_CLOSE_REASON_BYTES = 123

# Codes an endpoint may put on the wire: 1004-1006 and 1015 are reserved for
# local use, 1016-2999 are unassigned, 3000-4999 are for libraries and apps.
_SENDABLE_CLOSE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))


def server_frame(payload: bytes, *, binary: bool) -> bytes:
    """A complete, final, unmasked data frame: text (0x1) or binary (0x2)."""
    first = _FIN_BINARY if binary else _FIN_TEXT
    length = len(payload)
    if length < 126:
        header = bytes((first, length))
    elif length < 65_536:
        header = _HEAD16.pack(first, 126, length)
    else:
        header = _HEAD64.pack(first, 127, length)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """An unmasked close frame; ``reason`` is cut to 123 bytes on a character boundary."""
    if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise ValueError(f"close code {code} cannot be sent")
    data = reason.encode("utf-8", "replace")
    if len(data) > MAX_CLOSE_REASON_BYTES:
        data = data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")
    payload = _CODE.pack(code) + data
    return bytes((_FIN_CLOSE, len(payload))) + payload

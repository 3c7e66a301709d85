"""The two wire encodings, chosen per connection by WebSocket subprotocol.

Decoding faces untrusted input: the size is checked before any parsing, and
every failure of the underlying library, whatever its type, becomes a
``MalformedFrame``. Encoding faces the server's own events and runs once per
room tick for all viewers, so it stays a single library call.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import msgpack
import orjson

from protocol.commands import Limits
from protocol.errors import EncodeError, FrameTooLarge, MalformedFrame

__all__ = ["CODECS", "JSON_CODEC", "MSGPACK_CODEC", "Codec", "negotiate"]

_MAX_DETAIL = 120


def _detail(exc: BaseException) -> str:
    """The library's reason, kept short: it goes back to the client."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _plain(obj: object) -> object:
    """Let callers pass read-only mappings and other sequences; both codecs want dict/list."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes | bytearray):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_frame_bytes:
        raise FrameTooLarge(f"frame of {size} bytes is over the limit of {limits.max_frame_bytes}")


class Codec(abc.ABC):
    """One encoding of the protocol, named by its WebSocket subprotocol."""

    __slots__ = ("binary", "subprotocol")

    def __init__(self, *, subprotocol: str, binary: bool) -> None:
        self.subprotocol = subprotocol
        # Whether frames are binary (opcode 0x2) rather than text (0x1).
        self.binary = binary

    @abc.abstractmethod
    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        """One server frame's payload: an array of one or more events."""

    @abc.abstractmethod
    def decode(self, data: bytes | str, *, limits: Limits) -> object:
        """One client frame's payload as plain values; raises only ``ProtocolError``s."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.subprotocol}>"


class JsonCodec(Codec):
    """UTF-8 JSON in text frames: readable, and what browsers speak natively."""

    __slots__ = ()

    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        if not events:
            raise EncodeError("a frame carries at least one event")
        try:
            return orjson.dumps(events, default=_plain)
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"cannot encode events as JSON: {_detail(exc)}") from exc

    def decode(self, data: bytes | str, *, limits: Limits) -> object:
        if isinstance(data, str):
            # One character is at least one byte, so a long string is over without encoding it.
            size = len(data)
            if not data.isascii() and size <= limits.max_frame_bytes:
                size = len(data.encode("utf-8", "surrogatepass"))
        else:
            size = len(data)
        _check_size(size, limits)
        try:
            # orjson rejects NaN/Infinity, invalid UTF-8, lone surrogates and
            # nesting deeper than 1024, all with JSONDecodeError.
            return orjson.loads(data)
        except Exception as exc:
            raise MalformedFrame(f"invalid JSON: {_detail(exc)}") from None


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"extension type {code} is not allowed")


# msgpack raises some errors without a message; say what they mean.
_MSGPACK_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (msgpack.StackError, "nested too deeply"),
    (msgpack.ExtraData, "trailing data after the value"),
    (msgpack.FormatError, "invalid type byte"),
)


def _msgpack_detail(exc: Exception) -> str:
    for cls, reason in _MSGPACK_REASONS:
        if isinstance(exc, cls):
            return reason
    return _detail(exc)


class MsgpackCodec(Codec):
    """MessagePack in binary frames: smaller and cheaper to parse on mobile clients."""

    __slots__ = ()

    def encode(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        if not events:
            raise EncodeError("a frame carries at least one event")
        try:
            packed: bytes = msgpack.packb(events, use_bin_type=True, default=_plain)
        except (TypeError, ValueError, OverflowError) as exc:
            raise EncodeError(f"cannot encode events as MessagePack: {_detail(exc)}") from exc
        return packed

    def decode(self, data: bytes | str, *, limits: Limits) -> object:
        if isinstance(data, str):
            raise MalformedFrame(f"{self.subprotocol} expects binary frames, got a text frame")
        size = len(data)
        _check_size(size, limits)
        try:
            # No container or string can be longer than the frame itself; ext
            # types (timestamps included, which bypass ext_hook) are refused by
            # length and by hook; the C unpacker's fixed stack bounds nesting.
            return msgpack.unpackb(
                data,
                raw=False,
                strict_map_key=True,
                use_list=True,
                ext_hook=_reject_ext,
                max_str_len=size,
                max_bin_len=size,
                max_array_len=size,
                max_map_len=size // 2,
                max_ext_len=0,
            )
        except Exception as exc:
            raise MalformedFrame(f"invalid MessagePack: {_msgpack_detail(exc)}") from None


JSON_CODEC: Codec = JsonCodec(subprotocol="gift.v1.json", binary=False)
MSGPACK_CODEC: Codec = MsgpackCodec(subprotocol="gift.v1.msgpack", binary=True)

CODECS: dict[str, Codec] = {codec.subprotocol: codec for codec in (JSON_CODEC, MSGPACK_CODEC)}


def negotiate(offered: Sequence[str]) -> tuple[Codec, str | None]:
    """Pick the client's most preferred subprotocol we speak; JSON when there is none.

    Returns the codec and the subprotocol to echo in the handshake (``None``: echo none).
    """
    for name in offered:
        codec = CODECS.get(name.strip())
        if codec is not None:
            return codec, codec.subprotocol
    return JSON_CODEC, None

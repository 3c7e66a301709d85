"""A lean WebSocket client for crowds: one ``asyncio.Protocol`` per connection.

A load generator has to read many times more frames than one server writes per
core, so the client does the least work a correct client can do:

- the handshake and the framing are written out here (RFC 6455): no per-frame
  objects, no task per connection, no copy of a frame that arrives whole;
- most viewers never decode a frame: the server's JSON is compact, so room
  events are counted with ``bytes.count(b'"seq":')``, gift events with
  ``bytes.count(b'"type":"gift"')`` (less the combo-end markers, ``count`` 0:
  they deliver no gift), and the first and last ``seq`` of a frame are read
  where they stand, which is all a gap check needs;
- *probe* viewers (a sample spread across the crowd) and the per-connection
  frames of gifters (``welcome``, ``ack``, ``error``) are decoded in full, to
  time each gift from the gifter's send to the viewer's receipt.

Pings are answered, close frames are answered and counted by code. Everything a
connection sees goes into its worker's ``Tally``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import struct
import time
from collections.abc import Callable
from typing import Any

import msgpack
import orjson

from loadtest.stats import Counters, Histogram

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DIGITS = re.compile(rb"\d+")
_SEQ = b'"seq":'
_GIFT = b'"type":"gift"'
_COMBO_END = b'"count":0,"diamonds":0,'
"""What only a combo's end marker has: a ``gift`` event that adds nothing (docs/PROTOCOL.md,
combos), so it is not a gift delivery and its ``tx`` (the streak's last gift's) is not timed."""
_WELCOME = b'[{"type":"welcome"'
_ACK = b'[{"type":"ack"'
_ERROR = b'[{"type":"error"'
_MAX_HEADER_BYTES = 16_384

clock = time.perf_counter
"""The clock of every latency: system-wide monotonic, so samples taken in the
worker processes of one machine compare."""


class Tally:
    """Everything the connections of one worker process saw (one event loop: no locks).

    Hot counters are plain attributes; rare ones go to ``counters``."""

    __slots__ = (
        "ack_latency",
        "bytes",
        "counters",
        "frames",
        "gaps",
        "gift_events",
        "gift_latency",
        "handshake_latency",
        "open",
        "room_events",
        "seen_early",
        "tx_sent",
    )

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self.room_events = 0
        self.gift_events = 0
        self.gaps = 0
        self.open = 0
        self.counters = Counters()
        self.gift_latency = Histogram()
        self.ack_latency = Histogram()
        self.handshake_latency = Histogram()
        self.tx_sent: dict[str, float] = {}
        """tx -> when its gifter sent it (gifts of this worker's gifters)."""
        self.seen_early: dict[str, list[tuple[float, float | None]]] = {}
        """tx -> receipts by probes before the gifter's ack told us the tx: when, and
        for a resumed probe when it connected (see ``gift_seen``)."""

    def gift_seen(self, tx: str, now: float, *, resumed_at: float | None = None) -> None:
        """A probe received gift ``tx`` at ``now``. ``resumed_at``: the probe's
        connection resumed, and started then; a gift sent before it was missed while
        away and caught up on, so it is counted (``caught_up``), not timed."""
        sent = self.tx_sent.get(tx)
        if sent is not None:
            self._timed(now, sent, resumed_at)
        else:
            self.seen_early.setdefault(tx, []).append((now, resumed_at))

    def gift_acked(self, tx: str, sent: float) -> None:
        self.tx_sent[tx] = sent
        early = self.seen_early.pop(tx, None)
        if early:
            for seen, resumed_at in early:
                self._timed(seen, sent, resumed_at)

    def _timed(self, seen: float, sent: float, resumed_at: float | None) -> None:
        if resumed_at is not None and sent < resumed_at:
            self.counters["caught_up"] += 1
        else:
            self.gift_latency.add_seconds(seen - sent)

    def prune(self, older_than: float) -> None:
        """Forget gifts sent before ``older_than`` (their late receipts no longer count)
        and early receipts of gifts some other worker sent."""
        if len(self.tx_sent) > 50_000:
            self.tx_sent = {tx: t for tx, t in self.tx_sent.items() if t >= older_than}
        if self.seen_early:
            self.seen_early = {
                tx: times for tx, times in self.seen_early.items() if times[0][0] >= older_than
            }

    def take(self) -> dict[str, Any]:
        """The counts since the last call, as plain values, and reset them."""
        counters = Counters(self.counters)
        counters["frames"] += self.frames
        counters["bytes"] += self.bytes
        counters["room_events"] += self.room_events
        counters["gift_events"] += self.gift_events
        counters["gaps"] += self.gaps
        out = {
            "counters": dict(counters),
            "gift_latency": self.gift_latency.to_dict(),
            "ack_latency": self.ack_latency.to_dict(),
            "handshake_latency": self.handshake_latency.to_dict(),
            "open": self.open,
            "cpu": time.process_time(),
        }
        self.frames = self.bytes = self.room_events = self.gift_events = self.gaps = 0
        self.counters = Counters()
        self.gift_latency = Histogram()
        self.ack_latency = Histogram()
        self.handshake_latency = Histogram()
        return out


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 section 5.3)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = bytes((first, 0x80 | n))
    elif n < 65_536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    return header + key + _mask(payload, key)


def accept_key(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())


def _int_at(data: bytes, pos: int) -> int:
    match = _DIGITS.match(data, pos)
    return int(match.group()) if match else -1


class Peer(asyncio.Protocol):
    """One WebSocket connection to ``path``.

    ``decode``: decode every frame (probes); otherwise only per-connection frames.
    ``on_reply(event, now)`` gets every ``ack`` and ``error`` event.
    """

    def __init__(
        self,
        tally: Tally,
        *,
        host: str,
        path: str,
        token: str | None = None,
        decode: bool = False,
        msgpack_codec: bool = False,
        on_reply: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        self.tally = tally
        self.host = host
        self.path = path
        self.token = token
        self.decode = decode or msgpack_codec
        self.msgpack = msgpack_codec
        self.on_reply = on_reply
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buffer = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.last_seq: int | None = None
        self.started = clock()
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.done: asyncio.Future[int] = loop.create_future()
        """Resolves with the close code when the connection is over."""
        self.close_code: int | None = None
        self.close_sent = False
        self.resumed: bool | None = None
        self.on_gift: Callable[[str], None] | None = None
        """Called with the ``tx`` of every gift event (decoding peers only)."""

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        write = transport.write  # type: ignore[attr-defined]
        sub = "gift.v1.msgpack" if self.msgpack else "gift.v1.json"
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {sub}",
        ]
        if self.token:
            lines.append(f"Authorization: Bearer {self.token}")
        write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        tally = self.tally
        tally.bytes += len(data)
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        pos = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > _MAX_HEADER_BYTES:
                    self._fail("handshake.too_long")
                else:
                    self.buffer = data
                return
            head = data[:end]
            status = head.split(b"\r\n", 1)[0].split(b" ")
            if len(status) < 2 or status[1] != b"101":
                code = status[1].decode(errors="replace") if len(status) > 1 else "bad"
                self._fail(f"handshake.http_{code}")
                return
            if accept_key(self.key) not in head:
                self._fail("handshake.bad_accept")
                return
            self.upgraded = True
            pos = end + 4
        n = len(data)
        while n - pos >= 2:
            b1 = data[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = data[pos] & 0x0F
            if opcode == 1 or opcode == 2:
                tally.frames += 1
                if self.decode:
                    self._decoded(data, start, end, opcode == 2)
                else:
                    self._counted(data, start, end)
            elif opcode == 8:
                self._closed_by_peer(data[start:end])
                return
            elif opcode == 9:
                self._send(0xA, data[start:end])
            pos = end
        if pos < n:
            self.buffer = data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upgraded and self.close_code is None and not self.close_sent:
            self.tally.counters["closes.1006"] += 1
            self.close_code = 1006
        if self.upgraded and self.welcomed.done():
            self.tally.open -= 1
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("connection lost before welcome"))
            self.welcomed.exception()
        if not self.done.done():
            self.done.set_result(self.close_code if self.close_code is not None else 1006)

    # -- frames ------------------------------------------------------------------------------
    def _counted(self, data: bytes, start: int, end: int) -> None:
        """A frame of a viewer that doesn't decode: count it, check ``seq`` continuity."""
        n = data.count(_SEQ, start, end)
        if data.startswith(_WELCOME, start):
            self._welcome(orjson.loads(data[start:end])[0])
            return
        if n:
            tally = self.tally
            tally.room_events += n
            tally.gift_events += data.count(_GIFT, start, end) - data.count(_COMBO_END, start, end)
            first = _int_at(data, data.find(_SEQ, start, end) + 6)
            last = first if n == 1 else _int_at(data, data.rfind(_SEQ, start, end) + 6)
            previous = self.last_seq
            if previous is not None and (first != previous + 1 or last != first + n - 1):
                tally.gaps += 1
            self.last_seq = last
        elif data.startswith(_ACK, start) or data.startswith(_ERROR, start):
            now = clock()
            for event in orjson.loads(data[start:end]):
                self._reply(event, now)

    def _decoded(self, data: bytes, start: int, end: int, binary: bool) -> None:
        now = clock()
        events = msgpack.unpackb(data[start:end]) if binary else orjson.loads(data[start:end])
        tally = self.tally
        for event in events:
            kind = event.get("type")
            seq = event.get("seq")
            if kind == "welcome":
                self._welcome(event)
                continue
            if seq is not None:
                tally.room_events += 1
                if self.last_seq is not None and seq != self.last_seq + 1:
                    tally.gaps += 1
                self.last_seq = seq
                if kind == "gift" and event.get("count") != 0:  # not a combo's end marker
                    tally.gift_events += 1
                    tally.gift_seen(
                        event["tx"], now, resumed_at=self.started if self.resumed else None
                    )
                    if self.on_gift is not None:
                        self.on_gift(event["tx"])
            elif kind in ("ack", "error"):
                self._reply(event, now)

    def _welcome(self, event: dict[str, Any]) -> None:
        resumed = bool(event.get("resumed"))
        seq = event.get("seq")
        if not resumed or self.last_seq is None:
            self.last_seq = seq if isinstance(seq, int) else None
        self.resumed = resumed
        if not self.welcomed.done():
            self.tally.open += 1
            self.tally.handshake_latency.add_seconds(clock() - self.started)
            self.welcomed.set_result(event)

    def _reply(self, event: dict[str, Any], now: float) -> None:
        if event.get("type") == "error":
            self.tally.counters[f"errors.{event.get('code')}"] += 1
            if event.get("id") is None and not self.welcomed.done():
                self.welcomed.set_exception(ConnectionError(f"refused: {event.get('code')}"))
                self.welcomed.exception()
        if self.on_reply is not None:
            self.on_reply(event, now)

    def _closed_by_peer(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        self.close_code = code
        self.tally.counters[f"closes.{code}"] += 1
        if not self.close_sent:
            self._send(0x8, payload[:2])
            self.close_sent = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, what: str) -> None:
        self.tally.counters[what] += 1
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(what))
            self.welcomed.exception()
        if self.transport is not None:
            self.transport.abort()

    # -- sending ------------------------------------------------------------------------------
    def _send(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(client_frame(opcode, payload))

    def send_command(self, command: dict[str, Any]) -> None:
        if self.msgpack:
            self._send(0x2, msgpack.packb(command))
        else:
            self._send(0x1, orjson.dumps(command))

    @property
    def is_open(self) -> bool:
        t = self.transport
        return self.upgraded and self.close_code is None and t is not None and not t.is_closing()

    def close(self, code: int = 1000) -> None:
        """Send a close frame and end the connection (without waiting for the echo)."""
        if self.transport is None:
            return
        if not self.close_sent and self.upgraded and not self.transport.is_closing():
            self._send(0x8, code.to_bytes(2, "big"))
            self.close_sent = True
        self.transport.close()

    def drop(self) -> None:
        """Vanish without a close frame, like a phone losing its network."""
        self.close_sent = True
        if self.transport is not None:
            self.transport.abort()

"""How bytes reach a viewer: the frame write path owned by the hub.

Server-to-client frames are unmasked, so one tick's frame is byte-identical for
every viewer using the same codec: the hub builds it once and hands the same
``bytes`` to every connection's sink. Two sinks:

- ``RawSink`` writes the pre-built frame straight to the connection's transport.
  It needs ``LiveWebSocketProtocol``, the uvicorn WebSocket protocol class that
  ``live serve`` installs: it adds a ``live.raw_websocket`` ASGI scope extension.
  No task, no await, no copy per viewer.
- ``AsgiSink`` is the portable fallback for any ASGI server: a bounded queue per
  connection drained by one writer task with ``websocket.send``.

Both report how many bytes are waiting, which is how the hub spots a viewer that
stopped reading (close 4008) without ever awaiting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from protocol import close_frame, server_frame

log = logging.getLogger("live.transport")

RAW_EXTENSION = "live.raw_websocket"


class Outgoing:
    """One encoded payload, shared by every connection that uses its codec.

    The full WebSocket frame is built lazily, once, the first time a raw sink needs it.
    """

    __slots__ = ("_frame", "binary", "payload")

    def __init__(self, payload: bytes, *, binary: bool) -> None:
        self.payload = payload
        self.binary = binary
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = server_frame(self.payload, binary=self.binary)
        return self._frame


class Sink(Protocol):
    def write(self, out: Outgoing) -> None:
        """Queue ``out`` for sending; never blocks, never awaits."""
        ...

    def buffered(self) -> int:
        """Bytes accepted but not yet handed to the kernel."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Send a close frame (after what is queued) and end the connection soon."""
        ...

    @property
    def closed(self) -> bool: ...


class RawWebSocket:
    """The handle ``LiveWebSocketProtocol`` puts in the scope for its connection."""

    def __init__(self, proto: Any) -> None:
        self._proto = proto

    @property
    def transport(self) -> asyncio.Transport:
        transport: asyncio.Transport = self._proto.transport
        return transport

    @property
    def writable(self) -> bool:
        proto = self._proto
        return bool(
            proto.handshake_complete and not proto.close_sent and not proto.transport.is_closing()
        )

    def hand_over(
        self, on_message: Callable[[str | bytes], None], on_disconnect: Callable[[int], None]
    ) -> None:
        """Deliver the client's messages and the disconnect to these callbacks from
        now on; the connection then outlives the ASGI call (see ``uvicorn_ws``)."""
        self._proto.hand_over(on_message, on_disconnect)

    def pause_reading(self) -> None:
        """Read no more frames from the client until ``resume_reading``."""
        self._proto.pause_reading_frames()

    def resume_reading(self) -> None:
        self._proto.resume_reading_frames()

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` among the server's tasks: a graceful shutdown waits for it."""
        tasks: set[asyncio.Task[Any]] = self._proto.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def close(self, code: int, reason: str, *, grace_seconds: float) -> None:
        """Write a close frame behind whatever is queued and tell the app the
        connection is over; a peer that never reads is aborted after the grace."""
        proto = self._proto
        if proto.close_sent or proto.transport.is_closing():
            return
        try:
            proto.conn.send_close(code, reason)
            proto.transport.write(b"".join(proto.conn.data_to_send()))
        except Exception:  # the protocol already considers itself closed
            proto.transport.write(close_frame(code, reason))
        proto.close_sent = True
        proto.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if proto.read_paused:  # the app reads no more: let the peer's close frame in
            proto.read_paused = False
            proto.transport.resume_reading()
        # As uvicorn's own close: wait for the peer's close frame before closing the
        # TCP connection (closing first makes its kernel answer late frames with a
        # reset, which can destroy our close frame and error event unread), and
        # drop it after the grace if it never comes.
        loop = asyncio.get_running_loop()
        proto.close_timer = loop.call_later(grace_seconds, _abort_if_open, proto)


def _abort_if_open(proto: Any) -> None:
    """Drop the connection unless it is gone already. Not ``transport.is_closing()``:
    once the app returns, uvicorn calls ``transport.close()``, which waits for the
    buffer to drain, and a peer that stopped reading never drains it."""
    if not proto.disconnected:
        proto.transport.abort()


class RawSink:
    __slots__ = ("_closed", "_grace", "_proto", "_raw", "_transport")

    def __init__(self, raw: RawWebSocket, *, grace_seconds: float = 5.0) -> None:
        self._raw = raw
        # The fan-out calls write() once per viewer per tick: keep what it needs at
        # hand (a sink exists only after the handshake, so only the close matters).
        self._proto = raw._proto
        self._transport = raw.transport
        self._closed = False
        self._grace = grace_seconds

    def write(self, out: Outgoing) -> None:
        if not (self._closed or self._proto.close_sent or self._transport.is_closing()):
            self._transport.write(out.frame)

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self, code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._raw.close(code, reason, grace_seconds=self._grace)

    @property
    def closed(self) -> bool:
        return self._closed or not self._raw.writable


SendFn = Callable[[dict[str, Any]], Awaitable[None]]


class AsgiSink:
    """A bounded per-connection queue drained by one writer task (portable path)."""

    def __init__(self, send: SendFn, *, limit_bytes: int) -> None:
        self._send = send
        self._queue: deque[Outgoing] = deque()
        self._queued_bytes = 0
        self._limit = limit_bytes
        self._wakeup = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    def write(self, out: Outgoing) -> None:
        if self._closed or self._close is not None:
            return
        self._queue.append(out)
        self._queued_bytes += len(out.payload)
        self._wakeup.set()

    def buffered(self) -> int:
        return self._queued_bytes

    def close(self, code: int, reason: str) -> None:
        if self._close is None and not self._closed:
            self._close = (code, reason)
            if self._queued_bytes > self._limit:
                self._queue.clear()  # a slow viewer gets the close, not the backlog
                self._queued_bytes = 0
            self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed or self._close is not None

    async def _run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    out = self._queue.popleft()
                    self._queued_bytes -= len(out.payload)
                    if out.binary:
                        await self._send({"type": "websocket.send", "bytes": out.payload})
                    else:
                        await self._send({"type": "websocket.send", "text": out.payload.decode()})
                if self._close is not None:
                    code, reason = self._close
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
                    return
        except Exception:  # the client went away: nothing more to send
            log.debug("asgi sink stopped", exc_info=True)
        finally:
            self._closed = True

    async def finish(self, *, timeout: float) -> None:
        """Let a requested close go out (bounded by ``timeout``), then stop."""
        if self._close is not None and not self._task.done():
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


def live_websocket_protocol() -> type[Any] | None:
    """The uvicorn WebSocket protocol class with the raw write extension, or None if
    this uvicorn has no sans-I/O websockets implementation (then ASGI sinks are used)."""
    try:
        from live.uvicorn_ws import LiveWebSocketProtocol
    except ImportError:  # pragma: no cover - depends on the installed uvicorn
        return None
    return LiveWebSocketProtocol

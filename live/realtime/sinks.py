"""How bytes reach a viewer: the frame write path owned by the hub.

Server-to-client frames are unmasked, so one tick's frame is byte-identical for
every viewer using the same codec: the hub builds it once and hands the same
``bytes`` to every connection's sink. Two sinks:

- ``RawSink`` (in ``live.realtime.uvicorn_glue``) writes the pre-built frame
  straight to the connection's transport. It needs ``LiveWebSocketProtocol``, the
  uvicorn WebSocket protocol class that ``live serve`` installs: it adds a
  ``live.raw_websocket`` ASGI scope extension. No task, no await, no copy per viewer.
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

from protocol import server_frame

log = logging.getLogger("live.transport")

RAW_EXTENSION = "live.raw_websocket"
"""The ASGI scope extension under which ``live serve`` hands the endpoint a raw socket."""


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

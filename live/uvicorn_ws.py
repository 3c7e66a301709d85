"""uvicorn's sans-I/O WebSocket protocol, plus the hub's raw frame write path, the
handshake timeout, and dropping a peer that neither answers pings nor reads.

Module-level (not built in a function) so uvicorn can pickle it by reference
when it starts worker processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from live.limits import app_setting
from live.transport import RAW_EXTENSION, RawWebSocket

DROP_GRACE_SECONDS = 5.0
"""After a keepalive timeout, how long the close frame may take to leave before
the connection is dropped (a peer that stopped reading never takes it)."""


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    _handshake_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # The HTTP protocol hands the connection over once the upgrade request is
        # in; from here the app has the handshake timeout to accept or refuse it.
        timeout = app_setting(self.app_state, "handshake_timeout")
        if timeout:
            self._handshake_timer = self.loop.call_later(timeout, self._handshake_expired)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope["extensions"][RAW_EXTENSION] = RawWebSocket(self)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.handshake_complete and not self.transport.is_closing():
            self.logger.info("WebSocket handshake timed out")
            self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.loop.call_later(DROP_GRACE_SECONDS, self._drop_if_still_open)

    def _drop_if_still_open(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def handle_parser_exception(self) -> None:
        """A frame broke the protocol (1009 too large, 1007 invalid UTF-8, ...).

        uvicorn closes the socket at once, and the client's frames still on their
        way then make our kernel answer with a reset, which can wipe out the close
        frame before the client reads it (it sees 1006 and may retry in a loop).
        Instead: send the close frame and a FIN, keep reading (the broken parser
        discards it) until the client closes too, or drop it after the grace."""
        if self.close_sent:
            return
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(DROP_GRACE_SECONDS, self._drop_if_still_open)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        super().connection_lost(exc)

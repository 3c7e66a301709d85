"""uvicorn's sans-I/O WebSocket protocol, plus the hub's raw frame write path, the
handshake timeout, dropping a peer that neither answers pings nor reads, and the
hand-over of an accepted connection to the app (no ASGI task per idle viewer).

Module-level (not built in a function) so uvicorn can pickle it by reference
when it starts worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from live.limits import app_setting
from live.transport import RAW_EXTENSION, RawWebSocket

DROP_GRACE_SECONDS = 5.0
"""After a keepalive timeout, how long the close frame may take to leave before
the connection is dropped (a peer that stopped reading never takes it)."""


class Handoff:
    """Takes the place of the protocol's ASGI receive queue once the app handed the
    connection over (``LiveWebSocketProtocol.hand_over``): messages go to
    ``on_message`` as they arrive, the first disconnect to ``on_disconnect``."""

    __slots__ = ("done", "on_disconnect", "on_message")

    def __init__(
        self, on_message: Callable[[str | bytes], None], on_disconnect: Callable[[int], None]
    ) -> None:
        self.on_message = on_message
        self.on_disconnect = on_disconnect
        self.done = False

    def put_nowait(self, message: dict[str, Any]) -> None:
        """What the protocol calls to queue an ASGI event for the app."""
        kind = message["type"]
        if kind == "websocket.receive":
            if not self.done:
                data = message.get("bytes")
                self.on_message(data if data is not None else message.get("text", ""))
        elif kind == "websocket.disconnect" and not self.done:
            self.done = True
            self.on_disconnect(int(message.get("code", 1005)))

    def empty(self) -> bool:
        return True


_RELEASED_SCOPE: dict[str, Any] = {"type": "websocket", "extensions": {}}
"""The scope of a handed-over connection: the app is done with the real one."""


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    _handshake_timer: asyncio.TimerHandle | None = None
    handoff: Handoff | None = None
    """Set once the app handed the connection over: it outlives the ASGI call."""

    def hand_over(
        self, on_message: Callable[[str | bytes], None], on_disconnect: Callable[[int], None]
    ) -> None:
        """From now on, deliver this connection's messages and its disconnect to the
        callbacks instead of the ASGI ``receive`` queue, and keep the connection open
        when the ASGI call returns: an idle viewer then costs no task, no coroutine
        stack through the middleware, no ``WebSocket`` object. What was queued for
        the app already is delivered first, in order."""
        if self._handshake_timer is not None:  # the handshake is long done
            self._handshake_timer.cancel()
            self._handshake_timer = None
        queued = []
        while not self.queue.empty():
            queued.append(self.queue.get_nowait())
        handoff = self.handoff = Handoff(on_message, on_disconnect)
        self.queue = handoff  # type: ignore[assignment]
        # From here the app pauses the reads while it is busy: first undo uvicorn's
        # pause (it waits for a receive() that will not come), then hand over.
        self.resume_reading_frames()
        for message in queued:
            handoff.put_nowait(dict(message))

    def pause_reading_frames(self) -> None:
        """The app has a command in hand: read no more until it is answered."""
        if not self.read_paused and not self.close_sent:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading_frames(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        if self.handoff is None:
            super().send_receive_event_to_app()
            return
        # As uvicorn's, without pausing the reads after each message (nothing
        # resumes them: there is no ASGI receive); the app pauses them while busy.
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent or self.handoff.done:
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.logger.info("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            self.handoff.on_message(text)
        else:
            self.handoff.on_message(data)

    async def run_asgi(self) -> None:
        """uvicorn's, except that a handed-over connection stays open (and lets go of
        its scope) when the app returns."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.handoff is not None and not self.handoff.done:
            # the handshake's request, response and scope are of no more use
            self.scope = _RELEASED_SCOPE  # type: ignore[assignment]
            self.request = self.response = None  # type: ignore[assignment]
            return
        if self.close_timer is None:
            self.transport.close()

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

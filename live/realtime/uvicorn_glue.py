"""All of the server's coupling to uvicorn's internals, in one place.

``live serve`` runs uvicorn with the two protocol classes defined here; any
other ASGI server runs the same app without them (the WebSocket endpoint then
falls back to ``live.realtime.sinks.AsgiSink`` and reads commands itself).

What it touches in uvicorn, and why:

- ``WebSocketsSansIOProtocol`` (``uvicorn.protocols.websockets.websockets_sansio_impl``),
  subclassed as ``LiveWebSocketProtocol``:
  - ``run_asgi`` is overridden (as uvicorn's, calling ``app``, ``receive``, ``send``
    and ``send_500_response``) so that a connection handed over to the app stays
    open when the ASGI call returns (an idle viewer keeps no task), letting go of
    its ``scope``, ``request`` and ``response``;
  - ``queue`` (the ASGI receive queue) is swapped for a ``Handoff`` that calls the
    app back, and ``send_receive_event_to_app`` reads ``frames`` and
    ``curr_msg_data_type`` to deliver a message without pausing the reads;
  - ``transport``, ``conn`` (the sans-I/O connection), ``close_sent``,
    ``close_timer``, ``read_paused``, ``handshake_complete``, ``disconnected`` and
    ``tasks`` are read and set by ``RawWebSocket``/``RawSink`` to write pre-built
    frames straight to the socket, close it, pause its reads, and let a graceful
    shutdown wait for a command in progress;
  - ``start_keepalive``, ``stop_keepalive`` and ``handle_pong`` are replaced to run
    the keepalive from one clock per process (``live.realtime.deadlines``), reading
    ``ping_interval``, ``ping_timeout`` and ``conn.send_ping`` and setting
    ``pending_ping_payload``, ``ping_sent_at`` and ``last_ping_rtt`` as uvicorn's do;
  - ``connection_made``, ``handle_connect`` (reads ``response.status_code``, adds
    to ``scope["extensions"]``), ``keepalive_timeout``,
    ``handle_parser_exception`` and ``connection_lost`` are extended for the
    handshake deadline, the raw scope extension, dropping a peer that neither
    answers pings nor reads, and a close frame that reaches the client;
  - ``take_plain_upgrade`` does what ``handle_connect`` does for a request the
    HTTP protocol already read (``live.realtime.upgrade``): it sets
    ``conn.parser`` to the frame parser (``websockets.protocol.Protocol.parse``),
    ``conn.accept_called``, ``handshake_initiated``, ``scope``, ``request`` and
    ``response``, and starts ``run_asgi`` as uvicorn does (``queue``,
    ``on_task_complete``, ``tasks``); ``send`` is extended to write that
    request's 101 itself on ``websocket.accept`` (as uvicorn's ``send`` and
    websockets' ``send_response`` do: ``writable``, ``default_headers``,
    ``conn.state``, ``conn.data_to_send``, ``start_keepalive``, the same log
    lines), and otherwise hands over to uvicorn's with the ``response`` websockets
    would have made.
- ``HttpToolsProtocol`` (``uvicorn.protocols.http.httptools_impl``), subclassed as
  ``LiveHttpProtocol``: ``connection_made``, ``on_message_begin``,
  ``on_headers_complete`` and ``connection_lost`` put a deadline on request
  headers (slowloris); ``handle_websocket_upgrade`` hands a plain upgrade over
  (reading ``parser``, ``url``, ``headers``, ``ws_protocol_class``, ``config``,
  ``server_state``, ``connections``) instead of writing its headers out for
  websockets to parse again.
- Both read ``app_state`` (the lifespan state, holding the settings) and ``loop``.
- ``uvicorn.protocols.utils.ClientDisconnected``, as ``run_asgi`` catches it.

These are not uvicorn's public API, so pyproject.toml pins uvicorn to the minor
versions the tests pass with; tests/live/realtime/test_upgrade.py holds the plain
upgrade's rules and answer against the installed websockets.

Module-level (not built in a function) so uvicorn can pickle the classes by
reference when it starts worker processes.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.protocol import OPEN, Protocol

from live.limits import app_setting
from live.realtime.deadlines import ConnectionClock, connection_clock
from live.realtime.sinks import RAW_EXTENSION, Outgoing
from live.realtime.upgrade import PlainUpgrade, plain_upgrade, switching_protocols
from protocol import close_frame

DROP_GRACE_SECONDS = 5.0
"""After a keepalive timeout, how long the close frame may take to leave before
the connection is dropped (a peer that stopped reading never takes it)."""


def handshake_clock(loop: asyncio.AbstractEventLoop, timeout: float) -> ConnectionClock:
    """The process's clock for the handshake's deadlines: those of the request's
    headers and of the upgrade's acceptance, ``LIVE_HANDSHAKE_TIMEOUT`` each."""
    return connection_clock(loop, "handshake", shortest=timeout)


def _ignore(_: object) -> None:
    """What a released handoff calls instead of the app (nothing reaches it then)."""


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

    def release(self) -> None:
        """Forget the callbacks once the connection is gone. They lead to the app's
        state for the connection, which leads back to the protocol: kept, the
        connection's objects would wait for the garbage collector's rare full
        pass instead of going when their last reference does."""
        self.done = True
        self.on_message = self.on_disconnect = _ignore


_RELEASED_SCOPE: dict[str, Any] = {"type": "websocket", "extensions": {}}
"""The scope of a handed-over connection: the app is done with the real one."""


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    _handshake_clock: ConnectionClock | None = None
    """Set while the handshake's deadline runs (``live.realtime.deadlines``)."""
    _plain: PlainUpgrade | None = None
    """Set when ``LiveHttpProtocol`` handed over a plain upgrade it had read and
    checked (``take_plain_upgrade``): the 101 is then written without websockets'
    header structures."""
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
        self._cancel_handshake_deadline()  # the handshake is long done
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
            clock = self._handshake_clock = handshake_clock(self.loop, timeout)
            clock.schedule(self, after=timeout, call=self._handshake_expired)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope["extensions"][RAW_EXTENSION] = RawWebSocket(self)

    def take_plain_upgrade(self, plain: PlainUpgrade, headers: list[tuple[bytes, bytes]]) -> None:
        """``handle_connect`` for an upgrade the HTTP protocol read and found plain
        (``live.realtime.upgrade``): the same scope and ASGI call, from the HTTP
        parser's headers instead of websockets parsing them again, and no
        websockets response built until one is needed (``send``)."""
        conn = self.conn
        # The request is read: from here the connection's bytes are frames (as
        # websockets' own parser goes on after a request).
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        conn.accept_called = True  # an answer other than 101 is a refusal
        self._plain = plain
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        self.handshake_initiated = True
        raw_path, _, query_string = plain.target.partition("?")
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": headers,
            "subprotocols": plain.subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, RAW_EXTENSION: RawWebSocket(self)},
        }
        self.scope = scope  # type: ignore[assignment]
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: Any) -> None:
        """uvicorn's; the acceptance of a plain upgrade writes its 101 straight out."""
        plain = self._plain
        if (
            plain is not None
            and message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
        ):
            answer = None
            if not message.get("headers"):
                answer = switching_protocols(
                    key=plain.key,
                    default_headers=self.default_headers,
                    subprotocol=message.get("subprotocol"),
                )
            if answer is not None:
                await self.writable.wait()
                if self.disconnected:
                    raise ClientDisconnected()
                self._accept_plain(answer)
                return
            if getattr(self, "response", None) is None:  # the general way needs websockets' own
                self.response = self.conn.accept(self._plain_request(plain))
        await super().send(message)

    def _accept_plain(self, answer: bytes) -> None:
        """What uvicorn's ``send`` does on ``websocket.accept``, and websockets'
        ``send_response`` on a 101, with the answer built already."""
        self.logger.info(
            '%s - "WebSocket %s" [accepted]',
            get_client_addr(self.scope),
            get_path_with_query_string(self.scope),
        )
        if not self.transport.is_closing():
            self.handshake_complete = True
            conn = self.conn
            conn.state = OPEN
            conn.logger.info("connection open")
            self.transport.write(b"".join([*conn.data_to_send(), answer]))
            self.start_keepalive()

    def _plain_request(self, plain: PlainUpgrade) -> Request:
        """The request as websockets would have parsed it (values ISO-8859-1)."""
        headers = Headers(
            [
                (name.decode("ascii"), value.decode("latin-1"))
                for name, value in self.scope["headers"]
            ]
        )
        return Request(plain.target, headers)

    def _cancel_handshake_deadline(self) -> None:
        if self._handshake_clock is not None:
            self._handshake_clock.discard(self)
            self._handshake_clock = None

    def _handshake_expired(self) -> None:
        self._handshake_clock = None
        if not self.handshake_complete and not self.transport.is_closing():
            self.logger.info("WebSocket handshake timed out")
            self.transport.abort()

    # -- keepalive: one clock per process (live.realtime.deadlines) -----------------
    _keepalive: ConnectionClock | None = None
    _ping_on_clock = 0.0
    """When the pending ping went out, on the keepalive clock."""

    def start_keepalive(self) -> None:
        """As uvicorn's (a ping every interval, 1011 without a pong within the
        timeout), from the process's keepalive clock instead of two timers per
        connection and the wall clock."""
        interval = self.ping_interval
        if interval is None or interval <= 0:
            return
        clock = self._keepalive = connection_clock(
            self.loop, "keepalive", shortest=min(interval, self.ping_timeout or interval)
        )
        clock.schedule(self, after=interval, call=self._keepalive_due)

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.discard(self)
        self.pending_ping_payload = None

    def _keepalive_due(self) -> None:
        """The connection's keepalive slot came up: ping it, or close it if the
        pong of the last ping is overdue."""
        clock = self._keepalive
        if clock is None or self.close_sent or self.transport.is_closing() or self.disconnected:
            return
        if self.pending_ping_payload is not None and self.ping_timeout is not None:
            self.keepalive_timeout()
            return
        # A 4-byte payload names the ping, so a stale or unsolicited pong is ignored.
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self._ping_on_clock = clock.now
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        assert self.ping_interval is not None
        clock.schedule(
            self, after=self.ping_timeout or self.ping_interval, call=self._keepalive_due
        )

    def handle_pong(self, event: Any) -> None:
        payload = self.pending_ping_payload
        if payload is None or bytes(event.data) != payload:
            return
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        self.pending_ping_payload = None
        clock = self._keepalive
        if clock is not None and self.ping_interval is not None:
            # The next ping an interval after this one (not after the pong).
            next_ping = self._ping_on_clock + self.ping_interval
            clock.schedule(self, after=max(0.0, next_ping - clock.now), call=self._keepalive_due)

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
        self._cancel_handshake_deadline()
        super().connection_lost(exc)  # the disconnect reaches the handoff here
        if self.handoff is not None:
            self.handoff.release()
        # The scope's RawWebSocket leads back here (the app keeps its own reference
        # to the scope while it still runs).
        self.scope = _RELEASED_SCOPE  # type: ignore[assignment]


# --------------------------------------------------------------------------- #
# The raw write path: what the hub's RawSink reaches through
# --------------------------------------------------------------------------- #


class RawWebSocket:
    """The handle ``LiveWebSocketProtocol`` puts in the scope for its connection
    (under ``RAW_EXTENSION``): the endpoint's only way to the protocol."""

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

    def sink(self) -> RawSink:
        """The hub's sink for this connection: frames go straight to the socket."""
        return RawSink(self)

    def hand_over(
        self, on_message: Callable[[str | bytes], None], on_disconnect: Callable[[int], None]
    ) -> None:
        """Deliver the client's messages and the disconnect to these callbacks from
        now on; the connection then outlives the ASGI call (see
        ``LiveWebSocketProtocol.hand_over``)."""
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
    """Writes the pre-built frame straight to the connection's transport: no task,
    no await, no copy per viewer (``live.realtime.sinks.Sink``)."""

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


# --------------------------------------------------------------------------- #
# HTTP: a deadline on request headers
# --------------------------------------------------------------------------- #


class LiveHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol with a deadline on request headers.

    A client gets ``LIVE_HANDSHAKE_TIMEOUT`` seconds from connecting (and on a
    kept-alive connection, from the first byte of each request) to deliver the
    request's headers; one that trickles them in (slowloris) or connects and sends
    nothing is dropped, so idle sockets can't pile up. The WebSocket protocol
    carries the same deadline on to the upgrade's acceptance, and
    ``live.limits.RequestLimits`` puts it on request bodies."""

    _header_clock: ConnectionClock | None = None
    """Set while the deadline on the request's headers runs."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        """uvicorn's hand-over to the WebSocket protocol, without writing a plain
        upgrade's headers out for websockets to parse again
        (``LiveWebSocketProtocol.take_plain_upgrade``); any other request goes
        uvicorn's way."""
        protocol_class = self.ws_protocol_class
        if isinstance(protocol_class, type) and issubclass(protocol_class, LiveWebSocketProtocol):
            plain = plain_upgrade(
                method=self.parser.get_method(),
                http_version=self.parser.get_http_version(),
                target=self.url,
                headers=self.headers,
                extensions_negotiated=bool(self.config.ws_per_message_deflate),
            )
            if plain is not None:
                if self.logger.level <= TRACE_LOG_LEVEL:
                    prefix = "{}:{} - ".format(*self.client) if self.client else ""
                    self.logger.log(TRACE_LOG_LEVEL, "%sUpgrading to WebSocket", prefix)
                self.connections.discard(self)
                protocol = protocol_class(
                    config=self.config, server_state=self.server_state, app_state=self.app_state
                )
                protocol.connection_made(self.transport)
                self.transport.set_protocol(protocol)
                protocol.take_plain_upgrade(plain, self.headers)
                self._release()
                return
        super().handle_websocket_upgrade()
        self._release()

    def _release(self) -> None:
        """This protocol never hears of its connection again once it handed it over:
        drop its parser, as uvicorn's ``connection_lost`` does. The parser holds
        this protocol's callbacks; kept, the two hold each other and the transport
        until a pass of the garbage collector, and with the transport everything
        the connection reached."""
        self.parser = None  # type: ignore[assignment]

    def _start_header_timer(self) -> None:
        timeout = app_setting(self.app_state, "handshake_timeout")
        if timeout and self._header_clock is None:
            clock = self._header_clock = handshake_clock(self.loop, timeout)
            clock.schedule(self, after=timeout, call=self._headers_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_clock is not None:
            self._header_clock.discard(self)
            self._header_clock = None

    def _headers_expired(self) -> None:
        self._header_clock = None
        if not self.transport.is_closing():
            self.transport.abort()

"""uvicorn's httptools HTTP protocol with a deadline on request headers.

A client gets ``LIVE_HANDSHAKE_TIMEOUT`` seconds from connecting (and on a
kept-alive connection, from the first byte of each request) to deliver the
request's headers; one that trickles them in (slowloris) or connects and sends
nothing is dropped, so idle sockets can't pile up. The WebSocket protocol
carries the same deadline on to the upgrade's acceptance, and
``live.limits.RequestLimits`` puts it on request bodies.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from live.limits import app_setting


class LiveHttpProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

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

    def _start_header_timer(self) -> None:
        timeout = app_setting(self.app_state, "handshake_timeout")
        if timeout and self._header_timer is None:
            self._header_timer = self.loop.call_later(timeout, self._headers_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.abort()

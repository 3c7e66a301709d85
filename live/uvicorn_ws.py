"""uvicorn's sans-I/O WebSocket protocol, plus the hub's raw frame write path.

Module-level (not built in a function) so uvicorn can pickle it by reference
when it starts worker processes.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from live.transport import RAW_EXTENSION, RawWebSocket


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and self.response.status_code == 101:
            scope["extensions"][RAW_EXTENSION] = RawWebSocket(self)

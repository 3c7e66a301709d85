"""The baseline server: python-websockets and ``broadcast()``, no app logic.

It is what a minimal, idiomatic Python gift room would be: each published
message is broadcast to every viewer of the room as its own frame, the moment
it is published. No money, no coalescing, no resume. It speaks just enough of
docs/PROTOCOL.md for the load tester to drive it like the real server:

- ``GET /v1/rooms/{room}/live``: a ``welcome`` frame, then the room's events;
- ``send_gift`` -> a ``gift`` event broadcast to the room (with ``seq`` and a
  made-up ``tx``), then an ``ack`` with that ``tx`` to the sender;
- ``like`` and ``chat`` -> broadcast and ``ack``; ``ping`` -> ``ack``;
- ``GET /healthz`` -> 200.

Run it with ``python -m loadtest baseline --port 8100``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.http11 import Request, Response

from store.domain.catalog import DEFAULT_GIFTS

_GIFT = next(gift for gift in DEFAULT_GIFTS if gift.id == "rose").public()
"""Every gift event carries our rose, so frames weigh what ours do."""
_SENDER = {
    "id": "lt-gifter",
    "username": "lt-gifter",
    "display_name": "Lt Gifter",
    "avatar": "",
}


class Room:
    __slots__ = ("connections", "seq")

    def __init__(self) -> None:
        self.connections: dict[ServerConnection, None] = {}
        self.seq = 0


class Baseline:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.tx = itertools.count(1)

    def publish(self, room: Room, event: dict[str, Any]) -> None:
        room.seq += 1
        event["seq"] = room.seq
        event["ts"] = int(time.time() * 1000)
        broadcast(room.connections, orjson.dumps([event]).decode())

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "rooms"] or parts[3] != "live":
            await ws.close(4004, "room not found")
            return
        room = self.rooms.setdefault(parts[2], Room())
        welcome: dict[str, Any] = {
            "type": "welcome",
            "session": str(id(ws)),
            "room": {"id": parts[2], "creator": None, "live": True, "title": ""},
            "you": None,
            "seq": room.seq,
            "viewers": len(room.connections) + 1,
            "leaderboard": [],
            "goal": None,
            "resumed": False,
        }
        await ws.send(orjson.dumps([welcome]).decode())
        room.connections[ws] = None
        try:
            async for message in ws:
                try:
                    command = orjson.loads(message)
                    kind = command["type"]
                    command_id = command["id"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                reply: dict[str, Any] = {"type": "ack", "id": command_id}
                if kind == "send_gift":
                    tx = f"tx{next(self.tx)}"
                    count = int(command.get("count", 1))
                    self.publish(
                        room,
                        {
                            "type": "gift",
                            "tx": tx,
                            "gift": _GIFT,
                            "sender": _SENDER,
                            "count": count,
                            "combo": {"id": tx, "count": count, "end": True},
                            "diamonds": -(-count // 2),
                        },
                    )
                    reply.update(tx=tx, balance={"coins": 0}, replayed=False)
                elif kind == "like":
                    self.publish(room, {"type": "like", "sender": _SENDER, "count": 1, "total": 0})
                elif kind == "chat":
                    self.publish(
                        room,
                        {"type": "chat", "id": command_id, "sender": _SENDER, "text": "hi"},
                    )
                await ws.send(orjson.dumps([reply]).decode())
        finally:
            room.connections.pop(ws, None)


def _health(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def serve_forever(host: str, port: int) -> None:
    app = Baseline()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        app.handler,
        host,
        port,
        process_request=_health,
        compression=None,
        ping_interval=20,
        ping_timeout=20,
        max_size=65_536,
        backlog=4096,
    ):
        await stop


def main(host: str = "127.0.0.1", port: int = 8100) -> None:
    try:
        import uvloop

        uvloop.run(serve_forever(host, port))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(serve_forever(host, port))

"""A connection's objects go when the connection does, by reference counting alone.

The server tunes its garbage collector to pass rarely over old objects
(``live.collector``): what a closed connection left in reference cycles waited
for such a pass, about 30 KiB per connection, so a busy server grew by every
connection it ever had until one came. Here the app runs under uvicorn with its
own protocols in this process, on a real socket, with the collector off while
viewers and a gifter come and go.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import uvicorn

from live.app import create_app
from live.realtime.hub import RoomChannel
from live.realtime.uvicorn_glue import LiveHttpProtocol, LiveWebSocketProtocol
from live.settings import Settings
from tests.live.actions.test_gifting import go_live
from tests.live.server import SECRET, Api, Client, LiveServer


@contextlib.asynccontextmanager
async def in_process(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The app served by uvicorn in this event loop; the ``LiveServer`` only names
    its address and makes tokens (it starts no process)."""
    data_dir = tmp_path / "data"
    address = LiveServer(data_dir=data_dir)
    config = uvicorn.Config(
        create_app(Settings(secret=SECRET, data_dir=data_dir)),
        host="127.0.0.1",
        port=address.port,
        http=LiveHttpProtocol,
        ws=LiveWebSocketProtocol,
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        yield address
    finally:
        server.should_exit = True
        await serving


KINDS = (LiveHttpProtocol, LiveWebSocketProtocol, RoomChannel)


def live_objects(*, but: AbstractSet[int] = frozenset()) -> list[weakref.ReferenceType[Any]]:
    return [weakref.ref(o) for o in gc.get_objects() if isinstance(o, KINDS) and id(o) not in but]


async def until_gone(refs: list[weakref.ReferenceType[Any]], *, timeout: float = 5.0) -> list[Any]:
    """Wait for the server to finish the closes; what is still alive then."""
    deadline = asyncio.get_running_loop().time() + timeout
    while any(ref() is not None for ref in refs):
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    return [type(ref()).__name__ for ref in refs if ref() is not None]


async def test_closed_connections_leave_nothing_for_the_collector(tmp_path: Path) -> None:
    async with in_process(tmp_path) as server:
        creator = await go_live(server, "carol", "carol")
        gifter_api = Api(server, server.token("alice"))
        assert (await gifter_api.buy("us_1400", key="p1")).status_code == 201
        gc.collect()
        gc.disable()
        http_keep_alive = {id(ref()) for ref in live_objects()}  # the Api clients'
        try:
            async with (
                Client.open(server, "carol", token=server.token("bob")) as viewer,
                Client.open(server, "carol", token=server.token("alice")) as gifter,
            ):
                for client in (viewer, gifter):
                    await client.wait_for(lambda e: e["type"] == "welcome")
                ack = await gifter.command({"type": "send_gift", "id": "g1", "gift": "rose"})
                assert ack["type"] == "ack", ack
                await viewer.wait_for(lambda e: e["type"] == "gift")
                await gifter.command({"type": "chat", "id": "c1", "text": "hello"})
                kept = live_objects(but=http_keep_alive)
                kinds = [type(ref()).__name__ for ref in kept]
                assert kinds.count("LiveWebSocketProtocol") == 2 and "RoomChannel" in kinds
            assert await until_gone(kept) == []
        finally:
            gc.enable()
            await creator.aclose()
            await gifter_api.aclose()


async def test_a_refused_connection_leaves_nothing_for_the_collector(tmp_path: Path) -> None:
    async with in_process(tmp_path) as server:
        gc.collect()
        gc.disable()
        try:
            async with Client.open(server, "nowhere", token=server.token("bob")) as viewer:
                refused = await viewer.wait_for(lambda e: e["type"] == "error")
                assert refused["code"] == "not_found", refused
                assert await viewer.closed() is not None
            # what is left of it now, unreachable or not, must go by itself
            assert await until_gone(live_objects()) == []
        finally:
            gc.enable()

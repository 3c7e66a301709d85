"""Running ``live serve`` processes for the length of a test.

``running`` starts one server and stops it afterwards; ``on_engine`` does it on
the engine a test is parametrized with (``engine_services``: None for the
embedded engine, else the session's Redis and PostgreSQL, reset, plus a ``live
ledger`` worker); ``two_nodes`` starts two servers sharing one Redis and one
PostgreSQL, the first with the ledger worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.live.server import Client, LiveServer
from tests.services import Services


@contextlib.asynccontextmanager
async def running(*servers: LiveServer) -> AsyncIterator[None]:
    """Start the servers in order; stop them in reverse order."""
    async with contextlib.AsyncExitStack() as stack:
        for srv in servers:
            await srv.start()
            stack.push_async_callback(srv.stop)
        yield


async def scaled_env(services: Services) -> dict[str, str]:
    """A fresh Redis and PostgreSQL database, as the servers' settings."""
    urls = await services.reset()
    return {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": urls.database}


@contextlib.asynccontextmanager
async def on_engine(
    engine_services: Services | None, data_dir: Path, env: dict[str, str] | None = None
) -> AsyncIterator[LiveServer]:
    env = dict(env or {})
    if engine_services is not None:
        env |= await scaled_env(engine_services)
    srv = LiveServer(data_dir=data_dir, env=env, ledger=engine_services is not None)
    async with running(srv):
        yield srv


@contextlib.asynccontextmanager
async def two_nodes(
    services: Services, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    env = {**(env or {}), **await scaled_env(services)}
    a = LiveServer(data_dir=tmp_path / "a", env=env, ledger=True)
    b = LiveServer(data_dir=tmp_path / "b", env=env)
    async with running(a, b):
        yield a, b


@contextlib.asynccontextmanager
async def welcomed(
    *clients: contextlib.AbstractAsyncContextManager[Client],
) -> AsyncIterator[list[Client]]:
    """Open the clients in order (closing them in reverse), each past its welcome."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(client) for client in clients]
        for client in opened:
            await client.wait_for(lambda e: e["type"] == "welcome")
        yield opened

"""Server fixtures: a real ``live serve`` process per test, on each engine.

``server`` is parametrized over the engines of ``tests.engines.ENGINES``: the
scaled one gets a fresh Redis database and PostgreSQL database from the
session's throwaway services, plus a ``live ledger`` worker process.
``embedded_server`` is for what only the embedded engine does (its data dir).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engines import ENGINES
from tests.live.server import LiveServer
from tests.services import Services


@pytest.fixture(params=list(ENGINES))
def engine_services(request: pytest.FixtureRequest) -> Services | None:
    """The session's Redis and PostgreSQL for the scaled engine, None for embedded.
    (A plain fixture: async session fixtures can only be requested from sync code.)"""
    if request.param == "embedded":
        return None
    services: Services = request.getfixturevalue("services")
    return services


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    env: dict[str, str] = {}
    if engine_services is not None:
        urls = await engine_services.reset()
        env = {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": urls.database}
    srv = LiveServer(data_dir=tmp_path / "data", env=env, ledger=bool(env))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def embedded_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path / "data")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()

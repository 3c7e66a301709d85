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


@pytest.fixture(params=list(ENGINES))
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LiveServer]:
    env: dict[str, str] = {}
    if request.param != "embedded":
        urls = await request.getfixturevalue("services").reset()
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

"""Server fixtures: a real ``live serve`` process per test, on each engine.

``server`` is parametrized over the engines of ``tests.engines.ENGINES``: the
scaled one gets a fresh Redis database and PostgreSQL database from the
session's throwaway services, plus a ``live ledger`` worker process.
``embedded_server`` is for what only the embedded engine does (its data dir);
``nodes`` is two servers sharing the scaled engine's backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engines import ENGINES
from tests.live.launch import on_engine, running, two_nodes
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
    async with on_engine(engine_services, tmp_path / "data") as srv:
        yield srv


@pytest.fixture
async def embedded_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path / "data")
    async with running(srv):
        yield srv


@pytest.fixture
async def nodes(
    services: Services, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    """Two servers sharing one Redis and one PostgreSQL (scaled engine), with the
    settings of the test module's ``NODE_ENV`` if it has one."""
    async with two_nodes(services, tmp_path, getattr(request.module, "NODE_ENV", None)) as both:
        yield both

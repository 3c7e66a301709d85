"""Fixtures for the storage tests: one ``engine`` per entry of ``tests.engines.ENGINES``.

Only non-embedded engines ask for the session-scoped ``services`` fixture (the
Redis and PostgreSQL servers, and the Redis Cluster of the ``cluster`` engine,
started once per session and emptied for each test), so the embedded engine
runs with nothing else installed or started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from store.roles import Engine
from tests.engines import ENGINES


def _engine_params() -> list[Any]:
    return [
        pytest.param(name, id=name, marks=() if name == "embedded" else pytest.mark.scaled)
        for name in ENGINES
    ]


@pytest.fixture(params=_engine_params())
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_services(request: pytest.FixtureRequest, engine_name: str) -> Any:
    if engine_name == "embedded":
        return None
    return request.getfixturevalue("services")


@pytest.fixture
async def engine(engine_name: str, engine_services: Any, tmp_path: Path) -> AsyncIterator[Engine]:
    """A fresh engine on empty storage, closed after the test."""
    async with ENGINES[engine_name](tmp_path, engine_services) as opened:
        yield opened

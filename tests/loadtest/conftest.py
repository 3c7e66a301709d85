"""What the load tester's tests share: one real server per module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.live.server import LiveServer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``live serve`` on a fresh data directory, for every test of a module."""
    server = LiveServer(data_dir=tmp_path_factory.mktemp("loadtest") / "data")
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.live.server import LiveServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A fresh embedded-engine server on a free port."""
    srv = LiveServer(data_dir=tmp_path / "data")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()

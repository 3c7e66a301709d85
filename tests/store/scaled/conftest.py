"""Fixtures of the scaled engine's own tests: fresh servers' URLs and one engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store.roles import Engine
from tests.services import Services, Urls, scaled_engine


@pytest.fixture
async def urls(services: Services) -> Urls:
    return await services.reset()


@pytest.fixture
async def engine(urls: Urls) -> AsyncIterator[Engine]:
    opened = await scaled_engine(urls)
    try:
        yield opened
    finally:
        await opened.close()

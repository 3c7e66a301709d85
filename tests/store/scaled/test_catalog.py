"""The scaled engine's catalog when Redis loses it: running nodes keep serving
the catalog they hold, and follow the one an operator imports back."""

from __future__ import annotations

import asyncio

import pytest

from store.domain.catalog_entries import catalog_document
from store.roles import Engine
from store.scaled.keys import CATALOG_VERSION, catalog_key
from tests.services import Urls, eventually, redis_client, scaled_engine

pytestmark = pytest.mark.scaled


async def test_a_lost_catalog_is_served_until_one_is_imported(engine: Engine, urls: Urls) -> None:
    await engine.catalogs.update("gift", "rose", {"coins": 4})
    await engine.catalogs.update("gift", "rose", {"name": "Red Rose"})
    exported = catalog_document(engine.catalog)
    assert exported["version"] == 3
    redis = await redis_client(urls)
    try:
        await redis.delete(CATALOG_VERSION, catalog_key("gift"), catalog_key("package"))
    finally:
        await redis.aclose()
    await asyncio.sleep(0.6)  # a few polls find nothing stored: the node serves what it has
    rose = engine.catalog.gift("rose")
    assert engine.catalog.version == 3 and rose is not None and rose.coins == 4

    restorer = await scaled_engine(urls)  # as `live catalog import` does: seeds, then imports
    try:
        changes = await restorer.catalogs.import_entries(exported)
        assert changes.version == 2 and "gift:rose" in changes.changed
    finally:
        await restorer.close()
    await eventually(lambda: engine.catalog.version == 2, timeout=1.0, what="the restored catalog")
    assert catalog_document(engine.catalog) == {**exported, "version": 2}

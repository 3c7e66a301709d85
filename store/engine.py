"""Pick and assemble an engine from configuration.

The engine is chosen by URL, like encode/broadcaster picks a backend: with
``redis_url`` set the scaled engine (Redis wallet + Redis pub/sub + PostgreSQL
ledger), otherwise the embedded one (SQLite file + in-process broker). Backend
modules are imported lazily, so the embedded engine never imports redis or
asyncpg.
"""

from __future__ import annotations

from store.domain.catalog import Catalog
from store.roles import Engine, EngineConfig


async def open_engine(config: EngineConfig, *, catalog: Catalog | None = None) -> Engine:
    catalog = catalog or Catalog()
    if config.scaled:
        if not config.database_url:
            raise ValueError("the scaled engine needs a database URL as well as a Redis URL")
        from store.scaled.engine import open_scaled_engine

        return await open_scaled_engine(config, catalog=catalog)
    from store.embedded.engine import open_embedded_engine

    return await open_embedded_engine(config, catalog=catalog)

"""Pick and assemble an engine from configuration.

The engine is chosen by URL, like encode/broadcaster picks a backend: with
``redis_url`` set the scaled engine (Redis wallet + Redis pub/sub + PostgreSQL
ledger), otherwise the embedded one (SQLite file + in-process broker). Backend
modules are imported lazily, so the embedded engine never imports redis or
asyncpg.

Either engine is put behind the request checks of ``store.checked``, so both
refuse a malformed request alike before touching their storage.
"""

from __future__ import annotations

from store.checked import (
    CheckedActivity,
    CheckedItems,
    CheckedLedger,
    CheckedPresence,
    CheckedRooms,
    CheckedSubscriptions,
    CheckedWallet,
)
from store.domain.accounts import MoneyPolicy
from store.domain.catalog import Catalog
from store.roles import Engine, EngineConfig


async def open_engine(config: EngineConfig, *, catalog: Catalog | None = None) -> Engine:
    catalog = catalog or Catalog()
    if config.scaled:
        if not config.database_url:
            raise ValueError("the scaled engine needs a database URL as well as a Redis URL")
        from store.scaled.engine import open_scaled_engine

        engine = await open_scaled_engine(config, catalog=catalog)
    else:
        from store.embedded.engine import open_embedded_engine

        engine = await open_embedded_engine(config, catalog=catalog)
    return checked(engine, policy=config.policy)


def checked(engine: Engine, *, policy: MoneyPolicy) -> Engine:
    """The engine with its roles behind the request checks (``store.checked``)."""
    engine.wallet = CheckedWallet(engine.wallet, policy=policy)
    engine.rooms = CheckedRooms(engine.rooms)
    engine.ledger = CheckedLedger(engine.ledger)
    engine.activity = CheckedActivity(engine.activity)
    engine.subscriptions = CheckedSubscriptions(engine.subscriptions)
    engine.presence = CheckedPresence(engine.presence)
    engine.items = CheckedItems(engine.items)
    return engine

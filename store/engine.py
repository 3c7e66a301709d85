"""Pick and assemble an engine from configuration.

The engine is chosen by URL, like encode/broadcaster picks a backend: with
``redis_url`` set the scaled engine (Redis wallet + Redis pub/sub + PostgreSQL
ledger), otherwise the embedded one (SQLite file + in-process broker). Backend
modules are imported lazily, so the embedded engine never imports redis or
asyncpg.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from store.accounts import MoneyPolicy
from store.base import Broker, Ledger, RoomActivity, Rooms, Wallet
from store.catalog import Catalog


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineConfig:
    data_dir: Path = Path("data")
    """Where the embedded engine keeps its SQLite file."""
    redis_url: str | None = None
    database_url: str | None = None
    creator_share_percent: int = 50
    history_size: int = 1_000
    """Events kept per room for resume."""
    history_seconds: float = 120.0
    migrate: bool = True
    """Apply PostgreSQL migrations at start (scaled engine)."""
    policy: MoneyPolicy = field(default_factory=MoneyPolicy)
    """Spending caps, rate limits, holds and withdrawal limits (default: none)."""

    @property
    def scaled(self) -> bool:
        return self.redis_url is not None


@dataclass(kw_only=True, slots=True)
class Engine:
    """One engine: the four roles plus the catalog, and how to check and close them."""

    name: str
    wallet: Wallet
    rooms: Rooms
    ledger: Ledger
    broker: Broker
    activity: RoomActivity
    """A live room's shared state beyond money (combos, likes, viewers, goals...)."""
    catalog: Catalog
    check: Callable[[], Awaitable[dict[str, str]]]
    """Readiness: returns ``{component: "ok"}`` or raises ``store.errors.Unavailable``."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stats: Callable[[], Awaitable[dict[str, float]]] | None = None
    """Engine gauges for ``/metrics`` (e.g. ``outbox_lag`` on the scaled engine)."""

    async def gauges(self) -> dict[str, float]:
        return await self.stats() if self.stats is not None else {}

    async def ready(self) -> dict[str, str]:
        return await self.check()

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        self.closers.clear()


async def open_engine(config: EngineConfig, *, catalog: Catalog | None = None) -> Engine:
    catalog = catalog or Catalog()
    if config.scaled:
        if not config.database_url:
            raise ValueError("the scaled engine needs a database URL as well as a Redis URL")
        from store.scaled import open_scaled_engine

        return await open_scaled_engine(config, catalog=catalog)
    from store.embedded import open_embedded_engine

    return await open_embedded_engine(config, catalog=catalog)

"""Engine factories for the conformance suite.

Each factory opens an engine on fresh, empty storage. The conformance tests are
parametrized over ``ENGINES`` so every engine gets the same inputs and must give
the same balances, events and errors: the embedded engine, the scaled engine on
a single Redis, and the scaled engine on a Redis Cluster (``cluster``; what it
does not run yet is listed in tests/store/conftest.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from store.domain.accounts import MoneyPolicy
from store.domain.catalog import Catalog
from store.engine import open_engine
from store.roles import Engine, EngineConfig

EngineFactory = Callable[..., contextlib.AbstractAsyncContextManager[Engine]]
"""``factory(tmp_path, services, policy=None, catalog=None)``: an engine on empty
storage with the given money policy (default: restricting nothing)."""


@contextlib.asynccontextmanager
async def opened(config: EngineConfig, catalog: Catalog | None) -> AsyncIterator[Engine]:
    """The engine ``config`` describes, closed on the way out."""
    engine = await open_engine(config, catalog=catalog)
    try:
        yield engine
    finally:
        await engine.close()


def embedded_engine(
    tmp_path: Path,
    _services: Any = None,
    *,
    policy: MoneyPolicy | None = None,
    catalog: Catalog | None = None,
) -> contextlib.AbstractAsyncContextManager[Engine]:
    config = EngineConfig(data_dir=tmp_path / "data", policy=policy or MoneyPolicy())
    return opened(config, catalog)


@contextlib.asynccontextmanager
async def scaled_engine(
    tmp_path: Path,
    services: Any = None,
    *,
    policy: MoneyPolicy | None = None,
    catalog: Catalog | None = None,
    cluster: bool = False,
) -> AsyncIterator[Engine]:
    """Redis + PostgreSQL from the session's ``services`` (tests/services.py):
    Redis flushed and a brand-new database for every engine. ``cluster``: the
    session's Redis Cluster (three primaries, started once) in place of the
    single Redis."""
    if services is None:
        raise RuntimeError("the scaled engine needs the session's services fixture")
    urls = await (services.reset_cluster() if cluster else services.reset())
    config = EngineConfig(
        data_dir=tmp_path / "data",
        redis_url=urls.redis,
        database_url=urls.database,
        policy=policy or MoneyPolicy(),
    )
    async with opened(config, catalog) as engine:
        yield engine


def cluster_engine(
    tmp_path: Path,
    services: Any = None,
    *,
    policy: MoneyPolicy | None = None,
    catalog: Catalog | None = None,
) -> contextlib.AbstractAsyncContextManager[Engine]:
    """The scaled engine on a Redis Cluster (``redis+cluster://``)."""
    return scaled_engine(tmp_path, services, policy=policy, catalog=catalog, cluster=True)


ENGINES: dict[str, EngineFactory] = {
    "embedded": embedded_engine,
    "scaled": scaled_engine,
    "cluster": cluster_engine,
}

"""Engine factories for the conformance suite.

Each factory opens an engine on fresh, empty storage. The conformance tests are
parametrized over ``ENGINES`` so both engines get the same inputs and must give
the same balances, events and errors.
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
async def embedded_engine(
    tmp_path: Path,
    _services: Any = None,
    *,
    policy: MoneyPolicy | None = None,
    catalog: Catalog | None = None,
) -> AsyncIterator[Engine]:
    engine = await open_engine(
        EngineConfig(data_dir=tmp_path / "data", policy=policy or MoneyPolicy()), catalog=catalog
    )
    try:
        yield engine
    finally:
        await engine.close()


@contextlib.asynccontextmanager
async def scaled_engine(
    tmp_path: Path,
    services: Any = None,
    *,
    policy: MoneyPolicy | None = None,
    catalog: Catalog | None = None,
) -> AsyncIterator[Engine]:
    """Redis + PostgreSQL from the session's ``services`` (tests/services.py):
    Redis flushed and a brand-new database for every engine."""
    if services is None:
        raise RuntimeError("the scaled engine needs the session's services fixture")
    urls = await services.reset()
    engine = await open_engine(
        EngineConfig(
            data_dir=tmp_path / "data",
            redis_url=urls.redis,
            database_url=urls.database,
            policy=policy or MoneyPolicy(),
        ),
        catalog=catalog,
    )
    try:
        yield engine
    finally:
        await engine.close()


ENGINES: dict[str, EngineFactory] = {
    "embedded": embedded_engine,
    "scaled": scaled_engine,
}

"""PostgreSQL for the scaled engine: the pool, and the schema migrations.

Schema changes are SQL files in ``store/scaled/migrations`` (``NNN_name.sql``),
applied in order by ``migrate`` and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from store.errors import StoreError, Unavailable
from store.observer import StoreObserver

log = logging.getLogger(__name__)

_MIGRATION_NAME: Final = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK: Final = 0x6C697665  # "live": serializes concurrent migrators

PG_UNAVAILABLE: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
)
"""PostgreSQL cannot be reached or is shutting down: retry later, nothing was filed."""


def migrations() -> list[tuple[str, str]]:
    """``(name, sql)`` of every migration shipped in the package, in order."""
    folder = resources.files("store.scaled").joinpath("migrations")
    found: list[tuple[int, str, str]] = []
    for item in folder.iterdir():
        match = _MIGRATION_NAME.match(item.name)
        if match:
            found.append((int(match.group(1)), item.name[:-4], item.read_text("utf-8")))
    return [(name, sql) for _, name, sql in sorted(found)]


async def migrate(database_url: str) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``, each in its
    own transaction, under an advisory lock (safe with several nodes starting at
    once). Returns the names applied now."""
    try:
        conn = await asyncpg.connect(database_url)
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        for name, sql in migrations():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("applied migration %s", name)
            applied.append(name)
        return applied
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()


class DatabaseNotCreated(StoreError):
    """The URL's database does not exist and this role may not create it."""


async def create_database_if_missing(database_url: str) -> str | None:
    """Create the URL's database when the server says it does not exist, through
    the maintenance database ``postgres`` with the same credentials, so a fresh
    server needs no manual step. Returns the name created, or None."""
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        pass
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc
    else:
        await conn.close()
        return None
    parts = urlsplit(database_url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise DatabaseNotCreated("the database URL names no database")
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f"CREATE DATABASE {quoted}")
        finally:
            await admin.close()
    except asyncpg.DuplicateDatabaseError:
        return None  # another migrator created it meanwhile
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc
    except asyncpg.PostgresError as exc:  # no privilege, no "postgres" database, ...
        raise DatabaseNotCreated(
            f"database {quoted} does not exist and can't be created here ({exc}):"
            f" run CREATE DATABASE {quoted} as a role that may, then live migrate"
        ) from exc
    return name


async def create_pool(database_url: str, *, max_size: int = 4) -> asyncpg.Pool:
    """A pool that connects lazily: the wallet keeps working while PostgreSQL is down."""
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            database_url, min_size=0, max_size=max_size, command_timeout=30
        )
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc
    return pool


@contextlib.asynccontextmanager
async def pg_connection(
    pool: asyncpg.Pool, *, observer: StoreObserver | None = None, call: str = "query"
) -> AsyncIterator[Any]:
    """A pooled connection; connection failures become ``Unavailable``. The
    ``observer`` is told how long ``call`` (a fixed name) held it, waiting for a
    free connection included, and whether it raised."""
    started = time.perf_counter()
    ok = False
    try:
        async with pool.acquire() as conn:
            yield conn
        ok = True
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc
    finally:
        if observer is not None:
            observer.backend_call("postgresql", call, time.perf_counter() - started, ok=ok)

"""The scaled engine's durable ledger: PostgreSQL, fed from the Redis outbox.

The wallet scripts append each transaction (JSON, with its postings) to the
``live:{sys}:outbox`` stream in the same atomic step that moves the hot
balances. The ledger worker (``run_ledger_worker``, the ``live ledger``
command) files them into PostgreSQL:

- a consumer group on the outbox; each batch is inserted with
  ``ON CONFLICT DO NOTHING`` in one PostgreSQL transaction and ``XACK``-ed (and
  ``XDEL``-eted) only after ``COMMIT``. A worker that dies between the two
  re-reads its pending entries on restart (or another worker claims them with
  ``XAUTOCLAIM`` once idle for ``claim_idle_ms``): filing twice is a no-op, so
  there is never a duplicate posting;
- an entry that can never be filed (undecodable, unbalanced, rejected by the
  database's checks) is parked in ``live:{sys}:dead`` with the reason and
  acknowledged, so one bad entry cannot stall the ledger;
- because filed entries are deleted, the outbox length *is* the lag (pending
  plus not yet delivered): ``outbox_lag`` serves metrics and the audit.

Schema changes are SQL files in ``store/migrations`` (``NNN_name.sql``), applied
in order by ``migrate`` and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from importlib import resources
from typing import Any, Final, TypeGuard

import asyncpg
import orjson
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from store.domain.accounts import debt_account, withdrawing_account
from store.domain.models import (
    ASSETS,
    COIN,
    AuditReport,
    Mismatch,
    Posting,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.domain.postings import is_balanced
from store.errors import BadRequest, Unavailable
from store.scaled.client import CONNECTION_ERRORS, connect_redis
from store.scaled.wallet import (
    DEAD_LETTERS,
    OUTBOX,
    SYSTEM_BALANCES,
    WALLET_PATTERN,
    user_of_wallet_key,
)

log = logging.getLogger(__name__)

GROUP: Final = "ledger"
_MIGRATION_NAME: Final = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_MIGRATION_LOCK: Final = 0x6C697665  # "live": serializes concurrent migrators
_OUTBOX_SCAN_LIMIT: Final = 10_000
"""How many unfiled outbox entries a history read looks through (newest first)."""

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


class PoisonEntry(Exception):
    """An outbox entry that can never be filed; the message says why."""


# --------------------------------------------------------------------------- #
# Migrations
# --------------------------------------------------------------------------- #


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
async def _pg(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A pooled connection; connection failures become ``Unavailable``."""
    try:
        async with pool.acquire() as conn:
            yield conn
    except PG_UNAVAILABLE as exc:
        raise Unavailable(f"postgresql unavailable: {exc}") from exc


# --------------------------------------------------------------------------- #
# Outbox entries
# --------------------------------------------------------------------------- #


def decode_entry(fields: dict[bytes, bytes] | None) -> TransactionRecord:
    """One outbox entry as a transaction; ``PoisonEntry`` if it can never be filed."""
    if not fields or b"tx" not in fields:
        raise PoisonEntry("entry has no tx field")
    try:
        data = orjson.loads(fields[b"tx"])
    except orjson.JSONDecodeError as exc:
        raise PoisonEntry(f"undecodable: {exc}") from None
    if not isinstance(data, dict):
        raise PoisonEntry("tx is not an object")
    tx_id, kind, created_at = data.get("id"), data.get("kind"), data.get("created_at")
    raw_postings, meta = data.get("postings"), data.get("meta", {})
    if not isinstance(tx_id, str) or not tx_id or not isinstance(kind, str) or not kind:
        raise PoisonEntry("tx has no id or kind")
    if not _is_int(created_at) or not isinstance(meta, dict):
        raise PoisonEntry("tx has a bad created_at or meta")
    if not isinstance(raw_postings, list) or not raw_postings:
        raise PoisonEntry("tx has no postings")
    postings: list[Posting] = []
    for p in raw_postings:
        if not (
            isinstance(p, dict)
            and isinstance(p.get("account"), str)
            and isinstance(p.get("asset"), str)
            and _is_int(p.get("amount"))
        ):
            raise PoisonEntry("tx has a malformed posting")
        postings.append(Posting(p["account"], p["asset"], p["amount"]))
    if not is_balanced(postings):
        raise PoisonEntry("unbalanced: postings do not sum to zero per asset")
    return TransactionRecord(
        id=tx_id, kind=kind, created_at=created_at, postings=tuple(postings), meta=meta
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) < value < 2**63


async def _file(conn: Any, records: Sequence[TransactionRecord]) -> None:
    """Insert transactions and postings (each transaction's postings in one
    statement, as the balance trigger expects); already filed ones are skipped."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO transactions (id, kind, created_at, meta) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::jsonb[]) "
            "ON CONFLICT (id) DO NOTHING",
            [r.id for r in records],
            [r.kind for r in records],
            [r.created_at for r in records],
            [orjson.dumps(r.meta).decode() for r in records],
        )
        rows = [
            (r.id, n, p.account, p.asset, p.amount)
            for r in records
            for n, p in enumerate(r.postings)
        ]
        await conn.execute(
            "INSERT INTO postings (tx_id, n, account, asset, amount) "
            "SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[],"
            " $5::bigint[]) ON CONFLICT (tx_id, n) DO NOTHING",
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
            [row[3] for row in rows],
            [row[4] for row in rows],
        )


async def ensure_group(redis: Redis) -> None:
    """Create the consumer group (from the start of the stream) if missing."""
    try:
        await redis.xgroup_create(OUTBOX, GROUP, id="0", mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def drain_once(
    redis: Redis,
    pool: asyncpg.Pool,
    *,
    consumer: str = "ledger-1",
    batch: int = 500,
    claim_idle_ms: int = 30_000,
    block_ms: int | None = None,
    ack: bool = True,
) -> int:
    """File one batch: this consumer's own unacknowledged entries first (it died
    after COMMIT, or PostgreSQL failed), else entries other consumers left idle
    for ``claim_idle_ms``, else new ones (waiting up to ``block_ms``). Returns how
    many entries were handled (0: nothing to do). ``ack=False`` files without
    acknowledging, like a worker killed between COMMIT and XACK (for tests)."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    try:
        await ensure_group(redis)
        entries = await _read(redis, consumer, "0", batch, None)
        if not entries:
            claimed = await redis.xautoclaim(
                OUTBOX, GROUP, consumer, claim_idle_ms, start_id="0-0", count=batch
            )
            entries = [(i, f) for i, f in claimed[1] if f is not None]
        if not entries:
            entries = await _read(redis, consumer, ">", batch, block_ms)
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from exc
    if not entries:
        return 0
    await _handle(redis, pool, entries, ack=ack)
    return len(entries)


async def _read(
    redis: Redis, consumer: str, start: str, count: int, block_ms: int | None
) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
    reply: Any = await redis.xreadgroup(
        GROUP, consumer, {OUTBOX: start}, count=count, block=block_ms
    )
    if not reply:
        return []
    entries: list[tuple[bytes, dict[bytes, bytes] | None]] = []
    for _stream, items in reply:
        entries.extend((entry_id, fields or None) for entry_id, fields in items)
    return entries


async def _handle(
    redis: Redis,
    pool: asyncpg.Pool,
    entries: Sequence[tuple[bytes, dict[bytes, bytes] | None]],
    *,
    ack: bool,
) -> None:
    records: dict[str, TransactionRecord] = {}
    poison: list[tuple[bytes, dict[bytes, bytes] | None, str]] = []
    for entry_id, fields in entries:
        if fields is None:
            continue  # deleted while pending: already filed, only the ack is missing
        try:
            record = decode_entry(fields)
        except PoisonEntry as exc:
            poison.append((entry_id, fields, str(exc)))
            continue
        records.setdefault(record.id, record)
    if records:
        by_id = {e[0]: e[1] for e in entries}
        try:
            async with _pg(pool) as conn:
                try:
                    await _file(conn, list(records.values()))
                except asyncpg.PostgresError as exc:
                    if not _refuses_data(exc):
                        raise
                    # one entry the database refuses must not block the rest
                    log.warning("ledger batch refused (%s); filing one by one", exc)
                    refused = await _file_one_by_one(conn, records.values())
                    for entry_id, fields in by_id.items():
                        reason = refused.get(_tx_id(fields) or "")
                        if reason is not None:
                            poison.append((entry_id, fields, reason))
        except PG_UNAVAILABLE as exc:
            raise Unavailable(f"postgresql unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"postgresql cannot file the ledger now: {exc}") from exc
    if not ack:
        return
    ids = [entry_id for entry_id, _ in entries]
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for entry_id, fields, reason in poison:
                log.error("ledger: parking outbox entry %s: %s", entry_id.decode(), reason)
                pipe.xadd(
                    DEAD_LETTERS,
                    {
                        b"entry": entry_id,
                        b"reason": reason.encode(),
                        b"tx": (fields or {}).get(b"tx", b""),
                    },
                )
            pipe.xack(OUTBOX, GROUP, *ids)
            pipe.xdel(OUTBOX, *ids)
            await pipe.execute()
    except CONNECTION_ERRORS as exc:
        # filed but not acknowledged: re-filing later is a no-op
        raise Unavailable(f"redis unavailable: {exc}") from exc


def _tx_id(fields: dict[bytes, bytes] | None) -> str | None:
    try:
        return decode_entry(fields).id
    except PoisonEntry:
        return None


async def _file_one_by_one(conn: Any, records: Iterable[TransactionRecord]) -> dict[str, str]:
    refused: dict[str, str] = {}
    for record in records:
        try:
            await _file(conn, [record])
        except asyncpg.PostgresError as exc:
            if not _refuses_data(exc):
                raise
            refused[record.id] = f"refused by the database: {exc}"
    return refused


def _refuses_data(exc: asyncpg.PostgresError) -> bool:
    """The database rejects these rows (data exception, integrity violation): they
    will never be filed. Anything else (a missing table, a shutdown, permissions)
    is the database's state, so the batch waits and is retried, never parked."""
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return sqlstate[:2] in ("22", "23")


async def outbox_lag(redis: Redis) -> int:
    """Outbox entries not yet filed in PostgreSQL (pending plus not yet delivered):
    filed entries are deleted, so this is the stream's length. For metrics."""
    try:
        return int(await redis.xlen(OUTBOX))
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from exc


async def run_ledger_worker(
    *,
    redis_url: str,
    database_url: str,
    stop: asyncio.Event,
    consumer: str = "ledger-1",
    batch: int = 500,
    claim_idle_ms: int = 30_000,
) -> None:
    """Drain the outbox into PostgreSQL until ``stop`` is set. Outages of Redis or
    PostgreSQL are waited out with backoff; nothing is acknowledged unfiled."""
    redis = connect_redis(redis_url, max_connections=4, timeout=10.0)
    pool = await create_pool(database_url, max_size=2)
    backoff = 0.1
    log.info("ledger worker %s started", consumer)
    try:
        while not stop.is_set():
            try:
                await drain_once(
                    redis,
                    pool,
                    consumer=consumer,
                    batch=batch,
                    claim_idle_ms=claim_idle_ms,
                    block_ms=1_000,
                )
                backoff = 0.1
            except Unavailable as exc:
                log.warning("ledger worker waiting: %s", exc)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
    finally:
        await pool.close()
        await redis.aclose()
        log.info("ledger worker %s stopped", consumer)


# --------------------------------------------------------------------------- #
# The Ledger role
# --------------------------------------------------------------------------- #


class PostgresLedger:
    """``Ledger`` over PostgreSQL, aware of the not-yet-filed outbox entries."""

    def __init__(self, pool: asyncpg.Pool, redis: Redis) -> None:
        self._pool = pool
        self._redis = redis

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        """Transactions touching the user's accounts (``user:<id>:coins``,
        ``:diamonds``, ``:debt``, ``:withdrawing``), by id descending, strictly older
        than ``before``. Entries still in the outbox are included, so a user sees a
        gift the moment it is acknowledged."""
        if limit < 1:
            raise BadRequest("limit must be at least 1")
        accounts = [
            coins_account(user_id),
            diamonds_account(user_id),
            debt_account(user_id),
            withdrawing_account(user_id),
        ]
        # The outbox first: an entry the worker files meanwhile is in PostgreSQL by
        # the time it leaves the outbox (XDEL after COMMIT), so it is in one or both.
        unfiled = await self._unfiled()
        async with _pg(self._pool) as conn:
            rows = await conn.fetch(
                "WITH page AS ("
                " SELECT DISTINCT tx_id FROM postings"
                " WHERE account = ANY($1::text[]) AND ($2::text IS NULL OR tx_id < $2)"
                " ORDER BY tx_id DESC LIMIT $3)"
                " SELECT t.id, t.kind, t.created_at, t.meta::text AS meta,"
                " p.account, p.asset, p.amount"
                " FROM page JOIN transactions AS t ON t.id = page.tx_id"
                " JOIN postings AS p ON p.tx_id = t.id"
                " ORDER BY t.id DESC, p.n ASC",
                accounts,
                before,
                limit,
            )
        found: dict[str, TransactionRecord] = {}
        for row in rows:
            record = found.get(row["id"])
            posting = Posting(row["account"], row["asset"], row["amount"])
            if record is None:
                found[row["id"]] = TransactionRecord(
                    id=row["id"],
                    kind=row["kind"],
                    created_at=row["created_at"],
                    postings=(posting,),
                    meta=orjson.loads(row["meta"]),
                )
            else:
                found[row["id"]] = TransactionRecord(
                    id=record.id,
                    kind=record.kind,
                    created_at=record.created_at,
                    postings=(*record.postings, posting),
                    meta=record.meta,
                )
        for record in unfiled:
            if record.id in found or (before is not None and record.id >= before):
                continue
            if any(p.account in accounts for p in record.postings):
                found[record.id] = record
        return sorted(found.values(), key=lambda r: r.id, reverse=True)[:limit]

    async def _unfiled(self) -> list[TransactionRecord]:
        """The newest outbox entries; none when Redis is down (the filed history is
        still worth showing)."""
        try:
            entries: Any = await self._redis.xrevrange(OUTBOX, count=_OUTBOX_SCAN_LIMIT)
        except CONNECTION_ERRORS as exc:
            log.warning("history without unfiled outbox entries: redis unavailable: %s", exc)
            return []
        records: list[TransactionRecord] = []
        for _entry_id, fields in entries:
            with contextlib.suppress(PoisonEntry):
                records.append(decode_entry(fields))
        return records

    async def drain(self, *, consumer: str = "audit", max_batches: int = 1_000) -> int:
        """File everything in the outbox now (what the worker does; idempotent)."""
        total = 0
        for _ in range(max_batches):
            handled = await drain_once(self._redis, self._pool, consumer=consumer)
            if not handled:
                break
            total += handled
        return total

    async def audit(self) -> AuditReport:
        """Drain the outbox, then compare the hot balances in Redis with balances
        derived from the PostgreSQL postings. Final only while nothing is being
        written; ``pending`` counts entries still unfiled."""
        await self.drain()
        async with _pg(self._pool) as conn, conn.transaction(isolation="repeatable_read"):
            count = await conn.fetchval("SELECT count(*) FROM transactions")
            totals = dict.fromkeys(ASSETS, 0)
            for row in await conn.fetch(
                "SELECT asset, sum(amount) AS s FROM postings GROUP BY asset"
            ):
                totals[row["asset"]] = int(row["s"])
            unbalanced = [
                row["tx_id"]
                for row in await conn.fetch(
                    "SELECT DISTINCT tx_id FROM (SELECT tx_id FROM postings"
                    " GROUP BY tx_id, asset HAVING sum(amount) <> 0) AS bad ORDER BY tx_id"
                )
            ]
            ledger = {
                (row["account"], row["asset"]): int(row["s"])
                for row in await conn.fetch(
                    "SELECT account, asset, sum(amount) AS s FROM postings GROUP BY account, asset"
                )
            }
        hot = await self.hot_balances()
        mismatches: list[Mismatch] = []
        negative: list[str] = []
        for account, asset in sorted(ledger.keys() | hot.keys()):
            hot_amount = hot.get((account, asset), 0)
            ledger_amount = ledger.get((account, asset), 0)
            if hot_amount != ledger_amount:
                mismatches.append(Mismatch(account, asset, hot_amount, ledger_amount))
            is_user_coins = (
                asset == COIN and account.startswith("user:") and account.endswith(":coins")
            )
            if is_user_coins and min(hot_amount, ledger_amount) < 0:
                negative.append(account)
        return AuditReport(
            transactions=int(count),
            totals=totals,
            unbalanced=unbalanced,
            mismatches=mismatches,
            negative=negative,
            pending=await outbox_lag(self._redis),
        )

    async def hot_balances(self) -> dict[tuple[str, str], int]:
        """Every hot balance in Redis by ``(account, asset)``."""
        hot: dict[tuple[str, str], int] = {}
        try:
            system: Any = await self._redis.hgetall(SYSTEM_BALANCES)
            for field, value in system.items():
                asset, _, account = field.decode().partition("|")
                hot[(account, asset)] = int(value)
            keys: list[bytes] = [
                key async for key in self._redis.scan_iter(match=WALLET_PATTERN, count=1_000)
            ]
            for start in range(0, len(keys), 1_000):
                chunk = keys[start : start + 1_000]
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in chunk:
                        pipe.hmget(key, "coin", "diamond", "debt", "withdrawing")
                    values = await pipe.execute()
                for key, (coins, diamonds, debt, withdrawing) in zip(chunk, values, strict=True):
                    user_id = user_of_wallet_key(key.decode())
                    if coins is not None:
                        hot[(coins_account(user_id), "coin")] = int(coins)
                    if diamonds is not None:
                        hot[(diamonds_account(user_id), "diamond")] = int(diamonds)
                    if debt is not None:
                        hot[(debt_account(user_id), "coin")] = int(debt)
                    if withdrawing is not None:
                        hot[(withdrawing_account(user_id), "diamond")] = int(withdrawing)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"redis unavailable: {exc}") from exc
        return hot

    async def check(self) -> None:
        """``SELECT 1`` on PostgreSQL; ``Unavailable`` if it cannot answer."""
        try:
            async with _pg(self._pool) as conn:
                await conn.fetchval("SELECT 1")
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"postgresql: {exc}") from exc


__all__ = [
    "GROUP",
    "PoisonEntry",
    "PostgresLedger",
    "decode_entry",
    "drain_once",
    "migrate",
    "outbox_lag",
    "run_ledger_worker",
]

"""The scaled engine's durable ledger: PostgreSQL, fed from the Redis outbox.

Transactions reach PostgreSQL through the outbox (``store.scaled.outbox``); the
``Ledger`` role reads them there, together with the entries not yet filed, and
audits the hot balances in Redis against the postings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import orjson

from store.domain.accounts import debt_account, user_accounts, withdrawing_account
from store.domain.models import (
    ASSETS,
    AuditReport,
    Posting,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.errors import StoreError, Unavailable
from store.observer import StoreObserver
from store.scaled.client import CONNECTION_ERRORS, AnyRedis, CommandBatcher
from store.scaled.keys import WALLET_PATTERN, user_of_wallet_key, wallet_key
from store.scaled.outbox import (
    SETTLE_GROUP,
    PoisonEntry,
    SettleSweeper,
    decode_entry,
    drain_once,
    outbox_lag,
    release_settled,
)
from store.scaled.postgres import pg_connection
from store.scaled.slots import existing_slot_keys, slot_key, slot_of

log = logging.getLogger(__name__)

_OUTBOX_SCAN_LIMIT: Final = 10_000
"""How many unfiled outbox entries a history read looks through (newest first)."""
_OUTBOX_LIST_SECONDS: Final = 5.0
"""Cluster: how long a history read reuses the list of every slot's outbox."""
_SETTLE_ROUNDS: Final = 1_000
"""Cluster: at most this many settle passes before an audit or a repair reads."""


HISTORY_QUERY: Final = (
    "WITH page AS ("
    " SELECT DISTINCT tx_id FROM postings"
    " WHERE account = ANY($1::text[]) AND account LIKE 'user:%'"
    " AND ($2::text IS NULL OR tx_id < $2)"
    " ORDER BY tx_id DESC LIMIT $3)"
    " SELECT t.id, t.kind, t.created_at, t.meta::text AS meta,"
    " p.account, p.asset, p.amount"
    " FROM page JOIN transactions AS t ON t.id = page.tx_id"
    " JOIN postings AS p ON p.tx_id = t.id"
    " ORDER BY t.id DESC, p.n ASC"
)
"""A page of a user's transactions ($1: the user's accounts, $2: older than this
id or NULL, $3: at most this many). ``account LIKE 'user:%'`` lets PostgreSQL
use the partial index ``postings_user_account`` (migration 003)."""


class PostgresLedger:
    """``Ledger`` over PostgreSQL, aware of the not-yet-filed outbox entries.

    On a Redis Cluster (``batcher`` routing to one), the outboxes and system
    balances are one per slot: the audit drains and sums every slot's."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: AnyRedis,
        *,
        observer: StoreObserver | None = None,
        batcher: CommandBatcher | None = None,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._observer = observer
        self._batcher = batcher
        self._cluster = batcher is not None and batcher.cluster is not None
        self._outbox_list: tuple[float, list[str]] | None = None

    async def slot_keys(self, suffix: str) -> list[str]:
        """Every slot's ``suffix`` key (``outbox``, ``bal``, ``dead``) that exists
        on a cluster; the one ``{sys}`` key on a single Redis."""
        if self._batcher is None or not self._cluster:
            return [slot_key(None, suffix)]
        try:
            return await existing_slot_keys(self._batcher, suffix)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"redis unavailable: {exc}") from exc

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        """Transactions touching the user's accounts (``user:<id>:coins``,
        ``:diamonds``, ``:debt``, ``:withdrawing``), by id descending, strictly older
        than ``before``. Entries still in the outbox are included, so a user sees a
        gift the moment it is acknowledged."""
        accounts = list(user_accounts(user_id).values())
        # The outbox first: an entry the worker files meanwhile is in PostgreSQL by
        # the time it leaves the outbox (XDEL after COMMIT), so it is in one or both.
        unfiled = await self._unfiled(user_id)
        async with pg_connection(self._pool, observer=self._observer, call="history") as conn:
            rows = await conn.fetch(
                HISTORY_QUERY,
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

    async def _unfiled(self, user_id: str) -> list[TransactionRecord]:
        """The newest outbox entries; none when Redis is down (the filed history is
        still worth showing). On a cluster, every slot's outbox: a gift received
        sits in its sender's slot. The user's own slot is read up to the full
        limit, the others up to a share of it."""
        if not self._cluster or self._batcher is None:
            return await self._newest(slot_key(None, "outbox"), _OUTBOX_SCAN_LIMIT)
        own = slot_key(slot_of(wallet_key(user_id)), "outbox")
        try:
            outboxes = [o for o in await self._outboxes() if o != own]
        except Unavailable as exc:
            log.warning("history without unfiled outbox entries: %s", exc)
            return []
        share = max(100, _OUTBOX_SCAN_LIMIT // max(1, len(outboxes)))
        found = await asyncio.gather(
            self._newest(own, _OUTBOX_SCAN_LIMIT),
            *(self._newest(outbox, share) for outbox in outboxes),
        )
        return [record for records in found for record in records]

    async def _outboxes(self) -> list[str]:
        """Every slot's outbox that exists, listed again every few seconds."""
        now = time.monotonic()
        if self._outbox_list is None or now - self._outbox_list[0] > _OUTBOX_LIST_SECONDS:
            self._outbox_list = (now, await self.slot_keys("outbox"))
        return self._outbox_list[1]

    async def _newest(self, outbox: str, count: int) -> list[TransactionRecord]:
        try:
            if self._cluster and self._batcher is not None:
                reply = await self._batcher.execute("XREVRANGE", outbox, "+", "-", "COUNT", count)
                entries: Any = [
                    (entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
                    for entry_id, flat in reply or ()
                ]
            else:
                entries = await self._redis.xrevrange(outbox, count=count)
        except (*CONNECTION_ERRORS, StoreError) as exc:
            log.warning("history without unfiled outbox entries: redis unavailable: %s", exc)
            return []
        records: list[TransactionRecord] = []
        for _entry_id, fields in entries:
            with contextlib.suppress(PoisonEntry):
                records.append(decode_entry(fields))
        return records

    async def settle(
        self, *, consumer: str = "audit", outboxes: Sequence[str] | None = None
    ) -> int:
        """Cluster: finish every gift and credit step still in an outbox (the
        settle group's work, each step once by its marker), claiming entries
        other sweepers hold at once; returns the entries handled. Nothing to do
        on a single Redis, where a transaction is whole when it commits."""
        if not self._cluster or self._batcher is None:
            return 0
        sweeper = SettleSweeper(self._batcher, consumer=consumer, claim_idle_ms=0)
        total = 0
        for _ in range(_SETTLE_ROUNDS):
            handled = await sweeper.sweep(outboxes=outboxes)
            if not handled:
                break
            total += handled
        return total

    async def drain(
        self,
        *,
        consumer: str = "audit",
        max_batches: int = 1_000,
        outboxes: Sequence[str] | None = None,
    ) -> int:
        """File everything in the outbox now (what the worker does; idempotent).
        ``outboxes``: the list of every slot's outbox, when the caller has it."""
        total = 0
        if outboxes is None:
            outboxes = await self.slot_keys("outbox")
        for _ in range(max_batches):
            handled = await drain_once(
                self._redis,
                self._pool,
                outboxes=outboxes,
                consumer=consumer,
                settle_group=SETTLE_GROUP if self._cluster else "",
                observer=self._observer,
            )
            if not handled:
                break
            total += handled
        if self._cluster:
            await release_settled(self._redis, outboxes)
        return total

    async def audit(self) -> AuditReport:
        """Drain the outbox, then compare the hot balances in Redis with balances
        derived from the PostgreSQL postings. Final only while nothing is being
        written; ``pending`` counts entries still unfiled. On a cluster it first
        finishes every gift's credit and room step (``settle``), as a quiescent
        point there is one where every outbox is settled too; without that, the
        entries the settle group had not acknowledged yet would stay ``pending``
        and their creators' diamonds below the ledger."""
        # one list of the outboxes for the whole audit: settling writes to none
        outboxes = await self.slot_keys("outbox")
        await self.drain(outboxes=outboxes)
        if await self.settle(outboxes=outboxes):
            await self.drain(outboxes=outboxes)
        async with (
            pg_connection(self._pool, observer=self._observer, call="audit") as conn,
            conn.transaction(isolation="repeatable_read"),
        ):
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
        return AuditReport.compare(
            transactions=int(count),
            totals=totals,
            unbalanced=unbalanced,
            hot=hot,
            ledger=ledger,
            pending=await self.lag(outboxes),
        )

    async def lag(self, outboxes: Sequence[str] | None = None) -> int:
        """Outbox entries of every slot not yet through (``outbox_lag``)."""
        if outboxes is None:
            outboxes = await self.slot_keys("outbox")
        return await outbox_lag(self._redis, outboxes)

    async def hot_balances(self) -> dict[tuple[str, str], int]:
        """Every hot balance in Redis by ``(account, asset)``; a system account's
        is the sum over every slot's system balances."""
        hot: dict[tuple[str, str], int] = {}
        balances = await self.slot_keys("bal")
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in balances:
                    pipe.hgetall(name)
                systems: list[Any] = await pipe.execute()
            for system in systems:
                for field, value in system.items():
                    asset, _, account = field.decode().partition("|")
                    hot[(account, asset)] = hot.get((account, asset), 0) + int(value)
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
            async with pg_connection(self._pool, observer=self._observer, call="check") as conn:
                await conn.fetchval("SELECT 1")
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"postgresql: {exc}") from exc


__all__ = ["PostgresLedger"]

"""The ledger outbox and its worker: Redis to PostgreSQL.

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

On a Redis Cluster there is one outbox (and dead-letter stream) per slot,
``live:{<tag of slot s>}:outbox`` next to the balances its scripts move
(``store.scaled.slots``). The worker reads them all (``ClusterOutboxes``: a
full sweep now and then, a cheap per-primary hint in between), files entries
of many slots in one PostgreSQL transaction, and acknowledges each slot's
entries there; an entry is deleted once the ``settle`` group has it too
(``outbox_ack.lua``), so the lag still counts every entry not yet through.
The ``settle`` group (``SettleSweeper``) finishes the gifts they hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeGuard

import asyncpg
import orjson
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from store.domain.models import Posting, TransactionRecord
from store.domain.postings import is_balanced
from store.errors import StoreError, Unavailable
from store.observer import StoreObserver
from store.roles import EngineConfig
from store.scaled.activity import RedisRoomActivity
from store.scaled.client import (
    CONNECTION_ERRORS,
    AnyRedis,
    CommandBatcher,
    connect_redis,
    load_script,
)
from store.scaled.credits import Credit, stream_credits
from store.scaled.credits import apply as apply_credits
from store.scaled.gifts import GiftStep, finish_gift
from store.scaled.keys import CLUSTER, OUTBOX, SINGLE
from store.scaled.postgres import PG_UNAVAILABLE, create_pool, pg_connection
from store.scaled.slots import existing_slot_keys

log = logging.getLogger(__name__)

GROUP: Final = "ledger"
SETTLE_GROUP: Final = "settle"
"""On a cluster, the group that finishes every gift of an outbox (credit, room
step): an entry leaves the outbox once both groups have it."""


class PoisonEntry(Exception):
    """An outbox entry that can never be filed; the message says why."""


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


Entry = tuple[str, bytes, dict[bytes, bytes] | None]
"""One outbox entry read: its stream, its id, its fields (``None``: deleted since)."""

_ACK: Final = load_script("outbox_ack")


async def ensure_group(redis: AnyRedis, outbox: str = OUTBOX) -> None:
    """Create the consumer group (from the start of the stream) if missing."""
    try:
        await redis.xgroup_create(outbox, GROUP, id="0", mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def drain_once(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    *,
    outboxes: Sequence[str] = (OUTBOX,),
    consumer: str = "ledger-1",
    batch: int = 500,
    claim_idle_ms: int = 30_000,
    block_ms: int | None = None,
    ack: bool = True,
    recover: bool = True,
    settle_group: str = "",
    observer: StoreObserver | None = None,
) -> int:
    """File one batch from each of ``outboxes`` (``drain_entries``); how many
    entries were handled (0: nothing to do)."""
    entries = await drain_entries(
        redis,
        pool,
        outboxes=outboxes,
        consumer=consumer,
        batch=batch,
        claim_idle_ms=claim_idle_ms,
        block_ms=block_ms,
        ack=ack,
        recover=recover,
        settle_group=settle_group,
        observer=observer,
    )
    return len(entries)


async def drain_entries(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    *,
    outboxes: Sequence[str] = (OUTBOX,),
    consumer: str = "ledger-1",
    batch: int = 500,
    claim_idle_ms: int = 30_000,
    block_ms: int | None = None,
    ack: bool = True,
    recover: bool = True,
    settle_group: str = "",
    observer: StoreObserver | None = None,
) -> list[Entry]:
    """File one batch from each of ``outboxes``: this consumer's own
    unacknowledged entries first (it died after COMMIT, or PostgreSQL failed),
    else entries other consumers left idle for ``claim_idle_ms``, else new ones
    (waiting up to ``block_ms`` when there is one outbox). ``recover=False``
    reads only new entries (a worker whose last batch was acknowledged). Returns
    the entries handled. ``ack=False`` files without acknowledging, like a worker
    killed between COMMIT and XACK (for tests). ``settle_group``: an entry is
    deleted only once that group acknowledged it too (a cluster's settle group).
    ``observer`` is told the PostgreSQL call's latency and what the batch moved."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if not outboxes:
        return []
    try:
        entries: list[Entry] = []
        if recover:
            entries = await _read(redis, outboxes, consumer, "0", batch, None)
            if not entries:
                entries = await _claim(redis, outboxes, consumer, claim_idle_ms, batch)
        if not entries:
            wait = block_ms if len(outboxes) == 1 else None
            entries = await _read(redis, outboxes, consumer, ">", batch, wait)
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from exc
    for start in range(0, len(entries), batch):
        await _handle(
            redis,
            pool,
            entries[start : start + batch],
            ack=ack,
            settle_group=settle_group,
            observer=observer,
        )
    return entries


async def _read(
    redis: AnyRedis,
    outboxes: Sequence[str],
    consumer: str,
    start: str,
    count: int,
    block_ms: int | None,
) -> list[Entry]:
    """``XREADGROUP`` on each outbox (one pipeline; on a cluster, one per primary);
    a missing group is created and that outbox read once more."""
    replies = await _pipelined(
        redis,
        outboxes,
        lambda pipe, outbox: pipe.xreadgroup(
            GROUP, consumer, {outbox: start}, count=count, block=block_ms
        ),
    )
    entries: list[Entry] = []
    again: list[str] = []
    for outbox, reply in zip(outboxes, replies, strict=True):
        if _no_group(reply):
            await ensure_group(redis, outbox)
            again.append(outbox)
            continue
        if isinstance(reply, Exception):
            raise reply
        for _stream, items in reply or ():
            entries.extend((outbox, entry_id, fields or None) for entry_id, fields in items)
    if again:
        entries += await _read(redis, again, consumer, start, count, block_ms)
    return entries


async def _claim(
    redis: AnyRedis, outboxes: Sequence[str], consumer: str, idle_ms: int, count: int
) -> list[Entry]:
    """Entries other consumers of the group left pending for ``idle_ms``."""
    replies = await _pipelined(
        redis,
        outboxes,
        lambda pipe, outbox: pipe.xautoclaim(
            outbox, GROUP, consumer, idle_ms, start_id="0-0", count=count
        ),
    )
    entries: list[Entry] = []
    for outbox, reply in zip(outboxes, replies, strict=True):
        if _no_group(reply):
            continue  # created by the next read
        if isinstance(reply, Exception):
            raise reply
        entries.extend((outbox, i, f) for i, f in reply[1] if f is not None)
    return entries


def _no_group(reply: object) -> bool:
    """Whether a pipelined reply says the outbox has no ledger group yet (a stream
    made by a script's first ``XADD``): ``ensure_group`` creates it."""
    return isinstance(reply, redis_errors.ResponseError) and "NOGROUP" in str(reply)


async def _pipelined(
    redis: AnyRedis, keys: Sequence[str], command: Callable[[Any, str], object]
) -> list[Any]:
    """``command(pipe, key)`` for each key in one non-transactional pipeline; the
    replies in order, a command's error as its reply. On a cluster, a node gone
    (a failover) makes the client read the slot map again and the pipeline go
    once more: every command sent this way may run twice."""
    attempt = 1
    while True:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                command(pipe, key)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        failed = next((r for r in replies if isinstance(r, CONNECTION_ERRORS)), None)
        if failed is None:
            return replies
        if attempt == 2 or not isinstance(redis, RedisCluster):
            raise failed
        await redis.nodes_manager.initialize()
        attempt += 1


async def _handle(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    entries: Sequence[Entry],
    *,
    ack: bool,
    settle_group: str = "",
    observer: StoreObserver | None = None,
) -> None:
    records: dict[str, TransactionRecord] = {}
    poison: list[tuple[Entry, str]] = []
    for entry in entries:
        _outbox, _entry_id, fields = entry
        if fields is None:
            continue  # deleted while pending: already filed, only the ack is missing
        try:
            record = decode_entry(fields)
        except PoisonEntry as exc:
            poison.append((entry, str(exc)))
            continue
        records.setdefault(record.id, record)
    if records:
        try:
            async with pg_connection(pool, observer=observer, call="file") as conn:
                try:
                    await _file(conn, list(records.values()))
                except asyncpg.PostgresError as exc:
                    if not _refuses_data(exc):
                        raise
                    # one entry the database refuses must not block the rest
                    log.warning("ledger batch refused (%s); filing one by one", exc)
                    refused = await _file_one_by_one(conn, records.values())
                    for entry in entries:
                        reason = refused.get(_tx_id(entry[2]) or "")
                        if reason is not None:
                            poison.append((entry, reason))
        except PG_UNAVAILABLE as exc:
            raise Unavailable(f"postgresql unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"postgresql cannot file the ledger now: {exc}") from exc
    if not ack:
        return
    by_outbox: dict[str, list[bytes]] = {}
    for outbox, entry_id, _fields in entries:
        by_outbox.setdefault(outbox, []).append(entry_id)
    try:
        # one primary: dead letters, ack and delete in one MULTI; a cluster has
        # no MULTI across slots, and a dead letter written twice (a retry after a
        # failure in between) is harmless
        single = not isinstance(redis, RedisCluster)
        layout = SINGLE if single else CLUSTER
        async with redis.pipeline(transaction=single) as pipe:
            for (outbox, entry_id, fields), reason in poison:
                log.error("ledger: parking outbox entry %s: %s", entry_id.decode(), reason)
                pipe.xadd(
                    layout.dead_letters(outbox),
                    {
                        b"entry": entry_id,
                        b"reason": reason.encode(),
                        b"tx": (fields or {}).get(b"tx", b""),
                    },
                )
            for outbox, ids in by_outbox.items():
                pipe.eval(_ACK.source.decode(), 1, outbox, GROUP, settle_group, 0, *ids)
            await pipe.execute()
    except CONNECTION_ERRORS as exc:
        # filed but not acknowledged: re-filing later is a no-op
        raise Unavailable(f"redis unavailable: {exc}") from exc
    if observer is not None:
        now_ms = time.time() * 1000
        observer.ledger_filed(
            filed=len(entries) - len(poison),
            parked=len(poison),
            ages=[max(0.0, now_ms - _entry_ms(entry_id)) / 1000 for _, entry_id, _ in entries],
        )


async def release_settled(
    redis: AnyRedis, outboxes: Sequence[str], *, settle_group: str = SETTLE_GROUP, scan: int = 1_000
) -> int:
    """Delete the oldest ``scan`` entries of each outbox that both the ledger and
    the settle group are done with but that are still there (a group that
    acknowledged without ``outbox_ack.lua``, or a failover that lost a delete).
    The audit's drain and the worker's sweeps call it. Returns how many went."""
    try:
        replies = await _pipelined(
            redis,
            outboxes,
            lambda pipe, outbox: pipe.eval(
                _ACK.source.decode(), 1, outbox, GROUP, settle_group, scan
            ),
        )
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from exc
    for reply in replies:
        if isinstance(reply, Exception):
            raise Unavailable(f"redis: {reply}")
    return sum(int(reply) for reply in replies)


def _entry_ms(entry_id: bytes) -> int:
    """When Redis added a stream entry: its id is ``<unix ms>-<sequence>``."""
    return int(entry_id.partition(b"-")[0])


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


async def outbox_lag(redis: AnyRedis, outboxes: Sequence[str] = (OUTBOX,)) -> int:
    """Outbox entries not yet filed in PostgreSQL (pending plus not yet delivered):
    filed entries are deleted, so this is the sum of the streams' lengths. On a
    cluster an entry also waits for the settle group, so this counts the credits
    not yet settled too. For metrics and the audit."""
    try:
        replies = await _pipelined(redis, outboxes, lambda pipe, outbox: pipe.xlen(outbox))
    except CONNECTION_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from exc
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return sum(int(reply) for reply in replies)


class ClusterOutboxes:
    """Which outboxes of a cluster the ledger worker reads next.

    One ``XREADGROUP`` cannot span slots, and a cluster has up to 16,384 outboxes.
    Reading each of them every round would cost ~16k reads per round on an idle
    cluster, and redis-py's per-command cost makes that slow, so only outboxes
    holding entries are read, found with the engine's batcher (a few µs a call):

    - a full sweep every ``sweep_seconds`` (and at start, and after an outage)
      lists the outboxes that exist (``existing_slot_keys``: one ``EXISTS`` per
      slot, one pipeline per primary), then ``XLEN`` of each; those holding
      entries are read with own pending entries and idle claims included;
    - between sweeps, a hint per primary: its ``INFO commandstats`` count of
      ``XADD`` calls (scripts' calls included). Only the outboxes of a primary
      whose count moved, and those that gave entries last round, get an
      ``XLEN``; only the non-empty ones are read.

    An idle cluster then costs one ``INFO`` per primary per poll and one sweep per
    ``sweep_seconds``. The hint only saves reads: a room's history appends move it
    too, which merely checks more. A slot's very first outbox entry (its stream
    did not exist at the last sweep) waits for the next sweep."""

    def __init__(self, redis: RedisCluster, batcher: CommandBatcher, *, sweep_seconds: float):
        self._redis = redis
        self._batcher = batcher
        self._sweep_seconds = sweep_seconds
        self._by_node: dict[str, list[str]] = {}
        self._next_sweep = 0.0
        self._appends: dict[str, int] = {}
        self.busy: set[str] = set()
        """Outboxes that gave entries last round: looked at again at once."""

    def resweep(self) -> None:
        """Sweep everything next round (after an outage: a failover moves slots)."""
        self._next_sweep = 0.0
        self._appends.clear()
        self._batcher.forget_slots()

    async def due(self) -> tuple[list[str], bool]:
        """The outboxes to read now, and whether this is a full sweep (read own
        pending entries and claim idle ones too)."""
        now = time.monotonic()
        if now >= self._next_sweep:
            await self._moved()  # the baseline of the hint (and the client's slot map)
            outboxes = await existing_slot_keys(self._batcher, "outbox")
            self._by_node = {}
            for outbox in outboxes:
                self._by_node.setdefault(self._node(outbox), []).append(outbox)
            self._next_sweep = now + self._sweep_seconds
            return await self._holding(outboxes), True
        moved = await self._moved()
        candidates = set(self.busy)
        for node in moved:
            candidates.update(self._by_node.get(node, ()))
        return await self._holding(sorted(candidates)), False

    async def _holding(self, outboxes: Sequence[str]) -> list[str]:
        """The outboxes holding entries (``XLEN`` by the batcher)."""
        lengths = await asyncio.gather(
            *(self._batcher.execute("XLEN", outbox) for outbox in outboxes),
            return_exceptions=True,
        )
        for length in lengths:
            if isinstance(length, BaseException):
                raise length
        return [outbox for outbox, length in zip(outboxes, lengths, strict=True) if length]

    async def _moved(self) -> set[str]:
        """The primaries whose ``XADD`` count changed since the last look."""
        stats: Any = await self._redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        moved: set[str] = set()
        for node, info in stats.items():
            calls = int(info.get("cmdstat_xadd", {}).get("calls", 0))
            if self._appends.get(node) != calls:
                moved.add(node)
            self._appends[node] = calls
        return moved

    def _node(self, key: str) -> str:
        node = self._redis.get_node_from_key(key)
        return "" if node is None else str(node.name)


async def run_ledger_worker(
    *,
    redis_url: str,
    database_url: str,
    stop: asyncio.Event,
    consumer: str = "ledger-1",
    batch: int = 500,
    claim_idle_ms: int = 30_000,
    poll_seconds: float = 0.25,
    sweep_seconds: float = 10.0,
    observer: StoreObserver | None = None,
) -> None:
    """Drain the outbox into PostgreSQL until ``stop`` is set. Outages of Redis or
    PostgreSQL are waited out with backoff; nothing is acknowledged unfiled.
    On a cluster, every slot's outbox (``ClusterOutboxes``): idle primaries are
    looked at every ``poll_seconds``, every outbox every ``sweep_seconds``; an
    entry is deleted once the settle group has it too.
    ``observer`` is told each batch filed (the worker's metrics)."""
    redis = connect_redis(redis_url, max_connections=8, timeout=10.0)
    pool = await create_pool(database_url, max_size=2)
    batcher = CommandBatcher(redis_url) if isinstance(redis, RedisCluster) else None
    outboxes = (
        ClusterOutboxes(redis, batcher, sweep_seconds=sweep_seconds)
        if isinstance(redis, RedisCluster) and batcher is not None
        else None
    )
    backoff = 0.1
    log.info("ledger worker %s started", consumer)
    try:
        while not stop.is_set():
            try:
                if outboxes is None:
                    await drain_once(
                        redis,
                        pool,
                        consumer=consumer,
                        batch=batch,
                        claim_idle_ms=claim_idle_ms,
                        block_ms=1_000,
                        observer=observer,
                    )
                else:
                    due, sweep = await outboxes.due()
                    entries = await drain_entries(
                        redis,
                        pool,
                        outboxes=due,
                        consumer=consumer,
                        batch=batch,
                        claim_idle_ms=claim_idle_ms,
                        recover=sweep,
                        settle_group=SETTLE_GROUP,
                        observer=observer,
                    )
                    outboxes.busy = {outbox for outbox, _, _ in entries}
                    if sweep and due:
                        await release_settled(redis, due)
                    if not entries:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(stop.wait(), poll_seconds)
                backoff = 0.1
            except (StoreError, redis_errors.RedisError) as exc:
                # a failover or a slot moving answers errors for a moment (READONLY,
                # MOVED on a stale map...): wait, then read the slot map again
                log.warning("ledger worker waiting: %s", exc)
                if outboxes is not None:
                    outboxes.resweep()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)
    finally:
        if batcher is not None:
            await batcher.close()
        await pool.close()
        await redis.aclose()
        log.info("ledger worker %s stopped", consumer)


# -- the settle group (Redis Cluster) ------------------------------------------------

_SETTLE_READ: Final = load_script("settle_read")


class SettleSweeper:
    """Finishes the gifts of every slot's outbox on a Redis Cluster.

    A gift there is committed by its debit (``gift_debit.lua``, which writes the
    whole transaction and a ``gift`` field to its slot's outbox); the node then
    runs the credit and the room step itself, and publishes the gift's event.
    This sweeper looks at every entry of every outbox once it is
    ``claim_idle_ms`` old (consumer group ``settle``, created on each outbox
    from its start) and runs both steps again: each is applied once by its
    marker, so a gift whose node died in between is credited and booked once,
    and any other gift costs two no-op marker checks. The room step also says
    whether the gift's event went out (the marker's SHOWN flag, set by the script
    that publishes it); if not, the sweeper publishes it, late, as a combo of its
    own (``RedisRoomActivity.publish_late_gift``), once. It also runs again the
    credit steps of item purchases and reversals (``store.scaled.credits``),
    applied once by the same markers. Entries read but not finished (Redis
    failed mid-way, a sweeper died) are claimed again once idle for
    ``claim_idle_ms``. An entry is deleted by whichever group acknowledges it
    last (``outbox_ack.lua``): the ledger's, once filed, or this one. Each
    process reads as a consumer of its own; the consumers of processes gone
    (holding no entries, idle ``forget_idle_ms``) are removed, once every
    ``forget_seconds``, by whichever sweeper gets there.
    ``rooms`` publishes the late events (the engine's; by default one with the
    engine's default history size and age, for a tool that sweeps on its own).
    """

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        consumer: str,
        rooms: RedisRoomActivity | None = None,
        batch: int = 200,
        claim_idle_ms: int = 10_000,
        rescan_seconds: float = 30.0,
        forget_idle_ms: int = 600_000,
        forget_seconds: float = 60.0,
    ) -> None:
        if batch < 1 or claim_idle_ms < 0 or forget_idle_ms < 1:
            raise ValueError("batch and forget_idle_ms must be >= 1 and claim_idle_ms >= 0")
        self._batcher = batcher
        self._consumer = consumer
        if rooms is None:
            defaults = EngineConfig()
            rooms = RedisRoomActivity(
                batcher,
                history_size=defaults.history_size,
                history_seconds=defaults.history_seconds,
                layout=CLUSTER,
            )
        self._rooms = rooms
        self._batch = batch
        self._claim_idle_ms = claim_idle_ms
        self._rescan = rescan_seconds
        self._forget_idle_ms = forget_idle_ms
        self._forget_every = forget_seconds
        self._outboxes: list[str] = []
        self._scanned_at = -math.inf
        self._forgot_at = -math.inf
        self.finished = 0
        """Gifts this sweeper credited or booked (a step the node had not done)."""
        self.shown = 0
        """Gift events this sweeper published (their node died before)."""

    async def sweep(self, *, outboxes: Sequence[str] | None = None) -> int:
        """One pass over every outbox (or over ``outboxes``, when the caller has
        listed them); returns the entries handled (0: idle)."""
        listed = await self._all() if outboxes is None else list(outboxes)
        return sum((await self._pass(listed)).values())

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 5.0) -> None:
        """Sweep until ``stop`` is set: every outbox every ``idle_seconds``, and
        in between, again at once, the outboxes that had entries (an idle outbox
        costs one script call per pass), with backoff while Redis is down."""
        backoff = idle_seconds
        while not stop.is_set():
            wait = idle_seconds
            try:
                started = time.monotonic()
                handled = await self._pass(await self._all())
                busy = [outbox for outbox, count in handled.items() if count]
                while busy and not stop.is_set():
                    if time.monotonic() - started >= idle_seconds:
                        wait = 0.0  # every outbox again now, the busy ones among them
                        break
                    handled = await self._pass(busy)
                    busy = [outbox for outbox, count in handled.items() if count]
                backoff = idle_seconds
            except StoreError as exc:
                log.warning("settle sweeper waiting: %s", exc.message)
                wait = backoff = min(backoff * 2, 60.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _all(self) -> list[str]:
        """Every outbox (found again every ``rescan_seconds``)."""
        if time.monotonic() - self._scanned_at >= self._rescan:
            self._outboxes = await existing_slot_keys(self._batcher, "outbox")
            self._scanned_at = time.monotonic()
        return self._outboxes

    async def _pass(self, outboxes: list[str]) -> dict[str, int]:
        forget = 0
        if time.monotonic() - self._forgot_at >= self._forget_every:
            forget, self._forgot_at = self._forget_idle_ms, time.monotonic()
        counts = await asyncio.gather(*(self._sweep(outbox, forget) for outbox in outboxes))
        return dict(zip(outboxes, counts, strict=True))

    async def _sweep(self, outbox: str, forget: int) -> int:
        entries = await self._batcher.evalsha(
            _SETTLE_READ,
            (outbox,),
            (SETTLE_GROUP, self._consumer, self._batch, self._claim_idle_ms, forget),
            retry_on_disconnect=True,
        )
        if not entries:
            return 0
        done: list[bytes] = []
        steps: list[tuple[bytes, GiftStep]] = []
        others: list[tuple[bytes, list[Credit]]] = []
        for entry_id, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
            if b"gift" not in fields:
                # an item's creator share or a reversal's clawbacks (credits.py)
                found = stream_credits(fields)
                if found:
                    others.append((entry_id, found))
                else:
                    done.append(entry_id)  # nothing to finish, or deleted
                continue
            try:
                steps.append((entry_id, GiftStep.decode(fields[b"gift"])))
            except ValueError as exc:
                log.error("settle: outbox entry %s skipped: %s", entry_id.decode(), exc)
                done.append(entry_id)
        results = await asyncio.gather(
            *(finish_gift(self._batcher, step) for _, step in steps), return_exceptions=True
        )
        unseen: list[tuple[bytes, GiftStep]] = []
        for (entry_id, step), result in zip(steps, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("settle: gift %s not finished yet: %s", step.tx_id, result)
                continue  # stays pending, claimed again once idle
            self.finished += result.credited + result.booked
            if result.shown or not step.gift:
                done.append(entry_id)
            else:
                unseen.append((entry_id, step))
        done += await self._show(unseen)
        applied = await asyncio.gather(
            *(apply_credits(self._batcher, found) for _, found in others), return_exceptions=True
        )
        for (entry_id, found), outcome in zip(others, applied, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("settle: credits of %s not applied yet: %s", found[0].tx, outcome)
                continue
            done.append(entry_id)
        if done:  # and deleted if the ledger filed them already
            await self._batcher.evalsha(
                _ACK, (outbox,), (SETTLE_GROUP, GROUP, 0, *done), retry_on_disconnect=True
            )
        return len(entries)

    async def _show(self, unseen: list[tuple[bytes, GiftStep]]) -> list[bytes]:
        """Publish the events of booked gifts never shown; the entries done."""
        published = await asyncio.gather(
            *(self._rooms.publish_late_gift(step.room_id, step.late_hit()) for _, step in unseen),
            return_exceptions=True,
        )
        done: list[bytes] = []
        for (entry_id, step), result in zip(unseen, published, strict=True):
            if isinstance(result, BaseException):
                log.warning("settle: the event of gift %s not shown yet: %s", step.tx_id, result)
                continue  # stays pending, claimed again once idle
            if result:
                self.shown += 1
                log.info("settle: gift %s shown by the settle group", step.tx_id)
            done.append(entry_id)
        return done

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

On a Redis Cluster there is one outbox per slot (``KeyLayout``), and a second
group, ``settle`` (``SettleSweeper``), finishes the gifts they hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeGuard

import asyncpg
import orjson
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from store.domain.models import Posting, TransactionRecord
from store.domain.postings import is_balanced
from store.errors import StoreError, Unavailable
from store.observer import StoreObserver
from store.roles import EngineConfig
from store.scaled.activity import RedisRoomActivity
from store.scaled.client import CONNECTION_ERRORS, CommandBatcher, connect_redis, load_script
from store.scaled.credits import Credit, stream_credits
from store.scaled.credits import apply as apply_credits
from store.scaled.gifts import GiftStep, finish_gift
from store.scaled.keys import CLUSTER, DEAD_LETTERS, OUTBOX
from store.scaled.postgres import PG_UNAVAILABLE, create_pool, pg_connection
from store.scaled.slots import existing_slot_keys

log = logging.getLogger(__name__)

GROUP: Final = "ledger"


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
    observer: StoreObserver | None = None,
) -> int:
    """File one batch: this consumer's own unacknowledged entries first (it died
    after COMMIT, or PostgreSQL failed), else entries other consumers left idle
    for ``claim_idle_ms``, else new ones (waiting up to ``block_ms``). Returns how
    many entries were handled (0: nothing to do). ``ack=False`` files without
    acknowledging, like a worker killed between COMMIT and XACK (for tests).
    ``observer`` is told the PostgreSQL call's latency and what the batch moved."""
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
    await _handle(redis, pool, entries, ack=ack, observer=observer)
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
    observer: StoreObserver | None = None,
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
            async with pg_connection(pool, observer=observer, call="file") as conn:
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
    if observer is not None:
        now_ms = time.time() * 1000
        observer.ledger_filed(
            filed=len(entries) - len(poison),
            parked=len(poison),
            ages=[max(0.0, now_ms - _entry_ms(entry_id)) / 1000 for entry_id in ids],
        )


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
    observer: StoreObserver | None = None,
) -> None:
    """Drain the outbox into PostgreSQL until ``stop`` is set. Outages of Redis or
    PostgreSQL are waited out with backoff; nothing is acknowledged unfiled.
    ``observer`` is told each batch filed (the worker's metrics)."""
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
                    observer=observer,
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


# -- the settle group (Redis Cluster) ------------------------------------------------

_SETTLE_READ: Final = load_script("settle_read")
SETTLE_GROUP: Final = "settle"
"""The consumer group that finishes every gift of an outbox (credit, room step)."""


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
    ``claim_idle_ms``. The sweeper only acknowledges: entries are deleted once
    filed by the ledger. Each process reads as a consumer of its own; the
    consumers of processes gone (holding no entries, idle ``forget_idle_ms``)
    are removed, once every ``forget_seconds``, by whichever sweeper gets there.
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

    async def sweep(self) -> int:
        """One pass over every outbox; returns the entries handled (0: idle)."""
        return sum((await self._pass(await self._all())).values())

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
        if done:
            await self._batcher.execute("XACK", outbox, SETTLE_GROUP, *done)
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


async def cluster_outbox_lag(batcher: CommandBatcher) -> int:
    """Entries in every slot's outbox (Redis Cluster): the sum of their lengths."""
    outboxes = await existing_slot_keys(batcher, "outbox")
    lengths = await asyncio.gather(*(batcher.execute("XLEN", key) for key in outboxes))
    return sum(int(length) for length in lengths)

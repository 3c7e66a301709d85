"""The scaled engine: Redis wallet and rooms, Redis pub/sub fan-out, PostgreSQL ledger.

Any number of server processes share one Redis and one PostgreSQL. The hot
path (gifts, purchases, fan-out) needs only Redis: PostgreSQL may be down and
gifting goes on, the outbox holds the transactions until the ledger worker
(``run_ledger_worker``, run by ``live ledger``) files them.

On a Redis Cluster (a ``redis+cluster://`` URL) the keys follow
``KeyLayout(cluster=True)``: per-slot system balances and outboxes, payment keys
in the buyer's slot, a gift split in three single-slot scripts, and every node
runs a ``SettleSweeper`` over the outboxes (which also finishes the credit steps
of item purchases and reversals); the ledger worker reads every slot's outbox.

Entry points for the command line:

- ``live migrate``: ``await migrate(database_url)`` (returns the names applied);
- ``live ledger``: ``await run_ledger_worker(redis_url=..., database_url=...,
  stop=event)``;
- ``live audit``: ``engine = await open_engine(config)`` then
  ``await engine.ledger.audit()`` (it drains the outbox first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from store.catalogs import Catalogs
from store.domain.catalog import Catalog
from store.errors import StoreError, Unavailable
from store.ids import new_id
from store.roles import Engine, EngineConfig
from store.scaled.activity import RedisRoomActivity
from store.scaled.broker import RedisBroker
from store.scaled.catalog import RedisCatalog
from store.scaled.client import CommandBatcher, connect_redis, load_script
from store.scaled.cluster import is_cluster_url
from store.scaled.items import RedisItems
from store.scaled.keys import CLUSTER, SINGLE, SYSTEM_BALANCES
from store.scaled.ledger import PostgresLedger
from store.scaled.outbox import (
    SettleSweeper,
    drain_once,
    outbox_lag,
    run_ledger_worker,
)
from store.scaled.payout_accounts import RedisPayoutAccounts
from store.scaled.postgres import create_pool, migrate
from store.scaled.presence import RedisOverlayPresence
from store.scaled.rooms import RedisRooms
from store.scaled.subscriptions import PostgresSubscriptions
from store.scaled.wallet import RedisWallet

_CHECK = load_script("check")


async def open_scaled_engine(
    config: EngineConfig, *, catalog: Catalog, run_worker: bool = False
) -> Engine:
    """Connect to Redis and PostgreSQL (applying migrations when ``config.migrate``)
    and assemble the engine. ``run_worker`` also drains the outbox in this process
    (a single-node deployment without a separate ``live ledger``)."""
    if not config.redis_url or not config.database_url:
        raise ValueError("the scaled engine needs both a Redis URL and a database URL")
    redis_url, database_url = config.redis_url, config.database_url
    cluster = is_cluster_url(redis_url)
    if config.migrate:
        await migrate(database_url)
    layout = CLUSTER if cluster else SINGLE
    redis = connect_redis(redis_url)
    pool = await create_pool(database_url)
    batcher = CommandBatcher(
        redis_url,
        observer=config.observer,
        wait_replicas=config.redis_wait_replicas,
        wait_timeout=config.redis_wait_seconds,
    )
    broker = RedisBroker(
        batcher,
        url=redis_url,
        history_size=config.history_size,
        history_seconds=config.history_seconds,
    )
    ledger = PostgresLedger(pool, redis, observer=config.observer, batcher=batcher)

    async def check() -> dict[str, str]:
        try:
            reply = await batcher.evalsha(_CHECK, (SYSTEM_BALANCES,), (), retry_on_disconnect=True)
        except StoreError as exc:
            raise Unavailable(f"redis: {exc.message}") from exc
        if reply != b"ok":
            raise Unavailable(f"redis script check answered {reply!r}")
        await ledger.check()
        return {"redis": "ok", "postgresql": "ok"}

    async def stats() -> dict[str, float]:
        return {"outbox_lag": float(await ledger.lag())}

    async def close_clients() -> None:
        await batcher.close()
        await pool.close()
        await redis.aclose()

    catalogs = Catalogs(
        RedisCatalog(batcher), defaults=catalog, poll_seconds=config.catalog_poll_seconds
    )
    try:
        await catalogs.start()
    except BaseException:
        await close_clients()
        raise

    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None
    if run_worker:
        worker = asyncio.get_running_loop().create_task(
            run_ledger_worker(
                redis_url=redis_url,
                database_url=database_url,
                stop=stop,
                observer=config.observer,
            )
        )

    activity = RedisRoomActivity(
        batcher,
        history_size=config.history_size,
        history_seconds=config.history_seconds,
        layout=layout,
    )
    settler: asyncio.Task[None] | None = None
    if cluster:
        # every node finishes (and shows) the gifts a dead node left half done (gifts.py)
        delay = config.settle_delay_seconds
        sweeper = SettleSweeper(
            batcher,
            consumer=_consumer_name(),
            rooms=activity,
            claim_idle_ms=int(delay * 1000),
            rescan_seconds=min(30.0, delay * 3),  # a new slot's outbox: found soon enough
        )
        settler = asyncio.get_running_loop().create_task(
            sweeper.run(stop, idle_seconds=min(5.0, delay))
        )

    async def close_worker() -> None:
        stop.set()
        for task in (worker, settler):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task

    return Engine(
        name="scaled",
        wallet=RedisWallet(
            batcher,
            ledger=ledger,
            creator_share_percent=config.creator_share_percent,
            policy=config.policy,
            layout=layout,
            history_size=config.history_size,
            history_seconds=config.history_seconds,
        ),
        rooms=RedisRooms(batcher),
        ledger=ledger,
        broker=broker,
        activity=activity,
        catalogs=catalogs,
        subscriptions=PostgresSubscriptions(pool),
        presence=RedisOverlayPresence(redis),
        items=RedisItems(batcher, policy=config.policy, layout=layout),
        check=check,
        stats=stats,
        payout_accounts=RedisPayoutAccounts(batcher),
        # closed in reverse: the worker, the catalog poller, the broker, the clients
        closers=[close_clients, broker.close, catalogs.close, close_worker],
    )


def _consumer_name() -> str:
    """This process's name in the outboxes' ``settle`` group."""
    return f"{socket.gethostname()}-{os.getpid()}-{new_id('s')}"


__all__ = [
    "PostgresLedger",
    "drain_once",
    "migrate",
    "open_scaled_engine",
    "outbox_lag",
    "run_ledger_worker",
]

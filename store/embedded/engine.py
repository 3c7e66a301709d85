"""The embedded engine: one SQLite file plus the in-process broker.

It is the default (``live serve`` with nothing configured): one process, no
services to run, every acknowledged gift durable on local disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Final

from store.catalogs import Catalogs
from store.domain.catalog import Catalog
from store.embedded.activity import SQLiteRoomActivity
from store.embedded.broker import MemoryBroker
from store.embedded.catalog import SQLiteCatalog
from store.embedded.database import SQLiteDatabase
from store.embedded.items import SQLiteItems
from store.embedded.ledger import SQLiteLedger
from store.embedded.payout_accounts import SQLitePayoutAccounts
from store.embedded.presence import MemoryOverlayPresence
from store.embedded.rooms import SQLiteRooms
from store.embedded.subscriptions import SQLiteSubscriptions
from store.embedded.wallet import SQLiteWallet
from store.roles import Engine, EngineConfig

DATABASE_FILE: Final = "live.sqlite3"


async def open_embedded_engine(config: EngineConfig, *, catalog: Catalog) -> Engine:
    """Open (creating if needed) ``data_dir/live.sqlite3`` and assemble the engine."""
    await asyncio.to_thread(config.data_dir.mkdir, parents=True, exist_ok=True)
    db = await SQLiteDatabase.open(config.data_dir / DATABASE_FILE)
    broker = MemoryBroker(history_size=config.history_size, history_seconds=config.history_seconds)

    async def check() -> dict[str, str]:
        def probe(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT max(version) FROM schema_version").fetchone()

        await db.read(probe)  # raises Unavailable when the file cannot be read
        return {"sqlite": "ok"}

    async def stats() -> dict[str, float]:
        return {
            "sqlite_write_queue": float(db.queued),
            "sqlite_commits_total": float(db.batches),
            "sqlite_operations_total": float(db.ops),
            "sqlite_commit_seconds_total": db.batch_seconds,
            "sqlite_retries_total": float(db.restarts),
            "sqlite_checkpoints_total": float(db.checkpoints),
        }

    catalogs = Catalogs(
        SQLiteCatalog(db), defaults=catalog, poll_seconds=config.catalog_poll_seconds
    )
    try:
        await catalogs.start()
    except BaseException:
        await db.close()
        raise

    activity = SQLiteRoomActivity(db, broker)
    return Engine(
        name="embedded",
        wallet=SQLiteWallet(
            db,
            creator_share_percent=config.creator_share_percent,
            policy=config.policy,
            activity=activity,
        ),
        rooms=SQLiteRooms(db),
        ledger=SQLiteLedger(db),
        broker=broker,
        activity=activity,
        catalogs=catalogs,
        subscriptions=SQLiteSubscriptions(db),
        presence=MemoryOverlayPresence(),
        items=SQLiteItems(db, policy=config.policy),
        check=check,
        stats=stats,
        payout_accounts=SQLitePayoutAccounts(db),
        # closed in reverse: the catalog poller, the broker, the combo changes that
        # wait for their write, then the database drains
        closers=[db.close, activity.flush_copies, broker.close, catalogs.close],
    )

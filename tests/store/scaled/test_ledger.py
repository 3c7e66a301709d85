"""The PostgreSQL ledger's schema rules and the scaled engine's plumbing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from store.domain.models import Profile
from store.engine import open_engine
from store.errors import Unavailable
from store.roles import Engine, EngineConfig
from store.scaled.client import connect_redis
from store.scaled.keys import DEAD_LETTERS, OUTBOX, gift_key, user_of_wallet_key, wallet_key
from store.scaled.ledger import HISTORY_QUERY
from store.scaled.outbox import PoisonEntry, decode_entry, drain_once
from store.scaled.postgres import create_pool, migrate, migrations
from tests.services import Urls, adult, fund, redis_client, rose

pytestmark = pytest.mark.scaled


@pytest.fixture
async def db(urls: Urls) -> AsyncIterator[asyncpg.Connection]:
    await migrate(urls.database)
    conn = await asyncpg.connect(urls.database)
    try:
        yield conn
    finally:
        await conn.close()


async def test_migrate_applies_each_file_once(urls: Urls) -> None:
    names = [name for name, _ in migrations()]
    assert names and names[0] == "001_ledger"
    assert await migrate(urls.database) == names
    assert await migrate(urls.database) == []
    conn = await asyncpg.connect(urls.database)
    try:
        recorded = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
    finally:
        await conn.close()
    assert recorded == names


async def test_history_finds_users_postings_in_their_own_index(db: asyncpg.Connection) -> None:
    indexes = {
        row["indexname"]
        for row in await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'postings'")
    }
    assert "postings_user_account" in indexes and "postings_account" not in indexes
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")  # usable at all, whatever the size
        plan = "\n".join(
            row[0] for row in await db.fetch(f"EXPLAIN {HISTORY_QUERY}", ["user:a:coins"], None, 50)
        )
    assert "postings_user_account" in plan, plan


async def _insert(db: asyncpg.Connection, tx_id: str, *amounts: int) -> None:
    async with db.transaction():
        await db.execute(
            "INSERT INTO transactions (id, kind, created_at) VALUES ($1, 'test', 1)", tx_id
        )
        await db.executemany(
            "INSERT INTO postings (tx_id, n, account, asset, amount)"
            " VALUES ($1, $2, $3, 'coin', $4)",
            [(tx_id, n, f"acct{n}", amount) for n, amount in enumerate(amounts)],
        )


async def test_postings_must_balance(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO transactions (id, kind, created_at) VALUES ('tx_ok', 'test', 1)")
    await db.execute(
        "INSERT INTO postings (tx_id, n, account, asset, amount) "
        "VALUES ('tx_ok', 0, 'a', 'coin', 5), ('tx_ok', 1, 'b', 'coin', -5)"
    )
    with pytest.raises(asyncpg.CheckViolationError, match="not balanced"):
        await _insert(db, "tx_bad", 5, -4)
    assert await db.fetchval("SELECT count(*) FROM transactions WHERE id = 'tx_bad'") == 0


async def test_ledger_is_append_only(db: asyncpg.Connection) -> None:
    await db.execute("INSERT INTO transactions (id, kind, created_at) VALUES ('tx_1', 'test', 1)")
    await db.execute(
        "INSERT INTO postings (tx_id, n, account, asset, amount) "
        "VALUES ('tx_1', 0, 'a', 'coin', 5), ('tx_1', 1, 'b', 'coin', -5)"
    )
    for statement in (
        "UPDATE transactions SET kind = 'x'",
        "DELETE FROM transactions",
        "UPDATE postings SET amount = 0",
        "DELETE FROM postings",
        "TRUNCATE postings",
        "TRUNCATE transactions CASCADE",
    ):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT sum(amount) FROM postings WHERE amount > 0") == 5


def test_decode_entry_rejects_what_cannot_be_filed() -> None:
    for fields in (
        None,
        {},
        {b"tx": b"[]"},
        {b"tx": b'{"id": "t", "kind": "k", "created_at": 1, "postings": []}'},
        {
            b"tx": b'{"id": "t", "kind": "k", "created_at": "1", "postings": '
            b'[{"account": "a", "asset": "coin", "amount": 0}]}'
        },
        {
            b"tx": b'{"id": "t", "kind": "k", "created_at": 1, "postings": '
            b'[{"account": "a", "asset": "coin", "amount": true}]}'
        },
    ):
        with pytest.raises(PoisonEntry):
            decode_entry(fields)


def test_key_layout_keeps_users_apart() -> None:
    for user_id in ("alice", "we}ird:w", "{x}", "a}:g:b"):
        assert user_of_wallet_key(wallet_key(user_id)) == user_id
        # the client's key is digested: it can never end like a wallet key
        key = gift_key(user_id, "any}:w")
        assert not key.endswith("}:w")
        assert all(c in "0123456789abcdef" for c in key.rsplit(":", 1)[1])


async def test_readiness_runs_a_script_and_a_query(engine: Engine) -> None:
    assert await engine.ready() == {"redis": "ok", "postgresql": "ok"}


async def test_history_shows_a_gift_before_the_worker_files_it(urls: Urls, engine: Engine) -> None:
    creator = Profile(id="creator", username="creator", adult=True)
    await engine.rooms.go_live(room_id="room", creator=creator, title="t")
    fan = adult("fan")
    await fund(engine, fan)
    receipt = await engine.wallet.send_gift(rose(engine, fan, "k"))
    client = await redis_client(urls)
    try:
        assert await client.xlen(OUTBOX) == 2  # nothing filed yet
    finally:
        await client.aclose()
    history = await engine.ledger.transactions(fan.id)
    assert [record.kind for record in history] == ["gift", "purchase"]
    assert history[0].id == receipt.tx
    older = await engine.ledger.transactions(fan.id, before=receipt.tx)
    assert [record.kind for record in older] == ["purchase"]
    assert [r.id for r in await engine.ledger.transactions("creator")] == [receipt.tx]
    report = await engine.ledger.audit()  # files the outbox first
    assert report.ok and report.transactions == 2
    assert report.totals == {"coin": 0, "diamond": 0}
    assert [r.id for r in await engine.ledger.transactions(fan.id)] == [r.id for r in history]


async def test_a_database_without_tables_holds_the_outbox_instead_of_parking_it(
    urls: Urls,
) -> None:
    engine = await open_engine(
        EngineConfig(redis_url=urls.redis, database_url=urls.database, migrate=False)
    )
    redis = connect_redis(urls.redis)
    pool = await create_pool(urls.database)
    try:
        fan = adult("fan")
        await fund(engine, fan)
        with pytest.raises(Unavailable):
            await drain_once(redis, pool)
        assert await redis.xlen(OUTBOX) == 1
        assert await redis.xlen(DEAD_LETTERS) == 0
        await migrate(urls.database)
        assert await drain_once(redis, pool) == 1
        report = await engine.ledger.audit()
        assert report.ok, report.public()
    finally:
        await pool.close()
        await redis.aclose()
        await engine.close()

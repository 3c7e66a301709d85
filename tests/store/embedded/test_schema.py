"""The embedded engine's schema: what the ledger indexes, and a file of an
earlier version brought up to date. Real SQLite files in ``tmp_path``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store.domain.catalog import Catalog
from store.domain.models import GiftRequest, Profile, PurchaseRequest, TransactionRecord
from store.embedded.engine import DATABASE_FILE, open_embedded_engine
from store.embedded.ledger import history_query
from store.embedded.refunds import _GIFTS_AFTER
from store.embedded.schema import SCHEMA_VERSION, migrate
from store.roles import Engine, EngineConfig

ALICE = Profile(id="alice", username="alice", adult=True)
BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))


async def open_engine_at(data_dir: Path) -> Engine:
    return await open_embedded_engine(EngineConfig(data_dir=data_dir), catalog=Catalog())


async def a_file_with_a_gift(data: Path) -> list[TransactionRecord]:
    """A purchase (2 postings, 1 of a user) and a gift (5 postings, 2 of users) in
    a new file at ``data``; the buyer's history as it reads then."""
    engine = await open_engine_at(data)
    try:
        package = engine.catalog.package("us_70")
        rose = engine.catalog.gift("rose")
        assert package is not None and rose is not None
        await engine.rooms.go_live(room_id="room", creator=BOB, title="t")
        await engine.wallet.purchase(PurchaseRequest(user=ALICE, package=package, payment_id="p1"))
        await engine.wallet.send_gift(
            GiftRequest(sender=ALICE, room_id="room", gift=rose, count=2, key="k1")
        )
        return await engine.ledger.transactions(ALICE.id)
    finally:
        await engine.close()


def indexes(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'postings'"
        " AND sql IS NOT NULL"
    )
    return {name for (name,) in rows}


def plan(conn: sqlite3.Connection, query: str, params: dict[str, object]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params))


@pytest.mark.parametrize(
    ("query", "params"),
    [
        (
            history_query(paged=False),
            {"coins": "user:a:coins", "diamonds": "user:a:diamonds", "debt": "user:a:debt",
             "withdrawing": "user:a:withdrawing", "limit": 50},
        ),
        (
            history_query(paged=True),
            {"coins": "user:a:coins", "diamonds": "user:a:diamonds", "debt": "user:a:debt",
             "withdrawing": "user:a:withdrawing", "limit": 50, "before": "tx_z"},
        ),
        (_GIFTS_AFTER, {"coins": "user:a:coins", "after": "tx_a", "limit": 50}),
    ],
    ids=["history", "history-page", "gifts-after-a-purchase"],
)  # fmt: skip
def test_lookups_by_account_use_the_users_index(query: str, params: dict[str, object]) -> None:
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    found = plan(conn, query, params)
    assert "postings_user_account" in found, found
    assert "SCAN p " not in found and "SCAN postings" not in found, found


async def test_only_users_postings_are_indexed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    history = await a_file_with_a_gift(data)
    assert [t.kind for t in history] == ["gift", "purchase"]
    conn = sqlite3.connect(data / DATABASE_FILE)
    try:
        everything = conn.execute("SELECT count(*) FROM postings").fetchone()[0]
        indexed = conn.execute(
            "SELECT count(*) FROM postings INDEXED BY postings_user_account"
            " WHERE account GLOB 'user:*'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert (everything, indexed) == (7, 3)


async def test_a_version_3_file_moves_to_the_users_index(tmp_path: Path) -> None:
    data = tmp_path / "data"
    history = await a_file_with_a_gift(data)
    conn = sqlite3.connect(data / DATABASE_FILE, isolation_level=None)
    try:  # the file as version 3 left it: every posting indexed by account
        conn.execute("DROP INDEX postings_user_account")
        conn.execute("CREATE INDEX postings_account ON postings (account, tx_id)")
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (3)")
    finally:
        conn.close()

    engine = await open_engine_at(data)
    try:
        assert await engine.ledger.transactions(ALICE.id) == history
        assert (await engine.ledger.audit()).ok
    finally:
        await engine.close()
    conn = sqlite3.connect(data / DATABASE_FILE)
    try:
        assert indexes(conn) == {"postings_user_account"}
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 4
    finally:
        conn.close()
    assert SCHEMA_VERSION == 4

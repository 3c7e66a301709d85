"""The embedded engine's ``Ledger``: the journal read back from the same SQLite
file the wallet writes (no outbox, so always final: ``pending`` is 0)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson

from store.domain.accounts import user_accounts
from store.domain.models import ASSETS, AuditReport, Posting, TransactionRecord
from store.embedded.database import SQLiteDatabase
from store.embedded.schema import USER_POSTING


class SQLiteLedger:
    """``Ledger`` over the same SQLite file as the wallet (no outbox: always final)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        """Transactions touching the user's accounts (``user:<id>:coins``,
        ``:diamonds``, ``:debt``, ``:withdrawing``), by id descending (ids sort by
        time), strictly older than ``before``."""
        return await self._db.read(lambda conn: _transactions(conn, user_id, before, limit))

    async def audit(self) -> AuditReport:
        """Totals per asset, unbalanced transactions, hot-vs-ledger mismatches and
        negative coin accounts, all from one consistent snapshot."""
        return await self._db.read(_audit)


def history_query(*, paged: bool) -> str:
    """A page of a user's transactions, newest first (``paged``: older than
    ``:before``): one backwards range scan of ``postings_user_account`` per
    account, each stopping after ``:limit`` rows, so a page costs the same
    however long the user's history is."""
    cursor = "AND tx_id < :before" if paged else ""
    newest = (
        "SELECT tx_id FROM (SELECT tx_id FROM postings "
        f"WHERE account = {{}} AND {USER_POSTING} {cursor} "
        "ORDER BY tx_id DESC LIMIT :limit)"
    )
    return (
        "SELECT t.id, t.kind, t.created_at, t.meta, p.account, p.asset, p.amount "
        f"FROM ({newest.format(':coins')} UNION {newest.format(':diamonds')} "
        f"UNION {newest.format(':debt')} UNION {newest.format(':withdrawing')} "
        "ORDER BY tx_id DESC LIMIT :limit) AS page "
        "JOIN transactions AS t ON t.id = page.tx_id "
        "JOIN postings AS p ON p.tx_id = t.id "
        "ORDER BY t.id DESC, p.n ASC"
    )


def _transactions(
    conn: sqlite3.Connection, user_id: str, before: str | None, limit: int
) -> list[TransactionRecord]:
    rows = conn.execute(
        history_query(paged=before is not None),
        {**user_accounts(user_id), "before": before, "limit": limit},
    ).fetchall()
    # Rows come grouped by transaction, postings in order: one record per group.
    heads: dict[str, tuple[Any, ...]] = {}
    postings: dict[str, list[Posting]] = {}
    for tx_id, kind, created_at, meta, account, asset, amount in rows:
        if tx_id not in heads:
            heads[tx_id], postings[tx_id] = (kind, created_at, meta), []
        postings[tx_id].append(Posting(account, asset, amount))
    return [
        TransactionRecord(
            id=tx_id,
            kind=kind,
            created_at=created_at,
            postings=tuple(postings[tx_id]),
            meta=orjson.loads(meta),
        )
        for tx_id, (kind, created_at, meta) in heads.items()
    ]


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction, so several queries see the same state."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _audit(conn: sqlite3.Connection) -> AuditReport:
    with _snapshot(conn):
        count = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        totals = dict.fromkeys(ASSETS, 0)
        for asset, total in conn.execute("SELECT asset, sum(amount) FROM postings GROUP BY asset"):
            totals[asset] = int(total)
        unbalanced = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT tx_id FROM (SELECT tx_id, asset FROM postings "
                "GROUP BY tx_id, asset HAVING sum(amount) != 0) ORDER BY tx_id"
            )
        ]
        ledger = {
            (account, asset): int(amount)
            for account, asset, amount in conn.execute(
                "SELECT account, asset, sum(amount) FROM postings GROUP BY account, asset"
            )
        }
        hot = {
            (account, asset): int(amount)
            for account, asset, amount in conn.execute(
                "SELECT account, asset, amount FROM balances"
            )
        }
    return AuditReport.compare(
        transactions=int(count), totals=totals, unbalanced=unbalanced, hot=hot, ledger=ledger
    )

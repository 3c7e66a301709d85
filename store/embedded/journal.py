"""The ledger's writing side and the hot balances, as functions of a connection.

Every money operation of the embedded wallet runs in the writer thread as one
function of the connection (see ``store.embedded.database``) and uses these to
look up and store its idempotency key, to read balances, and to append its
balanced transaction while moving the hot balances in the same SQLite
transaction.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from store.domain import refusals
from store.domain.accounts import debt_account
from store.domain.models import COIN, DIAMOND, Balance, Posting, coins_account, diamonds_account
from store.domain.postings import is_balanced
from store.errors import StoreError


def dumps(value: Any) -> str:
    """JSON text as stored in the file (compact, like every other row)."""
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------------- #
# Idempotency keys
# --------------------------------------------------------------------------- #


def _first_result(
    conn: sqlite3.Connection, scope: str, key: str
) -> tuple[str, dict[str, Any]] | None:
    """``(fingerprint, result)`` stored under the key, ``None`` if unseen."""
    row = conn.execute(
        "SELECT fingerprint, result FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    return None if row is None else (row[0], orjson.loads(row[1]))


def stored_result(conn: sqlite3.Connection, scope: str, key: str) -> dict[str, Any] | None:
    """What another operation stored under its key (whatever its fingerprint)."""
    found = _first_result(conn, scope, key)
    return None if found is None else found[1]


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """Where an operation's first result is kept (``scope``, ``key``) and what the
    request stood for (``fingerprint``): the same key with other content is refused."""

    scope: str
    key: str
    fingerprint: str

    def lookup(self, conn: sqlite3.Connection) -> dict[str, Any] | None:
        """The stored first result, ``None`` if unseen; ``KEY_REUSED`` if the key
        was used for a request with other content."""
        found = _first_result(conn, self.scope, self.key)
        if found is None:
            return None
        fingerprint, result = found
        if fingerprint != self.fingerprint:
            raise refusals.KEY_REUSED()
        return result

    def remember(self, conn: sqlite3.Connection, body: Any) -> None:
        """Store the operation's first result under the key."""
        conn.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, result) VALUES (?, ?, ?, ?)",
            (self.scope, self.key, self.fingerprint, dumps(body)),
        )


_RECEIPT_FIELDS: dict[type, tuple[str, ...]] = {}
"""Per receipt class, every field but ``replayed`` (computed once per class)."""


def receipt_body(receipt: Any) -> dict[str, Any]:
    """What a receipt stores under its key: every field but ``replayed``, in order.
    (Not ``dataclasses.asdict``: it deep-copies, and receipts are flat.)"""
    names = _RECEIPT_FIELDS.get(type(receipt))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(receipt) if f.name != "replayed")
        _RECEIPT_FIELDS[type(receipt)] = names
    return {name: getattr(receipt, name) for name in names}


# --------------------------------------------------------------------------- #
# Balances
# --------------------------------------------------------------------------- #


def hot_balance(conn: sqlite3.Connection, account: str, asset: str) -> int:
    """The hot balance of one account in one asset (0 when it never moved)."""
    row = conn.execute(
        "SELECT amount FROM balances WHERE account = ? AND asset = ?", (account, asset)
    ).fetchone()
    return int(row[0]) if row else 0


def coins_of(conn: sqlite3.Connection, user_id: str) -> int:
    return hot_balance(conn, coins_account(user_id), COIN)


def diamonds_of(conn: sqlite3.Connection, user_id: str) -> int:
    return hot_balance(conn, diamonds_account(user_id), DIAMOND)


def debt_of(conn: sqlite3.Connection, user_id: str) -> int:
    """The user's chargeback debt in coins (>= 0)."""
    return -hot_balance(conn, debt_account(user_id), COIN)


def balance_of(conn: sqlite3.Connection, user_id: str) -> Balance:
    """Coins, diamonds and debt in one statement; zero for a user never seen."""
    coins, diamonds, debt = coins_account(user_id), diamonds_account(user_id), debt_account(user_id)
    rows = conn.execute(
        "SELECT account, amount FROM balances WHERE (account = ? AND asset = ?) "
        "OR (account = ? AND asset = ?) OR (account = ? AND asset = ?)",
        (coins, COIN, diamonds, DIAMOND, debt, COIN),
    ).fetchall()
    amounts = dict(rows)
    return Balance(
        coins=int(amounts.get(coins, 0)),
        diamonds=int(amounts.get(diamonds, 0)),
        debt=-int(amounts.get(debt, 0)),
    )


# --------------------------------------------------------------------------- #
# Transactions
# --------------------------------------------------------------------------- #


def journal(
    conn: sqlite3.Connection,
    *,
    tx_id: str,
    kind: str,
    created_at: int,
    meta: dict[str, Any],
    postings: tuple[Posting, ...],
) -> None:
    """Append one transaction and move the hot balances in the same SQLite transaction."""
    if not is_balanced(postings):  # a bug, never a user error: refuse to journal it
        raise StoreError(f"refusing an unbalanced {kind} transaction")
    conn.execute(
        "INSERT INTO transactions (id, kind, created_at, meta) VALUES (?, ?, ?, ?)",
        (tx_id, kind, created_at, dumps(meta)),
    )
    # executemany, not one multi-row INSERT: SQLite runs a multi-row VALUES as
    # a co-routine, which measured slower here for these three-row statements
    conn.executemany(
        "INSERT INTO postings (tx_id, n, account, asset, amount) VALUES (?, ?, ?, ?, ?)",
        [(tx_id, n, p.account, p.asset, p.amount) for n, p in enumerate(postings)],
    )
    conn.executemany(
        "INSERT INTO balances (account, asset, amount) VALUES (?, ?, ?) "
        "ON CONFLICT (account, asset) DO UPDATE SET amount = amount + excluded.amount",
        [(p.account, p.asset, p.amount) for p in postings],
    )

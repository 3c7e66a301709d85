"""Creators' payout accounts and their withdrawals' provider state on the
embedded engine (tables ``payout_accounts`` and ``payout_submissions``)."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Final

import orjson

from store.domain import refusals
from store.domain.payout_accounts import DONE, PayoutAccount, PayoutSubmission
from store.embedded.database import SQLiteDatabase

_COLUMNS: Final = (
    "user_id, provider, account_id, payouts_enabled, details_submitted, created_at, updated_at"
)


def _account(row: Any) -> PayoutAccount:
    user_id, provider, account_id, enabled, submitted, created_at, updated_at = row
    return PayoutAccount(
        user_id=user_id,
        provider=provider,
        account_id=account_id,
        payouts_enabled=bool(enabled),
        details_submitted=bool(submitted),
        created_at=created_at,
        updated_at=updated_at,
    )


def _link(conn: sqlite3.Connection, account: PayoutAccount) -> PayoutAccount:
    owner = conn.execute(
        "SELECT user_id FROM payout_accounts WHERE provider = ? AND account_id = ?",
        (account.provider, account.account_id),
    ).fetchone()
    if owner is not None and owner[0] != account.user_id:
        raise refusals.PAYOUT_ACCOUNT_TAKEN()
    conn.execute(
        f"INSERT INTO payout_accounts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, provider) DO UPDATE SET account_id = excluded.account_id, "
        "payouts_enabled = excluded.payouts_enabled, "
        "details_submitted = excluded.details_submitted, updated_at = excluded.updated_at",
        (
            account.user_id,
            account.provider,
            account.account_id,
            int(account.payouts_enabled),
            int(account.details_submitted),
            account.created_at,
            account.updated_at,
        ),
    )
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM payout_accounts WHERE user_id = ? AND provider = ?",
        (account.user_id, account.provider),
    ).fetchone()
    return _account(row)


def _submission(document: str) -> PayoutSubmission:
    return PayoutSubmission(**orjson.loads(document))


class SQLitePayoutAccounts:
    """``store.roles.PayoutAccounts`` in the engine's SQLite file."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def link(self, account: PayoutAccount) -> PayoutAccount:
        return await self._db.write(lambda conn: _link(conn, account))

    async def get(self, user_id: str, provider: str) -> PayoutAccount | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM payout_accounts WHERE user_id = ? AND provider = ?",
                (user_id, provider),
            ).fetchone()
        )
        return _account(row) if row is not None else None

    async def owner(self, provider: str, account_id: str) -> PayoutAccount | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM payout_accounts WHERE provider = ? AND account_id = ?",
                (provider, account_id),
            ).fetchone()
        )
        return _account(row) if row is not None else None

    async def save_submission(self, submission: PayoutSubmission) -> None:
        document = orjson.dumps(dataclasses.asdict(submission)).decode()
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO payout_submissions (withdrawal_id, provider, state, updated_at, "
                "document) VALUES (?, ?, ?, ?, ?) ON CONFLICT (withdrawal_id) DO UPDATE SET "
                "state = excluded.state, updated_at = excluded.updated_at, "
                "document = excluded.document",
                (
                    submission.withdrawal_id,
                    submission.provider,
                    submission.state,
                    submission.updated_at,
                    document,
                ),
            )
        )

    async def submission(self, withdrawal_id: str) -> PayoutSubmission | None:
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT document FROM payout_submissions WHERE withdrawal_id = ?",
                (withdrawal_id,),
            ).fetchone()
        )
        return _submission(row[0]) if row is not None else None

    async def open_submissions(self, provider: str, *, limit: int) -> list[PayoutSubmission]:
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT document FROM payout_submissions WHERE provider = ? AND state != ? "
                "ORDER BY updated_at LIMIT ?",
                (provider, DONE, limit),
            ).fetchall()
        )
        return [_submission(r[0]) for r in rows]

"""Creators' withdrawals and earnings on the embedded engine, as functions of a
connection (writes run in the writer thread, reads in a reader thread).

A withdrawal reserves diamonds in ``user:<id>:withdrawing`` (status
``pending``) and is settled later as ``paid`` or ``failed``. Checks of a
reservation, in order (``store.roles.Wallet.reserve_withdrawal``): the key, a
verified creator, the minimum, the daily maximum, then diamonds that are no
longer held.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Final

from store.domain import refusals
from store.domain.accounts import (
    FAILED,
    PAID,
    PENDING,
    Earnings,
    MoneyPolicy,
    StreamEarnings,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.postings import withdrawal_postings, withdrawal_settle_postings
from store.domain.rules import DAY_MS, day_start_ms, held_diamonds
from store.embedded.accounts import is_verified
from store.embedded.journal import IdempotencyKey, diamonds_of, journal, receipt_body

_WITHDRAWAL_COLUMNS: Final = (
    "id, user_id, diamonds, status, method, created_at, expected_at, settled_at, "
    "reference, reason, tx, settle_tx"
)


def load_withdrawal(conn: sqlite3.Connection, withdrawal_id: str) -> Withdrawal | None:
    row = conn.execute(
        f"SELECT {_WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = ?", (withdrawal_id,)
    ).fetchone()
    return None if row is None else Withdrawal(*row)


def list_withdrawals(
    conn: sqlite3.Connection, user_id: str, before: str | None, limit: int
) -> list[Withdrawal]:
    """The user's withdrawals, newest first, strictly older than ``before``."""
    cursor = "AND id < ?" if before is not None else ""
    params: tuple[Any, ...] = (user_id, before, limit) if before is not None else (user_id, limit)
    rows = conn.execute(
        f"SELECT {_WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = ? {cursor} "
        "ORDER BY id DESC LIMIT ?",
        params,
    ).fetchall()
    return [Withdrawal(*row) for row in rows]


def _earned_hours(conn: sqlite3.Connection, user_id: str) -> list[tuple[int, int]]:
    """``(hour, diamonds)`` the creator earned, oldest first."""
    return [
        (int(h), int(d))
        for h, d in conn.execute(
            "SELECT hour, diamonds FROM earnings_hours WHERE user_id = ? ORDER BY hour",
            (user_id,),
        )
    ]


def reserve_withdrawal(
    conn: sqlite3.Connection,
    request: WithdrawalRequest,
    policy: MoneyPolicy,
    ids: tuple[str, str],
    now: int,
) -> Withdrawal:
    """See ``store.roles.Wallet.reserve_withdrawal``; ``ids`` are the withdrawal's
    and its transaction's."""
    user_id = request.user_id
    key = IdempotencyKey(f"withdrawal:{user_id}", request.key, request.fingerprint())
    stored = key.lookup(conn)
    if stored is not None:
        first = load_withdrawal(conn, stored["id"])
        if first is None:  # cannot happen: both are written in one transaction
            raise refusals.WITHDRAWAL_NOT_FOUND()
        return dataclasses.replace(first, replayed=True)
    if not is_verified(conn, user_id):
        raise refusals.NOT_VERIFIED()
    if request.diamonds < policy.withdrawal_min:
        raise refusals.BELOW_MINIMUM(policy.withdrawal_min)
    if policy.withdrawal_daily_max:
        start = day_start_ms(now)
        today = conn.execute(
            "SELECT coalesce(sum(diamonds), 0) FROM withdrawals WHERE user_id = ? "
            "AND created_at >= ? AND created_at < ? AND status != ?",
            (user_id, start, start + DAY_MS, FAILED),
        ).fetchone()[0]
        if today + request.diamonds > policy.withdrawal_daily_max:
            raise refusals.DAILY_MAXIMUM(policy.withdrawal_daily_max, int(today))
    balance = diamonds_of(conn, user_id)
    held, _ = held_diamonds(
        _earned_hours(conn, user_id),
        now_ms=now,
        hold_seconds=policy.hold_seconds,
        balance=balance,
    )
    withdrawable = balance - held
    if request.diamonds > withdrawable:
        raise refusals.NOT_WITHDRAWABLE(max(withdrawable, 0), held)
    withdrawal_id, tx = ids
    withdrawal = request.pending(
        withdrawal_id=withdrawal_id, tx=tx, now=now, payout_seconds=policy.payout_seconds
    )
    journal(
        conn,
        tx_id=tx,
        kind="withdrawal",
        created_at=now,
        meta={
            "withdrawal_id": withdrawal_id,
            "user_id": user_id,
            "diamonds": request.diamonds,
            "method": request.method,
        },
        postings=withdrawal_postings(user_id=user_id, diamonds=request.diamonds),
    )
    conn.execute(
        f"INSERT INTO withdrawals ({_WITHDRAWAL_COLUMNS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(receipt_body(withdrawal).values()),
    )
    key.remember(conn, {"id": withdrawal_id})
    return withdrawal


def settle_withdrawal(
    conn: sqlite3.Connection, request: WithdrawalSettlement, tx: str, now: int
) -> Withdrawal:
    """See ``store.roles.Wallet.settle_withdrawal``."""
    current = load_withdrawal(conn, request.withdrawal_id)
    if current is None:
        raise refusals.WITHDRAWAL_NOT_FOUND()
    if current.status != PENDING:
        if current.status == request.status:
            return dataclasses.replace(current, replayed=True)
        raise refusals.ALREADY_SETTLED(current.status)
    journal(
        conn,
        tx_id=tx,
        kind=f"withdrawal_{request.status}",
        created_at=now,
        meta={
            "withdrawal_id": current.id,
            "user_id": current.user_id,
            "diamonds": current.diamonds,
            "reference": request.reference,
            "reason": request.reason,
        },
        postings=withdrawal_settle_postings(
            user_id=current.user_id, diamonds=current.diamonds, paid=request.status == PAID
        ),
    )
    conn.execute(
        "UPDATE withdrawals SET status = ?, settled_at = ?, reference = ?, reason = ?, "
        "settle_tx = ? WHERE id = ?",
        (request.status, now, request.reference, request.reason, tx, current.id),
    )
    return dataclasses.replace(
        current,
        status=request.status,
        settled_at=now,
        reference=request.reference,
        reason=request.reason,
        settle_tx=tx,
    )


def earnings(conn: sqlite3.Connection, user_id: str, now: int, hold_seconds: int) -> Earnings:
    """See ``store.roles.Wallet.earnings``."""
    balance = diamonds_of(conn, user_id)
    hours = _earned_hours(conn, user_id)
    held, next_release = held_diamonds(
        hours, now_ms=now, hold_seconds=hold_seconds, balance=balance
    )
    totals = dict(
        conn.execute(
            "SELECT status, sum(diamonds) FROM withdrawals WHERE user_id = ? GROUP BY status",
            (user_id,),
        ).fetchall()
    )
    streams = sorted(
        (
            StreamEarnings(room_id=room, stream_id=int(stream), diamonds=int(diamonds))
            for room, stream, diamonds in conn.execute(
                "SELECT room_id, stream_id, diamonds FROM earnings_streams WHERE user_id = ?",
                (user_id,),
            )
        ),
        key=lambda s: (s.room_id, -s.stream_id),
    )
    return Earnings(
        user_id=user_id,
        balance=balance,
        held=held,
        withdrawable=balance - held,
        pending=int(totals.get(PENDING, 0)),
        paid=int(totals.get(PAID, 0)),
        lifetime=sum(d for _, d in hours),
        next_release_at=next_release,
        hours=tuple(hours),
        streams=tuple(streams),
        verified=is_verified(conn, user_id),
    )

"""The embedded engine's wallet: ``store.sqlite.SQLiteWallet`` (gifts, purchases,
balances) plus the money rules beyond them: limits, refunds and debt,
withdrawals, earnings, rate limits and webhook replay claims.

Every operation runs in the writer thread as one function of the connection
that does all its checks before its first write (see ``store.embedded.database``); the
semantics, check orders and messages are those documented on
``store.base.Wallet`` and in ``store.domain.rules``, shared with the Redis scripts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from typing import Any, Final

import orjson

from store.domain.accounts import (
    FAILED,
    PAID,
    PENDING,
    PLATFORM_WRITEOFF,
    REVERSAL_KINDS,
    SETTLED_PAID,
    SETTLEMENT_METHODS,
    WITHDRAWAL_OUTCOMES,
    Account,
    DebtReceipt,
    DebtSettlement,
    Earnings,
    LimitsRequest,
    MoneyPolicy,
    RefundReceipt,
    RefundRequest,
    StreamEarnings,
    UserLimits,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.models import DIAMOND, WORLD, diamonds_account
from store.domain.postings import (
    refund_postings,
    settlement_postings,
    withdrawal_postings,
    withdrawal_settle_postings,
)
from store.domain.rules import (
    DAY_MS,
    HOUR_TOKEN,
    MAX_CLAWBACK_GIFTS,
    NO_DEBT,
    NOT_VERIFIED,
    PAYMENT_NOT_FOUND,
    WITHDRAWAL_NOT_FOUND,
    GiftSpend,
    below_minimum_message,
    check_limits,
    check_pin_format,
    clawbacks,
    daily_max_message,
    day_start_ms,
    hash_pin,
    held_diamonds,
    not_withdrawable_message,
    pin_matches,
    pin_needed,
    pin_salt,
    rate_message,
    refill,
    settled_message,
    wait_ms,
    wrong_pin,
)
from store.embedded.accounts import debt_of
from store.embedded.database import (
    SQLiteWallet,
    _balance,
    _check_id,
    _check_key,
    _check_limit,
    _coins,
    _dumps,
    _journal,
    _lookup_key,
)
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    LimitExceeded,
    NotFound,
    RateLimited,
)
from store.ids import new_id, now_ms

MAX_TEXT: Final = 500


def _now(value: int | None) -> int:
    return value if value is not None else now_ms()


def _check_text(value: str, what: str) -> None:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{what} must be at most {MAX_TEXT} characters")


def _remember(conn: sqlite3.Connection, scope: str, key: str, fingerprint: str, body: Any) -> None:
    """Store an operation's first result under its idempotency key."""
    conn.execute(
        "INSERT INTO idempotency (scope, key, fingerprint, result) VALUES (?, ?, ?, ?)",
        (scope, key, fingerprint, _dumps(body)),
    )


def _receipt_body(receipt: Any) -> dict[str, Any]:
    return {name: getattr(receipt, name) for name in receipt.__slots__ if name != "replayed"}


# --------------------------------------------------------------------------- #
# Accounts
# --------------------------------------------------------------------------- #

_ACCOUNT: Final = (
    "SELECT daily_cap, monthly_cap, tz, purchases_off, gifting_off, pin, purchases, "
    "verified_at, verified_by, day, day_spent, month, month_spent "
    "FROM accounts WHERE user_id = ?"
)


def _account(conn: sqlite3.Connection, user_id: str) -> tuple[Account, str]:
    """The account and its PIN hash ("" when none)."""
    row = conn.execute(_ACCOUNT, (user_id,)).fetchone()
    balance = _balance(conn, user_id)
    if row is None:
        row = (None, None, "UTC", 0, 0, "", 0, None, "", "", 0, "", 0)
    (
        daily_cap,
        monthly_cap,
        tz,
        purchases_off,
        gifting_off,
        pin,
        purchases,
        verified_at,
        verified_by,
        day,
        day_spent,
        month,
        month_spent,
    ) = row
    account = Account(
        user_id=user_id,
        coins=balance.coins,
        diamonds=balance.diamonds,
        debt=balance.debt,
        limits=UserLimits(
            daily_cap=daily_cap,
            monthly_cap=monthly_cap,
            purchases_enabled=not purchases_off,
            gifting_enabled=not gifting_off,
            tz=tz,
        ),
        pin_set=bool(pin),
        purchases=int(purchases),
        verified_at=verified_at,
        verified_by=verified_by,
        spent_day=day,
        day_spent=int(day_spent),
        spent_month=month,
        month_spent=int(month_spent),
    )
    return account, pin


def _set_limits(
    conn: sqlite3.Connection, request: LimitsRequest, candidate: str, new_hash: str | None
) -> Account:
    current, stored_pin = _account(conn, request.user_id)
    if pin_needed(
        old=current.limits,
        new=request.limits,
        pin_set=bool(stored_pin),
        new_pin=request.new_pin,
    ) and not pin_matches(stored_pin, candidate):
        raise wrong_pin(request.pin is not None)
    limits = request.limits
    conn.execute(
        "INSERT INTO accounts (user_id, daily_cap, monthly_cap, tz, purchases_off, gifting_off, "
        "pin) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
        "daily_cap = excluded.daily_cap, monthly_cap = excluded.monthly_cap, tz = excluded.tz, "
        "purchases_off = excluded.purchases_off, gifting_off = excluded.gifting_off, "
        "pin = excluded.pin",
        (
            request.user_id,
            limits.daily_cap,
            limits.monthly_cap,
            limits.tz,
            int(not limits.purchases_enabled),
            int(not limits.gifting_enabled),
            stored_pin if new_hash is None else new_hash,
        ),
    )
    return _account(conn, request.user_id)[0]


def _set_verified(conn: sqlite3.Connection, user_id: str, at: int | None, by: str) -> Account:
    conn.execute(
        "INSERT INTO accounts (user_id, verified_at, verified_by) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET verified_at = excluded.verified_at, "
        "verified_by = excluded.verified_by",
        (user_id, at, by),
    )
    return _account(conn, user_id)[0]


# --------------------------------------------------------------------------- #
# Refunds and debt
# --------------------------------------------------------------------------- #

_GIFTS_AFTER: Final = (
    "SELECT p.tx_id, json_extract(t.meta, '$.creator_id'), -p.amount, "
    "(SELECT sum(d.amount) FROM postings AS d WHERE d.tx_id = p.tx_id "
    " AND d.asset = 'diamond' AND d.amount > 0) "
    "FROM postings AS p JOIN transactions AS t ON t.id = p.tx_id "
    "WHERE p.account = :coins AND p.tx_id > :after AND t.kind = 'gift' "
    "ORDER BY p.tx_id DESC LIMIT :limit"
)


def gifts_after(conn: sqlite3.Connection, user_id: str, after_tx: str) -> list[GiftSpend]:
    """The user's gifts newer than transaction ``after_tx``, newest first (at most
    ``MAX_CLAWBACK_GIFTS``)."""
    rows = conn.execute(
        _GIFTS_AFTER,
        {"coins": f"user:{user_id}:coins", "after": after_tx, "limit": MAX_CLAWBACK_GIFTS},
    ).fetchall()
    return [
        GiftSpend(tx=tx, creator_id=creator, coins=int(coins), diamonds=int(diamonds or 0))
        for tx, creator, coins, diamonds in rows
        if creator is not None
    ]


def _diamonds(conn: sqlite3.Connection, user_id: str) -> int:
    row = conn.execute(
        "SELECT amount FROM balances WHERE account = ? AND asset = ?",
        (diamonds_account(user_id), DIAMOND),
    ).fetchone()
    return int(row[0]) if row else 0


def _stored(conn: sqlite3.Connection, scope: str, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT result FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    if row is None:
        return None
    result: dict[str, Any] = orjson.loads(row[0])
    return result


def _refund(conn: sqlite3.Connection, request: RefundRequest, tx: str, now: int) -> RefundReceipt:
    scope = f"reversal:{request.provider}"
    fingerprint = request.fingerprint()
    stored = _lookup_key(conn, scope, request.payment_id, fingerprint)
    if stored is not None:
        return RefundReceipt(**stored, replayed=True)
    purchase = _stored(conn, f"payment:{request.provider}", request.payment_id)
    if purchase is None or not purchase.get("user_id"):
        raise NotFound(PAYMENT_NOT_FOUND)
    user_id: str = purchase["user_id"]
    credit = int(purchase["coins"])
    bonus = int(purchase.get("bonus", 0))
    purchase_tx: str = purchase["tx"]
    coins = _coins(conn, user_id)
    debt_before = debt_of(conn, user_id)
    taken = min(coins, credit)
    shortfall = credit - taken
    claws: list[tuple[str, int]] = []
    if shortfall:
        gifts = gifts_after(conn, user_id, purchase_tx)
        holdings = {g.creator_id: _diamonds(conn, g.creator_id) for g in gifts}
        claws = clawbacks(shortfall, gifts, holdings)
    clawed = sum(d for _, d in claws)
    receipt = RefundReceipt(
        tx=tx,
        kind=request.kind,
        user_id=user_id,
        provider=request.provider,
        payment_id=request.payment_id,
        purchase_tx=purchase_tx,
        coins=credit,
        taken=taken,
        debt=shortfall,
        clawed_back=clawed,
        debt_after=debt_before + shortfall - clawed,
        created_at=now,
    )
    _journal(
        conn,
        tx_id=tx,
        kind=request.kind,
        created_at=now,
        meta={
            "user_id": user_id,
            "provider": request.provider,
            "payment_id": request.payment_id,
            "purchase_tx": purchase_tx,
            "reason": request.reason,
            "coins": credit,
            "taken": taken,
            "debt": shortfall,
            "clawbacks": [{"creator_id": c, "diamonds": d} for c, d in claws],
        },
        postings=refund_postings(
            user_id=user_id,
            paid=credit - bonus,
            bonus=bonus,
            taken=taken,
            debt_change=clawed - shortfall,
            clawbacks=claws,
        ),
    )
    _remember(conn, scope, request.payment_id, fingerprint, _receipt_body(receipt))
    return receipt


def _settle_debt(
    conn: sqlite3.Connection, request: DebtSettlement, tx: str, now: int
) -> DebtReceipt:
    scope = f"settle:{request.user_id}"
    fingerprint = request.fingerprint()
    stored = _lookup_key(conn, scope, request.key, fingerprint)
    if stored is not None:
        return DebtReceipt(**stored, replayed=True)
    debt = debt_of(conn, request.user_id)
    if debt <= 0:
        raise BadRequest(NO_DEBT)
    source = WORLD if request.method == SETTLED_PAID else PLATFORM_WRITEOFF
    receipt = DebtReceipt(
        tx=tx, user_id=request.user_id, method=request.method, coins=debt, created_at=now
    )
    _journal(
        conn,
        tx_id=tx,
        kind="debt_settlement",
        created_at=now,
        meta={
            "user_id": request.user_id,
            "method": request.method,
            "by": request.by,
            "note": request.note,
            "key": request.key,
        },
        postings=settlement_postings(user_id=request.user_id, source=source, coins=debt),
    )
    _remember(conn, scope, request.key, fingerprint, _receipt_body(receipt))
    return receipt


# --------------------------------------------------------------------------- #
# Withdrawals and earnings
# --------------------------------------------------------------------------- #

_WITHDRAWAL_COLUMNS: Final = (
    "id, user_id, diamonds, status, method, created_at, expected_at, settled_at, "
    "reference, reason, tx, settle_tx"
)


def _withdrawal_row(row: tuple[Any, ...]) -> Withdrawal:
    (id_, user_id, diamonds, status, method, created, expected, settled, ref, reason, tx, stx) = row
    return Withdrawal(
        id=id_,
        user_id=user_id,
        diamonds=diamonds,
        status=status,
        method=method,
        created_at=created,
        expected_at=expected,
        settled_at=settled,
        reference=ref,
        reason=reason,
        tx=tx,
        settle_tx=stx,
    )


def _load_withdrawal(conn: sqlite3.Connection, withdrawal_id: str) -> Withdrawal | None:
    row = conn.execute(
        f"SELECT {_WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = ?", (withdrawal_id,)
    ).fetchone()
    return None if row is None else _withdrawal_row(row)


def _hours(conn: sqlite3.Connection, user_id: str) -> list[tuple[int, int]]:
    return [
        (int(h), int(d))
        for h, d in conn.execute(
            "SELECT hour, diamonds FROM earnings_hours WHERE user_id = ? ORDER BY hour",
            (user_id,),
        )
    ]


def _reserve(
    conn: sqlite3.Connection,
    request: WithdrawalRequest,
    wallet: SQLiteMoneyWallet,
    ids: tuple[str, str],
    now: int,
) -> Withdrawal:
    policy = wallet.policy
    user_id = request.user_id
    scope = f"withdrawal:{user_id}"
    fingerprint = request.fingerprint()
    stored = _lookup_key(conn, scope, request.key, fingerprint)
    if stored is not None:
        first = _load_withdrawal(conn, stored["id"])
        if first is None:  # cannot happen: both are written in one transaction
            raise NotFound(WITHDRAWAL_NOT_FOUND)
        return dataclasses.replace(first, replayed=True)
    verified = conn.execute(
        "SELECT verified_at FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchone()
    if verified is None or verified[0] is None:
        raise Forbidden(NOT_VERIFIED)
    if request.diamonds < policy.withdrawal_min:
        raise BadRequest(below_minimum_message(policy.withdrawal_min))
    if policy.withdrawal_daily_max:
        start = day_start_ms(now)
        today = conn.execute(
            "SELECT coalesce(sum(diamonds), 0) FROM withdrawals WHERE user_id = ? "
            "AND created_at >= ? AND created_at < ? AND status != ?",
            (user_id, start, start + DAY_MS, FAILED),
        ).fetchone()[0]
        if today + request.diamonds > policy.withdrawal_daily_max:
            raise LimitExceeded(daily_max_message(policy.withdrawal_daily_max, int(today)))
    balance = _diamonds(conn, user_id)
    held, _ = held_diamonds(
        _hours(conn, user_id), now_ms=now, hold_seconds=policy.hold_seconds, balance=balance
    )
    withdrawable = balance - held
    if request.diamonds > withdrawable:
        raise InsufficientFunds(not_withdrawable_message(max(withdrawable, 0), held))
    withdrawal_id, tx = ids
    withdrawal = Withdrawal(
        id=withdrawal_id,
        user_id=user_id,
        diamonds=request.diamonds,
        status=PENDING,
        method=request.method,
        created_at=now,
        expected_at=now + policy.payout_seconds * 1_000,
        settled_at=None,
        reference="",
        reason="",
        tx=tx,
        settle_tx="",
    )
    _journal(
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
        tuple(_receipt_body(withdrawal).values()),
    )
    _remember(conn, scope, request.key, fingerprint, {"id": withdrawal_id})
    return withdrawal


def _settle_withdrawal(
    conn: sqlite3.Connection, request: WithdrawalSettlement, tx: str, now: int
) -> Withdrawal:
    current = _load_withdrawal(conn, request.withdrawal_id)
    if current is None:
        raise NotFound(WITHDRAWAL_NOT_FOUND)
    if current.status != PENDING:
        if current.status == request.status:
            return dataclasses.replace(current, replayed=True)
        raise Conflict(settled_message(current.status))
    paid = request.status == PAID
    _journal(
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
            user_id=current.user_id, diamonds=current.diamonds, paid=paid
        ),
    )
    conn.execute(
        "UPDATE withdrawals SET status = ?, settled_at = ?, reference = ?, reason = ?, "
        "settle_tx = ? WHERE id = ?",
        (request.status, now, request.reference, request.reason, tx, current.id),
    )
    settled = _load_withdrawal(conn, current.id)
    if settled is None:  # cannot happen inside one transaction
        raise NotFound(WITHDRAWAL_NOT_FOUND)
    return settled


def _withdrawals(
    conn: sqlite3.Connection, user_id: str, before: str | None, limit: int
) -> list[Withdrawal]:
    cursor = "AND id < ?" if before is not None else ""
    params: tuple[Any, ...] = (user_id, before, limit) if before is not None else (user_id, limit)
    rows = conn.execute(
        f"SELECT {_WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = ? {cursor} "
        "ORDER BY id DESC LIMIT ?",
        params,
    ).fetchall()
    return [_withdrawal_row(row) for row in rows]


def _earnings(conn: sqlite3.Connection, user_id: str, now: int, hold_seconds: int) -> Earnings:
    balance = _diamonds(conn, user_id)
    hours = _hours(conn, user_id)
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
    verified = conn.execute(
        "SELECT verified_at FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchone()
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
        verified=verified is not None and verified[0] is not None,
    )


# --------------------------------------------------------------------------- #
# Rate limits and claims
# --------------------------------------------------------------------------- #


def _rate_limit(
    conn: sqlite3.Connection, user_id: str, action: str, per_hour: int, burst: int, now: int
) -> None:
    row = conn.execute(
        "SELECT tokens, at FROM rate_buckets WHERE user_id = ? AND action = ?", (user_id, action)
    ).fetchone()
    tokens, at = (row[0], row[1]) if row else (None, None)
    units = refill(tokens, at, now, per_hour, burst, token=HOUR_TOKEN)
    if units < HOUR_TOKEN:
        raise RateLimited(rate_message(action, wait_ms(units, per_hour, token=HOUR_TOKEN)))
    conn.execute(
        "INSERT INTO rate_buckets (user_id, action, tokens, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, action) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
        (user_id, action, units - HOUR_TOKEN, now),
    )


def _claim(conn: sqlite3.Connection, scope: str, key: str, ttl_ms: int, now: int) -> bool:
    row = conn.execute(
        "SELECT expires_at FROM claims WHERE scope = ? AND key = ?", (scope, key)
    ).fetchone()
    if row is not None and row[0] > now:
        return False
    conn.execute("DELETE FROM claims WHERE expires_at <= ?", (now,))
    conn.execute(
        "INSERT OR REPLACE INTO claims (scope, key, expires_at) VALUES (?, ?, ?)",
        (scope, key, now + ttl_ms),
    )
    return True


# --------------------------------------------------------------------------- #
# The wallet
# --------------------------------------------------------------------------- #


class SQLiteMoneyWallet(SQLiteWallet):
    """The embedded engine's ``Wallet``: see ``store.base.Wallet``."""

    @property
    def policy(self) -> MoneyPolicy:
        return self._policy

    async def account(self, user_id: str) -> Account:
        _check_id(user_id, "user id")
        return (await self._db.read(lambda conn: _account(conn, user_id)))[0]

    async def set_limits(self, request: LimitsRequest) -> Account:
        _check_id(request.user_id, "user id")
        check_limits(
            request.limits,
            policy_daily=self._policy.daily_spend_cap,
            policy_monthly=self._policy.monthly_spend_cap,
        )
        if request.new_pin:
            check_pin_format(request.new_pin)
        stored_pin = (await self._db.read(lambda conn: _account(conn, request.user_id)))[1]
        # hashing is slow on purpose: never in the writer thread
        candidate = ""
        if stored_pin and request.pin is not None:
            candidate = await asyncio.to_thread(hash_pin, request.pin, pin_salt(stored_pin))
        new_hash: str | None = None
        if request.new_pin is not None:
            new_hash = await asyncio.to_thread(hash_pin, request.new_pin) if request.new_pin else ""
        return await self._db.write(lambda conn: _set_limits(conn, request, candidate, new_hash))

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> Account:
        _check_id(user_id, "user id")
        at = now_ms() if verified else None
        return await self._db.write(lambda conn: _set_verified(conn, user_id, at, by))

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        _check_id(request.provider, "payment provider")
        _check_key(request.payment_id, "payment id")
        if request.kind not in REVERSAL_KINDS:
            raise BadRequest("kind must be refund or chargeback")
        _check_text(request.reason, "reason")
        tx, now = new_id("tx"), _now(request.now)
        return await self._db.write(lambda conn: _refund(conn, request, tx, now))

    async def settle_debt(self, request: DebtSettlement) -> DebtReceipt:
        _check_id(request.user_id, "user id")
        _check_key(request.key, "idempotency key")
        if request.method not in SETTLEMENT_METHODS:
            raise BadRequest("method must be paid or written_off")
        _check_text(request.note, "note")
        tx, now = new_id("tx"), _now(request.now)
        return await self._db.write(lambda conn: _settle_debt(conn, request, tx, now))

    async def reserve_withdrawal(self, request: WithdrawalRequest) -> Withdrawal:
        _check_id(request.user_id, "user id")
        _check_key(request.key, "idempotency key")
        _check_id(request.method, "payout method")
        if request.diamonds < 1:
            raise BadRequest("diamonds must be at least 1")
        ids, now = (new_id("wd"), new_id("tx")), _now(request.now)
        return await self._db.write(lambda conn: _reserve(conn, request, self, ids, now))

    async def settle_withdrawal(self, request: WithdrawalSettlement) -> Withdrawal:
        _check_key(request.withdrawal_id, "withdrawal id")
        if request.status not in WITHDRAWAL_OUTCOMES:
            raise BadRequest("status must be paid or failed")
        _check_text(request.reference, "reference")
        _check_text(request.reason, "reason")
        tx, now = new_id("tx"), _now(request.now)
        return await self._db.write(lambda conn: _settle_withdrawal(conn, request, tx, now))

    async def withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        return await self._db.read(lambda conn: _load_withdrawal(conn, withdrawal_id))

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[Withdrawal]:
        _check_limit(limit)
        return await self._db.read(lambda conn: _withdrawals(conn, user_id, before, limit))

    async def earnings(self, user_id: str, *, now: int | None = None) -> Earnings:
        at, hold = _now(now), self._policy.hold_seconds
        return await self._db.read(lambda conn: _earnings(conn, user_id, at, hold))

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        _check_id(user_id, "user id")
        _check_id(action, "action")
        if per_hour < 1 or burst < 1:
            raise BadRequest("per_hour and burst must be at least 1")
        at = _now(now)
        await self._db.write(lambda conn: _rate_limit(conn, user_id, action, per_hour, burst, at))

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        _check_id(scope, "scope")
        _check_key(key, "key")
        if ttl_seconds < 1:
            raise BadRequest("ttl_seconds must be at least 1")
        now = now_ms()
        return await self._db.write(lambda conn: _claim(conn, scope, key, ttl_seconds * 1_000, now))

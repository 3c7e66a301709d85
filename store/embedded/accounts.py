"""The embedded engine's account tables, and the money rules a gift or a purchase
checks and writes inside its own SQLite transaction (see ``store.embedded.database``).

Functions of a connection only, so they run in the writer thread within the
caller's transaction: the ``check_*`` ones only read (a refused operation has
written nothing), the ``record_*`` ones only write. The arithmetic and the
messages come from ``store.domain.rules``; the Redis scripts do the same.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from store.domain.accounts import PLATFORM_PROMOTIONS, MoneyPolicy, UserLimits, debt_account
from store.domain.models import COIN, WORLD, Posting, PurchaseRequest, coins_account
from store.domain.rules import (
    GIFTING_OFF,
    PURCHASES_OFF,
    TOKEN,
    check_caps,
    local_periods,
    locked_message,
    rate_message,
    refill,
    wait_ms,
)
from store.errors import Forbidden, RateLimited

ACCOUNT_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS accounts (
        user_id TEXT PRIMARY KEY,
        daily_cap INTEGER,
        monthly_cap INTEGER,
        tz TEXT NOT NULL DEFAULT 'UTC',
        purchases_off INTEGER NOT NULL DEFAULT 0,
        gifting_off INTEGER NOT NULL DEFAULT 0,
        pin TEXT NOT NULL DEFAULT '',
        purchases INTEGER NOT NULL DEFAULT 0,
        verified_at INTEGER,
        verified_by TEXT NOT NULL DEFAULT '',
        day TEXT NOT NULL DEFAULT '',
        day_spent INTEGER NOT NULL DEFAULT 0,
        month TEXT NOT NULL DEFAULT '',
        month_spent INTEGER NOT NULL DEFAULT 0,
        gift_tokens INTEGER,
        gift_at INTEGER
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS earnings_hours (
        user_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        diamonds INTEGER NOT NULL,
        PRIMARY KEY (user_id, hour)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS earnings_streams (
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        diamonds INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id, stream_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS withdrawals (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        diamonds INTEGER NOT NULL,
        status TEXT NOT NULL,
        method TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expected_at INTEGER NOT NULL,
        settled_at INTEGER,
        reference TEXT NOT NULL,
        reason TEXT NOT NULL,
        tx TEXT NOT NULL,
        settle_tx TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS withdrawals_user ON withdrawals (user_id, id)",
    """CREATE TABLE IF NOT EXISTS rate_buckets (
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (user_id, action)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS claims (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at)",
)


def debt_of(conn: sqlite3.Connection, user_id: str) -> int:
    """The user's chargeback debt in coins (>= 0)."""
    row = conn.execute(
        "SELECT amount FROM balances WHERE account = ? AND asset = ?",
        (debt_account(user_id), COIN),
    ).fetchone()
    return -int(row[0]) if row else 0


# --------------------------------------------------------------------------- #
# Gifts
# --------------------------------------------------------------------------- #

_GIFT_RULES: Final = (
    "SELECT a.daily_cap, a.monthly_cap, a.tz, a.gifting_off, a.day, a.day_spent, "
    "a.month, a.month_spent, a.gift_tokens, a.gift_at, "
    "(SELECT amount FROM balances WHERE account = :debt AND asset = 'coin') "
    "FROM (SELECT 1) AS one LEFT JOIN accounts AS a ON a.user_id = :user"
)


@dataclass(frozen=True, slots=True)
class GiftRules:
    """What a gift that passed the rules writes to the sender's account."""

    day: str
    day_spent: int
    month: str
    month_spent: int
    tokens: int | None
    """Rate-limit units left after this gift (``None``: gifts are not rate limited)."""


def check_gift_rules(
    conn: sqlite3.Connection, *, sender_id: str, total: int, now: int, policy: MoneyPolicy
) -> GiftRules:
    """Checks (7) to (11) of a gift (see ``store.base.Wallet.send_gift``): locked,
    gifting off, rate limit, daily cap, monthly cap. Reads only."""
    (
        daily_cap,
        monthly_cap,
        tz,
        gifting_off,
        day_key,
        day_spent,
        month_key,
        month_spent,
        tokens,
        at,
        debt,
    ) = conn.execute(_GIFT_RULES, {"debt": debt_account(sender_id), "user": sender_id}).fetchone()
    if debt is not None and debt < 0:
        raise Forbidden(locked_message(-debt))
    if gifting_off:
        raise Forbidden(GIFTING_OFF)
    left: int | None = None
    if policy.gift_rate_per_minute:
        units = refill(tokens, at, now, policy.gift_rate_per_minute, policy.gift_burst)
        if units < TOKEN:
            raise RateLimited(rate_message("gifts", wait_ms(units, policy.gift_rate_per_minute)))
        left = units - TOKEN
    day, month = local_periods(now, tz or "UTC")
    spent_today = day_spent if day_key == day else 0
    spent_month = month_spent if month_key == month else 0
    check_caps(
        total=total,
        limits=UserLimits(daily_cap=daily_cap, monthly_cap=monthly_cap),
        policy_daily=policy.daily_spend_cap,
        policy_monthly=policy.monthly_spend_cap,
        day_spent=spent_today,
        month_spent=spent_month,
    )
    return GiftRules(
        day=day,
        day_spent=spent_today + total,
        month=month,
        month_spent=spent_month + total,
        tokens=left,
    )


def record_gift_money(
    conn: sqlite3.Connection,
    rules: GiftRules,
    *,
    sender_id: str,
    creator_id: str,
    room_id: str,
    stream_id: int,
    diamonds: int,
    created_at: int,
) -> None:
    """A committed gift's account writes: the sender's spending and rate bucket,
    the creator's earnings per hour and per stream. Only writes."""
    conn.execute(
        "INSERT INTO accounts (user_id, day, day_spent, month, month_spent, gift_tokens, "
        "gift_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
        "day = excluded.day, day_spent = excluded.day_spent, month = excluded.month, "
        "month_spent = excluded.month_spent, "
        "gift_tokens = coalesce(excluded.gift_tokens, gift_tokens), "
        "gift_at = coalesce(excluded.gift_at, gift_at)",
        (
            sender_id,
            rules.day,
            rules.day_spent,
            rules.month,
            rules.month_spent,
            rules.tokens,
            created_at if rules.tokens is not None else None,
        ),
    )
    if diamonds <= 0:
        return
    conn.execute(
        "INSERT INTO earnings_hours (user_id, hour, diamonds) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id, hour) DO UPDATE SET diamonds = diamonds + excluded.diamonds",
        (creator_id, created_at // 3_600_000, diamonds),
    )
    conn.execute(
        "INSERT INTO earnings_streams (user_id, room_id, stream_id, diamonds) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, room_id, stream_id) "
        "DO UPDATE SET diamonds = diamonds + excluded.diamonds",
        (creator_id, room_id, stream_id, diamonds),
    )


# --------------------------------------------------------------------------- #
# Purchases
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class PurchasePlan:
    """A purchase that passed the rules: what it credits and how."""

    paid: int
    """Coins from ``world`` (the package's coins and bulk bonus)."""
    bonus: int
    """Coins from ``platform:promotions``."""
    promotions: tuple[str, ...]
    debt_paid: int
    """Coins that pay off debt instead of reaching the balance."""
    postings: tuple[Posting, ...]
    meta: dict[str, Any]


def check_purchase_rules(
    conn: sqlite3.Connection, request: PurchaseRequest, paid: int
) -> PurchasePlan:
    """Checks (3) and (4) of a purchase (with ``enforce_limits``), then what it
    credits: promotions (a first-purchase one only for a first purchase) and the
    debt it pays off. Reads only."""
    user_id = request.user.id
    row = conn.execute(
        "SELECT purchases_off, purchases FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchone()
    purchases_off, purchases = (bool(row[0]), int(row[1])) if row else (False, 0)
    debt = debt_of(conn, user_id)
    if request.enforce_limits:
        if debt > 0:
            raise Forbidden(locked_message(debt))
        if purchases_off:
            raise Forbidden(PURCHASES_OFF)
    grants = [
        g for g in request.promotions if g.coins > 0 and (purchases == 0 or not g.first_purchase)
    ]
    bonus = sum(g.coins for g in grants)
    credit = paid + bonus
    debt_paid = min(debt, credit)
    postings = [Posting(WORLD, COIN, -paid)]
    if bonus:
        postings.append(Posting(PLATFORM_PROMOTIONS, COIN, -bonus))
    if debt_paid:
        postings.append(Posting(debt_account(user_id), COIN, debt_paid))
    if credit > debt_paid:
        postings.append(Posting(coins_account(user_id), COIN, credit - debt_paid))
    meta: dict[str, Any] = {}
    if grants:
        meta["promotions"] = [{"id": g.id, "coins": g.coins} for g in grants]
    if debt_paid:
        meta["debt_paid"] = debt_paid
    return PurchasePlan(
        paid=paid,
        bonus=bonus,
        promotions=tuple(g.id for g in grants),
        debt_paid=debt_paid,
        postings=tuple(postings),
        meta=meta,
    )


def record_purchase(conn: sqlite3.Connection, user_id: str) -> None:
    """Count a credited purchase (the first-purchase bonus needs none before)."""
    conn.execute(
        "INSERT INTO accounts (user_id, purchases) VALUES (?, 1) "
        "ON CONFLICT (user_id) DO UPDATE SET purchases = purchases + 1",
        (user_id,),
    )

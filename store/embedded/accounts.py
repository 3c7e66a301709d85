"""Account rows on the embedded engine: limits and the PIN, verification, rate
limits and webhook replay claims, as functions of a connection (writes run in
the writer thread, reads in a reader thread).

The money state a gift or a purchase keeps on the account (spending per day and
month, the gift rate bucket, the purchase count) is written by
``store.embedded.gifts`` and ``store.embedded.purchases`` in their own
transactions.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from store.domain import refusals
from store.domain.accounts import Account, LimitsRequest, UserLimits
from store.domain.rules import HOUR_TOKEN, pin_matches, pin_needed, refill, wait_ms
from store.embedded.journal import balance_of

_ACCOUNT: Final = (
    "SELECT daily_cap, monthly_cap, tz, purchases_off, gifting_off, pin, purchases, "
    "verified_at, verified_by, day, day_spent, month, month_spent "
    "FROM accounts WHERE user_id = ?"
)
_NEVER_SEEN: Final = (None, None, "UTC", 0, 0, "", 0, None, "", "", 0, "", 0)
"""The ``_ACCOUNT`` row of a user without one: the table's defaults."""


def load_account(conn: sqlite3.Connection, user_id: str) -> tuple[Account, str]:
    """The account and its PIN hash ("" when none)."""
    row = conn.execute(_ACCOUNT, (user_id,)).fetchone() or _NEVER_SEEN
    balance = balance_of(conn, user_id)
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


def set_limits(
    conn: sqlite3.Connection, request: LimitsRequest, candidate: str, new_hash: str | None
) -> Account:
    """Replace the limits; ``candidate`` is the given PIN hashed with the stored
    one's salt, ``new_hash`` the new PIN's hash ("" removes it, ``None`` keeps it)."""
    current, stored_pin = load_account(conn, request.user_id)
    if pin_needed(
        old=current.limits,
        new=request.limits,
        pin_set=bool(stored_pin),
        new_pin=request.new_pin,
    ) and not pin_matches(stored_pin, candidate):
        raise refusals.WRONG_PIN() if request.pin is not None else refusals.PIN_NEEDED()
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
    return load_account(conn, request.user_id)[0]


def set_verified(conn: sqlite3.Connection, user_id: str, at: int | None, by: str) -> Account:
    conn.execute(
        "INSERT INTO accounts (user_id, verified_at, verified_by) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id) DO UPDATE SET verified_at = excluded.verified_at, "
        "verified_by = excluded.verified_by",
        (user_id, at, by),
    )
    return load_account(conn, user_id)[0]


def is_verified(conn: sqlite3.Connection, user_id: str) -> bool:
    """Whether an admin verified the creator (only they may withdraw)."""
    row = conn.execute("SELECT verified_at FROM accounts WHERE user_id = ?", (user_id,)).fetchone()
    return row is not None and row[0] is not None


def rate_limit(
    conn: sqlite3.Connection, user_id: str, action: str, per_hour: int, burst: int, now: int
) -> None:
    """Take one token from the user's ``action`` bucket or refuse, taking nothing."""
    row = conn.execute(
        "SELECT tokens, at FROM rate_buckets WHERE user_id = ? AND action = ?", (user_id, action)
    ).fetchone()
    tokens, at = (row[0], row[1]) if row else (None, None)
    units = refill(tokens, at, now, per_hour, burst, token=HOUR_TOKEN)
    if units < HOUR_TOKEN:
        wait = wait_ms(units, per_hour, token=HOUR_TOKEN)
        raise refusals.TOO_MANY(action, refusals.wait_seconds(wait))
    conn.execute(
        "INSERT INTO rate_buckets (user_id, action, tokens, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, action) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
        (user_id, action, units - HOUR_TOKEN, now),
    )


def claim(conn: sqlite3.Connection, scope: str, key: str, ttl_ms: int, now: int) -> bool:
    """True unless ``(scope, key)`` is claimed and not expired; claims it."""
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

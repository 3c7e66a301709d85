"""Sending a gift on the embedded engine, as functions of a connection run in the
writer thread (the pure work is done before, on the caller's side: ``plan_gift``).

Checks, in the order of ``store.roles.Wallet.send_gift`` and before any write:
the idempotency key (scope ``gift:<sender id>``), the room (exists, live), the
people (an adult sender who is not the creator, an adult creator), the sender's
account (``check_gift_rules``: debt lock, gifting off, rate, daily and monthly
caps), then the coins. Only then the gift is journalled, the room's totals and
the accounts' spending and earnings move, and the receipt is stored under its
key. A refused gift stores nothing, so its key may be retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from store.domain import refusals
from store.domain.accounts import MoneyPolicy, UserLimits, debt_account
from store.domain.models import GiftReceipt, GiftRequest, coins_account
from store.domain.postings import gift_postings, split_gift
from store.domain.rules import TOKEN, check_caps, local_periods, refill, wait_ms
from store.embedded.journal import IdempotencyKey, dumps, journal
from store.embedded.room_totals import GiftTotals, record_gift
from store.errors import StoreError
from store.ids import new_id, now_ms


@dataclass(frozen=True, slots=True)
class GiftPlan:
    """A gift request plus everything computable without the database."""

    request: GiftRequest
    key: IdempotencyKey
    sender_json: str
    tx: str
    created_at: int
    total: int
    diamonds: int
    policy: MoneyPolicy
    refusal: StoreError | None
    """Why it can't be sold now (``GiftRequest.sale_refusal``): raised after the
    idempotency check, so a resend of a gift already charged still replays."""


def plan_gift(request: GiftRequest, *, share_percent: int, policy: MoneyPolicy) -> GiftPlan:
    """The pure part of a gift, done on the caller's side so that the writer thread
    (the bottleneck) only runs the checks and the SQL."""
    total = request.total_coins
    diamonds, _platform = split_gift(total, share_percent)
    created_at = request.now if request.now is not None else now_ms()
    return GiftPlan(
        request=request,
        key=IdempotencyKey(f"gift:{request.sender.id}", request.key, request.fingerprint()),
        sender_json=dumps(request.sender.public()),
        tx=new_id("tx"),
        created_at=created_at,
        total=total,
        diamonds=diamonds,
        policy=policy,
        refusal=request.sale_refusal(created_at),
    )


# --------------------------------------------------------------------------- #
# The sender's account
# --------------------------------------------------------------------------- #

_RULES_COLUMNS: Final = (
    "a.daily_cap, a.monthly_cap, a.tz, a.gifting_off, a.day, a.day_spent, "
    "a.month, a.month_spent, a.gift_tokens, a.gift_at, "
    "(SELECT amount FROM balances WHERE account = :debt AND asset = 'coin')"
)
"""The sender's account as the spending rules read it (``spending_rules``)."""

_GIFT_RULES: Final = (
    f"SELECT {_RULES_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN accounts AS a ON a.user_id = :user"
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


@dataclass(frozen=True, slots=True)
class SpendRefusals:
    """How the spending rules refuse: a gift's words, or an item's."""

    off: refusals.Refusal = refusals.GIFTING_OFF
    action: str = "gifts"
    daily: refusals.Refusal = refusals.DAILY_CAP
    monthly: refusals.Refusal = refusals.MONTHLY_CAP


GIFT_REFUSALS: Final = SpendRefusals()


def check_gift_rules(
    conn: sqlite3.Connection,
    *,
    sender_id: str,
    total: int,
    now: int,
    policy: MoneyPolicy,
    refusing: SpendRefusals = GIFT_REFUSALS,
) -> GiftRules:
    """Checks (7) to (11) of a gift (see ``store.roles.Wallet.send_gift``): locked,
    gifting off, rate limit, daily cap, monthly cap. Reads only. An item purchase
    runs the same checks (``refusing`` in its words)."""
    row = conn.execute(_GIFT_RULES, {"debt": debt_account(sender_id), "user": sender_id}).fetchone()
    return spending_rules(row, total=total, now=now, policy=policy, refusing=refusing)


def spending_rules(
    row: Sequence[Any],
    *,
    total: int,
    now: int,
    policy: MoneyPolicy,
    refusing: SpendRefusals = GIFT_REFUSALS,
) -> GiftRules:
    """``check_gift_rules`` on the account's row (``_RULES_COLUMNS``) read already."""
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
    ) = row
    if debt is not None and debt < 0:
        raise refusals.LOCKED(-debt)
    if gifting_off:
        raise refusing.off()
    left: int | None = None
    if policy.gift_rate_per_minute:
        units = refill(tokens, at, now, policy.gift_rate_per_minute, policy.gift_burst)
        if units < TOKEN:
            wait = wait_ms(units, policy.gift_rate_per_minute)
            raise refusals.TOO_MANY(refusing.action, refusals.wait_seconds(wait))
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
        refusing=(refusing.daily, refusing.monthly),
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
    receipt: GiftReceipt,
) -> None:
    """A committed gift's account writes: the sender's spending and rate bucket,
    the creator's earnings per hour and per stream. Only writes."""
    record_spending(conn, rules, sender_id=sender_id, at=receipt.created_at)
    record_earnings(
        conn,
        creator_id=receipt.creator_id,
        room_id=receipt.room_id,
        stream_id=receipt.stream_id,
        diamonds=receipt.diamonds,
        at=receipt.created_at,
    )


def record_spending(conn: sqlite3.Connection, rules: GiftRules, *, sender_id: str, at: int) -> None:
    """Coins spent (gift or item): the day's and month's spending, the rate bucket."""
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
            at if rules.tokens is not None else None,
        ),
    )


def record_earnings(
    conn: sqlite3.Connection,
    *,
    creator_id: str,
    room_id: str,
    stream_id: int,
    diamonds: int,
    at: int,
) -> None:
    """A creator's diamonds earned (held per hour, counted per stream)."""
    if diamonds <= 0:
        return
    conn.execute(
        "INSERT INTO earnings_hours (user_id, hour, diamonds) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id, hour) DO UPDATE SET diamonds = diamonds + excluded.diamonds",
        (creator_id, at // 3_600_000, diamonds),
    )
    conn.execute(
        "INSERT INTO earnings_streams (user_id, room_id, stream_id, diamonds) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (user_id, room_id, stream_id) "
        "DO UPDATE SET diamonds = diamonds + excluded.diamonds",
        (creator_id, room_id, stream_id, diamonds),
    )


# --------------------------------------------------------------------------- #
# The gift
# --------------------------------------------------------------------------- #

_GIFT_CONTEXT: Final = (
    "SELECT i.fingerprint, i.result, json_extract(r.creator, '$.id'), r.creator_adult, "
    "r.live, r.stream_id, "
    "(SELECT amount FROM balances WHERE account = :account AND asset = 'coin'), "
    "EXISTS (SELECT 1 FROM room_goals AS g WHERE g.room_id = :room AND g.stream_id = r.stream_id), "
    f"{_RULES_COLUMNS} "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN idempotency AS i ON i.scope = :scope AND i.key = :key "
    "LEFT JOIN rooms AS r ON r.id = :room "
    "LEFT JOIN accounts AS a ON a.user_id = :user"
)
"""Everything a gift checks, in one statement (one round trip instead of four), and
whether its stream has a goal to move (most have none: no statement for it then)."""

_CONTEXT_COLUMNS: Final = 8
"""``_GIFT_CONTEXT``'s columns before the sender's account (``_RULES_COLUMNS``)."""


def send_gift(conn: sqlite3.Connection, plan: GiftPlan) -> tuple[GiftReceipt, GiftTotals | None]:
    """The gift's receipt, and what it changed in its room's totals (None for a replay)."""
    request = plan.request
    sender = request.sender
    row = conn.execute(
        _GIFT_CONTEXT,
        {
            "account": coins_account(sender.id),
            "scope": plan.key.scope,
            "key": plan.key.key,
            "room": request.room_id,
            "debt": debt_account(sender.id),
            "user": sender.id,
        },
    ).fetchone()
    seen, stored, creator_id, creator_adult, live, stream_id, coins, has_goal = row[
        :_CONTEXT_COLUMNS
    ]
    if seen is not None:
        if seen != plan.key.fingerprint:
            raise refusals.KEY_REUSED()
        return GiftReceipt(**orjson.loads(stored), replayed=True), None
    if plan.refusal is not None:
        raise plan.refusal
    if creator_id is None:
        raise refusals.ROOM_NOT_FOUND()
    if not live:
        raise refusals.ROOM_NOT_LIVE()
    if not sender.adult:
        raise refusals.MINOR_SENDER()
    if sender.id == creator_id:
        raise refusals.SELF_GIFT()
    if not creator_adult:
        raise refusals.MINOR_CREATOR()
    rules = spending_rules(
        row[_CONTEXT_COLUMNS:], total=plan.total, now=plan.created_at, policy=plan.policy
    )
    total = plan.total
    coins = coins or 0
    if coins < total:
        raise refusals.INSUFFICIENT_FUNDS(total, coins)

    # what the key keeps (``receipt_body``: every field but ``replayed``, in order),
    # built once for the receipt and the key alike
    body: dict[str, Any] = {
        "tx": plan.tx,
        "room_id": request.room_id,
        "stream_id": stream_id,
        "creator_id": creator_id,
        "gift_id": request.gift.id,
        "count": request.count,
        "coins": total,
        "diamonds": plan.diamonds,
        "balance": coins - total,
        "created_at": plan.created_at,
    }
    receipt = GiftReceipt(**body)
    journal(
        conn,
        tx_id=receipt.tx,
        kind="gift",
        created_at=receipt.created_at,
        meta={
            "room_id": request.room_id,
            "stream_id": stream_id,
            **request.meta(),
            "sender_id": sender.id,
            "creator_id": creator_id,
            "key": request.key,
        },
        postings=gift_postings(
            sender_id=sender.id,
            creator_id=creator_id,
            total_coins=total,
            diamonds=plan.diamonds,
        ),
    )
    totals = record_gift(
        conn, receipt, sender_id=sender.id, sender_json=plan.sender_json, goal=bool(has_goal)
    )
    record_gift_money(conn, rules, sender_id=sender.id, receipt=receipt)
    plan.key.remember(conn, body)
    return receipt, totals

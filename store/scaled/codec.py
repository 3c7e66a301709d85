"""How values travel between the scaled engine and its Lua scripts.

Scripts never parse JSON on the hot path: Python hands them JSON fragments
(an outbox entry's head, an object's members without braces) that the script
completes with the numbers only it knows, and reads back flat Redis replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from store.domain.accounts import MoneyPolicy
from store.domain.models import Event, LeaderEntry, Posting
from store.domain.rules import HOUR_MS, local_periods
from store.scaled.client import text


def flag(value: bool) -> str:
    return "1" if value else "0"


def spending_args(policy: MoneyPolicy, now: int, tz: str) -> tuple[str | int, ...]:
    """The ARGV block ``lib_spending.lua`` reads, in its order: the time zone, the
    local day and month there, the platform's caps, the rate limit, the hour."""
    day, month = local_periods(now, tz)
    return (
        tz,
        day,
        month,
        policy.daily_spend_cap,
        policy.monthly_spend_cap,
        policy.gift_rate_per_minute,
        policy.gift_burst,
        now // HOUR_MS,
    )


def optional_int(value: Any) -> int | None:
    """A hash field that may be missing or empty."""
    raw = text(value) if value is not None else ""
    return int(raw) if raw else None


def fields_of(values: Sequence[Any]) -> dict[str, str]:
    """A flat ``HGETALL`` reply as a dict of text."""
    return {text(values[i]): text(values[i + 1]) for i in range(0, len(values) - 1, 2)}


def members(value: dict[str, Any]) -> bytes:
    """A JSON object's members without the braces."""
    return orjson.dumps(value)[1:-1]


def postings_json(postings: Sequence[Posting]) -> list[dict[str, Any]]:
    return [{"account": p.account, "asset": p.asset, "amount": p.amount} for p in postings]


def entry_head(tx_id: str, kind: str, created_at: int) -> bytes:
    """An outbox entry up to its postings array: ``{"id":…,…,"postings":[``."""
    return orjson.dumps({"id": tx_id, "kind": kind, "created_at": created_at})[:-1] + (
        b',"postings":['
    )


def leader_entries(reply: Sequence[Any], limit: int) -> list[LeaderEntry]:
    """The reply of ``leaderboard.lua`` (user id, coins, profile, ...): coins
    descending, ties by user id, at most ``limit``."""
    rows = [
        (reply[i].decode(), int(float(reply[i + 1])), reply[i + 2]) for i in range(0, len(reply), 3)
    ]
    rows.sort(key=lambda row: (-row[1], row[0]))
    return [LeaderEntry(user=orjson.loads(user), coins=coins) for _, coins, user in rows[:limit]]


def open_head(event: Event) -> bytes:
    """An event's JSON without its closing brace (the script appends the rest)."""
    return orjson.dumps(event)[:-1]


def gift_heads(event: Event) -> tuple[bytes, bytes]:
    """The open heads of a gift's event and of its combo's final event (the same
    with count and diamonds 0), from one encoding when those are its last keys."""
    head = open_head(event)
    tail = b',"count":%d,"diamonds":%d' % (event["count"], event["diamonds"])
    if head.endswith(tail):  # only the last two top-level members can end it so
        return head, head[: -len(tail)] + b',"count":0,"diamonds":0'
    return head, open_head({**event, "count": 0, "diamonds": 0})


def combo_member(sender_id: str, gift_id: str) -> str:
    """A combo's field in its room's combos hash: its sender's and gift's ids."""
    return f"{sender_id}\x1f{gift_id}"

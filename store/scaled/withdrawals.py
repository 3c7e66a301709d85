"""Withdrawals and earnings on the scaled engine: ``withdraw.lua`` reserves
diamonds (status pending), ``settle_withdrawal.lua`` resolves it once (paid or
failed); earnings are read from the creator's per-hour and per-stream hashes.

Both scripts touch the creator's slot only, plus the system balances and outbox
of ``layout``. Finding a withdrawal by its id needs its owner: a single Redis
keeps them in one hash the reserving script writes (``keys.WITHDRAWAL_OWNERS``);
on a cluster each withdrawal id has its own owner key
(``keys.withdrawal_owner_key``, ``store.scaled.owners``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import orjson

from store.domain import accounts as money
from store.domain import refusals
from store.domain.models import Posting, utc_day
from store.domain.postings import withdrawal_postings, withdrawal_settle_postings
from store.domain.rules import first_held_hour, held_diamonds
from store.errors import StoreError
from store.ids import new_id, now_ms
from store.scaled import keys, owners
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import fields_of, optional_int, postings_json
from store.scaled.keys import (
    SINGLE,
    KeyLayout,
    hashed,
    user_key,
    wallet_key,
    withdrawal_owner_key,
    withdrawal_record_key,
)

_WITHDRAW: Final = load_script("withdraw")
_SETTLE_WITHDRAWAL: Final = load_script("settle_withdrawal")


def withdrawal_from_hash(values: Sequence[Any], *, replayed: bool = False) -> money.Withdrawal:
    fields = fields_of(values)
    return money.Withdrawal(
        id=fields["id"],
        user_id=fields["user_id"],
        diamonds=int(fields["diamonds"]),
        status=fields["status"],
        method=fields["method"],
        created_at=int(fields["created_at"]),
        expected_at=int(fields["expected_at"]),
        settled_at=optional_int(fields.get("settled_at")),
        reference=fields.get("reference", ""),
        reason=fields.get("reason", ""),
        tx=fields["tx"],
        settle_tx=fields.get("settle_tx", ""),
        replayed=replayed,
    )


def _entry(
    tx_id: str, kind: str, now: int, postings: Sequence[Posting], meta: dict[str, Any]
) -> bytes:
    """A whole outbox entry (the script appends it as is)."""
    return orjson.dumps(
        {
            "id": tx_id,
            "kind": kind,
            "created_at": now,
            "postings": postings_json(postings),
            "meta": meta,
        }
    )


def _record_fields(withdrawal: money.Withdrawal, *, today: str) -> list[Arg]:
    """The new withdrawal's hash, as ``HSET`` arguments (name, value, ...)."""
    fields: list[Arg] = []
    for name, value in (
        ("id", withdrawal.id),
        ("user_id", withdrawal.user_id),
        ("diamonds", withdrawal.diamonds),
        ("status", withdrawal.status),
        ("method", withdrawal.method),
        ("created_at", withdrawal.created_at),
        ("expected_at", withdrawal.expected_at),
        ("settled_at", ""),
        ("reference", ""),
        ("reason", ""),
        ("tx", withdrawal.tx),
        ("settle_tx", ""),
        ("day", today),
    ):
        fields += [name, value]
    return fields


async def reserve(
    batcher: CommandBatcher,
    policy: money.MoneyPolicy,
    request: money.WithdrawalRequest,
    *,
    layout: KeyLayout = SINGLE,
) -> money.Withdrawal:
    user_id = request.user_id
    withdrawal_id, tx_id = new_id("wd"), new_id("tx")
    now = request.now if request.now is not None else now_ms()
    withdrawal = request.pending(
        withdrawal_id=withdrawal_id, tx=tx_id, now=now, payout_seconds=policy.payout_seconds
    )
    entry = _entry(
        tx_id,
        "withdrawal",
        now,
        withdrawal_postings(user_id=user_id, diamonds=request.diamonds),
        {
            "withdrawal_id": withdrawal_id,
            "user_id": user_id,
            "diamonds": request.diamonds,
            "method": request.method,
        },
    )
    today = utc_day(now)
    fields = _record_fields(withdrawal, today=today)
    wallet = wallet_key(user_id)
    owner = withdrawal_owner_key(withdrawal_id)
    record = withdrawal_record_key(user_id, withdrawal_id)
    call_keys = [
        user_key(user_id, hashed(keys.WITHDRAWAL_KEY, request.key)),
        wallet,
        user_key(user_id, keys.ACCOUNT),
        user_key(user_id, keys.EARNINGS_HOURS),
        record,
        user_key(user_id, keys.WITHDRAWALS),
        layout.outbox(wallet),
    ]
    if layout.cluster:
        await owners.claim(batcher, owner, user_id)  # a fresh id: never taken
    else:
        call_keys.append(keys.WITHDRAWAL_OWNERS)
    try:
        reply = await batcher.evalsha(
            _WITHDRAW,
            call_keys,
            (
                request.fingerprint(),
                withdrawal_id,
                user_id,
                request.diamonds,
                policy.withdrawal_min,
                policy.withdrawal_daily_max,
                today,
                policy.hold_seconds,
                first_held_hour(now, policy.hold_seconds),
                entry,
                *fields,
            ),
            retry_on_disconnect=True,
        )
        checked_reply(reply)
    except BaseException:
        if layout.cluster:  # refused, or not known to be stored
            await owners.release(batcher, owner, unless=record)
        raise
    if reply[0] == b"OK":
        return withdrawal
    if layout.cluster:  # a replay: the first withdrawal has its own owner key
        await owners.release(batcher, owner, unless=record)
    first = await batcher.execute("HGETALL", withdrawal_record_key(user_id, text(reply[1])))
    return withdrawal_from_hash(first, replayed=True)


async def settle(
    batcher: CommandBatcher,
    request: money.WithdrawalSettlement,
    *,
    layout: KeyLayout = SINGLE,
) -> money.Withdrawal:
    current = await withdrawal(batcher, request.withdrawal_id, layout=layout)
    if current is None:
        raise refusals.WITHDRAWAL_NOT_FOUND()
    tx_id = new_id("tx")
    now = request.now if request.now is not None else now_ms()
    entry = _entry(
        tx_id,
        f"withdrawal_{request.status}",
        now,
        withdrawal_settle_postings(
            user_id=current.user_id,
            diamonds=current.diamonds,
            paid=request.status == money.SETTLED_PAID,
        ),
        {
            "withdrawal_id": current.id,
            "user_id": current.user_id,
            "diamonds": current.diamonds,
            "reference": request.reference,
            "reason": request.reason,
        },
    )
    wallet = wallet_key(current.user_id)
    reply = checked_reply(
        await batcher.evalsha(
            _SETTLE_WITHDRAWAL,
            (
                withdrawal_record_key(current.user_id, current.id),
                wallet,
                user_key(current.user_id, keys.ACCOUNT),
                layout.balances(wallet),
                layout.outbox(wallet),
            ),
            (
                request.status,
                current.diamonds,
                now,
                request.reference,
                request.reason,
                tx_id,
                entry,
            ),
            retry_on_disconnect=True,
        )
    )
    if reply[0] == b"S":  # cannot happen: a withdrawal's amount never changes
        raise StoreError("the withdrawal changed while it was being settled")
    return withdrawal_from_hash(reply[1:], replayed=reply[0] == b"R")


async def withdrawal(
    batcher: CommandBatcher, withdrawal_id: str, *, layout: KeyLayout = SINGLE
) -> money.Withdrawal | None:
    if layout.cluster:
        owner = await batcher.execute("GET", withdrawal_owner_key(withdrawal_id))
    else:
        owner = await batcher.execute("HGET", keys.WITHDRAWAL_OWNERS, withdrawal_id)
    if owner is None:
        return None
    values = await batcher.execute("HGETALL", withdrawal_record_key(text(owner), withdrawal_id))
    return withdrawal_from_hash(values) if values else None


async def withdrawals(
    batcher: CommandBatcher, user_id: str, *, before: str | None, limit: int
) -> list[money.Withdrawal]:
    top = "(" + before if before is not None else "+"
    ids = await batcher.execute(
        "ZREVRANGEBYLEX", user_key(user_id, keys.WITHDRAWALS), top, "-", "LIMIT", 0, limit
    )
    records = await asyncio.gather(
        *(batcher.execute("HGETALL", withdrawal_record_key(user_id, text(i))) for i in ids)
    )
    return [withdrawal_from_hash(values) for values in records if values]


async def earnings(
    batcher: CommandBatcher, policy: money.MoneyPolicy, user_id: str, *, now: int | None
) -> money.Earnings:
    at = now if now is not None else now_ms()
    (diamonds, pending), hours_raw, streams_raw, state = await asyncio.gather(
        batcher.execute("HMGET", wallet_key(user_id), "diamond", "withdrawing"),
        batcher.execute("HGETALL", user_key(user_id, keys.EARNINGS_HOURS)),
        batcher.execute("HGETALL", user_key(user_id, keys.EARNINGS_STREAMS)),
        batcher.execute("HMGET", user_key(user_id, keys.ACCOUNT), "wd_paid", "verified_at"),
    )
    balance = int(diamonds or 0)
    hours = sorted((int(hours_raw[i]), int(hours_raw[i + 1])) for i in range(0, len(hours_raw), 2))
    held, next_release = held_diamonds(
        hours, now_ms=at, hold_seconds=policy.hold_seconds, balance=balance
    )
    streams: list[money.StreamEarnings] = []
    for i in range(0, len(streams_raw), 2):
        stream, _, room = text(streams_raw[i]).partition("|")
        streams.append(money.StreamEarnings(room, int(stream), int(streams_raw[i + 1])))
    streams.sort(key=lambda s: (s.room_id, -s.stream_id))
    paid, verified_at = state
    return money.Earnings(
        user_id=user_id,
        balance=balance,
        held=held,
        withdrawable=balance - held,
        pending=int(pending or 0),
        paid=int(paid or 0),
        lifetime=sum(d for _, d in hours),
        next_release_at=next_release,
        hours=tuple(hours),
        streams=tuple(streams),
        verified=bool(verified_at),
    )

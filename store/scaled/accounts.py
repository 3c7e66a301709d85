"""A user's account on the scaled engine: balances, limits and the PIN,
verification, rate limits (``rate.lua``) and one-time claims (webhook replays)."""

from __future__ import annotations

import asyncio
from typing import Final

from store.domain.accounts import Account, LimitsRequest, MoneyPolicy, UserLimits
from store.domain.models import Balance
from store.domain.rules import hash_pin, pin_salt
from store.ids import now_ms
from store.scaled import keys
from store.scaled.client import CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import flag, optional_int
from store.scaled.keys import claim_key, user_key, wallet_key

_LIMITS: Final = load_script("limits")
_RATE: Final = load_script("rate")

_ACCOUNT_FIELDS: Final = (
    "daily_cap",
    "monthly_cap",
    "tz",
    "purchases_off",
    "gifting_off",
    "pin",
    "purchases",
    "verified_at",
    "verified_by",
    "day",
    "day_spent",
    "month",
    "month_spent",
)


async def balance(batcher: CommandBatcher, user_id: str) -> Balance:
    """Coins, diamonds and debt; zero for a user never seen."""
    coins, diamonds, debt = await batcher.execute(
        "HMGET", wallet_key(user_id), "coin", "diamond", "debt"
    )
    return Balance(coins=int(coins or 0), diamonds=int(diamonds or 0), debt=-int(debt or 0))


async def account(batcher: CommandBatcher, user_id: str) -> Account:
    values, money = await asyncio.gather(
        batcher.execute("HMGET", user_key(user_id, keys.ACCOUNT), *_ACCOUNT_FIELDS),
        balance(batcher, user_id),
    )
    texts = [text(v) if v is not None else "" for v in values]
    raw = dict(zip(_ACCOUNT_FIELDS, texts, strict=True))
    return Account(
        user_id=user_id,
        coins=money.coins,
        diamonds=money.diamonds,
        debt=money.debt,
        limits=UserLimits(
            daily_cap=optional_int(raw["daily_cap"]),
            monthly_cap=optional_int(raw["monthly_cap"]),
            purchases_enabled=raw["purchases_off"] != "1",
            gifting_enabled=raw["gifting_off"] != "1",
            tz=raw["tz"] or "UTC",
        ),
        pin_set=bool(raw["pin"]),
        purchases=int(raw["purchases"] or 0),
        verified_at=optional_int(raw["verified_at"]),
        verified_by=raw["verified_by"],
        spent_day=raw["day"],
        day_spent=int(raw["day_spent"] or 0),
        spent_month=raw["month"],
        month_spent=int(raw["month_spent"] or 0),
    )


async def set_limits(
    batcher: CommandBatcher, policy: MoneyPolicy, request: LimitsRequest
) -> Account:
    limits = request.limits
    account_key = user_key(request.user_id, keys.ACCOUNT)
    stored_pin = await batcher.execute("HGET", account_key, "pin")
    stored = text(stored_pin) if stored_pin is not None else ""
    # hashing is slow on purpose: never on the event loop
    candidate = ""
    if stored and request.pin is not None:
        candidate = await asyncio.to_thread(hash_pin, request.pin, pin_salt(stored))
    new_hash = ""
    if request.new_pin:
        new_hash = await asyncio.to_thread(hash_pin, request.new_pin)
    checked_reply(
        await batcher.evalsha(
            _LIMITS,
            (account_key,),
            (
                "" if limits.daily_cap is None else limits.daily_cap,
                "" if limits.monthly_cap is None else limits.monthly_cap,
                flag(limits.purchases_enabled),
                flag(limits.gifting_enabled),
                limits.tz,
                candidate,
                flag(request.pin is not None),
                flag(request.new_pin is not None),
                new_hash,
            ),
            retry_on_disconnect=True,
        )
    )
    return await account(batcher, request.user_id)


async def set_verified(
    batcher: CommandBatcher, user_id: str, *, verified: bool, by: str
) -> Account:
    at = str(now_ms()) if verified else ""
    await batcher.execute(
        "HSET", user_key(user_id, keys.ACCOUNT), "verified_at", at, "verified_by", by
    )
    return await account(batcher, user_id)


async def rate_limit(
    batcher: CommandBatcher, user_id: str, action: str, *, per_hour: int, burst: int, now: int
) -> None:
    checked_reply(
        await batcher.evalsha(
            _RATE, (user_key(user_id, keys.RATE_BUCKETS),), (action, per_hour, burst, now)
        )
    )


async def claim_once(batcher: CommandBatcher, scope: str, key: str, *, ttl_seconds: int) -> bool:
    reply = await batcher.execute(
        "SET", claim_key(scope, key), "1", "NX", "EX", ttl_seconds, retry_on_disconnect=False
    )
    return reply is not None

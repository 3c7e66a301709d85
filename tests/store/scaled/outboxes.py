"""Money written straight into a Redis Cluster's per-slot keys, as the money
scripts would: for the ledger worker, audit and repair tests without a gift."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson

from store.domain.models import coins_account
from store.scaled.keys import CLUSTER, system_field, wallet_key
from store.scaled.outbox import SETTLE_GROUP


async def grant(redis: Any, user: str, coins: int, *, n: int) -> str:
    """What a purchase script does in the buyer's slot: the wallet, the slot's
    system balances and outbox, in one slot. Returns the transaction id."""
    tx = f"tx_{n:06d}_{user}"
    owner = wallet_key(user)
    entry = {
        "id": tx,
        "kind": "grant",
        "created_at": 1_700_000_000_000 + n,
        "postings": [
            {"account": "world", "asset": "coin", "amount": -coins},
            {"account": coins_account(user), "asset": "coin", "amount": coins},
        ],
        "meta": {"user_id": user},
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(owner, "coin", coins)
        pipe.hincrby(CLUSTER.balances(owner), system_field("world", "coin"), -coins)
        pipe.xadd(CLUSTER.outbox(owner), {"tx": orjson.dumps(entry)})
        await pipe.execute()
    return tx


async def settle(redis: Any, outboxes: list[str]) -> None:
    """What the settle group does with each entry: it acknowledges it (a stand-in
    for the gift's settle sweeper: these entries have no credit to run)."""
    for outbox in sorted(set(outboxes)):
        with contextlib.suppress(Exception):
            await redis.xgroup_create(outbox, SETTLE_GROUP, id="0", mkstream=True)
        reply: Any = await redis.xreadgroup(SETTLE_GROUP, "settle-1", {outbox: ">"}, count=1000)
        ids = [entry_id for _, items in reply or () for entry_id, _ in items]
        if ids:
            await redis.xack(outbox, SETTLE_GROUP, *ids)

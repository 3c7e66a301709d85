"""Owner keys on a Redis Cluster: a record found by its own id (a payment, a
withdrawal) lives in its owner's slot, so its id needs a small key of its own
naming the owner (``payment_owner_key``, ``withdrawal_owner_key``).

The owner is claimed before the script that stores the record, so that a record
is never stored without a way to find it; a claim the script did not use (a
refusal, a replay of an earlier record) is released again. A claim left behind
by a crash names an owner without the record: a lookup then finds nothing, as
before the claim.
"""

from __future__ import annotations

import contextlib

from store.errors import StoreError
from store.scaled.client import CommandBatcher, text


async def claim(batcher: CommandBatcher, key: str, owner: str) -> str:
    """Name ``owner`` in ``key`` unless another owner is named there already; the
    owner named there now."""
    if await batcher.execute("SET", key, owner, "NX") is not None:
        return owner
    named = await batcher.execute("GET", key)
    return text(named) if named is not None else await claim(batcher, key, owner)


async def release(batcher: CommandBatcher, key: str, *, unless: str) -> None:
    """Drop the claim in ``key`` unless the record ``unless`` was stored after all
    (its reply lost with a connection). Best effort: a claim left behind is harmless."""
    with contextlib.suppress(StoreError):
        if not await batcher.execute("EXISTS", unless):
            await batcher.execute("DEL", key)

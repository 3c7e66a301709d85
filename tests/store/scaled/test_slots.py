"""The key layout: a single Redis keeps its key strings; on a cluster the system
keys are per slot (each tag really hashing to its slot) and a payment's keys sit
in the buyer's slot. ``existing_slot_keys`` finds the per-slot keys on a real
cluster."""

from __future__ import annotations

import pytest

from store.scaled.client import CommandBatcher
from store.scaled.keys import (
    CLUSTER,
    DEAD_LETTERS,
    OUTBOX,
    SINGLE,
    SYSTEM_BALANCES,
    KeyLayout,
    payment_key,
    reversal_key,
    wallet_key,
)
from store.scaled.slots import SLOTS, existing_slot_keys, slot_key, slot_of, slot_tag
from tests.services import Services


def test_every_slot_has_a_tag_that_hashes_to_it() -> None:
    tags = [slot_tag(slot) for slot in range(SLOTS)]
    assert len(set(tags)) == SLOTS
    for slot, tag in enumerate(tags):
        assert "{" not in tag and "}" not in tag and tag.startswith("s:")
        assert slot_of(f"live:{{{tag}}}:bal") == slot
        assert slot_of(slot_key(slot, "outbox")) == slot


def test_the_tag_table_is_fixed() -> None:
    """The tags name stored keys: the table's rule must never change."""
    assert [slot_tag(slot) for slot in (0, 1, 2, 12_345, 16_383)] == [
        "s:0142",
        "s:001r",
        "s:0b0o",
        "s:00c3",
        "s:05xi",
    ]
    assert slot_key(0, "bal") == "live:{s:0142}:bal"


def test_a_single_redis_keeps_todays_strings() -> None:
    assert KeyLayout() == SINGLE
    owner = wallet_key("alice")
    assert SINGLE.balances(owner) == SYSTEM_BALANCES == "live:{sys}:bal"
    assert SINGLE.outbox(owner) == OUTBOX == "live:{sys}:outbox"
    assert SINGLE.dead_letters(owner) == DEAD_LETTERS == "live:{sys}:dead"
    assert SINGLE.payment("stripe", "pi_1", "alice") == payment_key("stripe", "pi_1")
    assert payment_key("stripe", "pi_1") == "live:{pay:stripe:pi_1}"
    assert SINGLE.reversal("stripe", "pi_1", "alice") == "live:{pay:stripe:pi_1}:rev"
    assert reversal_key("stripe", "pi_1") == "live:{pay:stripe:pi_1}:rev"


@pytest.mark.parametrize("user_id", ["alice", "bob", "u:{odd}", "ü-42"])
def test_cluster_keys_share_their_owners_slot(user_id: str) -> None:
    owner = wallet_key(user_id)
    slot = slot_of(owner)
    for key in (CLUSTER.balances(owner), CLUSTER.outbox(owner), CLUSTER.dead_letters(owner)):
        assert slot_of(key) == slot
        assert key.startswith(f"live:{{{slot_tag(slot)}}}:")
    payment = CLUSTER.payment("stripe", "pi_1", user_id)
    reversal = CLUSTER.reversal("stripe", "pi_1", user_id)
    assert slot_of(payment) == slot_of(reversal) == slot
    assert len({payment, reversal, CLUSTER.payment("stripe", "pi_2", user_id)}) == 3
    # provider and payment id cannot run into each other
    assert CLUSTER.payment("a:b", "c", user_id) != CLUSTER.payment("a", "b:c", user_id)


@pytest.mark.scaled
async def test_existing_slot_keys_visit_every_primary(services: Services) -> None:
    cluster = await services.cluster()
    await cluster.flush()
    batcher = CommandBatcher(cluster.url)
    try:
        users = [f"user-{n}" for n in range(40)]
        outboxes = sorted({CLUSTER.outbox(wallet_key(user)) for user in users})
        for outbox in outboxes:
            await batcher.execute("XADD", outbox, "*", "tx", "{}")
        await batcher.execute("HSET", CLUSTER.balances(wallet_key("alice")), "coin|world", 1)
        assert sorted(await existing_slot_keys(batcher, "outbox")) == outboxes
        assert await existing_slot_keys(batcher, "bal") == [CLUSTER.balances(wallet_key("alice"))]
        assert await existing_slot_keys(batcher, "dead") == []
        owners = {await batcher.node_of(outbox) for outbox in outboxes}
        assert len(owners) == len(cluster.nodes)  # the keys were spread over every primary
    finally:
        await batcher.close()


@pytest.mark.scaled
async def test_existing_slot_keys_on_a_single_redis(services: Services) -> None:
    urls = await services.reset()
    batcher = CommandBatcher(urls.redis)
    try:
        assert await existing_slot_keys(batcher, "outbox") == [OUTBOX]
    finally:
        await batcher.close()

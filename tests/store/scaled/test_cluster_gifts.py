"""A gift across the shards of a real Redis Cluster: the sender, the creator and the
room on three different primaries. Committed by the debit in the sender's slot,
finished by the credit and the room step (each once, by its marker), by the node
at once or by the settle group of the outboxes when the node died in between;
money is conserved across every slot's balances at each quiescent point. The
gift's event goes out once too: sent by its node, or late by the settle group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from store.domain.accounts import MoneyPolicy
from store.domain.models import ComboHit, GiftRequest, Profile, PurchaseRequest
from store.engine import open_engine
from store.errors import Conflict, RoomNotLive
from store.roles import Engine, EngineConfig
from store.scaled.client import CommandBatcher
from store.scaled.gifts import Finished, GiftSender, GiftStep, finish_gift
from store.scaled.keys import CLUSTER, LEADERBOARD, ROOM, room_key, wallet_key
from store.scaled.outbox import SETTLE_GROUP, SettleSweeper
from store.scaled.slots import existing_slot_keys, slot_of
from tests.services import Services, Urls, adult, eventually, fund, rose

pytestmark = [pytest.mark.scaled, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
async def urls(services: Services) -> Urls:
    return await services.reset_cluster()


@pytest.fixture
async def raw(urls: Urls) -> AsyncIterator[CommandBatcher]:
    """Another client of the cluster: what a test reads, or a second node's calls."""
    batcher = CommandBatcher(urls.redis)
    try:
        yield batcher
    finally:
        await batcher.close()


async def _engine(urls: Urls, *, settle_delay_seconds: float = 10.0) -> Engine:
    config = EngineConfig(
        redis_url=urls.redis,
        database_url=urls.database,
        settle_delay_seconds=settle_delay_seconds,
    )
    return await open_engine(config)


async def _three_primaries(raw: CommandBatcher) -> tuple[Profile, Profile, str]:
    """A sender, a creator and a room whose slots are on three different primaries."""
    sender = adult("sender")
    nodes = [await raw.node_of(wallet_key(sender.id))]
    creator = await _first(raw, "creator-{}", wallet_key, nodes)
    nodes.append(await raw.node_of(wallet_key(creator)))
    room = await _first(raw, "room-{}", lambda room_id: room_key(room_id, ROOM), nodes)
    return sender, adult(creator), room


async def _first(raw: CommandBatcher, name: str, key: Any, taken: list[Any]) -> str:
    for n in range(1_000):
        if await raw.node_of(key(name.format(n))) not in taken:
            return name.format(n)
    raise AssertionError("the cluster has fewer than three primaries")


async def _wallet(raw: CommandBatcher, user_id: str) -> dict[str, int]:
    flat = await raw.execute("HGETALL", wallet_key(user_id))
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


async def _conserved(raw: CommandBatcher, *users: Profile) -> dict[str, int]:
    """Each asset summed over every slot's system balances and the users' wallets:
    all zero when money is conserved."""
    totals = {"coin": 0, "diamond": 0}
    for key in await existing_slot_keys(raw, "bal"):
        flat = await raw.execute("HGETALL", key)
        for i in range(0, len(flat), 2):
            totals[flat[i].decode().partition("|")[0]] += int(flat[i + 1])
    for user in users:
        wallet = await _wallet(raw, user.id)
        totals["coin"] += wallet.get("coin", 0) + wallet.get("debt", 0)
        totals["diamond"] += wallet.get("diamond", 0)
    return totals


async def _unsettled(raw: CommandBatcher, outbox: str) -> int:
    """Entries of ``outbox`` the settle group read and has not acknowledged yet."""
    summary = await raw.execute("XPENDING", outbox, SETTLE_GROUP)
    return int(summary[0])


async def _board(raw: CommandBatcher, room_id: str) -> list[Any]:
    return list(await raw.execute("ZRANGE", room_key(room_id, LEADERBOARD), 0, -1, "WITHSCORES"))


async def _gift_events(engine: Engine, room_id: str) -> list[dict[str, Any]]:
    """The room's ``gift`` events as its history keeps them (seq gap-free)."""
    events = await engine.broker.history(room_id, since=0)
    assert events is not None
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1))
    return [event for event in events if event["type"] == "gift"]


def _hit(engine: Engine, receipt: Any) -> ComboHit:
    """The combo hit of a committed gift, as the node's room activity sends it."""
    gift = engine.catalog.gift("rose")
    assert gift is not None
    event = {
        "type": "gift",
        "tx": receipt.tx,
        "gift": gift.public(),
        "sender": {"id": "sender"},
        "count": receipt.count,
        "diamonds": receipt.diamonds,
    }
    return ComboHit(
        event=event,
        stream_id=receipt.stream_id,
        sender_id="sender",
        gift_id="rose",
        streakable=True,
        count=receipt.count,
        coins=receipt.coins,
        diamonds=receipt.diamonds,
    )


async def test_a_gift_across_three_primaries_moves_everything_once(
    urls: Urls, raw: CommandBatcher
) -> None:
    sender, creator, room = await _three_primaries(raw)
    engine = await _engine(urls)
    try:
        funded = await fund(engine, sender)
        await engine.rooms.go_live(room_id=room, creator=creator, title="t")
        receipt = await engine.wallet.send_gift(rose(engine, sender, "g-1", room_id=room, count=5))
        assert (receipt.coins, receipt.balance, receipt.stream_id) == (5, funded - 5, 1)
        again = await engine.wallet.send_gift(rose(engine, sender, "g-1", room_id=room, count=5))
        assert again.replayed and again.tx == receipt.tx

        assert (await engine.wallet.balance(sender.id)).coins == funded - 5
        assert (await engine.wallet.balance(creator.id)).diamonds == receipt.diamonds > 0
        board = await engine.rooms.leaderboard(room)
        assert [(entry.user["id"], entry.coins) for entry in board] == [(sender.id, 5)]
        stats = await engine.activity.stream_stats(room, 1)
        assert (stats.gifts, stats.coins, stats.diamonds) == (5, 5, receipt.diamonds)
        supporters = await engine.activity.supporters(creator.id, period="all")
        assert [(entry.user["id"], entry.coins) for entry in supporters] == [(sender.id, 5)]
        assert await _conserved(raw, sender, creator) == {"coin": 0, "diamond": 0}

        # the whole transaction is in the sender's slot's outbox, once
        outbox = CLUSTER.outbox(wallet_key(sender.id))
        assert await existing_slot_keys(raw, "outbox") == [outbox]
        entries = await raw.execute("XRANGE", outbox, "-", "+")
        gifts = [fields for _, fields in entries if b"gift" in fields]
        assert len(gifts) == 1

    finally:
        await engine.close()


async def test_a_gift_after_the_stream_ended_on_another_node_is_refused(
    urls: Urls, raw: CommandBatcher
) -> None:
    sender, creator, room = await _three_primaries(raw)
    first, second = await _engine(urls), await _engine(urls)
    try:
        funded = await fund(first, sender)
        await first.rooms.go_live(room_id=room, creator=creator, title="t")
        await second.wallet.send_gift(rose(second, sender, "g-1", room_id=room))
        await first.rooms.end(room, by=creator)
        with pytest.raises(RoomNotLive):
            await second.wallet.send_gift(rose(second, sender, "g-2", room_id=room))
        assert (await second.wallet.balance(sender.id)).coins == funded - 1
        assert await _conserved(raw, sender, creator) == {"coin": 0, "diamond": 0}
    finally:
        await first.close()
        await second.close()


async def test_a_payment_is_credited_once_and_to_one_user(urls: Urls, raw: CommandBatcher) -> None:
    alice, ben = adult("alice"), adult("ben")
    engine = await _engine(urls)
    try:
        package = engine.catalog.package("us_70")
        assert package is not None
        first = await engine.wallet.purchase(PurchaseRequest(alice, package, payment_id="pay-1"))
        again = await engine.wallet.purchase(PurchaseRequest(alice, package, payment_id="pay-1"))
        assert again.replayed and again.tx == first.tx and again.balance == first.balance
        with pytest.raises(Conflict):
            await engine.wallet.purchase(PurchaseRequest(ben, package, payment_id="pay-1"))
        assert await _wallet(raw, ben.id) == {}
        assert (await engine.wallet.balance(alice.id)).coins == first.coins
        key = CLUSTER.payment("sandbox", "pay-1", alice.id)
        assert slot_of(key) == slot_of(wallet_key(alice.id))
        assert await raw.execute("EXISTS", key) == 1
        assert await _conserved(raw, alice, ben) == {"coin": 0, "diamond": 0}
    finally:
        await engine.close()


class _DiesAfterDebit(GiftSender):
    """A node that dies right after a gift's debit: the credit and room step never run."""

    async def _finish(self, step: GiftStep) -> None:
        return None


async def _half_done_gift(urls: Urls, raw: CommandBatcher) -> tuple[Profile, Profile, str, Any]:
    sender, creator, room = await _three_primaries(raw)
    engine = await _engine(urls)
    try:
        await fund(engine, sender)
        await engine.rooms.go_live(room_id=room, creator=creator, title="t")
        request: GiftRequest = rose(engine, sender, "g-1", room_id=room, count=3)
    finally:
        await engine.close()  # its sweeper stops too
    dying = _DiesAfterDebit(
        raw, share_percent=50, key_ttl=3_600, policy=MoneyPolicy(), layout=CLUSTER
    )
    receipt = await dying.send(request)
    assert (await _wallet(raw, creator.id)).get("diamond", 0) == 0
    assert await _board(raw, room) == []
    # half done: the debit's slot has paid the diamonds out, nobody has them yet
    assert await _conserved(raw, sender, creator) == {"coin": 0, "diamond": -receipt.diamonds}
    return sender, creator, room, receipt


async def test_the_settle_group_finishes_a_gift_whose_node_died_once(
    urls: Urls, raw: CommandBatcher
) -> None:
    sender, creator, room, receipt = await _half_done_gift(urls, raw)
    engine = await _engine(urls)
    try:
        # too young: its node may still be finishing it
        assert await SettleSweeper(raw, consumer="node-2").sweep() == 0
        assert await _gift_events(engine, room) == []

        sweeper = SettleSweeper(raw, consumer="node-2", claim_idle_ms=0)
        assert await sweeper.sweep() == 2  # the sender's purchase and gift
        assert sweeper.finished == 2  # its credit and its room step
        assert sweeper.shown == 1  # and its event, late
        assert (await _wallet(raw, creator.id))["diamond"] == receipt.diamonds
        assert await _board(raw, room) == [sender.id.encode(), b"3"]
        assert await _conserved(raw, sender, creator) == {"coin": 0, "diamond": 0}
        [event] = await _gift_events(engine, room)
        assert (event["tx"], event["count"], event["diamonds"]) == (receipt.tx, 3, receipt.diamonds)
        assert event["combo"] == {"id": receipt.tx, "count": 3, "end": True}
        assert event["gift"]["id"] == "rose" and event["sender"]["id"] == sender.id
        assert event["overlay"]["stream"] == {"gifts": 3, "coins": 3, "diamonds": receipt.diamonds}

        # again by anyone, any number of times: nothing more
        other = SettleSweeper(raw, consumer="node-3", claim_idle_ms=0)
        assert await other.sweep() == 0
        # the node's own publish, had it only been slow: not a second event
        assert await engine.activity.publish_gift(room, _hit(engine, receipt), window_ms=3_000) == 0
        assert len(await _gift_events(engine, room)) == 1
    finally:
        await engine.close()
    outbox = CLUSTER.outbox(wallet_key(sender.id))
    entries = [
        dict(zip(f[::2], f[1::2], strict=True))
        for _, f in await raw.execute("XRANGE", outbox, "-", "+")
    ]
    [step] = [GiftStep.decode(fields[b"gift"]) for fields in entries if b"gift" in fields]
    assert step.tx_id == receipt.tx
    assert await finish_gift(raw, step) == Finished(credited=False, booked=False, shown=True)
    assert (await _wallet(raw, creator.id))["diamond"] == receipt.diamonds
    assert await _board(raw, room) == [sender.id.encode(), b"3"]
    assert await _unsettled(raw, outbox) == 0


async def test_a_running_node_finishes_what_a_dead_one_left(
    urls: Urls, raw: CommandBatcher
) -> None:
    sender, creator, room, receipt = await _half_done_gift(urls, raw)
    # its own settle sweeper runs in the background
    engine = await _engine(urls, settle_delay_seconds=1.0)
    try:

        async def credited() -> bool:
            return (await engine.wallet.balance(creator.id)).diamonds == receipt.diamonds

        async def shown() -> bool:
            return len(await _gift_events(engine, room)) == 1

        await eventually(credited, what="the settle sweeper to credit the creator")
        await eventually(shown, what="the settle sweeper to show the gift")
        board = await engine.rooms.leaderboard(room)
        assert [(entry.user["id"], entry.coins) for entry in board] == [(sender.id, 3)]
        assert await _conserved(raw, sender, creator) == {"coin": 0, "diamond": 0}
    finally:
        await engine.close()


async def test_a_malformed_gift_step_is_acknowledged_and_left_alone(
    urls: Urls, raw: CommandBatcher
) -> None:
    outbox = CLUSTER.outbox(wallet_key("alice"))
    await raw.execute("XADD", outbox, "*", "tx", "{}", "gift", "[1, 2]")
    await raw.execute("XADD", outbox, "*", "tx", "{}")  # not a gift: nothing to finish
    sweeper = SettleSweeper(raw, consumer="node-1", claim_idle_ms=0)
    assert await sweeper.sweep() == 2
    assert sweeper.finished == 0
    assert await _unsettled(raw, outbox) == 0
    assert await raw.execute("XLEN", outbox) == 2  # the ledger's to file and delete
    with pytest.raises(ValueError, match="malformed gift step"):
        GiftStep.decode(b'["tx_1", "", "room", "ben", "{}", 1, 0, 1, "1", 0]')
    with pytest.raises(ValueError, match="not a JSON object"):
        GiftStep.decode(b'["tx_1", "carol", "room", "ben", "{}", 1, 0, 1, "1", 0, "[1]"]')
    with pytest.raises(ValueError, match="not a JSON object"):
        GiftStep.decode(b'["tx_1", "carol", "room", "ben", "{", 1, 0, 1, "1", 0, ""]')
    # an entry written before the gift was kept: settled, not shown
    step = GiftStep.decode(b'["tx_1", "carol", "room", "ben", "{}", 1, 0, 1, "1", 0]')
    assert (step.tx_id, step.gift) == ("tx_1", "")


async def test_a_gift_event_sent_by_its_node_goes_out_once(urls: Urls, raw: CommandBatcher) -> None:
    sender, creator, room = await _three_primaries(raw)
    engine = await _engine(urls)
    try:
        await fund(engine, sender)
        await engine.rooms.go_live(room_id=room, creator=creator, title="t")
        receipt = await engine.wallet.send_gift(rose(engine, sender, "g-1", room_id=room, count=2))
        hit = _hit(engine, receipt)
        assert await engine.activity.publish_gift(room, hit, window_ms=3_000) > 0
        # the same call again (a retry after a lost reply): nothing more
        assert await engine.activity.publish_gift(room, hit, window_ms=3_000) == 0
        [event] = await _gift_events(engine, room)
        assert event["combo"] == {"id": receipt.tx, "count": 2, "end": False}

        # the settle group finds it shown: it acknowledges, publishes nothing
        sweeper = SettleSweeper(raw, consumer="node-2", claim_idle_ms=0)
        assert await sweeper.sweep() == 2
        assert (sweeper.finished, sweeper.shown) == (0, 0)
        assert len(await _gift_events(engine, room)) == 1
        outbox = CLUSTER.outbox(wallet_key(sender.id))
        assert await _unsettled(raw, outbox) == 0
        # the combo still ends once, by the node's timer
        assert await engine.activity.end_combos(room, everything=True) == 0
        events = await _gift_events(engine, room)
        assert [e["combo"]["end"] for e in events] == [False, True]
    finally:
        await engine.close()


async def test_the_settle_group_forgets_consumers_of_processes_gone(
    urls: Urls, raw: CommandBatcher
) -> None:
    outbox = CLUSTER.outbox(wallet_key("alice"))
    host, port = await raw.node_of(outbox)
    node = Redis(host=host, port=port, protocol=2)
    try:
        await node.xadd(outbox, {"tx": "{}"})
        gone = SettleSweeper(raw, consumer="gone", claim_idle_ms=0)
        assert await gone.sweep() == 1
        # a process that died holding an entry: kept until another claims it
        await node.xadd(outbox, {"tx": "{}"})
        await node.xreadgroup(SETTLE_GROUP, "dead", {outbox: ">"})

        async def consumers() -> list[str]:
            listed = await node.xinfo_consumers(outbox, SETTLE_GROUP)
            return sorted(c["name"].decode() for c in listed)

        assert await consumers() == ["dead", "gone"]
        live = SettleSweeper(raw, consumer="live", forget_idle_ms=1, forget_seconds=0)

        async def forgotten() -> bool:
            # the dead one's entry is not idle for 10 s yet: not claimed
            assert await live.sweep() == 0
            return await consumers() == ["dead"]

        await eventually(forgotten, what="the idle consumer without entries to go")
        claimer = SettleSweeper(raw, consumer="live", claim_idle_ms=0)
        assert await claimer.sweep() == 1  # the dead one's entry, claimed
        assert await consumers() == ["dead", "live"]

        async def all_gone() -> bool:
            await live.sweep()
            return await consumers() == ["live"]

        await eventually(all_gone, what="the dead consumer to go once it holds nothing")
    finally:
        await node.aclose()

"""Fault tests of the scaled engine against real Redis and PostgreSQL servers.

Each test takes a server away (restart, kill, stop) or breaks a step of the
outbox pipeline and then checks the money invariants: no acknowledged gift
lost or doubled, no duplicate postings, and an audit that passes once the
outbox is drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import pytest

from store.domain.models import GiftReceipt, Profile
from store.errors import Unavailable
from store.roles import Engine
from store.scaled.client import connect_redis
from store.scaled.keys import DEAD_LETTERS, OUTBOX
from store.scaled.outbox import drain_once, outbox_lag, run_ledger_worker
from store.scaled.postgres import create_pool
from tests.services import (
    Services,
    Urls,
    adult,
    eventually,
    fund,
    pg_count,
    redis_client,
    rose,
    scaled_engine,
)

pytestmark = pytest.mark.scaled


async def _live_room(engine: Engine, room_id: str = "room") -> Profile:
    creator = Profile(id="creator", username="creator", adult=True, roles=frozenset({"creator"}))
    await engine.rooms.go_live(room_id=room_id, creator=creator, title="live")
    return creator


async def _gift_until_acknowledged(
    engine: Engine, user: Profile, key: str, *, timeout: float = 30.0
) -> GiftReceipt:
    """What a client does: resend the same request id until it is acknowledged."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await engine.wallet.send_gift(rose(engine, user, key))
        except Unavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _assert_ledger_matches(engine: Engine, urls: Urls, *, gifts: int) -> None:
    report = await engine.ledger.audit()
    assert report.ok, report.public()
    assert report.pending == 0
    assert await pg_count(urls, "SELECT count(*) FROM transactions WHERE kind = 'gift'") == gifts


async def test_redis_restart_mid_run_loses_and_doubles_nothing(
    services: Services, urls: Urls, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    await _live_room(engine)
    users = [adult(f"fan{i}") for i in range(8)]
    start = {user.id: await fund(engine, user) for user in users}
    acknowledged: dict[tuple[str, str], GiftReceipt] = {}
    per_user = 60

    async def fan(user: Profile) -> None:
        for n in range(per_user):
            key = f"{user.id}-{n}"
            acknowledged[(user.id, key)] = await _gift_until_acknowledged(engine, user, key)
            await asyncio.sleep(0.002)

    caplog.set_level(logging.INFO, logger="store.scaled.client")
    fans = asyncio.gather(*(fan(user) for user in users))
    await eventually(lambda: len(acknowledged) >= 100, what="gifts before the restart")
    # kill -9: with appendfsync always every acknowledged write is in the AOF
    await services.redis.kill()
    await asyncio.sleep(0.2)
    await services.redis.start()
    await fans

    assert len(acknowledged) == len(users) * per_user
    assert len({receipt.tx for receipt in acknowledged.values()}) == len(acknowledged)
    assert "script cache miss" in caplog.text  # the NOSCRIPT path ran
    for user in users:
        balance = await engine.wallet.balance(user.id)
        assert balance.coins == start[user.id] - per_user
    assert (await engine.wallet.balance("creator")).diamonds == len(users) * per_user
    board = await engine.rooms.leaderboard("room", limit=len(users))
    assert {entry.user["id"]: entry.coins for entry in board} == {u.id: per_user for u in users}
    await _assert_ledger_matches(engine, urls, gifts=len(acknowledged))


async def test_graceful_redis_restart_keeps_everything(
    services: Services, urls: Urls, engine: Engine
) -> None:
    await _live_room(engine)
    fan = adult("fan")
    await fund(engine, fan)
    first = await engine.wallet.send_gift(rose(engine, fan, "before"))
    await services.redis.restart()
    replay = await _gift_until_acknowledged(engine, fan, "before")
    assert replay.replayed and replay.tx == first.tx
    after = await _gift_until_acknowledged(engine, fan, "after")
    assert after.balance == first.balance - 1
    assert await engine.ready() == {"redis": "ok", "postgresql": "ok"}
    await _assert_ledger_matches(engine, urls, gifts=2)


async def test_script_flush_then_gift_works(urls: Urls, engine: Engine) -> None:
    await _live_room(engine)
    fan = adult("fan")
    await fund(engine, fan)
    await engine.wallet.send_gift(rose(engine, fan, "one"))
    client = await redis_client(urls)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    receipt = await engine.wallet.send_gift(rose(engine, fan, "two"))
    assert not receipt.replayed
    assert (await engine.wallet.balance(fan.id)).coins == receipt.balance
    await _assert_ledger_matches(engine, urls, gifts=2)


async def test_redis_down_is_unavailable_and_nothing_applied(
    services: Services, urls: Urls, engine: Engine
) -> None:
    await _live_room(engine)
    fan = adult("fan")
    balance = await fund(engine, fan)
    await services.redis.stop()
    try:
        with pytest.raises(Unavailable):
            await engine.wallet.send_gift(rose(engine, fan, "lost"))
        with pytest.raises(Unavailable):
            await engine.ready()
    finally:
        await services.redis.start()
    assert (await engine.wallet.balance(fan.id)).coins == balance
    receipt = await engine.wallet.send_gift(rose(engine, fan, "lost"))
    assert not receipt.replayed


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_postgres_down_gifting_goes_on_and_worker_catches_up(
    services: Services, urls: Urls, engine: Engine, how: str
) -> None:
    await _live_room(engine)
    fan = adult("fan")
    await fund(engine, fan)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_ledger_worker(
            redis_url=urls.redis, database_url=urls.database, stop=stop, claim_idle_ms=1_000
        )
    )
    client = await redis_client(urls)
    try:
        await eventually(lambda: _lag(client, 0), what="the worker to file the purchase")
        await (services.postgres.stop() if how == "stop" else services.postgres.kill())
        for n in range(50):
            await engine.wallet.send_gift(rose(engine, fan, f"while-down-{n}"))
        assert await outbox_lag(client) == 50  # the outbox holds them
        with pytest.raises(Unavailable):
            await engine.ready()
        await services.postgres.start()
        await eventually(lambda: _lag(client, 0), timeout=30, what="the worker to catch up")
    finally:
        stop.set()
        await worker
        await client.aclose()
    history = await engine.ledger.transactions(fan.id, limit=100)
    assert len(history) == 51
    await _assert_ledger_matches(engine, urls, gifts=50)


async def _lag(client: object, expected: int) -> bool:
    return await outbox_lag(client) == expected  # type: ignore[arg-type]


async def test_worker_dying_between_commit_and_ack_files_nothing_twice(
    urls: Urls, engine: Engine
) -> None:
    await _live_room(engine)
    fan = adult("fan")
    await fund(engine, fan)
    for n in range(20):
        await engine.wallet.send_gift(rose(engine, fan, f"g{n}"))
    redis = connect_redis(urls.redis)
    pool = await create_pool(urls.database)
    try:
        # committed to PostgreSQL, never acknowledged: as if killed right after COMMIT
        assert await drain_once(redis, pool, consumer="ledger-1", ack=False) == 21
        assert await outbox_lag(redis) == 21
        # the same consumer restarts: it re-reads its own pending entries first
        assert await drain_once(redis, pool, consumer="ledger-1") == 21
        assert await outbox_lag(redis) == 0
        for n in range(5):
            await engine.wallet.send_gift(rose(engine, fan, f"h{n}"))
        assert await drain_once(redis, pool, consumer="ledger-1", ack=False) == 5
        # another worker takes over the dead one's entries once they are idle
        await asyncio.sleep(0.05)
        assert await drain_once(redis, pool, consumer="ledger-2", claim_idle_ms=10) == 5
        assert await outbox_lag(redis) == 0
    finally:
        await pool.close()
        await redis.aclose()
    assert await pg_count(urls, "SELECT count(*) FROM postings") == 2 + 25 * 5
    await _assert_ledger_matches(engine, urls, gifts=25)


async def test_poison_entries_go_to_the_dead_letter_stream(urls: Urls, engine: Engine) -> None:
    await _live_room(engine)
    fan = adult("fan")
    await fund(engine, fan)
    client = await redis_client(urls)
    try:
        await client.xadd(OUTBOX, {"tx": b"{not json"})
        unbalanced = {
            "id": "tx_bad",
            "kind": "gift",
            "created_at": 1,
            "meta": {},
            "postings": [{"account": "user:x:coins", "asset": "coin", "amount": -5}],
        }
        await client.xadd(OUTBOX, {"tx": orjson.dumps(unbalanced)})
        await client.xadd(OUTBOX, {"other": b"field"})
        await engine.wallet.send_gift(rose(engine, fan, "good"))
        await _assert_ledger_matches(engine, urls, gifts=1)
        dead: Any = await client.xrange(DEAD_LETTERS)
        reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
        assert len(dead) == 3
        assert any(r.startswith("undecodable") for r in reasons)
        assert any(r.startswith("unbalanced") for r in reasons)
        assert any("no tx field" in r for r in reasons)
        assert await client.xlen(OUTBOX) == 0
    finally:
        await client.aclose()
    assert await pg_count(urls, "SELECT count(*) FROM transactions WHERE id = 'tx_bad'") == 0


async def test_engine_starts_and_gifts_while_postgres_is_down(
    services: Services, urls: Urls
) -> None:
    first = await scaled_engine(urls)  # applies the migrations
    await first.close()
    await services.postgres.stop()
    try:
        from store.engine import open_engine
        from store.roles import EngineConfig

        engine = await open_engine(
            EngineConfig(redis_url=urls.redis, database_url=urls.database, migrate=False)
        )
        try:
            await _live_room(engine)
            fan = adult("fan")
            await fund(engine, fan)
            receipt = await engine.wallet.send_gift(rose(engine, fan, "k"))
            assert receipt.balance == (await engine.wallet.balance(fan.id)).coins
            with pytest.raises(Unavailable):
                await engine.ledger.audit()
        finally:
            with contextlib.suppress(Exception):
                await engine.close()
    finally:
        await services.postgres.start()


async def test_first_publish_after_a_redis_restart_goes_through(
    services: Services, engine: Engine
) -> None:
    """Publishing is not idempotent, so it is never resent: the batcher must notice
    that its idle connections died with the old server before using them."""
    await engine.broker.publish("room", [{"type": "like"}])
    await services.redis.restart()
    await asyncio.sleep(0.1)  # let the loop see the old connections' end
    stamped = await engine.broker.publish("room", [{"type": "like"}])
    assert stamped[0]["seq"] == 2

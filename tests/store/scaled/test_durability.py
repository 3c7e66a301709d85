"""``LIVE_REDIS_WAIT_REPLICAS``: a money operation is answered once a replica has
it. With the replica stalled the gift fails as unavailable (it is on the primary
only); resent with the same key once the replica is back, it is answered from
the stored receipt, debited once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from loadtest.processes import RedisServer
from store.domain.models import Profile
from store.engine import open_engine
from store.errors import Unavailable
from store.roles import EngineConfig
from store.scaled.keys import wallet_key
from tests.services import Services, adult, eventually, fund, rose

pytestmark = pytest.mark.scaled


async def _replicating(replica: RedisServer) -> bool:
    client = replica.client()
    try:
        info = await client.info("replication")
        return info.get("master_link_status") == "up"
    finally:
        await client.aclose()


async def test_money_answers_wait_for_a_replica(services: Services, tmp_path: Path) -> None:
    urls = await services.reset()
    primary = RedisServer(tmp_path / "primary", appendonly=False)
    await primary.start()
    replica = RedisServer(tmp_path / "replica", appendonly=False, replica_of=primary.port)
    try:
        await replica.start()
        await eventually(lambda: _replicating(replica), what="the replica to sync")
        config = EngineConfig(
            redis_url=primary.url,
            database_url=urls.database,
            redis_wait_replicas=1,
            redis_wait_seconds=0.3,
        )
        engine = await open_engine(config)
        try:
            creator = Profile(id="creator", username="creator", adult=True)
            await engine.rooms.go_live(room_id="room", creator=creator, title="t")
            fan = adult("fan")
            coins = await fund(engine, fan)
            first = await engine.wallet.send_gift(rose(engine, fan, "k1"))
            replica_client = replica.client()
            try:
                # answered, so the replica has it already
                stored = await replica_client.hget(wallet_key("fan"), "coin")
                assert stored == str(first.balance).encode() and first.balance < coins
                os.kill(replica.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(Unavailable, match="replicas"):
                        await engine.wallet.send_gift(rose(engine, fan, "k2"))
                    # room events and reads never wait for a replica
                    published = await engine.broker.publish("room", [{"type": "chat"}])
                    assert published[0]["seq"] >= 1
                    room = await engine.rooms.get("room")
                    assert room is not None and room.live
                finally:
                    os.kill(replica.pid, signal.SIGCONT)
                again = await engine.wallet.send_gift(rose(engine, fan, "k2"))
                assert again.balance == first.balance - (coins - first.balance)
                once_more = await engine.wallet.send_gift(rose(engine, fan, "k2"))
                assert once_more.tx == again.tx and once_more.balance == again.balance
                stored = await replica_client.hget(wallet_key("fan"), "coin")
                assert stored == str(again.balance).encode()
            finally:
                await replica_client.aclose()
        finally:
            await engine.close()
    finally:
        await replica.stop()
        await primary.stop()

"""A server killed (kill -9) right after a gift's debit on a Redis Cluster: the gift
is credited, booked and shown to the room once, by the settle group of another
server, and a viewer there sees it with the room's next seq.

The server is caught after the debit without any hook in it: the primary that
holds the creator's and the room's slots pauses its writes (``CLIENT PAUSE …
WRITE``), so the server's debit on the sender's primary goes through and its
credit, room step and event wait; it is killed there, and the primary resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from store.scaled.client import CommandBatcher
from store.scaled.keys import CLUSTER, ROOM, room_key, wallet_key
from store.scaled.outbox import SETTLE_GROUP
from tests.live.actions.test_room_experience import room_seqs
from tests.live.launch import running, welcomed
from tests.live.server import Api, Client, LiveServer
from tests.services import Services, Urls, eventually

pytestmark = pytest.mark.scaled

SENDER = "alice"


@pytest.fixture
async def urls(services: Services) -> Urls:
    return await services.reset_cluster()


@pytest.fixture
async def raw(urls: Urls) -> AsyncIterator[CommandBatcher]:
    batcher = CommandBatcher(urls.redis)
    try:
        yield batcher
    finally:
        await batcher.close()


async def _creator_beside_room(raw: CommandBatcher) -> str:
    """A creator whose wallet and room are on one primary, not the sender's."""
    sender_node = await raw.node_of(wallet_key(SENDER))
    for n in range(1_000):
        name = f"carol{n}"
        node = await raw.node_of(wallet_key(name))
        if node != sender_node and node == await raw.node_of(room_key(name, ROOM)):
            return name
    raise AssertionError("no creator found beside her room")


async def _coins(raw: CommandBatcher, user_id: str, asset: str = "coin") -> int:
    return int(await raw.execute("HGET", wallet_key(user_id), asset) or 0)


def _sent(viewer: Client, tx: str) -> list[dict[str, Any]]:
    return [e for e in viewer.of_type("gift") if e["tx"] == tx and e["count"] > 0]


async def test_a_gift_whose_server_dies_after_the_debit_is_shown_and_credited_once(
    urls: Urls, raw: CommandBatcher, tmp_path: Path
) -> None:
    creator = await _creator_beside_room(raw)
    env = {
        "LIVE_REDIS_URL": urls.redis,
        "LIVE_DATABASE_URL": urls.database,
        "LIVE_SETTLE_DELAY_MS": "1000",
        "LIVE_COMBO_WINDOW_MS": "300",
    }
    a = LiveServer(data_dir=tmp_path / "a", env=env)
    b = LiveServer(data_dir=tmp_path / "b", env=env)
    host, port = await raw.node_of(room_key(creator, ROOM))
    paused = Redis(host=host, port=port, protocol=2)
    on_a = Api(a, a.token(SENDER))
    on_b = Api(b, b.token(SENDER))
    carol = Api(a, a.token(creator, creator=True))
    try:
        async with running(a, b):
            assert (await carol.post("/v1/rooms", {"title": "t"})).status_code == 201
            assert (await on_a.buy("us_70", key="p1")).status_code == 201
            async with welcomed(Client.open(b, creator)) as (viewer,):
                # a gift finished by its server: shown once
                first = await on_a.post(f"/v1/rooms/{creator}/gifts", {"gift": "rose"}, key="g1")
                assert first.status_code == 201
                await viewer.wait_for(lambda e: bool(_sent(viewer, first.json()["tx"])))

                before = await _coins(raw, SENDER)
                await paused.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
                try:
                    body = {"gift": "rose", "count": 3}
                    send = on_a.post(f"/v1/rooms/{creator}/gifts", body, key="g2")
                    sending = asyncio.ensure_future(send)

                    async def debited() -> bool:
                        return await _coins(raw, SENDER) == before - 3

                    await eventually(debited, what="the gift's debit")
                    await a.kill()
                    with contextlib.suppress(httpx.HTTPError):
                        await sending
                finally:
                    await paused.execute_command("CLIENT", "UNPAUSE")

                # the settle group of the other server finishes it, and shows it
                event = await viewer.wait_for(
                    lambda e: e.get("type") == "gift" and e["count"] == 3, timeout=30
                )
                tx = event["tx"]
                assert event["combo"] == {"id": tx, "count": 3, "end": True}
                assert (event["sender"]["id"], event["gift"]["id"]) == (SENDER, "rose")

                # the sender's resend: the same charge, and the room sees nothing more
                again = await on_b.post(f"/v1/rooms/{creator}/gifts", body, key="g2")
                assert again.json()["replayed"] and again.json()["tx"] == tx
                outbox = CLUSTER.outbox(wallet_key(SENDER))

                host, port = await raw.node_of(outbox)
                outboxes = Redis(host=host, port=port, protocol=2)

                async def settled() -> bool:
                    groups = await outboxes.xinfo_groups(outbox)
                    [group] = [g for g in groups if g["name"] == SETTLE_GROUP.encode()]
                    return bool(group["lag"] == 0 and group["pending"] == 0)

                try:
                    await eventually(settled, what="the settle group to acknowledge every entry")
                finally:
                    await outboxes.aclose()
                last = await on_b.post(f"/v1/rooms/{creator}/gifts", {"gift": "rose"}, key="g3")
                await viewer.wait_for(lambda e: bool(_sent(viewer, last.json()["tx"])))

                assert len(_sent(viewer, first.json()["tx"])) == 1
                assert len(_sent(viewer, tx)) == 1
                seqs = room_seqs(viewer)
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                diamonds = first.json()["diamonds"] + again.json()["diamonds"]
                diamonds += last.json()["diamonds"]
                assert await _coins(raw, creator, "diamond") == diamonds
                assert await _coins(raw, SENDER) == before - 4
    finally:
        await paused.aclose()
        for api in (on_a, on_b, carol):
            await api.aclose()

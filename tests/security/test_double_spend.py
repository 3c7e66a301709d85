"""Double spending across connections and nodes (scaled engine, two server
processes on one Redis and one PostgreSQL).

One wallet gifts from many WebSocket connections on both nodes and over HTTP on
both, all at once: exactly as many gifts as it can afford succeed, every other
one is refused with ``insufficient_funds``, and the balance ends at what's left.
The same idempotency key raced on both nodes and both transports has one effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.live.server import Api, Client, LiveServer
from tests.services import Services

pytestmark = pytest.mark.scaled

PERFUME = 20  # coins, from the catalog


@pytest.fixture(scope="module")
async def nodes(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    """Both tests share the nodes; they use wallets of their own."""
    urls = await services.reset()
    env = {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": urls.database}
    root = tmp_path_factory.mktemp("double-spend")
    a = LiveServer(data_dir=root / "a", env=env, ledger=True)
    b = LiveServer(data_dir=root / "b", env=env)
    await asyncio.gather(a.start(), b.start())
    try:
        yield a, b
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_one_wallet_from_many_connections_on_two_nodes(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = Api(a, a.token("carol", creator=True))
    assert (await carol.post("/v1/rooms", {"title": "race"})).status_code == 201
    earned_before = (await carol.get("/v1/me/wallet")).json()["diamonds"]
    whale = [Api(a, a.token("whale")), Api(b, b.token("whale"))]
    assert (await whale[0].buy("us_350", key="p")).status_code == 201
    balance = await whale[1].balance()
    affordable = balance // PERFUME
    token = a.token("whale")
    replies: list[dict[str, Any]] = []

    async def over_websocket(node: LiveServer, n: int) -> None:
        async with Client.open(node, "carol", token=token, msgpack_codec=n % 2 == 1) as client:
            await client.wait_for(lambda e: e["type"] == "welcome")
            ids = [f"ws-{node.port}-{n}-{i}" for i in range(6)]
            for command_id in ids:  # all in flight at once
                await client.send({"type": "send_gift", "id": command_id, "gift": "perfume"})
            for command_id in ids:
                replies.append(await client.reply(command_id, timeout=30))

    async def over_http(api: Api, n: int) -> None:
        response = await api.post("/v1/rooms/carol/gifts", {"gift": "perfume"}, key=f"http-{n}")
        body = response.json()
        replies.append({"type": "ack", **body} if response.status_code == 201 else body["error"])

    await asyncio.gather(
        *(over_websocket(node, n) for node in nodes for n in range(8)),  # 96 over WebSocket
        *(over_http(whale[n % 2], n) for n in range(24)),
    )
    acks = [r for r in replies if r.get("type") == "ack"]
    refused = [r.get("code") for r in replies if r.get("type") != "ack"]
    assert len(replies) == 120
    assert len(acks) == affordable, (len(acks), affordable)
    assert set(refused) == {"insufficient_funds"}
    assert len({r["tx"] for r in acks}) == affordable
    assert await whale[0].balance() == balance - affordable * PERFUME
    earned = (await carol.get("/v1/me/wallet")).json()["diamonds"] - earned_before
    report = await a.audit()
    assert report["ok"] is True, report
    assert earned == affordable * PERFUME // 2  # the creator's 50%
    for api in (carol, *whale):
        await api.aclose()


async def test_one_key_raced_on_two_nodes_and_both_transports(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = Api(a, a.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "race"})
    fan = [Api(a, a.token("fan")), Api(b, b.token("fan"))]
    await fan[0].buy("us_350", key="p")
    before = await fan[0].balance()
    command = {"type": "send_gift", "id": "the-key", "gift": "perfume", "count": 2}

    async def over_websocket(node: LiveServer) -> dict[str, Any]:
        async with Client.open(node, "carol", token=node.token("fan")) as client:
            await client.wait_for(lambda e: e["type"] == "welcome")
            return await client.command(command)

    async def over_http(api: Api) -> dict[str, Any]:
        response = await api.post(
            "/v1/rooms/carol/gifts", {"gift": "perfume", "count": 2}, key="the-key"
        )
        return dict(response.json())

    results = await asyncio.gather(
        *(over_websocket(node) for node in (a, b, a, b, a, b)),
        *(over_http(api) for api in (*fan, *fan)),
    )
    assert len({r["tx"] for r in results}) == 1, results
    assert sum(1 for r in results if r["replayed"] is False) == 1
    assert await fan[1].balance() == before - 2 * PERFUME
    # The same key with other content is a conflict, on either node, charging nothing.
    other = await fan[1].post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="the-key")
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    assert await fan[0].balance() == before - 2 * PERFUME
    for api in (carol, *fan):
        with contextlib.suppress(Exception):
            await api.aclose()

"""Process lifecycle: graceful shutdown and crash recovery on the embedded engine."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import httpx

from tests.live.server import Api, Client, LiveServer


async def test_sigterm_closes_viewers_with_1012_and_exits_0(
    embedded_server: LiveServer,
) -> None:
    api = Api(embedded_server, embedded_server.token("carol", creator=True))
    await api.post("/v1/rooms", {"title": "t"})
    async with Client.open(embedded_server, "carol") as viewer:
        await viewer.wait_for(lambda e: e["type"] == "welcome")
        code = await embedded_server.stop(sig=signal.SIGTERM)
        assert await viewer.closed() == 1012
    assert code == 0
    await api.aclose()


async def test_kill_9_during_gift_burst_keeps_every_acknowledged_gift(
    embedded_server: LiveServer,
) -> None:
    carol = Api(embedded_server, embedded_server.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "t"})
    alice = Api(embedded_server, embedded_server.token("alice"))
    await alice.buy("us_7000", key="p1")  # 7,700 coins
    acked: list[str] = []
    enough = asyncio.Event()

    async def gift(i: int) -> None:
        try:
            response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"r{i}")
        except httpx.HTTPError:
            return
        if response.status_code == 201:
            acked.append(response.json()["tx"])
            if len(acked) >= 50:
                enough.set()

    tasks = [asyncio.create_task(gift(i)) for i in range(400)]
    await asyncio.wait_for(enough.wait(), 30)
    await embedded_server.kill()
    await asyncio.gather(*tasks)
    await embedded_server.start()
    txs = []
    cursor = None
    while True:
        query = "?limit=200" + (f"&before={cursor}" if cursor else "")
        page = (await alice.get("/v1/me/transactions" + query)).json()
        txs += page["transactions"]
        cursor = page["next"]
        if cursor is None:
            break
    gift_ids = [t["id"] for t in txs if t["kind"] == "gift"]
    assert set(acked) <= set(gift_ids), "an acknowledged gift was lost"
    assert len(gift_ids) == len(set(gift_ids))
    assert await alice.balance() == 7_700 - len(gift_ids)
    # Retrying every request after the crash charges nothing twice.
    for i in range(400):
        await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"r{i}")
    assert await alice.balance() == 7_700 - 400
    await alice.aclose()
    await carol.aclose()
    audit = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "live",
        "audit",
        env=embedded_server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await audit.communicate()
    assert audit.returncode == 0, output.decode()

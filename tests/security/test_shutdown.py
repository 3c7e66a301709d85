"""SIGTERM while gifts are in flight: the server stops accepting, closes viewers
with 1012, finishes what it accepted, keeps every acknowledged gift, and exits 0
within ``LIVE_SHUTDOWN_TIMEOUT`` even with a viewer that stopped reading."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from store.scaled.keys import OUTBOX
from tests.live.server import Api, Client, LiveServer
from tests.security.rawws import RawClient
from tests.services import Services, eventually, redis_client


async def test_sigterm_mid_burst(tmp_path: Path) -> None:
    server = LiveServer(data_dir=tmp_path / "data", env={"LIVE_SHUTDOWN_TIMEOUT": "2"})
    await server.start()
    carol = Api(server, server.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "t"})
    alice = Api(server, server.token("alice"))
    await alice.buy("us_1400", key="p")
    funded = await alice.balance()
    # A viewer that stopped reading, with a backlog the server can't flush.
    stalled = await RawClient.connect(f"{server.ws_url}/v1/rooms/carol/live", rcvbuf=4096)
    http_results: dict[str, int | str] = {}
    ws_acked: dict[str, str] = {}
    ws_ids = [f"w{n}" for n in range(40)]

    async def over_http(n: int) -> None:
        try:
            response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"h{n}")
            http_results[f"h{n}"] = response.status_code
        except httpx.HTTPError as exc:
            http_results[f"h{n}"] = type(exc).__name__

    try:
        async with (
            Client.open(server, "carol") as viewer,
            Client.open(server, "carol", token=server.token("alice")) as gifter,
        ):
            await viewer.wait_for(lambda e: e["type"] == "welcome")
            await gifter.wait_for(lambda e: e["type"] == "welcome")

            async def over_websocket() -> None:
                for command_id in ws_ids:
                    with contextlib.suppress(Exception):
                        await gifter.send({"type": "send_gift", "id": command_id, "gift": "rose"})
                    await asyncio.sleep(0.1)  # within the command rate

            sending = asyncio.gather(over_websocket(), *(over_http(n) for n in range(200)))
            await asyncio.sleep(0.6)
            started = time.monotonic()
            code = await server.stop(sig=signal.SIGTERM, timeout=20)
            took = time.monotonic() - started
            await sending
            assert code == 0
            assert took < 2 + 3, f"shutdown took {took:.1f} s"
            assert await viewer.closed() == 1012
            assert await gifter.closed() == 1012
            ws_acked = {e["id"]: e["tx"] for e in gifter.of_type("ack") if "tx" in e}
    finally:
        stalled.close()
    # Accepted requests were answered; the rest never got in. Never a 5xx.
    statuses = set(http_results.values())
    assert 201 in statuses and not any(isinstance(s, int) and s >= 500 for s in statuses)
    http_acked = [key for key, status in http_results.items() if status == 201]

    await server.start()
    for key in http_acked:  # acknowledged, so kept: a resend is a replay
        response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=key)
        assert response.status_code == 200, response.text
    assert ws_acked, "no gift was acknowledged over the WebSocket before SIGTERM"
    for command_id in ws_ids:  # a command id is an Idempotency-Key too
        response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=command_id)
        assert response.status_code in (200, 201), response.text
        if command_id in ws_acked:
            assert response.status_code == 200 and response.json()["tx"] == ws_acked[command_id]
    keys = list(http_results)
    for start in range(0, len(keys), 25):
        replies = await asyncio.gather(
            *(
                alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=key)
                for key in keys[start : start + 25]
            )
        )
        assert {r.status_code for r in replies} <= {200, 201}
    assert await alice.balance() == funded - len(ws_ids) - len(http_results)
    report = await server.audit()
    assert report["ok"] is True, report
    await alice.aclose()
    await carol.aclose()
    await server.stop()


@pytest.mark.scaled
async def test_ledger_worker_sigterm_mid_drain_files_everything_once(
    services: Services, tmp_path: Path
) -> None:
    urls = await services.reset()
    env = {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": urls.database}
    server = LiveServer(data_dir=tmp_path / "data", env=env)  # no worker yet
    await server.start()
    carol = Api(server, server.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "t"})
    alice = Api(server, server.token("alice"))
    await alice.buy("us_1400", key="p")
    for start in range(0, 150, 30):  # within the per-user gift burst
        replies = await asyncio.gather(
            *(
                alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"g{n}")
                for n in range(start, start + 30)
            )
        )
        assert {r.status_code for r in replies} == {201}
    client = await redis_client(urls)
    try:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "live", "ledger", env=server.env()
        )
        # Once it reads the outbox as a consumer of the group it is in its loop: stop
        # it there, filing its first batch or already waiting for more.
        await eventually(
            lambda: _reading(client, f"ledger-{worker.pid}"), what="the worker to read"
        )
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 10) == 0
        # What it had read it filed and acknowledged, or left for the next worker.
        if not await _empty(client):
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "live", "ledger", env=server.env()
            )
            await eventually(lambda: _empty(client), what="the outbox to drain")
            worker.send_signal(signal.SIGTERM)  # it filed, so it is in its loop
            assert await asyncio.wait_for(worker.wait(), 10) == 0
    finally:
        await client.aclose()
    report = await server.audit()
    assert report["ok"] is True and report["transactions"] == 151, report
    await alice.aclose()
    await carol.aclose()
    await server.stop()


async def _reading(client: object, consumer: str) -> bool:
    try:
        found = await client.xinfo_consumers(OUTBOX, "ledger")  # type: ignore[attr-defined]
    except Exception:  # no group yet
        return False
    return any(c["name"].decode() == consumer for c in found)


async def _empty(client: object) -> bool:
    return int(await client.xlen(OUTBOX)) == 0  # type: ignore[attr-defined]

"""1,000 viewers stop reading during a gift burst: each is closed with 4008, the
server's memory stays within the configured bound, and the viewers who read see
every gift, in order, without delay."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from pathlib import Path

import httpx
import pytest

from tests.live.server import Api, Client, LiveServer
from tests.security.arena import welcomed_in_both_codecs
from tests.security.rawws import RawClient

STUCK = 1_000
GIFTS = 300
SEND_BUFFER = 65_536
SOCKET_BUFFER = 16_384
AVATAR = "https://cdn.example/avatars/" + "a" * 470  # big events fill buffers sooner


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this test needs {needed} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def _metrics(http: httpx.AsyncClient) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in (await http.get("/metrics")).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_thousand_stalled_viewers_during_a_gift_burst(tmp_path: Path) -> None:
    _raise_fd_limit(2 * STUCK + 500)  # the server inherits it
    server = LiveServer(
        data_dir=tmp_path / "data",
        env={
            "LIVE_SEND_BUFFER_BYTES": str(SEND_BUFFER),
            "LIVE_SOCKET_SEND_BUFFER_BYTES": str(SOCKET_BUFFER),
        },
    )
    await server.start()
    assert server.proc is not None
    pid = server.proc.pid
    http = httpx.AsyncClient(base_url=server.url, timeout=10)
    carol = Api(server, server.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "burst"})
    fans = [Api(server, server.token(f"fan{i}", avatar=AVATAR)) for i in range(4)]
    for fan in fans:
        assert (await fan.buy("us_1400", key="p")).status_code == 201
    stuck: list[RawClient] = []
    try:
        async with welcomed_in_both_codecs(server, "carol") as readers:
            url = f"{server.ws_url}/v1/rooms/carol/live"
            files_before = _open_files(pid)
            for start in range(0, STUCK, 100):
                stuck += await asyncio.gather(
                    *(RawClient.connect(url, rcvbuf=4096) for _ in range(start, start + 100))
                )
            deadline = time.monotonic() + 30
            while (await _metrics(http))["live_connections"] < STUCK + len(readers):
                assert time.monotonic() < deadline, "the stalled viewers did not all join"
                await asyncio.sleep(0.1)

            rss_before = _rss_bytes(pid)
            peak = rss_before
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling and server.proc is not None:
                    peak = max(peak, _rss_bytes(pid))
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            acked: dict[str, float] = {}

            async def gift(fan: Api, n: int) -> None:
                response = await fan.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"g{n}")
                assert response.status_code == 201, response.text
                acked[response.json()["tx"]] = time.monotonic()

            seen: dict[str, float] = {}

            async def watch(viewer: Client) -> None:
                while len(seen) < GIFTS or any(
                    e.get("tx") not in seen for e in viewer.of_type("gift")
                ):
                    for event in viewer.of_type("gift"):
                        seen.setdefault(event["tx"], time.monotonic())
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch(readers[0]))
            for start in range(0, GIFTS, 20):
                await asyncio.gather(
                    *(gift(fans[n % len(fans)], n) for n in range(start, start + 20))
                )
            await asyncio.wait_for(watcher, 10)
            for viewer in readers:
                await viewer.wait_for(lambda e, last=list(acked)[-1]: e.get("tx") == last)

            # Every stalled viewer is closed with 4008, and its socket is let go.
            deadline = time.monotonic() + 30
            while (await _metrics(http)).get('live_closes_total{code="4008"}', 0) < STUCK:
                assert time.monotonic() < deadline, "stalled viewers were not all closed"
                await asyncio.sleep(0.1)
            sample_of_stuck = stuck[:20]
            await asyncio.gather(*(c.read_until_closed(15) for c in sample_of_stuck))
            assert {c.close_code for c in sample_of_stuck} == {4008}
            deadline = time.monotonic() + 30
            while (await _metrics(http))["live_connections"] > len(readers):
                assert time.monotonic() < deadline, "closed viewers still hold connections"
                await asyncio.sleep(0.1)
            # ...and the sockets of those that never read are dropped after a grace.
            deadline = time.monotonic() + 30
            while _open_files(pid) > files_before + 10:
                assert time.monotonic() < deadline, (
                    f"{_open_files(pid) - files_before} sockets of stalled viewers still open"
                )
                await asyncio.sleep(0.2)
            sampling = False
            await sampler

            # Memory: what the stalled viewers may hold is bounded by the send buffer
            # (frames are shared between viewers, so in practice far less).
            growth = peak - rss_before
            assert growth < STUCK * SEND_BUFFER, f"server RSS grew by {growth} bytes"

            # The readers: every gift, in seq order without gaps, never closed, and
            # each gift seen soon after it was acknowledged.
            for viewer in readers:
                assert viewer.closed_code is None
                gifts = viewer.of_type("gift")
                assert {g["tx"] for g in gifts} == set(acked)
                room = [e["seq"] for e in viewer.events if "seq" in e and e["type"] != "welcome"]
                assert room == list(range(room[0], room[0] + len(room)))
            delays = [seen[tx] - at for tx, at in acked.items()]
            assert max(delays) < 1.0, f"a reader saw a gift {max(delays):.2f} s late"

        # The server is fine: it answers, and a new viewer gets in.
        assert (await http.get("/healthz")).status_code == 200
        async with Client.open(server, "carol") as late:
            await late.wait_for(lambda e: e["type"] == "welcome")
        metrics = await _metrics(http)
        assert metrics["live_slow_closes_total"] == STUCK
        assert (await server.audit())["ok"] is True
    finally:
        for client in stuck:
            client.close()
        for api in (carol, *fans):
            await api.aclose()
        await http.aclose()
        with contextlib.suppress(Exception):
            await server.stop()

"""A real Prometheus scraping ``live serve --workers 2``: one consistent view of
both workers, whichever one a scrape reaches."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from loadtest.processes import PrometheusServer, free_port
from tests.live.launch import running, scaled_env, welcomed
from tests.live.server import Api, Client, LiveServer, sample_value
from tests.services import Services

TOKEN = "metrics-bearer-for-the-test"
HTTP_GIFTS = 12
WS_GIFTS = 3


async def _eventually(prometheus: PrometheusServer, promql: str, want: float) -> float:
    """The query's single value once it equals ``want`` (or the last one after 30 s)."""
    deadline = time.monotonic() + 30
    value = float("nan")
    while time.monotonic() < deadline:
        result = await prometheus.query(promql)
        if result:
            raw = result[0]["value"]
            assert isinstance(raw, list)
            value = float(raw[1])
            if value == want:
                return value
        await asyncio.sleep(0.25)
    return value


async def test_prometheus_sees_every_gift_of_both_workers(
    services: Services, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"  # where ``live serve`` puts the workers' shared files
    scratch.mkdir()
    ledger_port = free_port()
    env = {
        **await scaled_env(services),
        "LIVE_WORKERS": "2",
        "LIVE_LEDGER_METRICS_PORT": str(ledger_port),
        "LIVE_METRICS_TOKEN": TOKEN,
        "TMPDIR": str(scratch),
    }
    srv = LiveServer(data_dir=tmp_path / "w", env=env, ledger=True)
    async with running(srv), httpx.AsyncClient() as http:
        refused = await http.get(srv.url + "/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        wrong = await http.get(srv.url + "/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        server, ledger = f"127.0.0.1:{srv.port}", f"127.0.0.1:{ledger_port}"
        prometheus = PrometheusServer(
            tmp_path / "prometheus", targets=[server, ledger], bearer_token=TOKEN
        )
        await prometheus.start()
        assert [p.name[:13] for p in scratch.iterdir()] == ["live-metrics-"]
        try:
            carol = Api(srv, srv.token("carol", creator=True))
            await carol.post("/v1/rooms", {"title": "metrics"})
            alice = Api(srv, srv.token("alice"))
            await alice.buy("us_350", key="p1")
            acked = 0
            for i in range(HTTP_GIFTS):
                reply = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"k{i}")
                assert reply.status_code == 201, reply.text
                acked += 1
            again = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="k0")
            assert again.json()["replayed"] is True  # a replay is not a second gift
            async with welcomed(Client.open(srv, "carol", token=srv.token("alice"))) as (gifter,):
                for i in range(WS_GIFTS):
                    answer = await gifter.command(
                        {"type": "send_gift", "id": f"w{i}", "gift": "rose", "count": 1}
                    )
                    assert answer["type"] == "ack", answer
                    acked += 1
                # its own gifts reach it: delivery rounds with a connection in them
                tx = answer["tx"]
                await gifter.wait_for(lambda e: e["type"] == "gift" and e.get("tx") == tx)
            # Every scrape, whichever worker answers, gives the node's total.
            auth = {"Authorization": f"Bearer {TOKEN}"}
            for _ in range(10):
                page = (await http.get(srv.url + "/metrics", headers=auth)).text
                assert sample_value(page, "live_gifts_committed_total") == acked
                assert sample_value(page, "live_gifts_total", outcome="replayed") == 1
            total = await _eventually(prometheus, "sum(live_gifts_committed_total)", acked)
            assert total == acked
            wallet = 'sum(live_wallet_commit_seconds_count{operation="gift",outcome="ok"})'
            assert await _eventually(prometheus, wallet, acked + 1) == acked + 1
            bought = 'sum(live_wallet_commit_seconds_count{operation="purchase",outcome="ok"})'
            assert await _eventually(prometheus, bought, 1) == 1
            acks = 'sum(live_ack_seconds_count{command="gift"})'
            assert await _eventually(prometheus, acks, WS_GIFTS) == WS_GIFTS
            assert (
                await _eventually(prometheus, "sum(live_handshake_seconds_count) > bool 0", 1) == 1
            )
            fanout = 'sum(live_gift_to_frame_seconds_count{viewer="last"}) > bool 0'
            assert await _eventually(prometheus, fanout, 1) == 1
            lag = "sum(live_event_loop_lag_seconds_count) > bool 0"
            assert await _eventually(prometheus, lag, 1) == 1
            # process metrics, one series per worker
            workers = f'count(process_resident_memory_bytes{{instance="{server}"}} > 0)'
            assert await _eventually(prometheus, workers, 2) == 2
            # the wallet's Redis calls, and the ledger worker's own page: it filed
            # the purchase and every gift, and timed its PostgreSQL calls
            redis = (
                f'sum(live_redis_call_seconds_count{{call="gift",outcome="ok"}}) >= bool {acked}'
            )
            assert await _eventually(prometheus, redis, 1) == 1
            filed = f'sum(live_ledger_entries_total{{instance="{ledger}",outcome="filed"}})'
            assert await _eventually(prometheus, filed, acked + 1) == acked + 1
            moved = f'sum(live_ledger_lag_seconds_count{{instance="{ledger}"}})'
            assert await _eventually(prometheus, moved, acked + 1) == acked + 1
            pg = 'sum(live_postgres_call_seconds_count{call="file",outcome="ok"}) > bool 0'
            assert await _eventually(prometheus, pg, 1) == 1
            ledger_up = f'up{{instance="{ledger}"}}'
            assert await _eventually(prometheus, ledger_up, 1) == 1
            await carol.aclose()
            await alice.aclose()
        finally:
            await prometheus.stop()
    assert list(scratch.iterdir()) == [], "the shared metrics files go with the server"

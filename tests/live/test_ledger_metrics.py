"""``live ledger`` serves its own ``/metrics`` on ``LIVE_LEDGER_METRICS_PORT``,
behind the same bearer token as the server's, with what it filed and how late."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loadtest.processes import free_port
from tests.live.launch import running, scaled_env
from tests.live.server import Api, LiveServer
from tests.services import Services, eventually

pytestmark = pytest.mark.scaled

TOKEN = "ledger-metrics-bearer-0123456789"


def _value(page: str, sample: str) -> float:
    """The value of one ``name{labels}`` sample of a Prometheus text page (0 if absent)."""
    for line in page.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


async def test_ledger_worker_metrics_page(services: Services, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **await scaled_env(services),
        "LIVE_LEDGER_METRICS_PORT": str(port),
        "LIVE_METRICS_TOKEN": TOKEN,
    }
    srv = LiveServer(data_dir=tmp_path / "d", env=env, ledger=True)
    url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running(srv), httpx.AsyncClient(timeout=5.0) as http:
        carol = Api(srv, srv.token("carol", creator=True))
        await carol.post("/v1/rooms", {"title": "ledger"})
        alice = Api(srv, srv.token("alice"))
        await alice.buy("us_350", key="p1")
        for i in range(3):
            reply = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"g{i}")
            assert reply.status_code == 201, reply.text

        pages: list[str] = []

        async def filed_all() -> bool:
            try:
                response = await http.get(url, headers=auth)
            except httpx.TransportError:
                return False  # the worker is still starting
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            pages.append(response.text)
            return _value(response.text, 'live_ledger_entries_total{outcome="filed"}') == 4

        await eventually(filed_all, timeout=30, what="the ledger worker to report 4 entries")
        page = pages[-1]
        assert _value(page, "live_ledger_lag_seconds_count") == 4
        assert _value(page, 'live_ledger_entries_total{outcome="parked"}') == 0
        assert _value(page, 'live_postgres_call_seconds_count{call="file",outcome="ok"}') >= 1
        assert _value(page, "process_resident_memory_bytes") > 0

        refused = await http.get(url)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await http.get(url, headers={"Authorization": "Bearer " + TOKEN[:-1]})
        assert wrong.status_code == 401
        elsewhere = await http.get(f"http://127.0.0.1:{port}/other", headers=auth)
        assert elsewhere.status_code == 404
        posted = await http.post(url, headers=auth)
        assert posted.status_code == 405
        await carol.aclose()
        await alice.aclose()
    assert TOKEN not in srv.log_path.read_text()

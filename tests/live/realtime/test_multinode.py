"""Two server processes sharing one Redis and one PostgreSQL (scaled engine)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from tests.live.actions.test_gifting import go_live
from tests.live.launch import running, scaled_env, welcomed
from tests.live.server import Api, Client, LiveServer
from tests.services import Services


async def test_gift_through_node_b_reaches_viewer_on_node_a(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol_b = Api(b, b.token("carol", creator=True))
    assert (await carol_b.post("/v1/rooms", {"title": "two nodes"})).status_code == 201
    alice_a, alice_b = Api(a, a.token("alice")), Api(b, b.token("alice"))
    await alice_a.buy("us_1400", key="p1")
    async with welcomed(
        Client.open(a, "carol"),
        Client.open(b, "carol", msgpack_codec=True),
        Client.open(b, "carol", token=b.token("alice")),
    ) as (on_a, on_b, gifter_b):
        txs = []
        for i in range(5):
            reply = await gifter_b.command(
                {"type": "send_gift", "id": f"g{i}", "gift": "rose", "count": i + 1}
            )
            assert reply["type"] == "ack", reply
            txs.append(reply["tx"])
        http = await alice_a.post("/v1/rooms/carol/gifts", {"gift": "galaxy"}, key="via-a")
        txs.append(http.json()["tx"])
        for client in (on_a, on_b):
            await client.wait_for(lambda e: e.get("tx") == txs[-1])
        # (a gift with count 0 is the end of a combo, not a gift sent)
        seen_a = [(g["seq"], g["tx"]) for g in on_a.of_type("gift") if g["count"]]
        seen_b = [(g["seq"], g["tx"]) for g in on_b.of_type("gift") if g["count"]]
        assert seen_a == seen_b, "both nodes deliver the same order with the same seq"
        assert [tx for _, tx in seen_a] == txs
        for client in (on_a, on_b):  # the room's events (gifts, joins...): no gap
            seqs = [e["seq"] for e in client.events if e["type"] != "welcome" and "seq" in e]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # Both nodes see the same balance.
    expected = 1428 - sum(range(1, 6)) - 1000
    assert await alice_a.balance() == expected
    assert await alice_b.balance() == expected
    report = await a.audit()
    assert report["ok"] is True, report
    for api in (carol_b, alice_a, alice_b):
        await api.aclose()


async def test_same_key_raced_on_two_nodes_has_one_effect(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    import asyncio

    a, b = nodes
    carol = Api(a, a.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "race"})
    alice_a, alice_b = Api(a, a.token("alice")), Api(b, b.token("alice"))
    await alice_a.buy("us_350", key="p1")
    results = await asyncio.gather(
        *(
            api.post("/v1/rooms/carol/gifts", {"gift": "perfume"}, key="one-key")
            for api in (alice_a, alice_b) * 5
        )
    )
    assert len({r.json()["tx"] for r in results}) == 1
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    assert await alice_b.balance() == 350 - 20
    for api in (carol, alice_a, alice_b):
        await api.aclose()


async def test_catalog_change_on_node_a_is_served_and_announced_by_node_b(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    import time

    a, b = nodes
    await go_live(a, "carol", "carol")
    admin_a, viewer_b = Api(a, a.token("root", admin=True)), Api(b, None)
    async with welcomed(Client.open(b, "carol")) as [on_b]:
        assert on_b.of_type("welcome")[0]["catalog_version"] == 1
        started = time.monotonic()
        changed = await admin_a.client.patch("/v1/admin/catalog/gifts/rose", json={"coins": 3})
        assert changed.status_code == 200, changed.text
        event = await on_b.wait_for(lambda e: e["type"] == "catalog", timeout=1.0)
        assert event["version"] == 2
        assert time.monotonic() - started < 1.0
    gifts = (await viewer_b.get("/v1/gifts")).json()
    assert gifts["version"] == 2
    assert [g["coins"] for g in gifts["gifts"] if g["id"] == "rose"] == [3]
    for api in (admin_a, viewer_b):
        await api.aclose()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def test_workers_share_the_port(services: Services, tmp_path: Path) -> None:
    env = {**await scaled_env(services), "LIVE_WORKERS": "2"}
    srv = LiveServer(data_dir=tmp_path / "w", env=env, ledger=True)
    async with running(srv):
        assert srv.proc is not None
        workers = [p for p in _children(srv.proc.pid) if p != srv.proc.pid]
        assert len(workers) >= 2, workers
        carol = Api(srv, srv.token("carol", creator=True))
        await carol.post("/v1/rooms", {"title": "workers"})
        alice = Api(srv, srv.token("alice"))
        await alice.buy("us_350", key="p1")
        # Viewers land on either worker; all of them see every gift in order.
        async with welcomed(
            Client.open(srv, "carol"),
            Client.open(srv, "carol"),
            Client.open(srv, "carol"),
        ) as (v1, v2, v3):
            txs = []
            for i in range(4):
                r = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key=f"k{i}")
                txs.append(r.json()["tx"])
            for v in (v1, v2, v3):
                await v.wait_for(lambda e: e.get("tx") == txs[-1])
                assert [g["tx"] for g in v.of_type("gift")] == txs
        await carol.aclose()
        await alice.aclose()


async def test_a_worker_late_beyond_uvicorns_default_is_not_replaced(
    services: Services, tmp_path: Path
) -> None:
    """uvicorn's supervisor kills a worker that does not answer its health check in
    time (5 s by default) and starts another: every viewer on it sees 1006. The
    server gives a late worker ``LIVE_WORKER_HEALTHCHECK_TIMEOUT`` (60 s)."""
    env = {**await scaled_env(services), "LIVE_WORKERS": "2"}
    srv = LiveServer(data_dir=tmp_path / "w", env=env, ledger=True)
    async with running(srv):
        assert srv.proc is not None
        workers = sorted(p for p in _children(srv.proc.pid) if p != srv.proc.pid)
        carol = Api(srv, srv.token("carol", creator=True))
        await carol.post("/v1/rooms", {"title": "late workers"})
        async with welcomed(Client.open(srv, "carol"), Client.open(srv, "carol")) as viewers:
            # Every process but the supervisor stops for 8 s: past uvicorn's 5 s
            # (its check runs every 0.5 s), well within the server's 60 s.
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(8.0)  # the stall itself: nothing to wait for
            finally:
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):  # replaced: see below
                        os.kill(pid, signal.SIGCONT)
            assert sorted(p for p in _children(srv.proc.pid) if p != srv.proc.pid) == workers
            for viewer in viewers:
                sent = await viewer.command({"type": "ping", "id": "after"})
                assert sent["type"] == "ack"
        assert sorted(p for p in _children(srv.proc.pid) if p != srv.proc.pid) == workers
        await carol.aclose()

"""The HTTP API: catalog, purchases, rooms, operations."""

from __future__ import annotations

import subprocess
import sys

from tests.live.server import SECRET, Api, LiveServer, sample_value


async def test_catalog_and_packages(server: LiveServer) -> None:
    api = Api(server, None)
    gifts = (await api.get("/v1/gifts")).json()["gifts"]
    by_id = {g["id"]: g for g in gifts}
    assert by_id["rose"]["coins"] == 1 and by_id["rose"]["streakable"] is True
    assert by_id["universe"]["coins"] == 44_999 and by_id["lion"]["streakable"] is False
    us = (await api.get("/v1/coin-packages")).json()
    assert us["region"] == "US" and [p["coins"] for p in us["packages"]][:3] == [70, 350, 700]
    assert us["packages"][0]["price_minor"] == 109 and us["packages"][0]["currency"] == "USD"
    gb = (await api.get("/v1/coin-packages?region=gb")).json()
    assert {p["currency"] for p in gb["packages"]} == {"GBP"}
    missing = await api.get("/v1/coin-packages?region=ZZ")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    await api.aclose()


async def test_purchase_rules(server: LiveServer) -> None:
    alice = Api(server, server.token("alice"))
    assert (await alice.post("/v1/purchases", {"package": "us_70"})).status_code == 400
    bad = await alice.post("/v1/purchases", {"package": "us_71"}, key="k1")
    assert bad.json()["error"]["code"] == "not_found"
    declined = await alice.post(
        "/v1/purchases", {"package": "us_70", "payment_method": "sandbox_decline"}, key="k2"
    )
    assert declined.status_code == 402
    assert declined.json()["error"]["code"] == "payment_declined"
    ok = await alice.buy("us_3500", key="k3")
    assert ok.status_code == 201 and ok.json()["coins"] == 3675
    assert ok.json()["balance"] == {"coins": 3675}
    kid = Api(server, server.token("kid", adult=False))
    assert (await kid.buy("us_70", key="k1")).json()["error"]["code"] == "forbidden"
    guest = Api(server, None)
    assert (await guest.buy("us_70", key="k1")).status_code == 401
    not_json = await alice.client.post(
        "/v1/purchases", content=b"[1,2", headers={"idempotency-key": "k9"}
    )
    assert not_json.status_code == 400
    assert await alice.balance() == 3675
    for api in (alice, kid, guest):
        await api.aclose()


async def test_rooms_lifecycle(server: LiveServer) -> None:
    carol = Api(server, server.token("carol", creator=True))
    viewer = Api(server, server.token("vic"))
    assert (await viewer.post("/v1/rooms", {"title": "x"})).status_code == 403
    first = (await carol.post("/v1/rooms", {"id": "studio", "title": "one"})).json()
    assert first["live"] is True and first["stream_id"] == 1
    other = Api(server, server.token("dave", creator=True))
    taken = await other.post("/v1/rooms", {"id": "studio"})
    assert taken.status_code == 409
    assert (await other.post("/v1/rooms/studio/end")).status_code == 403
    ended = (await carol.post("/v1/rooms/studio/end")).json()
    assert ended["live"] is False and ended["ended_at"] is not None
    again = (await carol.post("/v1/rooms", {"id": "studio", "title": "two"})).json()
    assert again["stream_id"] == 2 and again["overlay_key"] == first["overlay_key"]
    state = (await viewer.get("/v1/rooms/studio")).json()
    assert state["room"]["title"] == "two" and "overlay_key" not in state["room"]
    assert (await viewer.get("/v1/rooms/bad%20id")).status_code == 400
    assert (await viewer.get("/v1/rooms/none/leaderboard")).status_code == 404
    for api in (carol, viewer, other):
        await api.aclose()


async def test_operations_endpoints(server: LiveServer) -> None:
    api = Api(server, None)
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = (await api.get("/readyz")).json()
    assert ready["status"] == "ok"
    assert ready["engine"] == ("scaled" if server.scaled else "embedded")
    text = (await api.get("/metrics")).text
    assert "live_connections " in text and "live_gifts_committed_total" in text
    # the start-up full pass (just before the freeze) is timed
    full_passes = sample_value(text, "live_gc_pause_seconds_count", generation="2")
    assert full_passes is not None and full_passes >= 1
    if server.scaled:
        assert "live_outbox_lag " in text
    else:  # the SQLite writer's group commits, as counters
        assert any(
            line.startswith("# TYPE live_sqlite_commits") and line.endswith(" counter")
            for line in text.splitlines()
        )
        commits = sample_value(text, "live_sqlite_commits_total")
        assert commits is not None and commits >= 1
        assert "# TYPE live_sqlite_write_queue gauge" in text
    await api.aclose()


def test_token_command_mints_a_valid_token(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "live", "token", "zed", "--adult", "--creator"],
        env={"LIVE_SECRET": SECRET, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    from live.auth import verify_token

    profile = verify_token(out.stdout.strip(), secret=SECRET)
    assert profile.id == "zed" and profile.adult and profile.is_creator

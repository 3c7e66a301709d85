"""The catalog over HTTP and WebSocket, on both engines: the admin API, what
``GET /v1/gifts`` lists, the ``catalog`` event, price safety when sending, and
``live catalog export``/``import`` against a running server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.processes import live_command
from tests.live.actions.test_gifting import go_live
from tests.live.launch import welcomed
from tests.live.server import Api, Client, LiveServer
from tests.store.test_catalog_conformance import SEASONAL

PUMPKIN: dict[str, Any] = {
    **SEASONAL,
    "asset": {"url": "https://cdn.example/pumpkin.webp", "format": "webp"},
    "regions": ["GB"],
    "tier": 4,
}


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[Api]:
    api = Api(server, server.token("root", admin=True))
    yield api
    await api.aclose()


async def gift_ids(api: Api, query: str = "") -> list[str]:
    response = await api.get(f"/v1/gifts{query}")
    assert response.status_code == 200, response.text
    return [g["id"] for g in response.json()["gifts"]]


async def patch(api: Api, path: str, body: Any, **headers: str) -> Any:
    return await api.client.patch(path, json=body, headers=headers)


async def test_admins_create_update_and_retire_gifts(server: LiveServer, admin: Api) -> None:
    viewer = Api(server, server.token("alice"))
    assert (await viewer.post("/v1/admin/catalog/gifts", PUMPKIN)).status_code == 403

    created = await admin.post("/v1/admin/catalog/gifts", PUMPKIN)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 2
    assert created.json()["gift"]["asset"] == {"url": PUMPKIN["asset"]["url"], "format": "webp"}
    assert "pumpkin" in await gift_ids(viewer, "?region=gb")
    assert "pumpkin" not in await gift_ids(viewer, "?region=US")
    listed = (await viewer.get("/v1/gifts")).json()
    assert listed["version"] == 2
    [pumpkin] = [g for g in listed["gifts"] if g["id"] == "pumpkin"]
    assert (pumpkin["tier"], pumpkin["regions"]) == (4, ["GB"])
    assert (await viewer.get("/v1/gifts?region=Narnia")).status_code == 400

    duplicate = await admin.post("/v1/admin/catalog/gifts", PUMPKIN)
    assert duplicate.status_code == 409
    bad = await admin.post("/v1/admin/catalog/gifts", {**PUMPKIN, "id": "p2", "coins": -1})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "coins"
    assert bad.json()["error"]["code"] == "bad_request"

    stale = await patch(
        admin, "/v1/admin/catalog/gifts/pumpkin", {"coins": 70}, **{"if-match": "1"}
    )
    assert stale.status_code == 409
    updated = await patch(
        admin, "/v1/admin/catalog/gifts/pumpkin", {"coins": 70}, **{"if-match": "2"}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["version"], updated.json()["gift"]["coins"]) == (3, 70)
    missing = await patch(admin, "/v1/admin/catalog/gifts/nope", {"coins": 70})
    assert missing.status_code == 404

    retired = await admin.post("/v1/admin/catalog/gifts/pumpkin/retire")
    assert retired.status_code == 200 and retired.json()["gift"]["retired"] is True
    assert "pumpkin" not in await gift_ids(viewer, "?region=GB")
    everything = (await admin.get("/v1/admin/catalog")).json()
    assert everything["version"] == 4
    assert [g["retired"] for g in everything["gifts"] if g["id"] == "pumpkin"] == [True]

    package = await patch(admin, "/v1/admin/catalog/packages/us_70", {"retired": True})
    assert package.status_code == 200
    sold = (await viewer.get("/v1/coin-packages?region=US")).json()
    assert "us_70" not in [p["id"] for p in sold["packages"]]
    assert (await viewer.buy("us_70", key="p-retired")).status_code == 404
    assert (await admin.post("/v1/admin/catalog/hats", {})).status_code == 404
    await viewer.aclose()


async def test_price_safety_and_the_catalog_event(server: LiveServer, admin: Api) -> None:
    carol = await go_live(server, "carol", "carol")
    alice = Api(server, server.token("alice"))
    assert (await alice.buy("us_1400", key="p1")).status_code == 201
    async with welcomed(Client.open(server, "carol", token=server.token("alice"))) as [ws]:
        welcome = ws.of_type("welcome")[0]
        assert welcome["catalog_version"] == 1
        changed = await patch(
            admin, "/v1/admin/catalog/gifts/rose", {"coins": 2, "name": "Big Rose"}
        )
        assert changed.status_code == 200
        event = await ws.wait_for(lambda e: e["type"] == "catalog")
        assert event == {"type": "catalog", "version": 2}

        refused = await ws.command({"type": "send_gift", "id": "g1", "gift": "rose", "coins": 1})
        assert (refused["type"], refused["code"]) == ("error", "price_changed")
        http = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose", "coins": 1}, key="g2")
        assert (http.status_code, http.json()["error"]["code"]) == (409, "price_changed")
        assert await alice.balance() == 1428

        sent = await ws.command({"type": "send_gift", "id": "g3", "gift": "rose", "coins": 2})
        assert sent["type"] == "ack" and sent["balance"] == {"coins": 1426}
    await admin.client.patch("/v1/admin/catalog/gifts/rose", json={"coins": 5, "name": "Rose"})
    history = (await alice.get("/v1/me/transactions")).json()
    [sent_gift] = [t for t in history["transactions"] if t["kind"] == "gift"]
    assert sent_gift["gift"] == {"id": "rose", "count": 1, "name": "Big Rose", "coins": 2}
    await alice.aclose()
    await carol.aclose()


async def run_live(server: LiveServer, *args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *live_command(*args),
        env=server.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_export_and_import_round_trip_while_serving(
    server: LiveServer, admin: Api, tmp_path: Path
) -> None:
    code, out, err = await run_live(server, "catalog", "export", "--format", "toml")
    assert code == 0, err
    assert b'id = "rose"' in out
    exported = tmp_path / "catalog.toml"
    exported.write_bytes(out.replace(b'name = "Rose"', b'name = "Rosa"'))

    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({"gifts": [{**PUMPKIN}, {**PUMPKIN, "id": "x", "tier": 0}]}))
    code, _, err = await run_live(server, "catalog", "import", str(bad))
    assert code == 1 and b"gifts[1].tier" in err
    code, out, _ = await run_live(server, "catalog", "import", "--dry-run", str(exported))
    assert code == 0 and b"changed  gift:rose" in out and b"would change 1 entries" in out
    assert (await admin.get("/v1/admin/catalog")).json()["version"] == 1

    code, out, err = await run_live(server, "catalog", "import", str(exported))
    assert code == 0, err
    started = time.monotonic()
    while True:  # the server serves the import within its poll interval
        gifts = (await admin.get("/v1/gifts")).json()["gifts"]
        if gifts[0]["name"] == "Rosa":
            break
        assert time.monotonic() - started < 1.0, "the import was not served within a second"
        await asyncio.sleep(0.02)
    output = tmp_path / "again.json"
    code, _, err = await run_live(server, "catalog", "export", "-o", str(output))
    assert code == 0, err
    document = orjson.loads(output.read_bytes())
    assert document["version"] == 2
    assert [g["name"] for g in document["gifts"] if g["id"] == "rose"] == ["Rosa"]

"""Gifting end to end over real sockets against a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.live.server import Api, Client, LiveServer


async def go_live(server: LiveServer, creator: str, room: str, *, adult: bool = True) -> Api:
    api = Api(server, server.token(creator, creator=True, adult=adult))
    response = await api.post("/v1/rooms", {"id": room, "title": f"{creator} live"})
    assert response.status_code == 201, response.text
    return api


@pytest.fixture
async def apis(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    made: dict[str, Api] = {}
    made["creator"] = await go_live(server, "carol", "carol")
    made["other_creator"] = await go_live(server, "dave", "dave")
    made["alice"] = Api(server, server.token("alice", name="alice", display_name="Alice A"))
    made["bob"] = Api(server, server.token("bob"))
    made["kid"] = Api(server, server.token("kid", adult=False))
    yield made
    for api in made.values():
        await api.aclose()


def gift_events(client: Client) -> list[dict[str, Any]]:
    return client.of_type("gift")


async def test_two_viewers_see_gift_other_room_does_not(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    alice = apis["alice"]
    assert (await alice.buy("us_1400", key="p1")).status_code == 201
    async with (
        Client.open(server, "carol", token=server.token("bob")) as viewer1,
        Client.open(server, "carol", msgpack_codec=True) as viewer2,
        Client.open(server, "dave") as elsewhere,
        Client.open(
            server, "carol", token=server.token("alice", name="alice", display_name="Alice A")
        ) as gifter,
    ):
        for client in (viewer1, viewer2, elsewhere, gifter):
            welcome = await client.wait_for(lambda e: e["type"] == "welcome")
            assert welcome["resumed"] is False
        ack1 = await gifter.command({"type": "send_gift", "id": "g-1", "gift": "rose", "count": 5})
        ack2 = await gifter.command({"type": "send_gift", "id": "g-2", "gift": "galaxy"})
        assert ack1["type"] == "ack" and ack2["type"] == "ack", (ack1, ack2)
        assert ack1["balance"] == {"coins": 1428 - 5}
        assert ack2["balance"] == {"coins": 1428 - 5 - 1000}
        for viewer in (viewer1, viewer2, gifter):
            # The gifter's own ack carries the tx too: wait for the room's gift event.
            await viewer.wait_for(lambda e: e["type"] == "gift" and e.get("tx") == ack2["tx"])
            gifts = gift_events(viewer)
            assert [g["tx"] for g in gifts] == [ack1["tx"], ack2["tx"]]
            seqs = [g["seq"] for g in gifts]
            assert seqs == sorted(seqs) and len(set(seqs)) == 2
            first = gifts[0]
            assert first["sender"] == {
                "id": "alice",
                "username": "alice",
                "display_name": "Alice A",
                "avatar": "https://example.test/alice.png",
            }
            assert first["gift"]["name"] == "Rose" and first["gift"]["coins"] == 1
            assert first["gift"]["animation"] and first["gift"]["image"]
            assert first["count"] == 5 and first["diamonds"] == 3
            assert isinstance(first["ts"], int)
        # Another room's viewer got nothing from carol's room.
        await asyncio.sleep(0)
        assert gift_events(elsewhere) == []


async def test_insufficient_funds_then_balance_unchanged(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    alice = apis["alice"]
    await alice.buy("us_70", key="p1")
    response = await alice.post("/v1/rooms/carol/gifts", {"gift": "galaxy"}, key="k1")
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert await alice.balance() == 70


@pytest.mark.parametrize(
    ("who", "room", "body", "code"),
    [
        ("alice", "carol", {"gift": "no_such_gift"}, "not_found"),
        ("alice", "carol", {"gift": "rose", "count": 0}, "bad_request"),
        ("alice", "carol", {"gift": "rose", "count": 100}, "bad_request"),
        ("alice", "carol", {"gift": "rose", "count": "2"}, "bad_request"),
        ("alice", "nobody", {"gift": "rose"}, "not_found"),
        ("kid", "carol", {"gift": "rose"}, "forbidden"),
        ("creator", "carol", {"gift": "rose"}, "forbidden"),
    ],
)
async def test_gift_errors_change_nothing(
    server: LiveServer,
    apis: dict[str, Api],
    who: str,
    room: str,
    body: dict[str, Any],
    code: str,
) -> None:
    api = apis[who]
    if who != "kid":
        assert (await api.buy("us_70", key="fund")).status_code == 201
    before = (await api.get("/v1/me/transactions")).json()["transactions"]
    response = await api.post(f"/v1/rooms/{room}/gifts", body, key="bad-1")
    assert response.json()["error"]["code"] == code, response.text
    after = (await api.get("/v1/me/transactions")).json()["transactions"]
    assert after == before
    carol = await apis["creator"].get("/v1/me/wallet")
    assert carol.json()["diamonds"] == 0


async def test_room_not_live_after_end(server: LiveServer, apis: dict[str, Api]) -> None:
    alice = apis["alice"]
    await alice.buy("us_70", key="p1")
    async with Client.open(server, "carol") as viewer:
        await viewer.wait_for(lambda e: e["type"] == "welcome")
        assert (await apis["creator"].post("/v1/rooms/carol/end")).status_code == 200
        await viewer.wait_for(lambda e: e["type"] == "room_ended")
        assert await viewer.closed() == 4010
    response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="late")
    assert response.json()["error"]["code"] == "room_not_live"
    assert await alice.balance() == 70


async def test_idempotent_resend_and_conflict(server: LiveServer, apis: dict[str, Api]) -> None:
    alice = apis["alice"]
    await alice.buy("us_350", key="p1")
    first = await alice.post("/v1/rooms/carol/gifts", {"gift": "perfume", "count": 2}, key="same")
    again = await alice.post("/v1/rooms/carol/gifts", {"gift": "perfume", "count": 2}, key="same")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["tx"] == first.json()["tx"] and again.json()["replayed"] is True
    assert await alice.balance() == 350 - 40
    other = await alice.post("/v1/rooms/carol/gifts", {"gift": "perfume", "count": 3}, key="same")
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    # The same id over WebSocket is the same key: no second charge.
    async with Client.open(server, "carol", token=server.token("alice")) as ws:
        reply = await ws.command({"type": "send_gift", "id": "same", "gift": "perfume", "count": 2})
        assert reply["type"] == "ack" and reply["tx"] == first.json()["tx"]
    assert await alice.balance() == 350 - 40
    # A repeated purchase key is one purchase.
    assert (await alice.buy("us_350", key="p1")).status_code == 200
    assert await alice.balance() == 350 - 40


async def test_postings_and_balances(server: LiveServer, apis: dict[str, Api]) -> None:
    alice, carol = apis["alice"], apis["creator"]
    await alice.buy("us_700", key="p1")  # 700 + 7 bonus
    await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="c1")
    assert await alice.balance() == 607
    wallet = (await carol.get("/v1/me/wallet")).json()
    assert wallet["diamonds"] == 50
    txs = (await alice.get("/v1/me/transactions")).json()["transactions"]
    assert [t["kind"] for t in txs] == ["gift", "purchase"]
    gift = txs[0]
    per_asset: dict[str, int] = {}
    for p in gift["postings"]:
        per_asset[p["asset"]] = per_asset.get(p["asset"], 0) + p["amount"]
    assert per_asset == {"coin": 0, "diamond": 0}
    amounts = {(p["account"], p["asset"]): p["amount"] for p in gift["postings"]}
    assert amounts[("user:alice:coins", "coin")] == -100
    assert amounts[("user:carol:diamonds", "diamond")] == 50
    assert amounts[("platform:revenue", "coin")] == 50
    report = await server.audit()
    assert report["ok"] is True, report
    assert report["totals"] == {"coin": 0, "diamond": 0}
    assert (await alice.get("/v1/admin/audit")).status_code == 403


async def test_balances_survive_restart(server: LiveServer, apis: dict[str, Api]) -> None:
    alice = apis["alice"]
    await alice.buy("us_1400", key="p1")
    await alice.post("/v1/rooms/carol/gifts", {"gift": "doughnut", "count": 3}, key="d1")
    await server.stop()
    await server.start()
    assert await alice.balance() == 1428 - 90
    again = await alice.post("/v1/rooms/carol/gifts", {"gift": "doughnut", "count": 3}, key="d1")
    assert again.json()["replayed"] is True
    assert await alice.balance() == 1428 - 90
    room = (await alice.get("/v1/rooms/carol")).json()
    assert room["room"]["live"] is True
    assert room["leaderboard"][0]["coins"] == 90


async def test_concurrent_gifts_from_one_wallet(server: LiveServer, apis: dict[str, Api]) -> None:
    alice = apis["alice"]
    await alice.buy("us_350", key="p1")
    assert await alice.balance() == 350
    # 70 Finger Hearts (5 coins) are affordable; send 200 at once over HTTP and
    # WebSocket (the WebSocket share stays within the per-connection burst).
    async with Client.open(server, "carol", token=server.token("alice")) as ws:

        async def over_http(i: int) -> str:
            r = await alice.post("/v1/rooms/carol/gifts", {"gift": "finger_heart"}, key=f"h{i}")
            return str(r.json().get("error", {}).get("code", "ok"))

        async def over_ws(i: int) -> str:
            reply = await ws.command({"type": "send_gift", "id": f"w{i}", "gift": "finger_heart"})
            return "ok" if reply["type"] == "ack" else str(reply["code"])

        results = await asyncio.gather(
            *(over_http(i) for i in range(185)), *(over_ws(i) for i in range(15))
        )
    assert results.count("ok") == 70
    assert results.count("insufficient_funds") == 130
    assert await alice.balance() == 0

"""In-app items over HTTP and WebSocket, on both engines: the shop, buying with an
Idempotency-Key, the inventory and equipping, history, the admin API and import
for items, and what other viewers see: badges and name styles in every gift,
chat, like and join event, and the entrance effect on a fresh join only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live.launch import on_engine, welcomed
from tests.live.server import Api, Client, LiveServer
from tests.services import Services

FAST = {"LIVE_JOIN_INTERVAL_MS": "100", "LIVE_COMBO_WINDOW_MS": "200"}
STAR = {"id": "badge_star", "name": "Star Badge", "image": "/static/items/badge_star.svg"}
GOLD = {"id": "name_gold", "color": "#e6b422", "bubble": "gold"}


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", FAST) as srv:
        yield srv


@pytest.fixture
async def alice(server: LiveServer) -> AsyncIterator[Api]:
    api = Api(server, server.token("alice"))
    assert (await api.buy("us_1400", key="p1")).status_code == 201  # 1428 coins
    yield api
    await api.aclose()


async def buy(api: Api, item: str, key: str, **body: Any) -> Any:
    return await api.post("/v1/me/items", {"item": item, **body}, key=key)


def joined(event: dict[str, Any], user_id: str) -> bool:
    return any(u["id"] == user_id for u in event.get("users", []))


async def equip(api: Api, item: str) -> Any:
    return await api.client.put("/v1/me/equipped", json={"item": item})


async def test_shop_buy_once_equip_and_history(server: LiveServer, alice: Api) -> None:
    shop = (await alice.get("/v1/items")).json()
    assert shop["version"] == 1
    star = next(i for i in shop["items"] if i["id"] == "badge_star")
    assert (star["kind"], star["coins"], star["duration_days"]) == ("badge", 99, 30)

    assert (await alice.post("/v1/me/items", {"item": "badge_star"})).status_code == 400
    bought = await buy(alice, "badge_star", "k1", coins=99)
    assert bought.status_code == 201, bought.text
    body = bought.json()
    assert (body["item"], body["coins"], body["balance"], body["replayed"]) == (
        "badge_star",
        99,
        {"coins": 1329},
        False,
    )
    again = await buy(alice, "badge_star", "k1", coins=99)
    assert again.status_code == 200 and again.json()["tx"] == body["tx"]
    assert again.json()["replayed"] is True
    assert await alice.balance() == 1329
    reused = await buy(alice, "name_gold", "k1")
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "conflict")
    stale = await buy(alice, "name_gold", "k2", coins=1)
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "price_changed")
    unknown = await buy(alice, "hat", "k3")
    assert unknown.status_code == 404
    nowhere = await buy(alice, "effect_sparkles", "k4", room="no-such-room")
    assert nowhere.status_code == 404
    assert (await buy(alice, "effect_sparkles", "k5", room=7)).status_code == 400
    assert (await buy(alice, "effect_sparkles", "k6", coins="99")).status_code == 400
    teen = Api(server, server.token("teen", adult=False))
    minor = await buy(teen, "badge_star", "k1")
    assert (minor.status_code, minor.json()["error"]["message"]) == (
        403,
        "only adults can spend coins on items",
    )
    await teen.aclose()
    assert await alice.balance() == 1329

    mine = (await alice.get("/v1/me/items")).json()
    assert [(i["item"], i["equipped"]) for i in mine["items"]] == [("badge_star", False)]
    assert mine["items"][0]["details"]["name"] == "Star Badge" and mine["equipped"] == {}
    equipped = await equip(alice, "badge_star")
    assert equipped.status_code == 200 and equipped.json()["equipped"] == {"badge": "badge_star"}
    not_owned = await equip(alice, "badge_crown")
    assert (not_owned.status_code, not_owned.json()["error"]["code"]) == (404, "not_found")
    cleared = await alice.client.delete("/v1/me/equipped/badge")
    assert cleared.json()["equipped"] == {}
    assert (await alice.client.delete("/v1/me/equipped/hat")).status_code == 400

    history = (await alice.get("/v1/me/transactions")).json()
    item_tx = history["transactions"][0]
    assert (item_tx["kind"], item_tx["coins"], item_tx["direction"]) == ("item", -99, "bought")
    assert item_tx["item"]["id"] == "badge_star" and item_tx["item"]["expires_at"] is not None
    assert history["item_expiries"] == []
    assert (await server.audit())["ok"]

    # counted like gifts: by outcome, refusals by code (the HTTP layer's own 400s aside)
    page = {
        sample.name + "".join(f"{{{k}={v!r}}}" for k, v in sample.labels.items()): sample.value
        for family in text_string_to_metric_families((await alice.get("/metrics")).text)
        for sample in family.samples
        if sample.name.startswith(("live_item_purchases_total", "live_item_errors_total"))
        or sample.name == "live_item_coins_total"
    }
    assert page == {
        "live_item_purchases_total{outcome='committed'}": 1,
        "live_item_purchases_total{outcome='replayed'}": 1,
        "live_item_purchases_total{outcome='refused'}": 5,
        "live_item_coins_total": 99,
        "live_item_errors_total{code='conflict'}": 1,
        "live_item_errors_total{code='price_changed'}": 1,
        "live_item_errors_total{code='not_found'}": 2,
        "live_item_errors_total{code='forbidden'}": 1,
    }


async def test_admins_manage_items(server: LiveServer) -> None:
    admin = Api(server, server.token("root", admin=True))
    halo = {
        "id": "halo",
        "kind": "badge",
        "name": "Halo",
        "coins": 40,
        "image": "https://cdn.example/halo.png",
    }
    created = await admin.post("/v1/admin/catalog/items", halo)
    assert created.status_code == 201, created.text
    assert "duration_days" not in created.json()["item"]  # permanent
    bad = await admin.post("/v1/admin/catalog/items", {**halo, "id": "h2", "kind": "hat"})
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "kind")
    retired = await admin.post("/v1/admin/catalog/items/halo/retire")
    assert retired.status_code == 200
    listed = (await admin.get("/v1/items")).json()["items"]
    assert "halo" not in [i["id"] for i in listed]
    everything = (await admin.get("/v1/admin/catalog")).json()
    assert [i["retired"] for i in everything["items"] if i["id"] == "halo"] == [True]
    await admin.aclose()


async def test_other_viewers_see_badges_name_styles_and_entrances(
    server: LiveServer, alice: Api
) -> None:
    carol = Api(server, server.token("carol", creator=True))
    assert (await carol.post("/v1/rooms", {"title": "live"})).status_code == 201
    for key, item in (("a", "badge_star"), ("b", "name_gold"), ("c", "entrance_comet")):
        assert (await buy(alice, item, key, room="carol")).status_code == 201
        assert (await equip(alice, item)).status_code == 200
    token = server.token("alice")
    async with welcomed(Client.open(server, "carol", token=server.token("bob"))) as [bob]:
        async with welcomed(Client.open(server, "carol", token=token)) as [mine]:
            you = mine.of_type("welcome")[0]["you"]
            assert (you["badge"], you["name_style"]) == (STAR, GOLD)
            entrance = await bob.wait_for(lambda e: e["type"] == "entrance")
            assert entrance["user"]["id"] == "alice" and entrance["user"]["badge"] == STAR
            assert entrance["effect"]["id"] == "entrance_comet"
            assert entrance["effect"]["asset"]["url"] == "/static/items/entrance_comet.svg"
            join = await bob.wait_for(lambda e: e["type"] == "join" and joined(e, "alice"))
            assert [u["badge"] for u in join["users"] if u["id"] == "alice"] == [STAR]

            assert (await mine.command({"type": "chat", "id": "m1", "text": "hi"}))["type"] == "ack"
            chat = await bob.wait_for(lambda e: e["type"] == "chat")
            assert (chat["sender"]["badge"], chat["sender"]["name_style"]) == (STAR, GOLD)
            gift = await mine.command({"type": "send_gift", "id": "g1", "gift": "rose"})
            assert gift["type"] == "ack", gift
            sent = await bob.wait_for(lambda e: e["type"] == "gift")
            assert sent["sender"]["badge"] == STAR
            await mine.command({"type": "like", "id": "l1", "count": 3})
            like = await bob.wait_for(lambda e: e["type"] == "like")
            assert like["sender"]["name_style"] == GOLD
            last_seq = max(e["seq"] for e in mine.events if "seq" in e)

        # a reconnect loop can't replay the entrance: one per user and room per minute
        async with welcomed(Client.open(server, "carol", token=token)) as [again]:
            await again.command({"type": "chat", "id": "m2", "text": "back"})
            await bob.wait_for(lambda e: e["type"] == "chat" and e["text"] == "back")
            await bob.wait_for(lambda e: e["type"] == "join" and e["seq"] > last_seq)
        async with welcomed(
            Client.open(server, "carol", token=token, query=f"since={last_seq}")
        ) as [resumed]:
            assert resumed.of_type("welcome")[0]["resumed"] is True
            await resumed.command({"type": "chat", "id": "m3", "text": "resumed"})
            await bob.wait_for(lambda e: e["type"] == "chat" and e["text"] == "resumed")
        assert len(bob.of_type("entrance")) == 1

        # unequipped: the next events are plain again (this node forgets the look at once)
        await alice.client.delete("/v1/me/equipped/badge")
        async with welcomed(Client.open(server, "carol", token=token)) as [plain_alice]:
            await plain_alice.command({"type": "chat", "id": "m4", "text": "plain"})
            plain = await bob.wait_for(lambda e: e["type"] == "chat" and e["text"] == "plain")
        assert "badge" not in plain["sender"] and plain["sender"]["name_style"] == GOLD

    # items without a creator share earn the room's creator nothing: only the rose
    assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 1
    await carol.aclose()


async def test_items_across_two_nodes(nodes: tuple[LiveServer, LiveServer]) -> None:
    """Scaled engine: a purchase raced on two nodes charges once; what alice equips
    through node A is seen by a viewer on node B; the entrance is announced once
    per minute across nodes."""
    import asyncio

    a, b = nodes
    carol = Api(b, b.token("carol", creator=True))
    assert (await carol.post("/v1/rooms", {"title": "two nodes"})).status_code == 201
    alice_a, alice_b = Api(a, a.token("alice")), Api(b, b.token("alice"))
    assert (await alice_a.buy("us_1400", key="p1")).status_code == 201
    raced = await asyncio.gather(
        *(buy(api, "entrance_comet", "one-key") for api in (alice_a, alice_b) * 4)
    )
    assert len({r.json()["tx"] for r in raced}) == 1
    assert sorted(r.status_code for r in raced) == [200] * 7 + [201]
    assert await alice_b.balance() == 1428 - 499
    assert (await buy(alice_a, "badge_star", "k2")).status_code == 201
    for item in ("entrance_comet", "badge_star"):
        assert (await equip(alice_a, item)).status_code == 200

    token = a.token("alice")
    async with welcomed(Client.open(b, "carol", token=b.token("bob"))) as [bob]:
        async with welcomed(Client.open(b, "carol", token=token)) as [on_b]:
            entrance = await bob.wait_for(lambda e: e["type"] == "entrance")
            assert entrance["user"]["badge"] == STAR
            await on_b.command({"type": "chat", "id": "m1", "text": "from b"})
            chat = await bob.wait_for(lambda e: e["type"] == "chat")
            assert chat["sender"]["badge"] == STAR
            first = await bob.wait_for(lambda e: e["type"] == "join" and joined(e, "alice"))
        async with welcomed(Client.open(a, "carol", token=token)) as [on_a]:
            await on_a.command({"type": "chat", "id": "m2", "text": "from a"})
            chat = await bob.wait_for(lambda e: e["type"] == "chat" and e["text"] == "from a")
            assert chat["sender"]["badge"] == STAR
            # her second join, announced by node A well after its entrance check
            await bob.wait_for(
                lambda e: e["type"] == "join" and joined(e, "alice") and e["seq"] > first["seq"]
            )
        assert len(bob.of_type("entrance")) == 1
    assert (await a.audit())["ok"]
    for api in (carol, alice_a, alice_b):
        await api.aclose()

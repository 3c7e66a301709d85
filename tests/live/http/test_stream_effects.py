"""Creator effects over HTTP and WebSocket, on both engines: the room creator's
equipped creator effect is the room's stream effect, in the welcome and the
room's state, published as a ``stream_effect`` event when equipped or unequipped
while live; anyone else's creator effect shows nowhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.launch import on_engine, welcomed
from tests.live.server import Api, Client, LiveServer
from tests.services import Services

SPARKLES = {
    "id": "effect_sparkles",
    "name": "Sparkle Filter",
    "image": "/static/items/effect_sparkles.svg",
    "asset": {"url": "/static/items/effect_sparkles.svg", "format": "svg"},
}


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data") as srv:
        yield srv


async def owner_of_sparkles(server: LiveServer, user: str, *, creator: bool) -> Api:
    """A user with coins who bought the sparkle filter."""
    api = Api(server, server.token(user, creator=creator))
    assert (await api.buy("us_1400", key=f"{user}-coins")).status_code == 201
    bought = await api.post("/v1/me/items", {"item": "effect_sparkles"}, key=f"{user}-fx")
    assert bought.status_code == 201, bought.text
    return api


async def equip(api: Api, item: str, **body: Any) -> Any:
    response = await api.client.put("/v1/me/equipped", json={"item": item, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def room_effect(api: Api, room: str) -> Any:
    response = await api.get(f"/v1/rooms/{room}")
    assert response.status_code == 200, response.text
    return response.json()["stream_effect"]


async def test_the_creators_effect_is_the_rooms_and_follows_equip_and_unequip(
    server: LiveServer,
) -> None:
    carol = await owner_of_sparkles(server, "carol", creator=True)
    alice = await owner_of_sparkles(server, "alice", creator=False)
    anyone = Api(server, None)
    assert (await carol.post("/v1/rooms", {"title": "live"})).status_code == 201
    assert await room_effect(carol, "carol") is None
    async with welcomed(Client.open(server, "carol", token=server.token("bob"))) as [bob]:
        assert "stream_effect" not in bob.of_type("welcome")[0]

        # a viewer's own creator effect does nothing in someone else's room
        await equip(alice, "effect_sparkles", room="carol")
        assert await room_effect(alice, "carol") is None

        equipped = await equip(carol, "effect_sparkles")
        assert equipped["equipped"]["creator_effect"] == "effect_sparkles"
        event = await bob.wait_for(lambda e: e["type"] == "stream_effect")
        assert event["effect"] == SPARKLES
        assert await room_effect(anyone, "carol") == SPARKLES
        async with welcomed(Client.open(server, "carol")) as [late]:
            assert late.of_type("welcome")[0]["stream_effect"] == SPARKLES

        unequipped = await carol.client.delete("/v1/me/equipped/creator_effect")
        assert unequipped.status_code == 200, unequipped.text
        cleared = await bob.wait_for(
            lambda e: e["type"] == "stream_effect" and e["seq"] > event["seq"]
        )
        assert cleared["effect"] is None
        assert await room_effect(anyone, "carol") is None
        async with welcomed(Client.open(server, "carol")) as [later]:
            assert "stream_effect" not in later.of_type("welcome")[0]
        # alice's equip published nothing: only carol's two changes reached the room
        assert [e["effect"] for e in bob.of_type("stream_effect")] == [SPARKLES, None]
    for api in (carol, alice, anyone):
        await api.aclose()


async def test_a_creator_shows_the_effect_in_the_live_room_they_name(
    server: LiveServer,
) -> None:
    dave = await owner_of_sparkles(server, "dave", creator=True)
    erin = Api(server, server.token("erin", creator=True))
    assert (await dave.post("/v1/rooms", {"id": "dave-show", "title": "t"})).status_code == 201
    assert (await erin.post("/v1/rooms", {"id": "erin-show", "title": "t"})).status_code == 201
    async with (
        welcomed(Client.open(server, "dave-show")) as [viewer],
        welcomed(Client.open(server, "erin-show")) as [other],
    ):
        # naming someone else's room shows nothing there
        await equip(dave, "effect_sparkles", room="erin-show")
        assert await room_effect(dave, "erin-show") is None
        assert await room_effect(dave, "dave-show") == SPARKLES
        await dave.client.delete("/v1/me/equipped/creator_effect")
        await equip(dave, "effect_sparkles", room="dave-show")
        event = await viewer.wait_for(lambda e: e["type"] == "stream_effect")
        assert event["effect"] == SPARKLES
        goal = {"target": 5, "title": "marker"}
        assert (await erin.client.put("/v1/rooms/erin-show/goal", json=goal)).status_code == 200
        await other.wait_for(lambda e: e["type"] == "goal")
        assert other.of_type("stream_effect") == []
    bad = await dave.client.put("/v1/me/equipped", json={"item": "effect_sparkles", "room": 5})
    assert bad.status_code == 400
    for api in (dave, erin):
        await api.aclose()

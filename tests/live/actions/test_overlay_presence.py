"""Overlay presence: the creator sees which overlays are connected and since
when, over HTTP and as ``overlays`` events, on each engine and across nodes;
rotating the overlay key disconnects the old overlays."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.live.server import Api, Client, LiveServer

TTL = 1.5
NODE_ENV = {"LIVE_VIEWERS_TTL_SECONDS": str(TTL)}
"""The settings of both nodes (the ``nodes`` fixture)."""


def counted(n: int) -> Any:
    return lambda e: e["type"] == "overlays" and e["count"] == n


async def overlays(api: Api) -> list[dict[str, Any]]:
    response = await api.get("/v1/rooms/carol/overlays")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["overlays"]
    return found


async def test_the_creator_sees_overlays_come_and_go(server: LiveServer) -> None:
    carol = Api(server, server.token("carol", creator=True))
    key = (await carol.post("/v1/rooms", {"title": "live"})).json()["overlay_key"]
    assert await overlays(carol) == []
    async with Client.open(server, "carol", token=server.token("carol", creator=True)) as me:
        await me.wait_for(lambda e: e["type"] == "welcome")
        before = int(time.time() * 1000)
        async with (
            Client.open(server, "carol", query=f"overlay_key={key}") as obs,
            Client.open(server, "carol", token=server.token("zoe")) as viewer,
        ):
            await obs.wait_for(lambda e: e["type"] == "welcome")
            event = await me.wait_for(counted(1))
            [listed] = await overlays(carol)
            assert listed == event["overlays"][0]
            assert before - 1_000 <= listed["connected_at"] <= int(time.time() * 1000)
            # a viewer is not told, and a viewer cannot ask
            await viewer.wait_for(lambda e: e["type"] == "welcome")
            zoe = Api(server, server.token("zoe"))
            assert (await zoe.get("/v1/rooms/carol/overlays")).status_code == 403
            await zoe.aclose()
            # rotating the key disconnects the overlay, and it is gone from the list
            assert (await carol.post("/v1/rooms/carol/overlay-key")).status_code == 200
            assert await obs.closed() is not None
            await me.wait_for(counted(0))
            assert await overlays(carol) == []
            assert not viewer.of_type("overlays")
    await carol.aclose()


async def test_presence_across_nodes(nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    carol = Api(a, a.token("carol", creator=True))
    key = (await carol.post("/v1/rooms", {"title": "two nodes"})).json()["overlay_key"]
    async with Client.open(a, "carol", token=a.token("carol", creator=True)) as me:
        await me.wait_for(lambda e: e["type"] == "welcome")
        async with Client.open(b, "carol", query=f"overlay_key={key}") as obs:
            await obs.wait_for(lambda e: e["type"] == "welcome")
            await me.wait_for(counted(1))  # connected on b, told on a
            assert len(await overlays(carol)) == 1
            async with Client.open(a, "carol", query=f"overlay_key={key}") as second:
                await second.wait_for(lambda e: e["type"] == "welcome")
                await me.wait_for(counted(2))
                listed = await overlays(carol)
                assert [o["connected_at"] for o in listed] == sorted(
                    o["connected_at"] for o in listed
                )
            await me.wait_for(
                lambda e: e["type"] == "overlays" and len(me.of_type("overlays")) >= 3
            )
            assert me.of_type("overlays")[-1]["count"] == 1
            # the node holding the overlay dies: it drops out once its report expires
            await b.kill()
            started = time.monotonic()
            while await overlays(carol):
                assert time.monotonic() - started < TTL * 3
                await asyncio.sleep(0.05)
    await carol.aclose()

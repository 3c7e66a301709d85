"""A combo open when the embedded server is killed (kill -9) still ends: the
restarted server publishes its final event, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.launch import running
from tests.live.receiver import Receiver, receiving
from tests.live.server import Api, Client, LiveServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    env = {
        "LIVE_COMBO_WINDOW_MS": "500",
        "LIVE_SUBSCRIPTION_ALLOW_LOOPBACK": "1",
        # a delivery in flight at the kill holds its subscription for its lease
        # (twice this plus 5 s) before the restarted server sends it again
        "LIVE_SUBSCRIPTION_TIMEOUT_SECONDS": "2",
    }
    srv = LiveServer(data_dir=tmp_path / "data", env=env)
    async with running(srv):
        yield srv


def combo_gifts(client: Client, combo_id: str) -> list[dict[str, Any]]:
    return [e for e in client.events if e.get("type") == "gift" and e["combo"]["id"] == combo_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


def webhook_ends(receiver: Receiver) -> list[str]:
    return [
        n["event"]["combo"]["id"]
        for n in receiver.notifications()
        if n["type"] == "gift" and n["event"]["combo"]["end"]
    ]


async def test_a_combo_open_at_kill_9_ends_once_after_the_restart(
    server: LiveServer, receiver: Receiver
) -> None:
    carol = Api(server, server.token("carol", creator=True))
    alice = Api(server, server.token("alice"))
    try:
        await carol.post("/v1/rooms", {"title": "t"})
        hook = {"room_id": "carol", "types": ["gift"], "callback": receiver.url}
        assert (await carol.post("/v1/subscriptions", hook)).status_code == 201
        await alice.buy("us_7000", key="p1")
        async with Client.open(server, "carol") as viewer:
            await viewer.wait_for(lambda e: e["type"] == "welcome")
            first = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r1")
            assert first.status_code == 201
            combo_id = first.json()["tx"]
            second = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r2")
            assert second.status_code == 201
            await viewer.wait_for(lambda e: e.get("type") == "gift" and e["combo"]["count"] == 2)
            assert not any(g["combo"]["end"] for g in combo_gifts(viewer, combo_id))
            await server.kill()  # the combo is open: its window has not closed
        await server.start()
        # a viewer back after the restart: its resume replays what the server
        # published since it came back, the combo's end among it
        async with Client.open(server, "carol", query="since=0") as viewer:
            end = await viewer.wait_for(
                lambda e: e.get("type") == "gift" and e["combo"]["end"], timeout=15
            )
            assert end["combo"] == {"id": combo_id, "count": 2, "end": True}
            assert (end["tx"], end["count"], end["diamonds"]) == (second.json()["tx"], 0, 0)
            assert end["sender"]["id"] == "alice" and end["gift"]["id"] == "rose"
            # and so does the webhook subscription of the room
            await receiver.wait_for(lambda r: combo_id in webhook_ends(r), timeout=30)
            # a new combo after the restart ends once, with no second end of the old one
            third = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r3")
            new_id = third.json()["tx"]
            await viewer.wait_for(
                lambda e: (
                    e.get("type") == "gift"
                    and e["combo"] == {"id": new_id, "count": 1, "end": True}
                )
            )
            # a combo open at a clean stop ends after the restart too, once
            fourth = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r4")
            assert fourth.status_code == 201
            open_id = fourth.json()["tx"]
            await viewer.wait_for(lambda e: e.get("type") == "gift" and e["tx"] == open_id)
            await server.stop()
        await server.start()
        async with Client.open(server, "carol", query="since=0") as viewer:
            await viewer.wait_for(
                lambda e: (
                    e.get("type") == "gift" and e["combo"]["end"] and e["combo"]["id"] == open_id
                )
            )
            fifth = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r5")
            later_id = fifth.json()["tx"]
            await viewer.wait_for(
                lambda e: (
                    e.get("type") == "gift" and e["combo"]["end"] and e["combo"]["id"] == later_id
                )
            )
            ends = [
                e["combo"]["id"]
                for e in viewer.events
                if e.get("type") == "gift" and e["combo"]["end"]
            ]
            assert ends == [open_id, later_id], "every combo ends exactly once"
            await receiver.wait_for(lambda r: later_id in webhook_ends(r))
            assert webhook_ends(receiver) == [combo_id, new_id, open_id, later_id]
    finally:
        await alice.aclose()
        await carol.aclose()

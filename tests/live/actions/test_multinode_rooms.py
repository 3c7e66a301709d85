"""The room experience across two server processes on one Redis and PostgreSQL:
viewer counts, combos, bans and goals are the cluster's, not a node's."""

from __future__ import annotations

import time

from tests.live.actions.test_room_experience import FAST, room_seqs
from tests.live.launch import welcomed
from tests.live.server import Api, Client, LiveServer

TTL = 1.5
"""Seconds a node's viewer count lives without a heartbeat (short, for the test)."""
NODE_ENV = {**FAST, "LIVE_VIEWERS_TTL_SECONDS": str(TTL)}
"""The settings of both nodes (the ``nodes`` fixture)."""


async def live(server: LiveServer) -> Api:
    api = Api(server, server.token("carol", creator=True))
    assert (await api.post("/v1/rooms", {"title": "two nodes"})).status_code == 201
    return api


async def test_viewer_count_is_the_sum_of_both_nodes(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = await live(a)
    async with (
        Client.open(a, "carol") as on_a,
        Client.open(b, "carol", token=b.token("bob")) as on_b,
    ):
        for client in (on_a, on_b):
            await client.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 2)
        async with Client.open(b, "carol") as third:
            welcome = await third.wait_for(lambda e: e["type"] == "welcome")
            assert welcome["viewers"] == 3
            three = await on_a.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 3)
            for node in (a, b):
                assert (await Api(node, None).get("/v1/rooms/carol")).json()["viewers"] == 3
        # Both nodes' viewers see the third one leave, each at its own pace.
        for client in (on_a, on_b):
            await client.wait_for(
                lambda e: e["type"] == "viewers" and e["count"] == 2 and e["seq"] > three["seq"]
            )
        # The same viewers events, once per room, not once per node.
        counts_a = [(e["seq"], e["count"]) for e in on_a.of_type("viewers")]
        counts_b = [(e["seq"], e["count"]) for e in on_b.of_type("viewers")]
        assert counts_b[-1] == counts_a[-1]
        assert len({seq for seq, _ in counts_a}) == len(counts_a)
        # A node that dies stops counting once its last report expires.
        await b.kill()
        started = time.monotonic()
        await on_a.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 1, timeout=TTL * 4)
        assert time.monotonic() - started < TTL * 3
    await carol.aclose()


async def test_a_combo_ends_once_on_every_node_even_if_its_node_dies(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = await live(a)
    alice = Api(b, b.token("alice"))
    await alice.buy("us_1400", key="p")
    async with welcomed(
        Client.open(a, "carol"),
        Client.open(b, "carol", msgpack_codec=True),
        Client.open(b, "carol", token=b.token("alice")),
    ) as (on_a, on_b, gifter):
        txs = []
        for i in range(4):
            ack = await gifter.command({"type": "send_gift", "id": f"r{i}", "gift": "rose"})
            txs.append(ack["tx"])
        for client in (on_a, on_b):
            end = await client.wait_for(lambda e: e["type"] == "gift" and e["combo"]["end"])
            assert end["combo"] == {"id": txs[0], "count": 4, "end": True}
        ends_a = [g["seq"] for g in on_a.of_type("gift") if g["combo"]["end"]]
        ends_b = [g["seq"] for g in on_b.of_type("gift") if g["combo"]["end"]]
        assert ends_a == ends_b and len(ends_a) == 1, "one end event, the same on both nodes"
        # Node b sends a gift and dies before its combo's window closes: node a's
        # timer ends the combo.
        ack = await gifter.command({"type": "send_gift", "id": "last", "gift": "finger_heart"})
        await on_a.wait_for(lambda e: e.get("tx") == ack["tx"])
        await b.kill()
        end = await on_a.wait_for(
            lambda e: e["type"] == "gift" and e["combo"]["id"] == ack["tx"] and e["combo"]["end"]
        )
        assert end["combo"]["count"] == 1
        seqs = room_seqs(on_a)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await alice.aclose()
    await carol.aclose()


async def test_a_ban_on_one_node_disconnects_on_the_other(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = await live(a)
    async with Client.open(b, "carol", token=b.token("mallory")) as mallory:
        await mallory.wait_for(lambda e: e["type"] == "welcome")
        assert (await carol.post("/v1/rooms/carol/bans", {"user": "mallory"})).status_code == 201
        error = await mallory.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "forbidden"
        assert await mallory.closed() == 1008
    async with Client.open(b, "carol", token=b.token("mallory")) as again:
        assert (await again.wait_for(lambda e: e["type"] == "error"))["code"] == "forbidden"
        assert await again.closed() == 1008
    await carol.aclose()


async def test_goal_and_leaderboard_across_nodes(nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    carol = await live(a)
    response = await carol.client.put("/v1/rooms/carol/goal", json={"target": 60, "title": "t"})
    assert response.status_code == 200
    gifters = [Api(a, a.token("alice")), Api(b, b.token("bob"))]
    for api in gifters:
        await api.buy("us_350", key="p")
    async with Client.open(a, "carol") as on_a, Client.open(b, "carol") as on_b:
        for client in (on_a, on_b):
            await client.wait_for(lambda e: e["type"] == "welcome")
        for n in range(6):
            api = gifters[n % 2]
            await api.post("/v1/rooms/carol/gifts", {"gift": "doughnut"}, key=f"d{n}")
        for client in (on_a, on_b):
            await client.wait_for(lambda e: e["type"] == "goal" and e["progress"] == 90)
            reached = await client.wait_for(lambda e: e["type"] == "goal_reached")
            assert reached["progress"] >= 60
            await client.wait_for(
                lambda e: e["type"] == "leaderboard" and [t["coins"] for t in e["top"]] == [90, 90]
            )
        assert len(on_a.of_type("goal_reached")) == len(on_b.of_type("goal_reached")) == 1
    for api in (carol, *gifters):
        await api.aclose()


async def test_a_combo_of_a_killed_node_is_ended_by_the_other_once(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    a, b = nodes
    carol = await live(a)
    alice = Api(b, b.token("alice"))
    assert (await alice.buy("us_700", key="p1")).status_code in (200, 201)
    # nobody watches the room: no node but b knows of the combo from its events
    first = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r1")
    second = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r2")
    assert first.status_code == second.status_code == 201
    combo_id = first.json()["tx"]
    await b.kill()
    async with Client.open(a, "carol", query="since=0") as viewer:
        end = await viewer.wait_for(
            lambda e: e.get("type") == "gift" and e["combo"]["end"], timeout=15
        )
        assert end["combo"] == {"id": combo_id, "count": 2, "end": True}
        assert (end["tx"], end["count"]) == (second.json()["tx"], 0)
        # a later combo on the live node ends too, and the old one never again
        alice_on_a = Api(a, a.token("alice"))
        third = await alice_on_a.post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="r3")
        await alice_on_a.aclose()
        later_id = third.json()["tx"]
        await viewer.wait_for(
            lambda e: (
                e.get("type") == "gift" and e["combo"] == {"id": later_id, "count": 1, "end": True}
            )
        )
        ends = [
            e["combo"]["id"] for e in viewer.events if e.get("type") == "gift" and e["combo"]["end"]
        ]
        assert ends == [combo_id, later_id]
    await alice.aclose()
    await carol.aclose()


async def test_joins_on_a_node_with_a_share_of_the_room_wait_longer(
    nodes: tuple[LiveServer, LiveServer],
) -> None:
    """Each node announces the joins it saw; its window grows with the share of the
    room it does not hold, so a room spread over N nodes gets no more ``join``
    events than on one. Here node b's first viewer finds 3 on node a: its join is
    announced after four windows (250 ms each), not one."""
    a, b = nodes
    carol = await live(a)
    async with welcomed(
        Client.open(a, "carol"), Client.open(a, "carol"), Client.open(a, "carol")
    ) as on_a:
        for client in on_a:
            await client.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 3)
        async with Client.open(b, "carol", token=b.token("zed")) as zed:
            welcome = await zed.wait_for(lambda e: e["type"] == "welcome")
            assert welcome["viewers"] == 4
            welcomed_at = time.monotonic()
            await on_a[0].wait_for(
                lambda e: e["type"] == "join" and [u["id"] for u in e.get("users", [])] == ["zed"]
            )
            waited = time.monotonic() - welcomed_at
    assert waited >= 0.75, f"announced after {waited:.2f} s: one node's window, not four"
    assert waited < 4
    await carol.aclose()

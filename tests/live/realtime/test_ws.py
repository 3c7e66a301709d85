"""The WebSocket contract over real sockets: handshake, auth, codecs, errors, resume."""

from __future__ import annotations

import asyncio

import msgpack
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live.server import Api, Client, LiveServer


@pytest.fixture
async def room(server: LiveServer) -> str:
    api = Api(server, server.token("carol", creator=True))
    response = await api.post("/v1/rooms", {"id": "carol", "title": "hello"})
    assert response.status_code == 201
    await api.aclose()
    return "carol"


async def test_welcome_first_and_subprotocol_choice(server: LiveServer, room: str) -> None:
    url = f"{server.ws_url}/v1/rooms/{room}/live"
    async with connect(url, subprotocols=["nope", "gift.v1.msgpack", "gift.v1.json"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "gift.v1.msgpack"
        frame = await ws.recv()
        assert isinstance(frame, bytes)
        events = msgpack.unpackb(frame, raw=False)
        assert events[0]["type"] == "welcome" and events[0]["you"] is None
        assert events[0]["room"]["id"] == room and "overlay_key" not in events[0]["room"]
    async with connect(url) as ws:  # no subprotocol offered: JSON
        assert ws.subprotocol is None
        frame = await ws.recv()
        assert isinstance(frame, str)
        assert orjson.loads(frame)[0]["type"] == "welcome"


async def test_guest_watches_but_cannot_act(server: LiveServer, room: str) -> None:
    async with Client.open(server, room) as guest:
        reply = await guest.command({"type": "send_gift", "id": "g1", "gift": "rose"})
        assert reply["type"] == "error" and reply["code"] == "unauthorized"
        assert (await guest.command({"type": "ping", "id": "p1"}))["type"] == "ack"


async def test_bad_token_and_unknown_room_are_refused(server: LiveServer, room: str) -> None:
    forged = server.token("alice")[:-4] + "AAAA"
    async with Client.open(server, room, token=forged) as client:
        error = await client.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "unauthorized"
        assert await client.closed() == 1008
    async with Client.open(server, "nobody") as client:
        error = await client.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "not_found"
        assert await client.closed() == 4004


async def test_bad_command_keeps_connection_malformed_frame_closes(
    server: LiveServer, room: str
) -> None:
    async with Client.open(server, room, token=server.token("alice")) as client:
        reply = await client.command({"type": "teleport", "id": "x1"})
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        reply = await client.command(
            {"type": "send_gift", "id": "x2", "gift": "rose", "count": True}
        )
        assert reply["code"] == "bad_request"
        assert (await client.command({"type": "ping", "id": "x3"}))["type"] == "ack"
        await client.ws.send("{not json")
        error = await client.wait_for(lambda e: e["type"] == "error" and e["id"] is None)
        assert error["code"] == "bad_request"
        assert await client.closed() == 1008


async def test_oversized_frame_closes_1009(server: LiveServer, room: str) -> None:
    url = f"{server.ws_url}/v1/rooms/{room}/live"
    async with connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_rate_limit_then_flood_close(server: LiveServer, room: str) -> None:
    async with Client.open(server, room, token=server.token("alice")) as client:
        for i in range(60):
            await client.send({"type": "ping", "id": f"p{i}"})
        limited = await client.wait_for(
            lambda e: e["type"] == "error" and e["code"] == "rate_limited"
        )
        assert limited["id"].startswith("p")
        assert await client.closed() == 4029


async def test_commands_sent_back_to_back_are_answered_one_at_a_time_in_order(
    server: LiveServer, room: str
) -> None:
    alice = Api(server, server.token("alice"))
    assert (await alice.buy("us_70", key="p1")).status_code == 201
    await alice.aclose()
    async with Client.open(server, room, token=server.token("alice")) as client:
        await client.wait_for(lambda e: e["type"] == "welcome")
        commands: list[dict[str, object]] = [
            {"type": "send_gift", "id": "g1", "gift": "rose"},
            {"type": "ping", "id": "p1"},
            {"type": "send_gift", "id": "g2", "gift": "rose", "count": 2},
            {"type": "nope", "id": "x1"},
            {"type": "chat", "id": "c1", "text": "hi"},
            {"type": "ping", "id": "p2"},
        ]
        for command in commands:  # none waits for the previous one's reply
            await client.send(command)
        await client.reply("p2")
        replies = [e for e in client.events if e["type"] in ("ack", "error")]
        assert [e["id"] for e in replies] == ["g1", "p1", "g2", "x1", "c1", "p2"]
        assert [e["type"] for e in replies] == ["ack", "ack", "ack", "error", "ack", "ack"]
        assert replies[2]["balance"] == {"coins": 67}


async def test_resume_replays_exactly_the_missed_events(server: LiveServer, room: str) -> None:
    alice = Api(server, server.token("alice"))
    await alice.buy("us_350", key="p1")
    async with Client.open(server, room) as viewer:
        welcome = await viewer.wait_for(lambda e: e["type"] == "welcome")
        await alice.post(f"/v1/rooms/{room}/gifts", {"gift": "rose"}, key="a")
        first = await viewer.wait_for(lambda e: e["type"] == "gift")
        assert first["seq"] > welcome["seq"]  # after the room's join and viewers events
    # Offline: three gifts happen.
    txs = []
    for key in ("b", "c", "d"):
        response = await alice.post(f"/v1/rooms/{room}/gifts", {"gift": "rose"}, key=key)
        txs.append(response.json()["tx"])
    async with Client.open(server, room, query=f"since={first['seq']}") as viewer:
        welcome = await viewer.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["resumed"] is True and welcome["seq"] == first["seq"]
        await viewer.wait_for(lambda e: e.get("tx") == txs[-1])
        gifts = [g for g in viewer.of_type("gift") if g["count"] > 0]  # not combo ends
        assert [g["tx"] for g in gifts] == txs
        missed = [e["seq"] for e in viewer.events if e["type"] != "welcome" and "seq" in e]
        assert missed == list(range(first["seq"] + 1, first["seq"] + 1 + len(missed)))
        last_seen = missed[-1]
    # A cursor from the future (say, before a data reset) gets a fresh snapshot.
    async with Client.open(server, room, query="since=999999") as viewer:
        welcome = await viewer.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["resumed"] is False and welcome["seq"] >= last_seen
    await alice.aclose()


async def test_overlay_key(server: LiveServer) -> None:
    api = Api(server, server.token("erin", creator=True))
    room = (await api.post("/v1/rooms", {"title": "overlay test"})).json()
    assert room["id"] == "erin" and len(room["overlay_key"]) >= 20
    async with Client.open(server, "erin", query=f"overlay_key={room['overlay_key']}") as ov:
        welcome = await ov.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["viewers"] == 0
    async with Client.open(server, "erin", query="overlay_key=wrong") as ov:
        assert (await ov.wait_for(lambda e: e["type"] == "error"))["code"] == "unauthorized"
        assert await ov.closed() == 1008
    await api.aclose()


async def test_handshake_without_upgrade_is_http_error(server: LiveServer, room: str) -> None:
    api = Api(server, None)
    response = await api.get(f"/v1/rooms/{room}/live")
    assert response.status_code in (400, 404, 426)
    assert (await api.get("/v1/nothing-here")).json()["error"]["code"] == "not_found"
    await api.aclose()
    with pytest.raises((InvalidStatus, ConnectionClosed, OSError)):
        async with connect(f"{server.ws_url}/nope/live") as ws:
            await asyncio.wait_for(ws.recv(), 5)


async def test_tokens_and_keys_never_logged(tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path)) / "data"
    srv = LiveServer(data_dir=data, env={"LIVE_LOG_LEVEL": "info"})
    await srv.start()
    try:
        token = srv.token("carol", creator=True)
        api = Api(srv, token)
        room = (await api.post("/v1/rooms", {"title": "t"})).json()
        async with Client.open(srv, "carol", token=token) as client:
            await client.wait_for(lambda e: e["type"] == "welcome")
        async with Client.open(srv, "carol", query=f"overlay_key={room['overlay_key']}") as ov:
            await ov.wait_for(lambda e: e["type"] == "welcome")
        await api.get(f"/v1/rooms/carol?access_token={token}")
        await api.aclose()
    finally:
        await srv.stop()
    log = srv.log_path.read_text()
    assert "WebSocket" in log  # access lines are there, but masked
    assert token not in log and room["overlay_key"] not in log
    assert "[redacted]" in log

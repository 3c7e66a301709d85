"""The Python client (``live.client``) against real servers on both engines:
gifts with their acks, typed refusals, exactly-once retry across a restart,
resume with ``since``, close codes that end it, token renewal, msgpack."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from live.auth import issue_token
from live.client import RECONNECT_CODES, LiveError, LiveRoom, token_expiry
from protocol import CloseCode
from tests.live.launch import running
from tests.live.server import SECRET, Api, LiveServer

FAST: dict[str, Any] = {"first_delay": 0.05, "max_delay": 0.4}


def test_reconnect_codes_follow_the_protocol() -> None:
    # 1006 is never sent by a server: the client reports a dropped network with it.
    assert RECONNECT_CODES - {1006} == {int(c) for c in CloseCode if c.reconnect}


def _room(server: LiveServer, room_id: str, **options: Any) -> LiveRoom:
    return LiveRoom(server.url, room_id, **{**FAST, **options})


async def _live_room(server: LiveServer) -> tuple[str, Api, str]:
    """A creator live in a room of their own: (room id, creator's API, overlay key)."""
    name = f"c{uuid.uuid4().hex[:8]}"
    creator = Api(server, server.token(name, creator=True))
    created = (await creator.post("/v1/rooms", {"title": "client test"})).json()
    return name, creator, created["overlay_key"]


async def _viewer(server: LiveServer) -> tuple[str, Api]:
    name = f"v{uuid.uuid4().hex[:8]}"
    token = server.token(name)
    api = Api(server, token)
    assert (await api.buy("us_700", key=f"buy-{name}")).status_code == 201
    return token, api


def _next(room: LiveRoom, kind: str, match: Callable[[Any], bool] = lambda _: True) -> Any:
    """A future of the first ``kind`` event (its first argument) that matches."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def listener(value: Any, *_rest: Any) -> None:
        if not future.done() and match(value):
            future.set_result(value)

    off = room.on(kind, listener)
    future.add_done_callback(lambda _: off())
    return future


async def test_gifts_acks_and_refusals(server: LiveServer) -> None:
    room_id, creator, _ = await _live_room(server)
    token, api = await _viewer(server)
    guest = _room(server, room_id)
    alice = _room(server, room_id, token=token)
    broke = _room(server, room_id, token=server.token("broke"))
    assert (await guest.connect())["you"] is None
    welcome = await alice.connect()
    assert await alice.connect() is welcome  # connected already: the same welcome
    await broke.connect()
    seen = _next(guest, "gift")
    ack = await alice.send_gift("rose", count=3, coins=1)
    assert ack["replayed"] is False
    gift = await asyncio.wait_for(seen, 10)
    assert (gift["tx"], gift["count"]) == (ack["tx"], 3)

    async def code(command: Any) -> str:
        with pytest.raises(LiveError) as refused:
            await command
        return refused.value.code

    assert await code(alice.send_gift("rose", coins=2)) == "price_changed"
    assert await code(broke.send_gift("rose")) == "insufficient_funds"
    assert await code(guest.like()) == "unauthorized"
    assert await code(alice.send("like", {"count": "5"})) == "bad_request"
    assert (await alice.like(4))["total"] >= 4
    for room in (guest, alice, broke):
        await room.close()
    for client in (creator, api):
        await client.aclose()


class _LossyRoom(LiveRoom):
    """Loses every ``ack`` while ``lossy``: as if the server charged a gift and went
    down before its reply arrived."""

    lossy = True

    async def _dispatch(self, event: dict[str, Any]) -> bool:
        if self.lossy and event.get("type") == "ack":
            return True
        return await super()._dispatch(event)


async def test_a_gift_whose_ack_was_lost_in_a_restart_is_charged_once(server: LiveServer) -> None:
    room_id, creator, _ = await _live_room(server)
    token, api = await _viewer(server)
    before = await api.balance()
    watcher = _room(server, room_id)
    sender = _LossyRoom(server.url, room_id, token=token, **FAST)
    await watcher.connect()
    await sender.connect()
    gifts: list[dict[str, Any]] = []
    watcher.on("gift", gifts.append)
    charged = _next(watcher, "gift")
    acked = asyncio.create_task(sender.send_gift("rose", count=2))
    first = await asyncio.wait_for(charged, 10)
    back = _next(watcher, "welcome")
    await server.stop()  # every viewer gets 1012; the first ack, if sent, was lost
    sender.lossy = False
    await server.start()
    ack = await asyncio.wait_for(acked, 20)
    assert ack["replayed"] is True  # already charged: not again
    assert ack["tx"] == first["tx"]
    assert await api.balance() == before - 2
    await asyncio.wait_for(back, 20)
    await sender.ping()
    assert [g["count"] for g in gifts if g["tx"] == first["tx"] and g["count"]] == [2]
    for room in (watcher, sender):
        await room.close()
    for client in (creator, api):
        await client.aclose()


async def test_a_reconnect_resumes_every_seq_once_in_order(server: LiveServer) -> None:
    room_id, creator, _ = await _live_room(server)
    liker = _room(server, room_id, token=server.token("liker"))
    watcher = _room(server, room_id)
    await liker.connect()
    first = await watcher.connect()
    seqs: list[int] = []
    infos: list[dict[str, bool]] = []
    watcher.on("event", lambda e: seqs.append(e["seq"]))
    watcher.on("welcome", lambda _w, info: infos.append(info))
    done = _next(watcher, "like", lambda e: e["total"] == 6)
    for _ in range(3):
        await liker.like()
    watcher.reconnect()
    for _ in range(3):
        await liker.like()
    await asyncio.wait_for(done, 10)
    assert infos == [{"resumed": True, "first": False, "snapshot": False}]
    assert seqs == list(range(first["seq"] + 1, first["seq"] + 1 + len(seqs)))
    await liker.close()
    await watcher.close()
    await creator.aclose()


async def test_no_reconnect_after_the_stream_ended(server: LiveServer) -> None:
    room_id, creator, _ = await _live_room(server)
    token, api = await _viewer(server)
    viewer = _room(server, room_id, token=token)
    await viewer.connect()
    events = [event["type"] async for event in _until_closed(viewer, creator, room_id)]
    # A viewer count of the same tick may follow, nothing else.
    assert [event for event in events if event != "viewers"][-1] == "room_ended"
    assert viewer.final_close == 4010
    with pytest.raises(LiveError) as refused:
        await viewer.send_gift("rose")
    assert refused.value.code == "room_not_live"
    assert viewer.connections == 1
    await viewer.close()
    for client in (creator, api):
        await client.aclose()


async def _until_closed(viewer: LiveRoom, creator: Api, room_id: str) -> Any:
    """The viewer's events while the creator ends the stream."""
    events = viewer.events()
    ending = asyncio.create_task(creator.post(f"/v1/rooms/{room_id}/end"))
    async for event in events:
        yield event
    await ending


async def test_overlays_msgpack_and_a_wrong_key(server: LiveServer) -> None:
    room_id, creator, key = await _live_room(server)
    overlay = _room(server, room_id, overlay_key=key, encoding="msgpack")
    assert "overlay" in await overlay.connect()
    alert = _next(overlay, "gift", lambda e: e.get("test") is True)
    await creator.post(f"/v1/rooms/{room_id}/test-events", {"gift": "rose"})
    assert (await asyncio.wait_for(alert, 10))["sender"]["id"] == "test"
    with pytest.raises(LiveError):
        await overlay.like()
    wrong = _room(server, room_id, overlay_key="wrong")
    with pytest.raises(LiveError) as refused:
        await wrong.connect()
    assert (refused.value.code, refused.value.close_code) == ("unauthorized", 1008)
    assert wrong.connections == 0 and wrong.final_close == 1008
    await overlay.close()
    await creator.aclose()


async def test_tokens_renew_in_place_and_after_4001(tmp_path: Path) -> None:
    env = {"LIVE_EXPIRED_TOKEN": "close", "LIVE_JWT_LEEWAY_SECONDS": "0"}
    server = LiveServer(data_dir=tmp_path / "data", env=env)
    async with running(server):
        room_id, creator, _ = await _live_room(server)
        renewals: list[str] = []

        def fresh() -> str:
            renewals.append("r")
            return server.token("renewer")

        short = _short_token(server, "renewer", seconds=6)
        viewer = _room(server, room_id, token=short, refresh_token=fresh, refresh_before=4.0)
        await viewer.connect()
        first_exp = token_expiry(short) or 0.0
        await asyncio.sleep(first_exp + 0.5 - time.time())  # past its exp: renewed with `auth`
        assert (await viewer.ping())["type"] == "ack"
        assert (renewals, viewer.connections) == (["r"], 1)
        await viewer.close()

        stale = _room(server, room_id, token=_short_token(server, "stale", seconds=1))
        await stale.connect()
        closed = await asyncio.wait_for(_next(stale, "closed"), 10)
        assert closed["code"] == 4001  # no refresh hook: final

        coming = _room(
            server,
            room_id,
            token=_short_token(server, "fresh", seconds=1),
            refresh_token=lambda: server.token("fresh"),
            refresh_before=-60.0,  # never in place: let the server close with 4001
        )
        await coming.connect()
        back = await asyncio.wait_for(_next(coming, "welcome"), 10)
        assert back["resumed"] is True
        assert coming.connections == 2
        assert (await coming.ping())["type"] == "ack"
        await coming.close()
        await creator.aclose()


def _short_token(server: LiveServer, user: str, *, seconds: int) -> str:
    return issue_token(secret=SECRET, user_id=user, adult=True, ttl_seconds=seconds)


async def test_coming_back_after_more_than_the_history_is_a_snapshot(tmp_path: Path) -> None:
    server = LiveServer(data_dir=tmp_path / "data", env={"LIVE_HISTORY_SIZE": "2"})
    async with running(server):
        room_id, creator, _ = await _live_room(server)
        liker = _room(server, room_id, token=server.token("snap"))
        watcher = _room(server, room_id)
        await liker.connect()
        await watcher.connect()
        away = watcher.last_seq
        assert away is not None
        await watcher.close()  # away for a while: it keeps its last seq
        for _ in range(5):
            await liker.like()
        snapshot = _next(watcher, "snapshot")
        infos: list[dict[str, bool]] = []
        watcher.on("welcome", lambda _w, info: infos.append(info))
        watcher.open()
        assert (await asyncio.wait_for(snapshot, 10))["resumed"] is False
        assert infos == [{"resumed": False, "first": False, "snapshot": True}]
        assert (watcher.last_seq or 0) >= away + 5
        await liker.close()
        await watcher.close()
        await creator.aclose()

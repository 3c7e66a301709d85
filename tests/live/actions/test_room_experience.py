"""The room experience over real sockets, on every engine: combos, leaderboards,
goals, viewers, joins, likes, chat and moderation, the stream's lifecycle,
overlays and resume."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.launch import on_engine, welcomed
from tests.live.server import Api, Client, LiveServer
from tests.services import Services

COMBO_WINDOW = 0.3
FAST = {
    "LIVE_COMBO_WINDOW_MS": str(int(COMBO_WINDOW * 1000)),
    "LIVE_LEADERBOARD_INTERVAL_MS": "200",
    "LIVE_VIEWERS_INTERVAL_MS": "200",
    "LIVE_JOIN_INTERVAL_MS": "250",
    "LIVE_CHAT_RATE_MESSAGES": "3",
    "LIVE_CHAT_RATE_SECONDS": "60",
}


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", FAST) as srv:
        yield srv


def viewer_alice_bob(server: LiveServer) -> contextlib.AbstractAsyncContextManager[list[Client]]:
    """A guest, alice and bob watching carol's room, each welcomed."""
    return welcomed(
        Client.open(server, "carol"),
        Client.open(server, "carol", token=server.token("alice")),
        Client.open(server, "carol", token=server.token("bob")),
    )


@pytest.fixture
async def carol(server: LiveServer) -> AsyncIterator[Api]:
    """The creator, live in room ``carol``."""
    api = Api(server, server.token("carol", creator=True))
    response = await api.post("/v1/rooms", {"title": "carol live"})
    assert response.status_code == 201, response.text
    yield api
    await api.aclose()


@pytest.fixture
async def funded(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    """alice and bob, with coins."""
    apis = {name: Api(server, server.token(name)) for name in ("alice", "bob")}
    for name, api in apis.items():
        assert (await api.buy("us_7000", key=f"buy-{name}")).status_code == 201
    yield apis
    for api in apis.values():
        await api.aclose()


def welcome_of(client: Client) -> dict[str, Any]:
    return next(e for e in client.events if e["type"] == "welcome")


def room_seqs(client: Client) -> list[int]:
    return [e["seq"] for e in client.events if e["type"] != "welcome" and "seq" in e]


def sent(client: Client) -> list[dict[str, Any]]:
    """Gift events of gifts sent (a combo's final event has count 0)."""
    return [g for g in client.of_type("gift") if g["count"] > 0]


async def ledger_spent(api: Api) -> int:
    """Coins the user spent on gifts, from their ledger transactions."""
    body = (await api.get("/v1/me/transactions?limit=200")).json()
    return sum(
        -p["amount"]
        for tx in body["transactions"]
        if tx["kind"] == "gift"
        for p in tx["postings"]
        if p["account"].endswith(":coins") and p["amount"] < 0
    )


# --------------------------------------------------------------------------- #
# combos
# --------------------------------------------------------------------------- #


async def test_combo_counts_up_and_ends_on_time_once(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    key = (await carol.post("/v1/rooms", {"title": "carol live"})).json()["overlay_key"]
    async with welcomed(
        Client.open(server, "carol"),
        Client.open(server, "carol", query=f"overlay_key={key}", msgpack_codec=True),
        Client.open(server, "carol", token=server.token("alice")),
    ) as (viewer, overlay, alice):
        txs = []
        for i, count in enumerate((1, 2, 5)):
            ack = await alice.command(
                {"type": "send_gift", "id": f"r{i}", "gift": "rose", "count": count}
            )
            assert ack["type"] == "ack", ack
            txs.append(ack["tx"])
        last_ack = time.monotonic()
        end = await viewer.wait_for(
            lambda e: e["type"] == "gift" and e["combo"]["end"], timeout=COMBO_WINDOW + 5
        )
        waited = time.monotonic() - last_ack
        assert COMBO_WINDOW - 0.05 <= waited <= COMBO_WINDOW + 1.5, waited
        streak = [g for g in viewer.of_type("gift") if not g["combo"]["end"]]
        assert [g["tx"] for g in streak] == txs
        assert [g["combo"] for g in streak] == [
            {"id": txs[0], "count": 1, "end": False},
            {"id": txs[0], "count": 3, "end": False},
            {"id": txs[0], "count": 8, "end": False},
        ]
        assert [g["count"] for g in streak] == [1, 2, 5]
        assert end["combo"] == {"id": txs[0], "count": 8, "end": True}
        assert (end["count"], end["diamonds"], end["tx"]) == (0, 0, txs[-1])
        assert end["sender"]["id"] == "alice" and end["gift"]["id"] == "rose"
        # A gift that is not streakable is a combo of its own, ended at once.
        ack = await alice.command({"type": "send_gift", "id": "g", "gift": "galaxy"})
        galaxy = await viewer.wait_for(lambda e: e.get("tx") == ack["tx"])
        assert galaxy["combo"] == {"id": ack["tx"], "count": 1, "end": True}
        await overlay.wait_for(lambda e: e.get("tx") == ack["tx"])
        ends = [
            g for g in viewer.of_type("gift") if g["combo"]["id"] == txs[0] and g["combo"]["end"]
        ]
        assert len(ends) == 1, "a combo ends exactly once"
        # Viewers never see overlay-only detail; the overlay sees it on every gift.
        assert all("overlay" not in e for e in viewer.events)
        overlay_gifts = overlay.of_type("gift")
        assert [g["seq"] for g in overlay_gifts] == [g["seq"] for g in viewer.of_type("gift")]
        # (a gift's diamonds are rounded up: 1 + 1 + 3 for roses of 1, 2 and 5 coins)
        assert overlay_gifts[2]["overlay"]["combo"] == {"coins": 8, "diamonds": 5}
        assert overlay_gifts[3]["overlay"]["combo"] == {"coins": 8, "diamonds": 5}
        assert overlay_gifts[-1]["overlay"]["stream"] == {
            "gifts": 9,
            "coins": 1008,
            "diamonds": 505,
        }


# --------------------------------------------------------------------------- #
# leaderboards and goals
# --------------------------------------------------------------------------- #


async def test_leaderboard_supporters_and_goal_equal_the_ledger(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    alice, bob = funded["alice"], funded["bob"]
    assert (await alice.post("/v1/rooms/carol/gifts", {"gift": "galaxy"}, key="a0")).is_success
    goal = await carol.client.put("/v1/rooms/carol/goal", json={"target": 700, "title": "New mic"})
    assert goal.status_code == 200, goal.text
    assert goal.json()["goal"] == {
        "target": 700,
        "progress": 0,
        "title": "New mic",
        "reached": False,
    }
    assert (
        await alice.client.put("/v1/rooms/carol/goal", json={"target": 1, "title": "x"})
    ).status_code == 403
    async with Client.open(server, "carol") as viewer:
        welcome = await viewer.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["goal"]["target"] == 700 and welcome["leaderboard"][0]["coins"] == 1000
        gifts = [
            (bob, "sunglasses", 3),  # 597 coins, 299 diamonds
            (alice, "confetti", 2),  # 200 coins, 100 diamonds
            (bob, "galaxy", 1),  # 1000 coins, 500 diamonds: the goal is reached
            (alice, "rose", 7),  # 7 coins, 4 diamonds
        ]
        for n, (api, gift, count) in enumerate(gifts):
            response = await api.post(
                "/v1/rooms/carol/gifts", {"gift": gift, "count": count}, key=f"k{n}"
            )
            assert response.status_code == 201, response.text
        spent = {"alice": await ledger_spent(alice), "bob": await ledger_spent(bob)}
        assert spent == {"alice": 1207, "bob": 1597}
        expected = [
            {
                "user": {
                    "id": "bob",
                    "username": "bob",
                    "display_name": "Bob",
                    "avatar": "https://example.test/bob.png",
                },
                "coins": 1597,
            },
            {
                "user": {
                    "id": "alice",
                    "username": "alice",
                    "display_name": "Alice",
                    "avatar": "https://example.test/alice.png",
                },
                "coins": 1207,
            },
        ]
        board = await viewer.wait_for(lambda e: e["type"] == "leaderboard" and e["top"] == expected)
        reached = await viewer.wait_for(lambda e: e["type"] == "goal_reached")
        assert reached["target"] == 700 and reached["title"] == "New mic"
        final = await viewer.wait_for(lambda e: e["type"] == "goal" and e["progress"] == 903)
        assert final["reached"] is True and board["seq"] > welcome["seq"]
        assert len(viewer.of_type("goal_reached")) == 1
        # throttled: far fewer leaderboard events than gifts would give one each
        assert len(viewer.of_type("leaderboard")) <= len(gifts)
    http = (await alice.get("/v1/rooms/carol/leaderboard")).json()["top"]
    assert http == expected
    for period in ("day", "all"):
        top = (await alice.get(f"/v1/creators/carol/supporters?period={period}")).json()["top"]
        assert top == expected
    assert (await alice.get("/v1/creators/carol/supporters?period=week")).status_code == 400
    # the goal counts the diamonds earned since it was set; the stream all of them
    diamonds = (await carol.get("/v1/me/wallet")).json()["diamonds"]
    state = (await alice.get("/v1/rooms/carol")).json()
    assert state["goal"]["progress"] == diamonds - 500 == 903
    assert (state["summary"]["diamonds"], state["summary"]["coins"]) == (diamonds, 2804)
    assert state["summary"]["gifts"] == 1 + 3 + 2 + 1 + 7
    assert state["summary"]["top_gifters"] == expected


# --------------------------------------------------------------------------- #
# viewers, joins and likes
# --------------------------------------------------------------------------- #


async def test_viewer_count_and_joins(server: LiveServer, carol: Api) -> None:
    key = (await carol.post("/v1/rooms", {"title": "carol live"})).json()["overlay_key"]
    async with Client.open(server, "carol", token=server.token("zoe")) as zoe:
        await zoe.wait_for(
            lambda e: e["type"] == "join" and e.get("users", [{}])[0].get("id") == "zoe"
        )
        await zoe.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 1)
        async with Client.open(server, "carol", query=f"overlay_key={key}") as overlay:
            welcome = await overlay.wait_for(lambda e: e["type"] == "welcome")
            assert welcome["viewers"] == 1  # overlays are not viewers
            assert welcome["overlay"]["stream"]["gifts"] == 0
            async with contextlib.AsyncExitStack() as stack:
                crowd = await asyncio.gather(  # a crowd of guests, at once
                    *(stack.enter_async_context(Client.open(server, "carol")) for _ in range(12))
                )
                for client in crowd:
                    welcome = await client.wait_for(lambda e: e["type"] == "welcome")
                    assert welcome["resumed"] is False
                await zoe.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 13)

                def crowd_joins() -> list[dict[str, Any]]:
                    return [e for e in zoe.of_type("join") if "count" in e]

                await zoe.wait_for(lambda e: sum(j["count"] for j in crowd_joins()) >= 12)
                joins = crowd_joins()
                assert sum(e["count"] for e in joins) == 12
                assert len(joins) < 12, "a crowd is announced in a few events"
                state = (await carol.get("/v1/rooms/carol")).json()
                assert state["viewers"] == 13
            await zoe.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 1)
            assert not overlay.of_type("error")
    assert (await carol.get("/v1/rooms/carol")).json()["summary"]["peak_viewers"] == 13


async def test_likes_are_aggregated_with_the_room_total(server: LiveServer, carol: Api) -> None:
    async with viewer_alice_bob(server) as (viewer, alice, bob):
        for i in range(6):
            await alice.send({"type": "like", "id": f"a{i}", "count": 5})
            await bob.send({"type": "like", "id": f"b{i}", "count": 2})
        acks = [await alice.reply(f"a{i}") for i in range(6)] + [
            await bob.reply(f"b{i}") for i in range(6)
        ]
        assert all(a["type"] == "ack" for a in acks), acks
        await viewer.wait_for(lambda e: e["type"] == "like" and e["total"] == 42)
        likes = viewer.of_type("like")
        assert sum(e["count"] for e in likes) == 42
        assert [e["total"] for e in likes] == sorted(e["total"] for e in likes)
        assert len(likes) < 12, "taps within one tick are one event per sender"
        assert max(a["total"] for a in acks) == 42
        guest = await viewer.command({"type": "like", "id": "g"})
        assert guest["code"] == "unauthorized"
    assert (await carol.get("/v1/rooms/carol")).json()["summary"]["likes"] == 42


# --------------------------------------------------------------------------- #
# chat and moderation
# --------------------------------------------------------------------------- #


async def test_chat_limits_mutes_and_deleted_messages(server: LiveServer, carol: Api) -> None:
    async with viewer_alice_bob(server) as (viewer, alice, bob):
        too_long = await alice.command({"type": "chat", "id": "x", "text": "a" * 151})
        assert too_long["code"] == "bad_request"
        for i in range(3):
            assert (await alice.command({"type": "chat", "id": f"c{i}", "text": f"hi {i}"}))[
                "type"
            ] == "ack"
        limited = await alice.command({"type": "chat", "id": "c3", "text": "one more"})
        assert limited["code"] == "rate_limited", limited
        await viewer.wait_for(lambda e: e.get("id") == "c2")
        assert [e["text"] for e in viewer.of_type("chat")] == ["hi 0", "hi 1", "hi 2"]

        mute = await carol.post("/v1/rooms/carol/mutes", {"user": "bob", "seconds": 600})
        assert mute.status_code == 201 and mute.json()["until"] is not None
        muted = await bob.command({"type": "chat", "id": "m1", "text": "let me talk"})
        assert (muted["code"], muted["message"]) == ("forbidden", "you are muted in this room")
        mutes = (await carol.get("/v1/rooms/carol/mutes")).json()["mutes"]
        assert [m["user"] for m in mutes] == ["bob"]
        assert (await carol.client.delete("/v1/rooms/carol/mutes/bob")).status_code == 204
        assert (await carol.client.delete("/v1/rooms/carol/mutes/bob")).status_code == 404
        assert (await bob.command({"type": "chat", "id": "m2", "text": "thanks"}))["type"] == "ack"

        deleted = await carol.client.delete("/v1/rooms/carol/chat/c1?user=alice")
        assert deleted.status_code == 204
        gone = await viewer.wait_for(lambda e: e["type"] == "chat_deleted")
        assert (gone["id"], gone["user"]) == ("c1", "alice")

        outsider = Api(server, server.token("mallory"))
        assert (await outsider.post("/v1/rooms/carol/mutes", {"user": "bob"})).status_code == 403
        assert (
            await outsider.client.delete("/v1/rooms/carol/chat/c2?user=alice")
        ).status_code == 403
        assert (await carol.client.delete("/v1/rooms/carol/chat/c2")).status_code == 400
        await outsider.aclose()


async def test_banned_user_is_disconnected_and_cannot_rejoin(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    alice = server.token("alice")
    async with welcomed(
        Client.open(server, "carol", token=alice),
        Client.open(server, "carol", token=alice, msgpack_codec=True),
        Client.open(server, "carol", token=server.token("bob")),
    ) as (first, second, bob):
        ban = await carol.post("/v1/rooms/carol/bans", {"user": "alice"})
        assert ban.status_code == 201, ban.text
        for client in (first, second):
            error = await client.wait_for(lambda e: e["type"] == "error")
            assert (error["code"], error["id"]) == ("forbidden", None)
            assert await client.closed() == 1008
        assert (await bob.command({"type": "ping", "id": "p"}))["type"] == "ack"
    async with Client.open(server, "carol", token=alice) as again:
        error = await again.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "forbidden" and "banned" in error["message"]
        assert await again.closed() == 1008
        assert not again.of_type("welcome")
    # Nor can they gift over HTTP: refused before any charge.
    before = await funded["alice"].balance()
    refused = await funded["alice"].post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="b1")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert await funded["alice"].balance() == before
    bans = (await carol.get("/v1/rooms/carol/bans")).json()["bans"]
    assert [(b["user"], b["by"], b["until"]) for b in bans] == [("alice", "carol", None)]
    assert (await carol.post("/v1/rooms/carol/bans", {"user": "carol"})).status_code == 400
    assert (await carol.client.delete("/v1/rooms/carol/bans/alice")).status_code == 204
    async with Client.open(server, "carol", token=alice) as back:
        assert (await back.wait_for(lambda e: e["type"] == "welcome"))["you"]["id"] == "alice"


# --------------------------------------------------------------------------- #
# the stream's lifecycle
# --------------------------------------------------------------------------- #


async def test_end_closes_viewers_and_the_summary_stays(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    alice = funded["alice"]
    async with welcomed(
        Client.open(server, "carol"),
        Client.open(server, "carol", token=server.token("bob")),
        Client.open(server, "carol", token=server.token("alice")),
    ) as (v1, v2, gifter):
        await v1.wait_for(lambda e: e["type"] == "viewers" and e["count"] == 3)
        await alice.post("/v1/rooms/carol/gifts", {"gift": "perfume", "count": 2}, key="p")
        ack = await gifter.command({"type": "send_gift", "id": "r", "gift": "rose"})
        await v1.wait_for(lambda e: e.get("tx") == ack["tx"])
        assert (await carol.post("/v1/rooms/carol/end")).status_code == 200
        for client in (v1, v2, gifter):
            await client.wait_for(lambda e: e["type"] == "room_ended")
            assert await client.closed() == 4010
        # The open rose combo ended with the stream, before room_ended.
        kinds = [(e["type"], e.get("combo", {}).get("end")) for e in v1.events]
        assert kinds.index(("gift", True)) < kinds.index(("room_ended", None))
    state = (await alice.get("/v1/rooms/carol")).json()
    summary = state["summary"]
    assert state["room"]["live"] is False
    assert summary["ended_at"] >= summary["started_at"] > 0
    assert summary["duration_ms"] == summary["ended_at"] - summary["started_at"] > 0
    assert (summary["gifts"], summary["coins"], summary["diamonds"]) == (3, 41, 21)
    assert summary["peak_viewers"] == 3
    assert [t["user"]["id"] for t in summary["top_gifters"]] == ["alice"]
    assert summary["coins"] == await ledger_spent(alice)


# --------------------------------------------------------------------------- #
# overlays
# --------------------------------------------------------------------------- #


async def test_overlay_test_events_and_key_rotation(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    key = (await carol.post("/v1/rooms", {"title": "carol live"})).json()["overlay_key"]
    async with welcomed(
        Client.open(server, "carol", query=f"overlay_key={key}"),
        Client.open(server, "carol"),
    ) as (overlay, viewer):
        before = (await carol.get("/v1/me/transactions")).json()["transactions"]
        response = await carol.post("/v1/rooms/carol/test-events", {"gift": "lion", "count": 2})
        assert response.status_code == 202, response.text
        test = await overlay.wait_for(lambda e: e.get("test") is True)
        assert test["type"] == "gift" and test["gift"]["id"] == "lion" and test["count"] == 2
        assert test["combo"]["end"] is True and test["diamonds"] == 29_999
        assert test["sender"]["id"] == "test" and "seq" not in test
        assert test["overlay"]["combo"] == {"coins": 59_998, "diamonds": 29_999}
        # No money moved, and viewers saw nothing of it.
        assert (await carol.get("/v1/me/transactions")).json()["transactions"] == before
        assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 0
        real = await funded["alice"].post("/v1/rooms/carol/gifts", {"gift": "galaxy"}, key="g")
        await viewer.wait_for(lambda e: e.get("tx") == real.json()["tx"])
        assert all(not e.get("test") for e in viewer.events)
        not_mine = await funded["alice"].post("/v1/rooms/carol/test-events", {})
        assert not_mine.status_code == 403

        rotated = await carol.post("/v1/rooms/carol/overlay-key")
        assert rotated.status_code == 200
        new_key = rotated.json()["overlay_key"]
        assert new_key != key
        error = await overlay.wait_for(lambda e: e["type"] == "error")
        assert error["code"] == "unauthorized"
        assert await overlay.closed() == 1008
        assert (await funded["bob"].post("/v1/rooms/carol/overlay-key")).status_code == 403
    async with Client.open(server, "carol", query=f"overlay_key={key}") as old:
        assert (await old.wait_for(lambda e: e["type"] == "error"))["code"] == "unauthorized"
    async with Client.open(server, "carol", query=f"overlay_key={new_key}") as new:
        welcome = await new.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["overlay"]["stream"]["diamonds"] == 500


# --------------------------------------------------------------------------- #
# resume
# --------------------------------------------------------------------------- #


async def test_resume_after_a_drop_during_a_gift_burst(
    server: LiveServer, carol: Api, funded: dict[str, Api]
) -> None:
    alice, bob = funded["alice"], funded["bob"]
    burst = 120
    done: list[str] = []

    async def gifts() -> None:
        async def one(n: int) -> None:
            api = alice if n % 2 else bob
            gift = ("rose", "finger_heart", "confetti")[n % 3]
            response = await api.post("/v1/rooms/carol/gifts", {"gift": gift}, key=f"b{n}")
            assert response.status_code == 201, response.text
            done.append(response.json()["tx"])

        for start in range(0, burst, 10):
            await asyncio.gather(*(one(n) for n in range(start, start + 10)))

    async with Client.open(server, "carol") as viewer:
        await viewer.wait_for(lambda e: e["type"] == "welcome")
        sending = asyncio.create_task(gifts())
        await viewer.wait_for(lambda e: e["type"] == "gift", timeout=20)
    # dropped mid-burst
    first = room_seqs(viewer)
    assert first == list(range(first[0], first[0] + len(first)))
    since = first[-1]
    async with Client.open(server, "carol", query=f"since={since}") as again:
        welcome = await again.wait_for(lambda e: e["type"] == "welcome")
        assert welcome["resumed"] is True and welcome["seq"] == since
        await sending
        txs = set(done)
        assert len(txs) == burst

        def all_seen() -> bool:
            return txs <= {g["tx"] for g in sent(again)} | {g["tx"] for g in sent(viewer)}

        await again.wait_for(lambda e: all_seen())
        second = room_seqs(again)
    assert second == list(range(since + 1, since + 1 + len(second))), "every missed seq, once"
    assert not set(first) & set(second)
    seen = [g["tx"] for g in sent(viewer)] + [g["tx"] for g in sent(again)]
    assert sorted(seen) == sorted(txs), "every gift exactly once"


async def test_resume_outside_the_window_gets_a_snapshot(
    engine_services: Services | None, tmp_path: Path
) -> None:
    env = {**FAST, "LIVE_HISTORY_SIZE": "5"}
    async with on_engine(engine_services, tmp_path / "data", env) as srv:
        carol = Api(srv, srv.token("carol", creator=True))
        await carol.post("/v1/rooms", {"title": "t"})
        alice = Api(srv, srv.token("alice"))
        await alice.buy("us_1400", key="p")
        for n in range(12):
            await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key=f"k{n}")
        async with Client.open(srv, "carol", query="since=1") as late:
            welcome = await late.wait_for(lambda e: e["type"] == "welcome")
            assert welcome["resumed"] is False and welcome["seq"] >= 12
            assert welcome["leaderboard"][0]["coins"] == 1200
        await carol.aclose()
        await alice.aclose()

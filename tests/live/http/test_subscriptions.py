"""Event subscriptions end to end, on each engine: a real server, a real
receiver on a loopback port, signed deliveries in order, retries, revocation,
restarts, and the refusals (challenge, SSRF)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.processes import free_port
from tests.live.http.test_catalog import run_live
from tests.live.launch import on_engine
from tests.live.receiver import Receiver, receiving
from tests.live.server import Api, Client, LiveServer
from tests.services import Services

BASE = 0.3
"""Seconds before the first retry (doubling after)."""
ENV = {
    "LIVE_SUBSCRIPTION_ALLOW_LOOPBACK": "1",
    "LIVE_SUBSCRIPTION_RETRY_BASE_SECONDS": str(BASE),
    "LIVE_SUBSCRIPTION_RETRY_MAX_SECONDS": "1",
    "LIVE_SUBSCRIPTION_TIMEOUT_SECONDS": "2",
    "LIVE_COMBO_WINDOW_MS": "300",
}


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", ENV) as srv:
        yield srv


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


@contextlib.asynccontextmanager
async def creator_and_fan(server: LiveServer) -> AsyncIterator[tuple[Api, Api]]:
    carol = Api(server, server.token("carol", creator=True))
    alice = Api(server, server.token("alice"))
    try:
        assert (await carol.post("/v1/rooms", {"title": "hooks"})).status_code == 201
        assert (await alice.buy("us_700", key="buy-1")).status_code in (200, 201)
        yield carol, alice
    finally:
        await carol.aclose()
        await alice.aclose()


async def subscribe(api: Api, receiver: Receiver, types: list[str]) -> tuple[str, str]:
    response = await api.post(
        "/v1/subscriptions", {"room_id": "carol", "types": types, "callback": receiver.url}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["subscription"]["id"], body["secret"]


def gifts(receiver: Receiver) -> list[dict[str, Any]]:
    return [n for n in receiver.notifications() if n["type"] == "gift"]


async def test_signed_gifts_in_order_with_test_events(
    server: LiveServer, receiver: Receiver
) -> None:
    async with creator_and_fan(server) as (carol, alice):
        sub_id, secret = await subscribe(carol, receiver, ["gift", "stream_ended"])
        challenge = receiver.accepted[0]
        assert challenge.kind == "challenge" and challenge.signed_with(secret)
        txs = []
        for n, gift in enumerate(["rose", "perfume", "rose", "doughnut"]):
            response = await alice.post("/v1/rooms/carol/gifts", {"gift": gift}, key=f"g{n}")
            assert response.status_code == 201, response.text
            txs.append(response.json()["tx"])
        balance = await alice.balance()
        test = await carol.post("/v1/rooms/carol/test-events", {"gift": "lion"})
        assert test.status_code == 202
        await carol.post("/v1/rooms/carol/end")
        await receiver.wait_for(
            lambda r: any(n["type"] == "stream_ended" for n in r.notifications())
        )
        notes = receiver.notifications()
        hits = [n["event"]["tx"] for n in gifts(receiver) if n["event"]["count"] > 0]
        real = [tx for tx in hits if not tx.startswith("test")]
        assert real == txs  # in order, each once
        assert len({m.headers["live-message-id"] for m in receiver.accepted}) == len(
            receiver.accepted
        )
        assert all(m.signed_with(secret) for m in receiver.accepted)
        assert {n["subscription_id"] for n in notes} == {sub_id}
        # every combo of a streakable gift ended, and the stream end came last
        assert any(n["event"]["combo"]["end"] and n["event"]["count"] == 0 for n in gifts(receiver))
        assert notes[-1]["type"] == "stream_ended"
        # the overlay test event reached the subscription, flagged, and cost nothing
        tests = [n for n in notes if n["test"]]
        assert [n["event"]["gift"]["id"] for n in tests] == ["lion"]
        assert not any(n["test"] for n in notes if n not in tests)
        assert await alice.balance() == balance
        # the receiver has the last message before the server hears its answer
        await drained(carol, sub_id)
        listed = (await carol.get("/v1/subscriptions")).json()["subscriptions"]
        assert [(s["id"], s["status"], s["pending"]) for s in listed] == [(sub_id, "enabled", 0)]
        assert "secret" not in listed[0]


async def test_retries_back_off_then_deliver_in_order(
    server: LiveServer, receiver: Receiver
) -> None:
    async with creator_and_fan(server) as (carol, alice):
        sub_id, _ = await subscribe(carol, receiver, ["gift"])
        receiver.fail = 3
        for n in range(3):
            body = {"gift": "confetti"}
            assert (await alice.post("/v1/rooms/carol/gifts", body, key=f"r{n}")).status_code == 201
        await receiver.wait_for(lambda r: len(gifts(r)) >= 3)
        first = receiver.attempts[0].headers["live-message-id"]
        # the first message was tried 4 times, waiting longer each time, before any other
        ids = [m.headers["live-message-id"] for m in receiver.attempts]
        assert ids[:4] == [first] * 4
        gaps = [
            b.at - a.at for a, b in zip(receiver.attempts[:4], receiver.attempts[1:4], strict=False)
        ]
        assert gaps[0] >= BASE * 0.9
        assert gaps[1] >= BASE * 2 * 0.9
        assert gaps[2] >= 1.0 * 0.9  # capped at the maximum
        assert all(gap < 1.1 + 1.0 for gap in gaps)
        assert next(n["id"] for n in gifts(receiver)) == first
        view = await drained(carol, sub_id)
        assert view["failing_since"] is None


async def test_pause_resume_rotate_delete(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, alice):
        sub_id, secret = await subscribe(carol, receiver, ["gift"])
        paused = await carol.post(f"/v1/subscriptions/{sub_id}/pause")
        assert paused.json()["subscription"]["status"] == "paused"
        async with receiving() as witness:  # sees when the gift's event was handed out
            await subscribe(carol, witness, ["gift"])
            await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="p1")
            await witness.wait_for(lambda r: len(gifts(r)) >= 1)
        assert (await carol.post(f"/v1/subscriptions/{sub_id}/resume")).status_code == 200
        rotated = (await carol.post(f"/v1/subscriptions/{sub_id}/secret")).json()["secret"]
        assert rotated != secret
        await alice.post("/v1/rooms/carol/gifts", {"gift": "sunglasses"}, key="p2")
        await receiver.wait_for(lambda r: len(gifts(r)) >= 1)
        # nothing queued while paused; the new secret signs what follows
        assert [n["event"]["gift"]["id"] for n in gifts(receiver)] == ["sunglasses"]
        assert receiver.accepted[-1].signed_with(rotated)
        assert not receiver.accepted[-1].signed_with(secret)
        test = await carol.post(f"/v1/subscriptions/{sub_id}/test", {"type": "chat"})
        assert test.status_code == 202
        await receiver.wait_for(lambda r: r.notifications()[-1]["type"] == "chat")
        assert receiver.notifications()[-1]["test"] is True
        other = Api(server, server.token("dave", creator=True))
        assert (await other.get(f"/v1/subscriptions/{sub_id}")).status_code == 404
        assert (await other.client.delete(f"/v1/subscriptions/{sub_id}")).status_code == 404
        await other.aclose()
        assert (await carol.client.delete(f"/v1/subscriptions/{sub_id}")).status_code == 204
        remaining = (await carol.get("/v1/subscriptions")).json()["subscriptions"]
        assert sub_id not in [s["id"] for s in remaining] and len(remaining) == 1


async def test_failing_too_long_disables_with_a_revocation(
    engine_services: Services | None, tmp_path: Path, receiver: Receiver
) -> None:
    env = {**ENV, "LIVE_SUBSCRIPTION_DISABLE_AFTER_SECONDS": "1.5"}
    async with (
        on_engine(engine_services, tmp_path / "data", env) as server,
        creator_and_fan(server) as (carol, alice),
        contextlib.AsyncExitStack() as stack,
    ):
        sub_id, secret = await subscribe(carol, receiver, ["gift"])
        receiver.fail = 1_000
        me = await stack.enter_async_context(
            Client.open(server, "carol", token=server.token("carol", creator=True))
        )
        await me.wait_for(lambda e: e["type"] == "welcome")
        await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="d1")
        await receiver.wait_for(lambda r: any(m.kind == "revocation" for m in r.accepted))
        told = await me.wait_for(lambda e: e["type"] == "subscription_revoked")
        assert told["subscription"]["id"] == sub_id
        revocation = next(m for m in receiver.accepted if m.kind == "revocation")
        assert revocation.signed_with(secret)
        assert revocation.json["subscription"]["status"] == "disabled"
        view = (await carol.get(f"/v1/subscriptions/{sub_id}")).json()["subscription"]
        assert view["status"] == "disabled" and view["pending"] == 0
        assert "500" in view["disabled_reason"]
        attempts = len(receiver.attempts)
        # a disabled subscription queues nothing (another one sees when the event
        # was handed out); resumed, it delivers again
        witness = await stack.enter_async_context(receiving())
        await subscribe(carol, witness, ["gift"])
        await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="d2")
        await witness.wait_for(lambda r: len(gifts(r)) >= 1)
        receiver.fail = 0
        assert (await carol.post(f"/v1/subscriptions/{sub_id}/resume")).status_code == 200
        await alice.post("/v1/rooms/carol/gifts", {"gift": "sunglasses"}, key="d3")
        await receiver.wait_for(lambda r: len(gifts(r)) >= 1)
        assert [n["event"]["gift"]["id"] for n in gifts(receiver)] == ["sunglasses"]
        assert len(receiver.attempts) == attempts + 1


async def test_queued_deliveries_survive_a_restart(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, alice):
        sub_id, _ = await subscribe(carol, receiver, ["gift"])
        receiver.fail = 1_000
        txs = []
        for n in range(3):
            response = await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key=f"s{n}")
            txs.append(response.json()["tx"])
        await receiver.wait_for(lambda r: len(r.attempts) >= 1)
        await server.stop()
        receiver.fail = 0
        await server.start()
        await receiver.wait_for(lambda r: len(gifts(r)) >= 3)
        assert [n["event"]["tx"] for n in gifts(receiver)] == txs
        await drained(carol, sub_id)


@pytest.mark.parametrize(
    ("receiver_options", "words"),
    [({"answer_challenge": False}, "challenge"), ({"redirect": True}, "redirect")],
)
async def test_a_failed_challenge_refuses_the_subscription(
    server: LiveServer, receiver_options: dict[str, bool], words: str
) -> None:
    async with creator_and_fan(server) as (carol, _), receiving(**receiver_options) as bad:
        response = await carol.post(
            "/v1/subscriptions", {"room_id": "carol", "types": ["gift"], "callback": bad.url}
        )
        assert response.status_code == 400
        assert words in response.json()["error"]["message"]
        assert (await carol.get("/v1/subscriptions")).json()["subscriptions"] == []


@pytest.mark.parametrize(
    ("callback", "words"),
    [
        ("http://10.0.0.5/hook", "https"),
        ("https://10.0.0.5/hook", "non-public"),
        ("https://169.254.169.254/latest", "non-public"),
        ("https://[fd00::1]/hook", "non-public"),
        ("https://[::ffff:192.168.1.1]/hook", "non-public"),
        ("ftp://example.com/hook", "https"),
        ("https://user:pw@example.com/hook", "credentials"),
    ],
)
async def test_callbacks_that_are_never_reached(
    embedded_server: LiveServer, callback: str, words: str
) -> None:
    carol = Api(embedded_server, embedded_server.token("carol", creator=True))
    await carol.post("/v1/rooms", {"title": "hooks"})
    response = await carol.post(
        "/v1/subscriptions", {"room_id": "carol", "types": ["gift"], "callback": callback}
    )
    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
    await carol.aclose()


async def test_only_the_rooms_creator_or_their_apps(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, alice):
        viewer = await alice.post(
            "/v1/subscriptions", {"room_id": "carol", "types": ["gift"], "callback": receiver.url}
        )
        assert viewer.status_code == 403
        dave = Api(server, server.token("dave", creator=True))
        other = await dave.post(
            "/v1/subscriptions", {"room_id": "carol", "types": ["gift"], "callback": receiver.url}
        )
        assert other.status_code == 403
        await dave.aclose()
        made = await carol.post("/v1/apps", {"name": "alerts"})
        assert made.status_code == 201
        client_id, client_secret = made.json()["app"]["client_id"], made.json()["client_secret"]
        carol_sub, _ = await subscribe(carol, receiver, ["chat"])
        app = Api(server, None)
        app.client.auth = (client_id, client_secret)
        created = await app.post(
            "/v1/subscriptions",
            {"room_id": "carol", "types": ["gift", "like"], "callback": receiver.url},
        )
        assert created.status_code == 201, created.text
        app_sub = created.json()["subscription"]["id"]
        listed = (await app.get("/v1/subscriptions")).json()["subscriptions"]
        assert [s["id"] for s in listed] == [app_sub]  # not carol's own
        assert (await app.get(f"/v1/subscriptions/{carol_sub}")).status_code == 404
        app.client.auth = (client_id, "wrong")
        assert (await app.get("/v1/subscriptions")).status_code == 401
        await app.aclose()
        assert (await carol.client.delete(f"/v1/apps/{client_id}")).status_code == 204
        remaining = (await carol.get("/v1/subscriptions")).json()["subscriptions"]
        assert [s["id"] for s in remaining] == [carol_sub]


async def test_bad_requests_change_nothing(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, _):
        for body in (
            {"room_id": "carol", "types": ["nope"], "callback": receiver.url},
            {"room_id": "carol", "types": [], "callback": receiver.url},
            {"room_id": "carol", "types": ["gift", "gift"], "callback": receiver.url},
            {"room_id": "carol", "types": "gift", "callback": receiver.url},
            {"room_id": "carol", "types": ["gift"]},
            {"room_id": "nobody", "types": ["gift"], "callback": receiver.url},
        ):
            response = await carol.post("/v1/subscriptions", body)
            assert response.status_code in (400, 403), body
        assert (await carol.get("/v1/subscriptions")).json()["subscriptions"] == []
        assert receiver.accepted == []
        unauth = Api(server, None)
        assert (await unauth.get("/v1/subscriptions")).status_code == 401
        unauth.client.headers["authorization"] = "Basic !!!"
        assert (await unauth.get("/v1/subscriptions")).status_code == 401
        await unauth.aclose()


async def drained(api: Api, sub_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The subscription once nothing is queued for it any more."""
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = (await api.get(f"/v1/subscriptions/{sub_id}")).json()["subscription"]
        if view["pending"] == 0:
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


NODE_ENV = ENV
"""The settings of both nodes (the ``nodes`` fixture)."""


async def test_two_nodes_deliver_each_event_once_in_order(
    nodes: tuple[LiveServer, LiveServer], receiver: Receiver
) -> None:
    a, b = nodes
    async with creator_and_fan(a) as (carol, alice_a):
        _, secret = await subscribe(carol, receiver, ["gift"])
        alice_b = Api(b, b.token("alice"))
        txs = []
        for n in range(6):
            api = alice_a if n % 2 == 0 else alice_b
            response = await api.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key=f"m{n}")
            assert response.status_code == 201, response.text
            txs.append(response.json()["tx"])
        await receiver.wait_for(lambda r: len(gifts(r)) >= 6)
        await alice_b.aclose()
        # both nodes saw every event; each was queued and delivered once
        assert [n["event"]["tx"] for n in gifts(receiver)] == txs
        assert all(m.signed_with(secret) for m in receiver.accepted)


async def test_room_events_by_type(
    engine_services: Services | None, tmp_path: Path, receiver: Receiver
) -> None:
    env = {**ENV, "LIVE_SUBSCRIPTION_LIKE_MILESTONE": "10", "LIVE_JOIN_INTERVAL_MS": "50"}
    async with (
        on_engine(engine_services, tmp_path / "data", env) as server,
        creator_and_fan(server) as (carol, _),
    ):
        await carol.post("/v1/rooms/carol/end")
        types = ["stream_started", "like", "like_milestone", "join", "goal_progress", "chat"]
        await subscribe(carol, receiver, types)
        assert (await carol.post("/v1/rooms", {"title": "again"})).status_code == 201
        goal = await carol.client.put("/v1/rooms/carol/goal", json={"target": 5, "title": "G"})
        assert goal.status_code == 200, goal.text
        async with Client.open(server, "carol", token=server.token("zoe")) as zoe:
            await zoe.wait_for(lambda e: e["type"] == "welcome")
            for n in range(3):
                assert (await zoe.command({"type": "like", "id": f"l{n}", "count": 4}))[
                    "type"
                ] == "ack"
            await zoe.command({"type": "chat", "id": "c1", "text": "hello"})
            await receiver.wait_for(
                lambda r: (
                    {"like_milestone", "chat", "join"} <= {n["type"] for n in r.notifications()}
                )
            )
        notes = receiver.notifications()
        kinds = [n["type"] for n in notes]
        assert kinds[0] == "stream_started" and notes[0]["event"]["title"] == "again"
        assert "goal_progress" in kinds and "gift" not in kinds
        likes = [n["event"]["total"] for n in notes if n["type"] == "like"]
        assert likes == sorted(likes) and likes[-1] == 12
        milestones = [n["event"]["milestone"] for n in notes if n["type"] == "like_milestone"]
        assert milestones == [10]
        chat = next(n["event"] for n in notes if n["type"] == "chat")
        assert chat["text"] == "hello" and chat["sender"]["id"] == "zoe"


async def test_the_cli_triggers_a_test_event(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, _):
        sub_id, secret = await subscribe(carol, receiver, ["gift"])
        code, out, err = await run_live(
            server, "subscriptions", "trigger", sub_id, "--type", "chat"
        )
        assert code == 0, err
        await receiver.wait_for(lambda r: bool(r.notifications()))
        [note] = receiver.notifications()
        assert note["id"] == out.decode().strip()
        assert (note["type"], note["test"]) == ("chat", True)
        assert receiver.accepted[-1].signed_with(secret)
        code, out, _ = await run_live(server, "subscriptions", "list", "--owner", "carol")
        assert code == 0 and sub_id.encode() in out and secret.encode() not in out
        code, _, err = await run_live(server, "subscriptions", "trigger", "sub_nope")
        assert code == 1 and b"no enabled subscription" in err


def documented_receiver(secret: str, port: int) -> str:
    """The receiver of docs/PROTOCOL.md, with our secret and port."""
    doc = (Path(__file__).parents[3] / "docs" / "PROTOCOL.md").read_text()
    section = doc.split("### A complete receiver (Python)", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace(
        'SECRET = b"the secret you gave POST /v1/subscriptions"', f"SECRET = {secret.encode()!r}"
    )
    return code.replace('HTTPServer(("0.0.0.0", 8080)', f'HTTPServer(("127.0.0.1", {port})')


async def test_the_documented_receiver_works(server: LiveServer, tmp_path: Path) -> None:
    secret = "my-own-secret-0123456789"
    port = free_port()
    script = tmp_path / "receiver.py"
    script.write_text(documented_receiver(secret, port))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-u", str(script), stdout=asyncio.subprocess.PIPE
    )
    try:
        async with creator_and_fan(server) as (carol, alice):
            body = {
                "room_id": "carol",
                "types": ["gift"],
                "callback": f"http://127.0.0.1:{port}/hook",
                "secret": secret,
            }
            for _ in range(100):  # until the receiver listens
                response = await carol.post("/v1/subscriptions", body)
                if response.status_code != 400 or "challenge" not in response.text:
                    break
                await asyncio.sleep(0.05)
            assert response.status_code == 201, response.text
            assert response.json()["secret"] == secret
            await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="doc")
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line.decode().strip() == "Alice sent 1 x Confetti"
            await drained(carol, response.json()["subscription"]["id"])
            short = await carol.post("/v1/subscriptions", {**body, "secret": "too short"})
            assert short.status_code == 400 and "secret" in short.text
    finally:
        proc.kill()
        await proc.wait()


async def test_items_bought_in_the_room(server: LiveServer, receiver: Receiver) -> None:
    async with creator_and_fan(server) as (carol, alice):
        await subscribe(carol, receiver, ["item_purchase"])
        bought = await alice.post("/v1/me/items", {"item": "badge_star", "room": "carol"}, key="i1")
        assert bought.status_code == 201, bought.text
        again = await alice.post("/v1/me/items", {"item": "badge_star", "room": "carol"}, key="i1")
        assert again.json()["replayed"] is True
        elsewhere = await alice.post("/v1/me/items", {"item": "name_gold"}, key="i2")
        assert elsewhere.status_code == 201
        await receiver.wait_for(lambda r: bool(r.notifications()))
        [note] = receiver.notifications()
        event = note["event"]
        assert (note["type"], event["tx"]) == ("item_purchase", bought.json()["tx"])
        assert event["buyer"]["id"] == "alice" and event["item"]["id"] == "badge_star"
        await drained(carol, note["subscription_id"])
        assert len(receiver.notifications()) == 1  # a replay, a purchase elsewhere: nothing

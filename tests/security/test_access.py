"""Who may do what: roles on admin and creator endpoints, identity from the token
only, overlay keys compared in constant time, no secret in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.routing import Route

import live.auth
from live.app import create_app
from live.auth import AuthError, issue_token, verify_token
from live.settings import Settings
from tests.live.server import SECRET, Api, Client, LiveServer

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# What a signed-in viewer may do to someone else's room.
VIEWER_MAY = {("POST", "/v1/rooms/{room_id}/gifts")}
# A body each endpoint would accept from the right person, so the role is what decides.
BODIES: dict[str, dict[str, Any]] = {
    "/goal": {"target": 100, "title": "x"},
    "/bans": {"user": "bob"},
    "/mutes": {"user": "bob", "seconds": 60},
    "/test-events": {"type": "gift"},
    "/gifts": {"gift": "rose"},
}


def _body(path: str) -> dict[str, Any]:
    return next((body for end, body in BODIES.items() if path.endswith(end)), {"title": "x"})


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings(secret="s" * 40))
    return [
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]


ROUTES = _routes()


def _fill(path: str) -> str:
    filled = (
        path.replace("{room_id}", "carol")
        .replace("{user_id}", "bob")
        .replace("{message_id}", "m1")
        .replace("{creator_id}", "carol")
    )
    return filled + ("?user=bob" if "/chat/" in path else "")


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path_factory.mktemp("access") / "data")
    await srv.start()
    carol = Api(srv, srv.token("carol", creator=True))
    assert (await carol.post("/v1/rooms", {"title": "t"})).status_code == 201
    await carol.aclose()
    try:
        yield srv
    finally:
        await srv.stop()


async def _call(server: LiveServer, token: str | None, method: str, path: str) -> Any:
    api = Api(server, token)
    try:
        return await api.client.request(
            method,
            _fill(path),
            content=orjson.dumps(_body(path)),
            headers={"idempotency-key": "k"},
        )
    finally:
        await api.aclose()


async def test_admin_endpoints_need_the_admin_role(server: LiveServer) -> None:
    admin_routes = [r for r in ROUTES if r[1].startswith("/v1/admin/")]
    assert admin_routes
    for method, path in admin_routes:
        assert (await _call(server, None, method, path)).status_code == 401, path
        for token in (server.token("mallory"), server.token("carol", creator=True)):
            response = await _call(server, token, method, path)
            assert response.status_code == 403, (path, response.text)
        response = await _call(server, server.token("root", admin=True), method, path)
        assert response.status_code not in (401, 403), (path, response.text)


async def test_room_changes_need_the_rooms_creator(server: LiveServer) -> None:
    """Every mutating endpoint of a room, tried by a viewer and by another creator."""
    room_routes = [
        r for r in ROUTES if r[0] in MUTATING and r[1].startswith("/v1/rooms/{room_id}/")
    ]
    assert room_routes
    outsiders = [server.token("mallory"), server.token("dave", creator=True)]
    for method, path in room_routes:
        if (method, path) in VIEWER_MAY:
            continue
        assert (await _call(server, None, method, path)).status_code == 401, path
        for token in outsiders:
            response = await _call(server, token, method, path)
            assert response.status_code == 403, (method, path, response.text)
    # Going live needs the creator role.
    response = await _call(server, server.token("mallory"), "POST", "/v1/rooms")
    assert response.status_code == 403
    # And the room is still live and carol's.
    room = (await Api(server, None).get("/v1/rooms/carol")).json()["room"]
    assert room["live"] is True and room["creator"]["id"] == "carol"


async def test_the_sender_is_always_the_tokens_user(server: LiveServer) -> None:
    mallory, bob = Api(server, server.token("mallory")), Api(server, server.token("bob"))
    await mallory.buy("us_350", key="m1")
    await bob.buy("us_350", key="b1")
    bob_before = await bob.balance()
    spoof = {"sender": "bob", "user_id": "bob", "from": {"id": "bob"}, "price": 0}
    async with Client.open(server, "carol") as viewer:
        await viewer.wait_for(lambda e: e["type"] == "welcome")
        http = await mallory.post("/v1/rooms/carol/gifts", {"gift": "rose", **spoof}, key="h1")
        assert http.status_code == 201, http.text
        async with Client.open(server, "carol", token=server.token("mallory")) as ws:
            reply = await ws.command(
                {"type": "send_gift", "id": "w1", "gift": "rose", **spoof, "sub": "bob"}
            )
            assert reply["type"] == "ack"
        for tx in (http.json()["tx"], reply["tx"]):
            gift = await viewer.wait_for(lambda e, tx=tx: e.get("tx") == tx)
            assert gift["sender"]["id"] == "mallory"
            assert gift["gift"]["coins"] == 1  # the catalog's price, not the command's
        # the price a client says it showed is checked, never charged
        for coins, code in ((0, "bad_request"), (5, "price_changed")):
            refused = await mallory.post(
                "/v1/rooms/carol/gifts", {"gift": "rose", "coins": coins}, key=f"c{coins}"
            )
            assert refused.json()["error"]["code"] == code
    assert await bob.balance() == bob_before
    assert await mallory.balance() == 350 - 2
    await mallory.aclose()
    await bob.aclose()


def test_token_edge_cases() -> None:
    def forge(header: dict[str, Any], claims: dict[str, Any]) -> str:
        def part(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

        signing_input = f"{part(header)}.{part(claims)}"
        digest = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"

    now = time.time()
    verify_token(forge({"alg": "HS256"}, {"sub": "alice", "exp": now + 60}), secret=SECRET)
    for claims in (
        {"sub": "alice"},  # no exp
        {"sub": "alice", "exp": str(int(now) + 3600)},  # exp as a string
        {"sub": "alice", "exp": True},
    ):
        with pytest.raises(AuthError):
            verify_token(forge({"alg": "HS256"}, claims), secret=SECRET)
    with pytest.raises(AuthError):
        verify_token(
            forge({"alg": "HS256", "crit": ["exp"]}, {"sub": "a", "exp": now + 60}), secret=SECRET
        )
    with pytest.raises(AuthError, match="not valid yet"):
        token = issue_token(secret=SECRET, user_id="alice", now=now)
        _, payload, _ = token.split(".")
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        verify_token(forge({"alg": "HS256"}, {**claims, "nbf": now + 3600}), secret=SECRET)
    # The leeway is small: 30 s by default, not minutes.
    token = issue_token(secret=SECRET, user_id="alice", ttl_seconds=1, now=now - 40)
    with pytest.raises(AuthError, match="expired"):
        verify_token(token, secret=SECRET)


async def test_expired_and_unsigned_tokens_are_refused_everywhere(server: LiveServer) -> None:
    expired = issue_token(
        secret=SECRET, user_id="mallory", adult=True, ttl_seconds=1, now=time.time() - 120
    )
    unsigned = (
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
        + base64.urlsafe_b64encode(
            orjson.dumps(
                {"sub": "mallory", "adult": True, "roles": ["admin"], "exp": 9_999_999_999}
            )
        )
        .rstrip(b"=")
        .decode()
        + "."
    )
    for token in (expired, unsigned):
        api = Api(server, token)
        assert (await api.get("/v1/me/wallet")).status_code == 401
        assert (await api.get("/v1/admin/audit")).status_code == 401
        await api.aclose()
        async with Client.open(server, "carol", token=token) as client:
            error = await client.wait_for(lambda e: e["type"] == "error")
            assert error["code"] == "unauthorized"
            assert await client.closed() == 1008


def test_overlay_keys_are_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)  # what live.realtime.endpoint calls
    with warnings.catch_warnings():  # starlette would rather see httpx2 behind TestClient
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = create_app(Settings(secret=SECRET, data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        token = issue_token(secret=SECRET, user_id="carol", adult=True, roles=["creator"])
        room = client.post("/v1/rooms", json={}, headers={"authorization": f"Bearer {token}"})
        key = room.json()["overlay_key"]
        with client.websocket_connect("/v1/rooms/carol/live?overlay_key=nope") as ws:
            assert ws.receive_json()[0]["code"] == "unauthorized"
        with client.websocket_connect(f"/v1/rooms/carol/live?overlay_key={key}") as ws:
            assert ws.receive_json()[0]["type"] == "welcome"
    assert (b"nope", key.encode()) in calls and (key.encode(), key.encode()) in calls


def test_no_secret_is_compared_with_equality() -> None:
    """A guard for new code: keys and signatures go through hmac.compare_digest."""
    pattern = re.compile(
        r"(overlay_key|signature|secret)\w*\s*[!=]=|[!=]=\s*\w*\.?(overlay_key|signature)"
    )
    offenders = []
    for path in Path(live.auth.__file__).parent.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and "compare_digest" not in line:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, offenders


async def test_tokens_and_keys_stay_out_of_debug_logs(tmp_path: Path) -> None:
    srv = LiveServer(data_dir=tmp_path / "data", env={"LIVE_LOG_LEVEL": "debug"})
    await srv.start()
    try:
        token = srv.token("carol", creator=True)
        api = Api(srv, token)
        key = (await api.post("/v1/rooms", {"title": "t"})).json()["overlay_key"]
        expired = issue_token(secret=SECRET, user_id="carol", ttl_seconds=1, now=time.time() - 120)
        async with Client.open(srv, "carol", token=token) as client:
            await client.wait_for(lambda e: e["type"] == "welcome")
        async with Client.open(srv, "carol", token=expired) as client:
            await client.wait_for(lambda e: e["type"] == "error")
        async with Client.open(srv, "carol", query=f"overlay_key={key}") as overlay:
            await overlay.wait_for(lambda e: e["type"] == "welcome")
        async with Client.open(srv, "carol", query=f"overlay_key={key}x") as overlay:
            await overlay.wait_for(lambda e: e["type"] == "error")
        await api.get(f"/v1/rooms/carol?access_token={token}&overlay_key={key}")
        await Api(srv, expired).get("/v1/me/wallet")
        await api.aclose()
    finally:
        await srv.stop()
    log = srv.log_path.read_text()
    for secret in (token, expired, key, SECRET):
        assert secret not in log
    # The signature alone would be enough to replay a token.
    for secret in (token, expired):
        assert secret.rsplit(".", 1)[1] not in log

"""Access tokens on open connections, over real sockets: platform tokens from a
JWKS endpoint, tokens that expire mid-connection (as a guest, or closed with
4001), and the ``auth`` command that renews them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from live.auth import issue_token
from tests.live.jwks import AUDIENCE, ISSUER, JwksServer, SigningKey, jwks_server
from tests.live.launch import running
from tests.live.server import SECRET, Api, Client, LiveServer


@contextlib.asynccontextmanager
async def live_server(tmp_path: Path, **env: str) -> AsyncIterator[LiveServer]:
    server = LiveServer(data_dir=tmp_path / "data", env={"LIVE_JWT_LEEWAY_SECONDS": "0", **env})
    async with running(server):
        yield server


async def open_room(server: LiveServer, token: str) -> dict[str, Any]:
    api = Api(server, token)
    try:
        response = await api.post("/v1/rooms", {"title": "tokens"})
        assert response.status_code == 201, response.text
        room: dict[str, Any] = response.json()
        return room
    finally:
        await api.aclose()


def short_token(user: str, *, seconds: float = 2, now: float | None = None) -> str:
    """A token that expires within ``seconds`` (whole-second ``exp``: 1 s sooner at worst)."""
    return issue_token(secret=SECRET, user_id=user, adult=True, ttl_seconds=seconds, now=now)


async def until_refused(client: Client, *, timeout: float = 6.0) -> dict[str, Any]:
    """Like until the server refuses: the token expired (a guest sees no event then)."""
    deadline = time.monotonic() + timeout
    for n in range(10_000):
        reply = await client.command({"type": "like", "id": f"like-{n}"})
        if reply["type"] == "error":
            return reply
        assert time.monotonic() < deadline, "the token never expired"
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def test_expired_token_watches_as_guest_until_auth(tmp_path: Path) -> None:
    async with live_server(tmp_path) as server:
        await open_room(server, server.token("carol", creator=True))
        async with (
            Client.open(server, "carol", token=short_token("ann")) as ann,
            Client.open(server, "carol", token=server.token("carol", creator=True)) as carol,
        ):
            await ann.wait_for(lambda e: e["type"] == "welcome")
            refused = await until_refused(ann)
            assert refused["code"] == "unauthorized" and "expired" in refused["message"]
            # still in the room: it sees what others do
            assert (await carol.command({"type": "chat", "id": "c1", "text": "hi"}))[
                "type"
            ] == "ack"
            await ann.wait_for(lambda e: e["type"] == "chat" and e.get("text") == "hi")
            reply = await ann.command({"type": "auth", "id": "a1", "token": server.token("bob")})
            assert reply["code"] == "forbidden"  # another user
            reply = await ann.command(
                {"type": "auth", "id": "a2", "token": short_token("ann", seconds=-60)}
            )
            assert reply["code"] == "unauthorized" and "expired" in reply["message"]
            fresh = server.token("ann", name="annie")
            reply = await ann.command({"type": "auth", "id": "a3", "token": fresh})
            assert reply["type"] == "ack" and reply["expires_at"] > time.time() + 3_600
            assert (await ann.command({"type": "chat", "id": "c2", "text": "back"}))[
                "type"
            ] == "ack"
            chat = await carol.wait_for(lambda e: e["type"] == "chat" and e.get("text") == "back")
            assert chat["sender"]["username"] == "annie"  # the renewed profile applies


async def test_expired_token_closes_4001_unless_renewed(tmp_path: Path) -> None:
    async with live_server(tmp_path, LIVE_EXPIRED_TOKEN="close") as server:
        room = await open_room(server, server.token("carol", creator=True))
        now = time.time()
        async with (
            Client.open(server, "carol", token=short_token("ann", now=now)) as renewed,
            Client.open(server, "carol", token=short_token("bob", now=now)) as lapsed,
            Client.open(server, "carol", query=f"overlay_key={room['overlay_key']}") as overlay,
            Client.open(server, "carol") as guest,
        ):
            reply = await renewed.command(
                {"type": "auth", "id": "a1", "token": server.token("ann")}
            )
            assert reply["type"] == "ack"
            assert await lapsed.closed() == 4001
            error = lapsed.of_type("error")[-1]
            assert error["id"] is None and error["code"] == "unauthorized"
            # by now the first token expired too: the renewed connection stays open
            assert (await renewed.command({"type": "like", "id": "l1"}))["type"] == "ack"
            for client in (overlay, guest):
                reply = await client.command(
                    {"type": "auth", "id": "a2", "token": server.token("dan")}
                )
                assert reply["code"] == "forbidden"
                assert (await client.command({"type": "ping", "id": "p"}))["type"] == "ack"


async def test_platform_tokens_from_a_jwks(tmp_path: Path) -> None:
    rsa_key, ec_key = SigningKey("rsa-1", "RSA"), SigningKey("ec-1", "EC")
    with jwks_server(rsa_key, ec_key) as jwks:
        env = {
            "LIVE_JWKS_URL": jwks.url,
            "LIVE_JWT_ISSUER": ISSUER,
            "LIVE_JWT_AUDIENCE": AUDIENCE,
        }
        async with live_server(tmp_path, **env) as server:
            await open_room(server, rsa_key.token("carol", roles=["creator"]))
            async with Client.open(server, "carol", token=ec_key.token("ann")) as ann:
                welcome = await ann.wait_for(lambda e: e["type"] == "welcome")
                assert welcome["you"]["id"] == "ann"
                reply = await ann.command(
                    {"type": "auth", "id": "a1", "token": rsa_key.token("ann")}
                )
                assert reply["type"] == "ack"  # renewed with a token of another key
            refused = await refused_handshakes(server, jwks, rsa_key)
            assert refused <= 1  # 40 forged kids: at most one more fetch (rate limited)
            dev_token = server.token("ann")  # HS256 is off once public keys are configured
            async with Client.open(server, "carol", token=dev_token) as client:
                error = await client.wait_for(lambda e: e["type"] == "error")
                assert "algorithm" in error["message"] and await client.closed() == 1008


async def refused_handshakes(server: LiveServer, jwks: JwksServer, key: SigningKey) -> int:
    """Open 40 connections with forged ``kid``s; the JWKS fetches they caused."""
    before = jwks.fetches

    async def forged(i: int) -> None:
        async with Client.open(server, "carol", token=key.token("ann", kid=f"x{i}")) as client:
            error = await client.wait_for(lambda e: e["type"] == "error")
            assert error["code"] == "unauthorized"
            assert await client.closed() == 1008

    await asyncio.gather(*(forged(i) for i in range(40)))
    return jwks.fetches - before


async def test_key_rotation_without_restart(tmp_path: Path) -> None:
    old, new = SigningKey("k1", "RSA"), SigningKey("k2", "EC")
    with jwks_server(old) as jwks:
        env = {
            "LIVE_JWKS_URL": jwks.url,
            "LIVE_JWT_ISSUER": ISSUER,
            "LIVE_JWT_AUDIENCE": AUDIENCE,
            "LIVE_JWKS_MIN_REFRESH_SECONDS": "0.2",
        }
        async with live_server(tmp_path, **env) as server:
            await open_room(server, old.token("carol", roles=["creator"]))
            jwks.publish(new)
            # the first tokens of the new key may arrive within the rate limit
            # of the last fetch; one arriving after it gets the key fetched
            deadline = time.monotonic() + 10
            while True:
                api = Api(server, new.token("carol"))
                status = (await api.get("/v1/me/wallet")).status_code
                await api.aclose()
                if status == 200:
                    break
                assert status == 401 and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            async with Client.open(server, "carol", token=old.token("ann")) as client:
                error = await client.wait_for(lambda e: e["type"] == "error")
                assert "unknown" in error["message"]  # the retired key

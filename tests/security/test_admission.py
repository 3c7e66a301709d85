"""Who may open a connection and how many: origins, connections per user and per
address, viewers per room, handshake and body deadlines, keepalive."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from live.limits import ConnectionGuard, own_origin, parse_origins, same_host
from live.settings import Settings, SettingsError
from tests.live.server import Api, LiveServer, sample_value
from tests.security.rawws import RawClient, raw_http, status_of
from tests.services import eventually

ALLOWED = "https://app.example.com,http://localhost:3000"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    srv = LiveServer(
        data_dir=tmp_path_factory.mktemp("admission") / "data",
        env={
            "LIVE_ALLOWED_ORIGINS": ALLOWED,
            "LIVE_MAX_CONNECTIONS_PER_USER": "2",
            "LIVE_MAX_CONNECTIONS_PER_IP": "2",
            "LIVE_MAX_VIEWERS_PER_ROOM": "3",
            "LIVE_HANDSHAKE_TIMEOUT": "1",
            "LIVE_PING_INTERVAL": "0.5",
            "LIVE_PING_TIMEOUT": "0.5",
        },
    )
    await srv.start()
    carol = Api(srv, srv.token("carol", creator=True))
    for room in ("carol", "small", "r-user", "r-ip", "r-ping"):
        assert (await carol.post("/v1/rooms", {"id": room, "title": "t"})).status_code == 201
    await carol.aclose()
    try:
        yield srv
    finally:
        await srv.stop()


async def _open(
    server: LiveServer, room: str, *, ip: str, token: str | None = None, query: str = ""
) -> RawClient:
    """A connection that says it comes from ``ip`` (the server trusts X-Forwarded-For
    from 127.0.0.1, its default proxy), with its first frame read."""
    params = [p for p in (f"access_token={token}" if token else "", query) if p]
    url = f"{server.ws_url}/v1/rooms/{room}/live" + ("?" + "&".join(params) if params else "")
    client = await RawClient.connect(url, headers={"X-Forwarded-For": ip})
    while not client.data_frames() and not client.eof:
        await client.read_some(5)
    return client


def _first_event(client: RawClient) -> dict[str, object]:
    event: dict[str, object] = orjson.loads(client.data_frames()[0].data)[0]
    return event


async def _refused_with(client: RawClient, code: str, close_code: int) -> None:
    assert _first_event(client)["code"] == code
    await client.read_until_closed(5)
    assert client.close_code == close_code


async def _metric(server: LiveServer, name: str, **labels: str) -> float | None:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.url + "/metrics")).text
    return sample_value(text, name, **labels)


async def _no_connections(server: LiveServer) -> bool:
    return await _metric(server, "live_connections") == 0


# -- origins ---------------------------------------------------------------------------------


async def _handshake_status(url: str, headers: list[tuple[str, str]]) -> int:
    try:
        async with connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 101),  # not a browser: the token decides
        ([("Origin", "https://app.example.com")], 101),
        ([("Origin", "http://localhost:3000")], 101),
        ([("Origin", "null")], 403),
        ([("Origin", "https://evil.example")], 403),
        ([("Origin", "https://app.example.com.evil.example")], 403),
        ([("Origin", "https://evilapp.example.com")], 403),
        ([("Origin", "https://app.example.co")], 403),
        ([("Origin", "http://app.example.com")], 403),
        ([("Origin", "https://app.example.com:443")], 403),
        ([("Origin", "https://app.example.com:8443")], 403),
        ([("Origin", "https://app.example.com/")], 403),
        ([("Origin", "https://app.example.com.")], 403),
        ([("Origin", "HTTPS://APP.EXAMPLE.COM")], 403),
        ([("Origin", "https://user@app.example.com")], 403),
        ([("Origin", "http://localhost:30000")], 403),
        ([("Origin", "http://localhost")], 403),
        # a repeated Origin is refused by the handshake parser already
        ([("Origin", "https://app.example.com"), ("Origin", "https://evil.example")], 400),
    ],
)
async def test_origin_allowlist_is_exact(
    server: LiveServer, headers: list[tuple[str, str]], status: int
) -> None:
    url = f"{server.ws_url}/v1/rooms/carol/live"
    assert await _handshake_status(url, headers) == status


async def test_pages_of_the_host_itself_are_allowed(server: LiveServer) -> None:
    """The overlay and watch pages connect back to the host that served them, by
    whatever name the browser used: ``Origin`` naming the ``Host`` header passes."""
    url = f"ws://localhost:{server.port}/v1/rooms/carol/live"
    assert await _handshake_status(url, [("Origin", f"http://localhost:{server.port}")]) == 101
    assert await _handshake_status(url, [("Origin", f"http://localhost:{server.port + 1}")]) == 403
    assert await _handshake_status(url, [("Origin", "http://localhost")]) == 403


def test_same_host() -> None:
    assert same_host("http://live.example:8000", "live.example:8000")
    assert same_host("https://live.example", "live.example")
    assert same_host("https://live.example", "LIVE.example:443")
    assert same_host("http://[::1]:8000", "[::1]:8000")
    for origin, host in [
        ("http://live.example:8000", "live.example:8001"),
        ("https://live.example", "live.example:8443"),
        ("https://live.example.evil.example", "live.example"),
        ("https://evil.example", "live.example"),
        ("https://user@live.example", "live.example"),
        ("https://live.example/", "live.example"),
        ("https://live.example.", "live.example"),
        ("HTTPS://LIVE.EXAMPLE", "live.example"),
        ("ftp://live.example", "live.example"),
        ("null", "live.example"),
        ("https://live.example", ""),
        ("https://live.example:99999", "live.example"),
    ]:
        assert not same_host(origin, host), (origin, host)
    guard = ConnectionGuard(origins=frozenset())
    assert guard.origin_allowed(["http://live.example"], host="live.example")
    assert not guard.origin_allowed(["http://live.example"], host="other.example")
    assert not guard.origin_allowed(["http://live.example"])


def test_origin_settings_are_validated(tmp_path: Path) -> None:
    assert parse_origins("*") is None
    assert parse_origins(" https://a.example , http://[::1]:8080 ") == frozenset(
        {"https://a.example", "http://[::1]:8080"}
    )
    for bad in (
        "null",
        "https://a.example/",
        "https://A.example",
        "a.example",
        "https://a.example:443",
        "https://a.example/path",
        "https://*.example",
    ):
        with pytest.raises(SettingsError):
            Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), "LIVE_ALLOWED_ORIGINS": bad})
    assert own_origin("https://Live.Example:443/") == "https://live.example"
    assert own_origin("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    guard = ConnectionGuard(origins=None)
    assert guard.origin_allowed(["https://anything.example"])
    assert not guard.origin_allowed(["null"])  # not even with "*"


# -- connection limits -----------------------------------------------------------------------


async def test_connections_per_user(server: LiveServer) -> None:
    token = server.token("dave")
    first = await _open(server, "r-user", ip="10.1.0.1", token=token)
    second = await _open(server, "r-user", ip="10.1.0.2", token=token)
    third = await _open(server, "r-user", ip="10.1.0.3", token=token)
    await _refused_with(third, "rate_limited", 4029)
    guest = await _open(server, "r-user", ip="10.1.0.4")  # other users are unaffected
    assert _first_event(guest)["type"] == "welcome"
    assert _first_event(first)["type"] == _first_event(second)["type"] == "welcome"
    first.close()  # a slot comes back when a connection ends
    await asyncio.sleep(0.2)
    again = await _open(server, "r-user", ip="10.1.0.5", token=token)
    assert _first_event(again)["type"] == "welcome"
    for client in (second, guest, again):
        client.close()
    refused = await _metric(server, "live_handshakes_refused_total", reason="user")
    assert refused is not None and refused >= 1


async def test_connections_per_address(server: LiveServer) -> None:
    clients = [await _open(server, "r-ip", ip="10.2.0.1") for _ in range(2)]
    extra = await _open(server, "r-ip", ip="10.2.0.1")
    await _refused_with(extra, "rate_limited", 4029)
    other = await _open(server, "r-ip", ip="10.2.0.2")
    assert _first_event(other)["type"] == "welcome"
    for client in (*clients, other):
        client.close()


async def test_defaults_own_origin_and_no_proxy_trusted(tmp_path: Path) -> None:
    """A server with the default origins, trusting no proxy, two sockets per address."""
    srv = LiveServer(
        data_dir=tmp_path / "data",
        env={"LIVE_MAX_CONNECTIONS_PER_IP": "2", "LIVE_FORWARDED_ALLOW_IPS": ""},
    )
    await srv.start()
    try:
        carol = Api(srv, srv.token("carol", creator=True))
        await carol.post("/v1/rooms", {"title": "t"})
        await carol.aclose()
        # The default allowlist is the server's own origin, exactly.
        url = f"{srv.ws_url}/v1/rooms/carol/live"
        assert await _handshake_status(url, [("Origin", f"http://127.0.0.1:{srv.port}")]) == 101
        assert await _handshake_status(url, [("Origin", f"http://localhost:{srv.port}")]) == 403
        assert await _handshake_status(url, [("Origin", "https://evil.example")]) == 403
        assert await _handshake_status(url, []) == 101
        await eventually(  # those two have left
            lambda: _no_connections(srv), what="the handshake tests' sockets to go"
        )
        # Each claims another address; the server counts the real one.
        clients = [await _open(srv, "carol", ip=f"10.3.0.{i}") for i in range(3)]
        assert [_first_event(c)["type"] for c in clients[:2]] == ["welcome", "welcome"]
        await _refused_with(clients[2], "rate_limited", 4029)
        for client in clients:
            client.close()
    finally:
        await srv.stop()


async def test_viewers_per_room(server: LiveServer) -> None:
    viewers = [await _open(server, "small", ip=f"10.4.0.{i}") for i in range(3)]
    assert all(_first_event(v)["type"] == "welcome" for v in viewers)
    full = await _open(server, "small", ip="10.4.0.9")
    await _refused_with(full, "limit_exceeded", 1013)
    # The creator's overlay is not a viewer: it still gets in.
    carol = Api(server, server.token("carol", creator=True))
    key = (await carol.post("/v1/rooms", {"id": "small", "title": "t"})).json()["overlay_key"]
    await carol.aclose()
    overlay = await _open(server, "small", ip="10.4.0.10", query=f"overlay_key={key}")
    assert _first_event(overlay)["type"] == "welcome"
    other_room = await _open(server, "carol", ip="10.4.0.11")
    assert _first_event(other_room)["type"] == "welcome"
    viewers[0].close()
    await asyncio.sleep(0.2)
    late = await _open(server, "small", ip="10.4.0.12")
    assert _first_event(late)["type"] == "welcome"
    for client in (*viewers[1:], overlay, other_room, late):
        client.close()


# -- deadlines -------------------------------------------------------------------------------


async def test_silent_connection_is_dropped(server: LiveServer) -> None:
    started = time.monotonic()
    assert await raw_http("127.0.0.1", server.port, b"", timeout=5) == b""
    assert time.monotonic() - started < 3


async def test_slowloris_headers_are_dropped(server: LiveServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(b"GET /v1/rooms/carol/live HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for i in range(30):
            try:
                writer.write(f"X-Drip-{i}: y\r\n".encode())
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionError:
                closed = True
                break
        assert closed, "a request whose headers never end must be dropped"
        assert time.monotonic() - started < 3
    finally:
        writer.transport.abort()


async def test_header_deadline_does_not_count_the_servers_own_lateness(
    server: LiveServer,
) -> None:
    """Headers that reached the server while it could not run are read before
    their deadline is judged: the slowloris rule drops no client for the server's
    own lateness."""
    proc = server.proc
    assert proc is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        writer.write(request)  # a first request: the server has accepted the connection
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 200"
        )
        await asyncio.wait_for(reader.read(1 << 16), 5)  # its body
        # The next request's first line starts its header deadline (1 s) ...
        writer.write(request[:16])
        await writer.drain()
        # ... give the server a moment to read it (nothing to await: it answers nothing)
        await asyncio.sleep(0.3)
        # ... and the rest arrives while the server stays stopped for 3 s.
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            writer.write(request[16:])
            await writer.drain()
            await asyncio.sleep(3.0)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        writer.transport.abort()


async def test_request_bodies_are_bounded_in_size_and_time(server: LiveServer) -> None:
    token = server.token("erin")
    head = (
        "POST /v1/purchases HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: k1\r\n"
        "Content-Type: application/json\r\n"
    )
    # Declared too large: refused at once, nothing read.
    response = await raw_http(
        "127.0.0.1", server.port, (head + "Content-Length: 1000000000\r\n\r\n").encode()
    )
    assert status_of(response) == 413
    # Chunked, so no length up front: refused as soon as it passes the limit.
    chunk = b"a" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    response = await raw_http(
        "127.0.0.1", server.port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + body
    )
    assert status_of(response) == 413
    # A body that stops coming: 408 after the deadline.
    started = time.monotonic()
    response = await raw_http(
        "127.0.0.1", server.port, (head + 'Content-Length: 40\r\n\r\n{"pack').encode()
    )
    assert status_of(response) == 408
    assert time.monotonic() - started < 3
    api = Api(server, token)
    assert await api.balance() == 0  # none of it bought anything
    await api.aclose()


async def test_keepalive_closes_a_peer_that_never_answers_pings(server: LiveServer) -> None:
    client = await _open(server, "r-ping", ip="10.5.0.1")
    started = time.monotonic()
    # Read everything, answer nothing: ping after 0.5 s, no pong 0.5 s later: 1011.
    await client.read_until_closed(10, answer_pings=False)
    assert any(f.opcode.name == "PING" for f in client.frames)
    assert client.close_code == 1011
    assert time.monotonic() - started < 4
    # A client that answers stays connected across several ping rounds.
    polite = await _open(server, "r-ping", ip="10.5.0.2")
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        assert await polite.read_some(0.2)
    assert sum(f.opcode.name == "PING" for f in polite.frames) >= 2
    assert polite.close_code is None
    polite.close()


async def test_keepalive_does_not_blame_a_peer_for_the_servers_own_lateness(
    server: LiveServer,
) -> None:
    """A pong that reached the server while it could not run is read before its
    deadline is judged: a server that falls behind closes no live peer with 1011."""
    client = await _open(server, "r-ping", ip="10.5.0.3")
    while not any(f.opcode.name == "PING" for f in client.frames):
        assert await client.read_some(2, answer_pings=False)
    proc = server.proc
    assert proc is not None
    # The server stops right after its ping; the pong waits in its socket while the
    # process stays stopped for four times the ping interval plus its timeout.
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        client.flush()
        await asyncio.sleep(4.0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    pings_before = sum(f.opcode.name == "PING" for f in client.frames)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert await client.read_some(0.2)
    assert client.close_code is None
    assert sum(f.opcode.name == "PING" for f in client.frames) >= pings_before + 2
    client.close()


@pytest.mark.parametrize(
    "env",
    [
        {"LIVE_MAX_CONNECTIONS_PER_USER": "-1"},
        {"LIVE_MAX_CONNECTIONS_PER_IP": "-5"},
        {"LIVE_MAX_VIEWERS_PER_ROOM": "-1"},
        {"LIVE_SOCKET_SEND_BUFFER_BYTES": "-1"},
        {"LIVE_HANDSHAKE_TIMEOUT": "0"},
        {"LIVE_SHUTDOWN_TIMEOUT": "0"},
        {"LIVE_WORKER_HEALTHCHECK_TIMEOUT": "0"},
        {"LIVE_PING_TIMEOUT": "-1"},
        {"LIVE_ALLOWED_ORIGINS": "https://ok.example,https://bad.example/"},
    ],
)
def test_limit_settings_are_validated(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), **env})
    defaults = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path)})
    assert defaults.max_connections_per_user == 10 and defaults.max_connections_per_ip == 0
    assert defaults.handshake_timeout == 10 and defaults.socket_send_buffer_bytes == 65_536

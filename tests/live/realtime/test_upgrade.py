"""The plain upgrade (``live.realtime.upgrade``): taken only when websockets would
accept the request as it stands, answered with the bytes websockets and uvicorn
would write; over real sockets, plain and general upgrades get the same answers."""

from __future__ import annotations

import asyncio
import base64
import logging
import struct

import orjson
import pytest
from websockets.http11 import Request
from websockets.server import ServerProtocol

from live.realtime.upgrade import plain_upgrade, switching_protocols
from tests.live.server import Api, LiveServer

KEY = base64.b64encode(b"0123456789abcdef").decode()
DEFAULT_HEADERS = [(b"server", b"uvicorn"), (b"date", b"Mon, 07 Dec 2026 02:00:00 GMT")]

PLAIN = [
    [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade")],
    [("Host", "h"), ("Upgrade", "WebSocket"), ("Connection", "keep-alive, Upgrade")],
    [("Upgrade", "websocket"), ("Connection", "upgrade"), ("Origin", "http://h")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Protocol", "a, b")],
    [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Protocol", "a"),
        ("Sec-WebSocket-Protocol", "b,c"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("User-Agent", "caf\xe9"),
    ],
]
"""Besides the key and version, which every request below has unless it says."""

GENERAL = [
    # valid for websockets, but not in the plainest form: its own way
    [("Upgrade", "websocket"), ("Connection", "keep-alive, , Upgrade")],
    [("Upgrade", "websocket"), ("Connection", "keep-alive"), ("Connection", "Upgrade")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Protocol", "a,,b")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Content-Length", "0")],
    # refused by websockets: its own answer
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Origin", "a"), ("Origin", "b")],
    [("Upgrade", "websocket"), ("Connection", "close")],
    [("Upgrade", "websocket, h2c"), ("Connection", "Upgrade")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Protocol", "a b")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Transfer-Encoding", "chunked")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Content-Length", "3")],
]


def _uvicorn_headers(
    pairs: list[tuple[str, str]], *, key: str | None = KEY, version: str | None = "13"
) -> list[tuple[bytes, bytes]]:
    """The headers as uvicorn's HTTP parser keeps them: lower-case names."""
    extra = [("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    return [
        (name.lower().encode("ascii"), value.encode("latin-1"))
        for name, value in [*pairs, *extra]
        if value is not None
    ]


def _general(
    headers: list[tuple[bytes, bytes]], target: bytes, subprotocol: str | None
) -> tuple[int, list[str], bytes]:
    """What uvicorn and websockets make of the request: the status, the scope's
    subprotocols and, on 101, the answer uvicorn writes when the app accepts."""
    request = b"".join(
        [b"GET ", target, b" HTTP/1.1\r\n", *(n + b": " + v + b"\r\n" for n, v in headers), b"\r\n"]
    )
    conn = ServerProtocol(logger=logging.getLogger("test"))
    conn.receive_data(request)
    events = conn.events_received()
    if not events:
        return 400, [], b""
    event = events[0]
    assert isinstance(event, Request)
    response = conn.accept(event)
    subprotocols: list[str] = []
    for header in event.headers.get_all("Sec-WebSocket-Protocol"):
        subprotocols.extend(token.strip() for token in header.split(","))
    if response.status_code != 101:
        return response.status_code, subprotocols, b""
    added = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in DEFAULT_HEADERS]
    if subprotocol:
        added.append(("Sec-WebSocket-Protocol", subprotocol))
    del response.headers["Date"]
    response.headers.update(added)
    conn.send_response(response)
    return 101, subprotocols, b"".join(conn.data_to_send())


@pytest.mark.parametrize("pairs", PLAIN)
def test_a_plain_upgrade_is_answered_as_websockets_would(pairs: list[tuple[str, str]]) -> None:
    headers = _uvicorn_headers(pairs)
    target = b"/v1/rooms/carol/live?since=3&access_token=a.b.c"
    plain = plain_upgrade(method=b"GET", http_version="1.1", target=target, headers=headers)
    assert plain is not None
    for subprotocol in (None, "gift.v1.json"):
        status, subprotocols, answer = _general(headers, target, subprotocol)
        assert status == 101
        assert plain.subprotocols == subprotocols
        assert plain.target == target.decode()
        built = switching_protocols(
            key=plain.key, default_headers=DEFAULT_HEADERS, subprotocol=subprotocol
        )
        assert built == answer


@pytest.mark.parametrize("pairs", GENERAL)
def test_anything_else_goes_the_general_way(pairs: list[tuple[str, str]]) -> None:
    headers = _uvicorn_headers(pairs)
    assert plain_upgrade(method=b"GET", http_version="1.1", target=b"/", headers=headers) is None


def test_what_the_request_line_and_handshake_headers_must_be() -> None:
    pairs = [("Upgrade", "websocket"), ("Connection", "Upgrade")]

    def plain(**changes: object) -> bool:
        args: dict[str, object] = {
            "method": b"GET",
            "http_version": "1.1",
            "target": b"/live",
            "headers": _uvicorn_headers(pairs),
        }
        args.update(changes)
        return plain_upgrade(**args) is not None  # type: ignore[arg-type]

    assert plain()
    assert not plain(method=b"POST")
    assert not plain(http_version="1.0")
    assert not plain(target="/caf\xe9".encode("latin-1"))
    assert not plain(target=b"/" + b"a" * 8200)
    assert not plain(headers=_uvicorn_headers(pairs, key=None))
    assert not plain(headers=_uvicorn_headers(pairs, key="c2hvcnQ="))  # 5 bytes
    assert not plain(headers=_uvicorn_headers(pairs, key="not base64!!"))
    assert not plain(headers=_uvicorn_headers(pairs, version="8"))
    assert not plain(headers=_uvicorn_headers(pairs, version=None))
    assert not plain(headers=_uvicorn_headers([*pairs, ("X-Many", "1")] * 64))
    extensions = _uvicorn_headers([*pairs, ("Sec-WebSocket-Extensions", "permessage-deflate")])
    assert plain(headers=extensions)
    assert not plain(headers=extensions, extensions_negotiated=True)
    for status, _, _ in [_general(_uvicorn_headers(p), b"/", None) for p in GENERAL[4:]]:
        assert status != 101


def test_an_answer_websockets_would_check_further_is_left_to_it() -> None:
    odd = [(b"server", "caf\xe9".encode("latin-1"))]
    assert switching_protocols(key=KEY, default_headers=odd, subprotocol=None) is None
    assert switching_protocols(key=KEY, default_headers=[], subprotocol="caf\xe9") is None
    assert switching_protocols(key=KEY, default_headers=[], subprotocol="a\r\nb") is None


# -- over real sockets ------------------------------------------------------------------------


@pytest.fixture
async def room(embedded_server: LiveServer) -> str:
    api = Api(embedded_server, embedded_server.token("carol", creator=True))
    response = await api.post("/v1/rooms", {"id": "carol", "title": "hello"})
    assert response.status_code == 201
    await api.aclose()
    return "carol"


async def _handshake(
    server: LiveServer, target: str, headers: list[tuple[str, str]]
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send an upgrade request as written here; the answer's head and the stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{name}: {value}" for name, value in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head, reader, writer


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its opcode and payload."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 10)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


def _without_date(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]


async def test_plain_and_general_upgrades_get_the_same_answer_and_welcome(
    embedded_server: LiveServer, room: str
) -> None:
    token = embedded_server.token("ann")
    target = f"/v1/rooms/{room}/live?access_token={token}"
    common = [
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "nothing-we-know, gift.v1.json"),
    ]
    answers = []
    for connection in ("Upgrade", "keep-alive, , Upgrade"):  # plain, then general
        head, reader, writer = await _handshake(
            embedded_server, target, [("Connection", connection), *common]
        )
        try:
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            answers.append(_without_date(head))
            opcode, payload = await _frame(reader)
            assert opcode == 0x1  # text: the JSON codec
            welcome = orjson.loads(payload)[0]
            assert welcome["type"] == "welcome"
            assert welcome["you"]["id"] == "ann"
        finally:
            writer.close()
    assert answers[0] == answers[1]
    assert b"Sec-WebSocket-Protocol: gift.v1.json" in answers[0]


async def test_refusals_are_websockets_own_and_the_endpoints(
    embedded_server: LiveServer, room: str
) -> None:
    target = f"/v1/rooms/{room}/live"
    base = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")]
    head, _, writer = await _handshake(
        embedded_server, target, [*base, ("Sec-WebSocket-Key", "c2hvcnQ=")]
    )
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    twice = [*base, ("Sec-WebSocket-Key", KEY), ("Origin", "http://a"), ("Origin", "http://b")]
    head, _, writer = await _handshake(embedded_server, target, twice)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    # a plain upgrade from an origin the server does not allow: 403 from the endpoint
    foreign = [*base, ("Sec-WebSocket-Key", KEY), ("Origin", "http://elsewhere.example")]
    head, _, writer = await _handshake(embedded_server, target, foreign)
    writer.close()
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    # an unknown room: accepted, then the error and close 4004 (docs/PROTOCOL.md)
    head, reader, writer = await _handshake(
        embedded_server, "/v1/rooms/nobody/live", [*base, ("Sec-WebSocket-Key", KEY)]
    )
    try:
        assert head.startswith(b"HTTP/1.1 101 ")
        opcode, payload = await _frame(reader)
        assert orjson.loads(payload)[0]["code"] == "not_found"
        opcode, payload = await _frame(reader)
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 4004
    finally:
        writer.close()

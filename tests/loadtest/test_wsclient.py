"""The lean client's framing, counting and gap checks, byte-in (no sockets)."""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.wsclient import Peer, Tally, accept_key, client_frame
from protocol import server_frame


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def handshake(peer: Peer) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(peer.key) + b"\r\n\r\n"
    )


def frame(events: list[dict[str, Any]]) -> bytes:
    return server_frame(orjson.dumps(events), binary=False)


def gift(seq: int, tx: str = "tx") -> dict[str, Any]:
    return {"type": "gift", "tx": f"{tx}{seq}", "count": 1, "seq": seq, "ts": 1}


def welcome(seq: int, *, resumed: bool = False) -> dict[str, Any]:
    return {"type": "welcome", "seq": seq, "resumed": resumed, "room": {"id": "r"}}


def feed(peer: Peer, data: bytes, *, chunk: int) -> None:
    for i in range(0, len(data), chunk):
        peer.data_received(data[i : i + chunk])


async def make_peer(*, decode: bool) -> tuple[Peer, FakeTransport, Tally]:
    tally = Tally()
    peer = Peer(tally, host="h:1", path="/v1/rooms/r/live", decode=decode)
    transport = FakeTransport()
    peer.connection_made(transport)  # type: ignore[arg-type]
    return peer, transport, tally


async def test_the_handshake_request_is_a_websocket_upgrade() -> None:
    peer, transport, _ = await make_peer(decode=False)
    request = transport.written[0].decode()
    assert request.startswith("GET /v1/rooms/r/live HTTP/1.1\r\n")
    assert "Upgrade: websocket\r\n" in request
    assert f"Sec-WebSocket-Key: {peer.key}\r\n" in request
    assert "Sec-WebSocket-Protocol: gift.v1.json\r\n" in request
    assert request.endswith("\r\n\r\n")


async def test_counting_viewer_counts_events_whatever_the_chunking() -> None:
    for chunk in (1, 3, 7, 64, 100_000):
        for decode in (False, True):
            peer, _, tally = await make_peer(decode=decode)
            stream = (
                handshake(peer)
                + frame([welcome(10)])
                + frame([gift(11), {"type": "like", "count": 2, "seq": 12, "ts": 1}])
                + frame([gift(n) for n in range(13, 13 + 200)])  # a 16-bit length frame
                + frame([{"type": "viewers", "count": 5, "seq": 213, "ts": 1}])
            )
            feed(peer, stream, chunk=chunk)
            assert peer.welcomed.done() and peer.welcomed.result()["seq"] == 10
            assert tally.frames == 4
            assert tally.room_events == 203
            assert tally.gift_events == 201
            assert tally.gaps == 0
            assert peer.last_seq == 213
            assert tally.open == 1


async def test_a_missing_seq_is_a_gap() -> None:
    for decode in (False, True):
        peer, _, tally = await make_peer(decode=decode)
        feed(peer, handshake(peer) + frame([welcome(1)]) + frame([gift(2)]), chunk=1000)
        peer.data_received(frame([gift(4), gift(5)]))  # 3 is missing
        assert tally.gaps == 1
        peer.data_received(frame([gift(6), gift(8)]))  # 7 is missing inside a frame
        assert tally.gaps == 2
        assert peer.last_seq == 8


async def test_a_resumed_welcome_keeps_the_cursor_a_snapshot_resets_it() -> None:
    peer, _, tally = await make_peer(decode=False)
    peer.last_seq = 40
    feed(peer, handshake(peer) + frame([welcome(40, resumed=True)]) + frame([gift(41)]), chunk=9)
    assert peer.resumed is True and tally.gaps == 0
    peer2, _, tally2 = await make_peer(decode=False)
    peer2.last_seq = 40
    feed(peer2, handshake(peer2) + frame([welcome(90)]) + frame([gift(91)]), chunk=9)
    assert peer2.resumed is False and tally2.gaps == 0 and peer2.last_seq == 91


async def test_probes_time_gifts_against_the_gifters_send_time() -> None:
    peer, _, tally = await make_peer(decode=True)
    feed(peer, handshake(peer) + frame([welcome(0)]), chunk=1000)
    tally.gift_acked("tx1", sent=0.0)  # the ack came first
    peer.data_received(frame([gift(1)]))
    peer.data_received(frame([gift(2)]))  # seen before its ack
    assert tally.gift_latency.count == 1
    assert "tx2" in tally.seen_early
    tally.gift_acked("tx2", sent=0.0)
    assert tally.gift_latency.count == 2
    assert not tally.seen_early


async def test_a_resumed_probe_counts_the_gifts_it_missed_without_timing_them() -> None:
    """Gifts sent while a probe was away arrive in its catch-up: they are deliveries,
    but their gift-to-screen would be the time it was away, not the server's."""
    peer, _, tally = await make_peer(decode=True)
    peer.last_seq = 4
    tally.gift_acked("tx5", sent=peer.started - 30.0)  # sent while the probe was away
    feed(peer, handshake(peer) + frame([welcome(4, resumed=True)]), chunk=1000)
    peer.data_received(frame([gift(5), gift(6)]))  # tx6: seen before its ack
    tally.gift_acked("tx6", sent=peer.started - 1.0)
    tally.gift_acked("tx7", sent=peer.started + 0.001)  # sent after it came back
    peer.data_received(frame([gift(7)]))
    assert tally.gift_events == 3 and tally.gaps == 0
    assert tally.counters["caught_up"] == 2
    assert tally.gift_latency.count == 1
    # a fresh connection's gifts are all timed, whenever they were sent
    fresh, _, fresh_tally = await make_peer(decode=True)
    fresh_tally.gift_acked("tx1", sent=fresh.started - 30.0)
    feed(fresh, handshake(fresh) + frame([welcome(0), gift(1)]), chunk=1000)
    assert fresh_tally.gift_latency.count == 1 and not fresh_tally.counters["caught_up"]


async def test_a_combos_end_marker_is_no_gift_delivery_and_is_not_timed() -> None:
    def end_marker(seq: int, tx: str) -> dict[str, Any]:
        # as the server writes it: the streak's last tx, count 0 and diamonds 0
        return {
            "type": "gift",
            "tx": tx,
            "count": 0,
            "diamonds": 0,
            "combo": {"id": tx, "count": 3, "end": True},
            "seq": seq,
            "ts": 1,
        }

    for decode in (False, True):
        peer, _, tally = await make_peer(decode=decode)
        feed(peer, handshake(peer) + frame([welcome(0)]), chunk=1000)
        tally.gift_acked("tx1", sent=0.0)
        peer.data_received(frame([gift(1)]))
        peer.data_received(frame([end_marker(2, "tx1"), gift(3)]))
        assert tally.room_events == 3
        assert tally.gift_events == 2
        assert tally.gaps == 0
        if decode:
            assert tally.gift_latency.count == 1  # tx1 once, not again at its end


async def test_replies_go_to_the_callback_and_errors_are_counted() -> None:
    got: list[dict[str, Any]] = []
    tally = Tally()
    peer = Peer(tally, host="h", path="/", on_reply=lambda e, now: got.append(e))
    peer.connection_made(FakeTransport())  # type: ignore[arg-type]
    feed(peer, handshake(peer) + frame([welcome(0)]), chunk=1000)
    peer.data_received(frame([{"type": "ack", "id": "a", "tx": "t"}]))
    peer.data_received(frame([{"type": "error", "id": "b", "code": "rate_limited"}]))
    assert [e["id"] for e in got] == ["a", "b"]
    assert tally.counters["errors.rate_limited"] == 1


async def test_ping_gets_a_masked_pong_and_close_is_echoed_and_counted() -> None:
    peer, transport, tally = await make_peer(decode=False)
    feed(peer, handshake(peer) + frame([welcome(0)]), chunk=1000)
    peer.data_received(bytes([0x89, 4]) + b"abcd")
    pong = transport.written[-1]
    assert pong[0] == 0x8A and pong[1] == 0x80 | 4
    key = pong[2:6]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(pong[6:])) == b"abcd"
    peer.data_received(bytes([0x88, 2]) + (4008).to_bytes(2, "big"))
    assert tally.counters["closes.4008"] == 1
    assert transport.closed
    peer.connection_lost(None)
    assert peer.done.result() == 4008
    assert tally.open == 0


async def test_a_refused_handshake_is_counted_by_status() -> None:
    peer, transport, tally = await make_peer(decode=False)
    peer.data_received(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
    assert tally.counters["handshake.http_403"] == 1
    assert transport.closed
    assert isinstance(peer.welcomed.exception(), ConnectionError)


def test_client_frames_are_masked() -> None:
    data = client_frame(0x1, b"x" * 300)
    assert data[0] == 0x81 and data[1] == 0x80 | 126
    assert int.from_bytes(data[2:4], "big") == 300
    key = data[4:8]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(data[8:])) == b"x" * 300

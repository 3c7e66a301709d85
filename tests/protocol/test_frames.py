"""Server frames parsed back by an independent implementation (python-websockets)."""

from __future__ import annotations

import pytest
from websockets.frames import Close as WsClose
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from protocol import JSON_CODEC, MSGPACK_CODEC, Limits, close_frame, events, server_frame
from protocol.frames import MAX_CLOSE_REASON_BYTES


def parse_one(data: bytes) -> Frame:
    """Parse exactly one unmasked frame, and check nothing is left over."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
    else:  # pragma: no cover - the parser wanted more bytes than the frame has
        pytest.fail("frame is truncated")
    assert len(reader.buffer) == 0, "bytes left after the frame"
    return frame


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
@pytest.mark.parametrize("binary", [False, True])
def test_data_frame_lengths_round_trip(length: int, binary: bool) -> None:
    payload = bytes(i % 251 for i in range(length)) if binary else b"x" * length
    data = server_frame(payload, binary=binary)
    frame = parse_one(data)
    assert frame.fin is True
    assert frame.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert bytes(frame.data) == payload
    assert frame.rsv1 is frame.rsv2 is frame.rsv3 is False


@pytest.mark.parametrize(
    ("length", "header_size"),
    [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)],
)
def test_header_uses_the_shortest_length_encoding(length: int, header_size: int) -> None:
    data = server_frame(b"a" * length, binary=False)
    assert len(data) == header_size + length
    assert data[0] == 0x81
    assert data[1] & 0x80 == 0, "server frames must not be masked"


def test_encoded_batches_frame_and_parse_back() -> None:
    batch = [events.viewers(count=3), events.room_ended()]
    for codec in (JSON_CODEC, MSGPACK_CODEC):
        frame = parse_one(server_frame(codec.encode(batch), binary=codec.binary))
        assert frame.opcode is (Opcode.BINARY if codec.binary else Opcode.TEXT)
        assert codec.decode(bytes(frame.data), limits=Limits()) == batch


def test_close_frame_round_trip() -> None:
    frame = parse_one(close_frame(4008, "too slow"))
    assert frame.opcode is Opcode.CLOSE
    close = WsClose.parse(frame.data)
    assert (close.code, close.reason) == (4008, "too slow")


def test_close_frame_without_reason() -> None:
    frame = parse_one(close_frame(1000))
    assert bytes(frame.data) == b"\x03\xe8"


def test_close_reason_is_cut_on_a_character_boundary() -> None:
    reason = "é" * 100  # 200 bytes; 123 would split the 62nd character
    data = close_frame(1001, reason)
    frame = parse_one(data)
    assert len(frame.data) <= 125
    close = WsClose.parse(frame.data)
    assert close.reason == "é" * 61
    assert len(close.reason.encode()) <= MAX_CLOSE_REASON_BYTES


def test_close_reason_of_exactly_123_bytes_is_kept() -> None:
    reason = "r" * MAX_CLOSE_REASON_BYTES
    close = WsClose.parse(parse_one(close_frame(1000, reason)).data)
    assert close.reason == reason


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000])
def test_unsendable_close_codes_are_refused(code: int) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        close_frame(code)


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1009, 1011, 1012, 3000, 4004, 4999])
def test_sendable_close_codes(code: int) -> None:
    close = WsClose.parse(parse_one(close_frame(code, "x")).data)
    assert close.code == code

"""Both codecs, byte-in / byte-out: what decodes, what is refused, and negotiation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgpack
import orjson
import pytest

from protocol import (
    CODECS,
    JSON_CODEC,
    MSGPACK_CODEC,
    Codec,
    EncodeError,
    ErrorCode,
    FrameTooLarge,
    Limits,
    MalformedFrame,
    ProtocolError,
    events,
    negotiate,
)
from tests.protocol.wire import CODEC_PARAMS, LIMITS


def malformed(codec: Codec, data: bytes | str, limits: Limits = LIMITS) -> MalformedFrame:
    with pytest.raises(MalformedFrame) as info:
        codec.decode(data, limits=limits)
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert info.value.__cause__ is None, "the library's exception must not leak"
    return info.value


def test_codec_identities() -> None:
    assert (JSON_CODEC.subprotocol, JSON_CODEC.binary) == ("gift.v1.json", False)
    assert (MSGPACK_CODEC.subprotocol, MSGPACK_CODEC.binary) == ("gift.v1.msgpack", True)
    assert CODECS == {"gift.v1.json": JSON_CODEC, "gift.v1.msgpack": MSGPACK_CODEC}


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("offered", "codec", "echo"),
    [
        ([], JSON_CODEC, None),
        (["chat", "superchat"], JSON_CODEC, None),
        (["gift.v1.msgpack"], MSGPACK_CODEC, "gift.v1.msgpack"),
        (["gift.v1.json"], JSON_CODEC, "gift.v1.json"),
        (["gift.v1.msgpack", "gift.v1.json"], MSGPACK_CODEC, "gift.v1.msgpack"),
        (["gift.v1.json", "gift.v1.msgpack"], JSON_CODEC, "gift.v1.json"),
        (["gift.v2.json", "gift.v1.msgpack", "gift.v1.json"], MSGPACK_CODEC, "gift.v1.msgpack"),
        ([" gift.v1.msgpack "], MSGPACK_CODEC, "gift.v1.msgpack"),
        (["GIFT.V1.JSON"], JSON_CODEC, None),
    ],
)
def test_negotiate(offered: list[str], codec: Codec, echo: str | None) -> None:
    assert negotiate(offered) == (codec, echo)


# ---------------------------------------------------------------- round trips

USER = {"id": "u1", "username": "ann", "display_name": "Ann ✨", "avatar": "https://a/1.png"}
GIFT = {
    "id": "rose",
    "name": "Rose",
    "coins": 1,
    "animation": "float",
    "image": "/static/gifts/rose.svg",
    "streakable": True,
}

ALL_EVENTS: list[dict[str, Any]] = [
    events.welcome(
        session="s-1",
        room={"id": "r1", "creator": USER, "live": True, "title": "Hello"},
        you=USER,
        seq=41,
        viewers=1200,
        leaderboard=[{"user": USER, "coins": 300}],
        goal={"target": 1000, "progress": 10, "title": "New mic"},
        resumed=False,
    ),
    events.welcome(
        session="s-2",
        room={"id": "r1", "creator": USER, "live": False, "title": ""},
        you=None,
        seq=0,
        viewers=0,
        leaderboard=[],
        goal=None,
        resumed=True,
    ),
    events.gift(
        tx="tx-1",
        gift=GIFT,
        sender=USER,
        count=5,
        combo={"id": "c-1", "count": 12, "end": False},
        diamonds=2,
    ),
    events.like(sender=USER, count=15, total=10_000_000),
    events.chat(id="m-1", sender=USER, text='hi 👋 "quoted" \\ / ünïcode'),
    events.join(users=[USER]),
    events.join(count=250),
    events.viewers(count=2**40),
    events.leaderboard(top=[{"user": USER, "coins": 44_999}]),
    events.goal(target=1000, progress=1001, title="Goal"),
    events.room_ended(),
    events.ack(id="g-1", tx="tx-1", balance={"coins": 95}),
    events.ack(id="p-1"),
    events.error(id="g-2", code=ErrorCode.INSUFFICIENT_FUNDS, message="not enough coins"),
    events.error(id=None, code="rate_limited", message="slow down"),
]


@CODEC_PARAMS
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: str(e["type"]))
def test_every_event_round_trips_alone(codec: Codec, event: dict[str, Any]) -> None:
    data = codec.encode([event])
    assert codec.decode(data, limits=LIMITS) == [event]


@CODEC_PARAMS
def test_a_batch_round_trips_in_order(codec: Codec) -> None:
    stamped = [dict(e, seq=i, ts=1_700_000_000_000 + i) for i, e in enumerate(ALL_EVENTS)]
    data = codec.encode(stamped)
    assert codec.decode(data, limits=LIMITS) == stamped


def test_json_output_is_text_and_msgpack_is_not() -> None:
    batch = [events.viewers(count=1)]
    assert JSON_CODEC.encode(batch) == b'[{"type":"viewers","count":1}]'
    assert MSGPACK_CODEC.encode(batch) == msgpack.packb([{"type": "viewers", "count": 1}])


@CODEC_PARAMS
def test_error_codes_encode_as_plain_strings(codec: Codec) -> None:
    data = codec.encode([events.error(id="x", code=ErrorCode.CONFLICT, message="m")])
    decoded = codec.decode(data, limits=LIMITS)
    assert isinstance(decoded, list)
    assert type(decoded[0]["code"]) is str
    assert decoded[0]["code"] == "conflict"


@CODEC_PARAMS
def test_read_only_mappings_and_tuples_encode(codec: Codec) -> None:
    user: Mapping[str, Any] = MappingProxyType({"id": "u"})
    batch = (events.leaderboard(top=(MappingProxyType({"user": user, "coins": 1}),)),)
    decoded = codec.decode(codec.encode(batch), limits=LIMITS)
    assert decoded == [{"type": "leaderboard", "top": [{"user": {"id": "u"}, "coins": 1}]}]


@CODEC_PARAMS
@pytest.mark.parametrize("value", [object(), 2**64, {1, 2}])
def test_unencodable_events_raise_encode_error(codec: Codec, value: object) -> None:
    with pytest.raises(EncodeError) as info:
        codec.encode([{"type": "x", "v": value}])
    assert isinstance(info.value, ProtocolError)
    assert info.value.code == ErrorCode.INTERNAL


@CODEC_PARAMS
def test_an_empty_batch_is_refused(codec: Codec) -> None:
    with pytest.raises(EncodeError, match="at least one event"):
        codec.encode([])


# ---------------------------------------------------------------- sizes


def sized(codec: Codec, size: int) -> bytes | str:
    """A valid payload of exactly ``size`` bytes (3..257): one string value."""
    if codec.binary:
        return b"\xc4" + bytes([size - 2]) + b"x" * (size - 2)  # bin 8
    return '"' + "x" * (size - 2) + '"'


@CODEC_PARAMS
@pytest.mark.parametrize("limit", [3, 64, 200])
def test_size_limit_is_inclusive(codec: Codec, limit: int) -> None:
    limits = Limits(max_frame_bytes=limit)
    exact = sized(codec, limit)
    assert len(exact) == limit
    assert len(codec.decode(exact, limits=limits)) == limit - 2  # type: ignore[arg-type]
    with pytest.raises(FrameTooLarge) as info:
        codec.decode(sized(codec, limit + 1), limits=limits)
    assert info.value.code == ErrorCode.TOO_LARGE
    assert f"{limit + 1} bytes" in info.value.message


@CODEC_PARAMS
def test_size_is_checked_before_parsing(codec: Codec) -> None:
    garbage = b"\xc1" * 70_000 if codec.binary else "[" * 70_000
    with pytest.raises(FrameTooLarge):
        codec.decode(garbage, limits=LIMITS)


def test_text_size_counts_utf8_bytes_not_characters() -> None:
    limits = Limits(max_frame_bytes=20)
    text = '["' + "é" * 8 + '"]'  # 12 characters, 20 bytes
    assert JSON_CODEC.decode(text, limits=limits) == ["é" * 8]
    with pytest.raises(FrameTooLarge, match="21 bytes"):
        JSON_CODEC.decode('["' + "é" * 8 + 'x"]', limits=limits)


def test_lone_surrogate_in_text_counts_and_is_refused() -> None:
    malformed(JSON_CODEC, '{"a":"\ud800"}')
    with pytest.raises(FrameTooLarge):
        JSON_CODEC.decode('"' + "\ud800" * 7 + '"', limits=Limits(max_frame_bytes=22))


# ---------------------------------------------------------------- JSON refusals


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" ",
        b"{",
        b'{"type":"ping"',
        b'{"type":"ping","id":"p"} trailing',
        b'{"type":"ping","id":"p"}{}',
        b"NaN",
        b'{"count":NaN}',
        b'{"count":Infinity}',
        b'{"count":-Infinity}',
        b'{"count":1e400}',
        b'{"id":"\xff\xfe"}',
        b'{"id":"\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
        b'{"id":"\\ud800"}',  # an escaped lone surrogate
        b"\xef\xbb\xbf{}",  # a byte order mark
        b"{'type':'ping'}",
        b'{"type":"ping",}',
        b'{type:"ping"}',
        b"\x00",
        msgpack.packb({"type": "ping", "id": "p"}),
    ],
)
def test_json_refuses(data: bytes) -> None:
    malformed(JSON_CODEC, data)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    malformed(JSON_CODEC, text)


@pytest.mark.parametrize("depth", [1_025, 100_000])
def test_json_deep_nesting_is_malformed_not_a_crash(depth: int) -> None:
    limits = Limits(max_frame_bytes=1_000_000)
    malformed(JSON_CODEC, b"[" * depth + b"]" * depth, limits)
    malformed(JSON_CODEC, '{"a":' * depth + "1" + "}" * depth, limits)


def test_json_moderate_nesting_is_fine() -> None:
    data = "[" * 100 + "]" * 100
    value: Any = JSON_CODEC.decode(data, limits=LIMITS)
    for _ in range(99):
        value = value[0]
    assert value == []


def test_json_integers_beyond_64_bits_are_not_integers() -> None:
    value = JSON_CODEC.decode(b"[123456789012345678901234567890]", limits=LIMITS)
    assert isinstance(value, list)
    assert not isinstance(value[0], int)


def test_json_accepts_bytes_and_text_alike() -> None:
    doc = {"type": "chat", "id": "c", "text": "héllo"}
    raw = orjson.dumps(doc)
    assert JSON_CODEC.decode(raw, limits=LIMITS) == doc
    assert JSON_CODEC.decode(raw.decode(), limits=LIMITS) == doc


# ---------------------------------------------------------------- MessagePack refusals

VALID = msgpack.packb({"type": "ping", "id": "p"})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        VALID[:-1],  # truncated
        VALID[:1],
        VALID + b"\x00",  # trailing data
        VALID + VALID,
        b"\xc1",  # the never-used type byte
        b"\xa2\xff\xfe",  # invalid UTF-8 in a str
        b"\xa3\xed\xa0\x80",  # an encoded surrogate
        msgpack.packb({1: "int key"}),
        msgpack.packb({(1, 2): "array key"}),
        b"\x81\x80\xc0",  # a map as a map key
        msgpack.packb(msgpack.ExtType(5, b"data")),
        msgpack.packb({"type": "ping", "id": "p", "x": msgpack.ExtType(1, b"")}),
        msgpack.packb(msgpack.Timestamp(1, 0)),  # ext -1, bypasses ext_hook
        msgpack.packb(msgpack.Timestamp(2**40, 5)),
        b"\xd4\xff\x00",  # a fixext 1 timestamp (invalid length)
        b"\xc7\x00\xff",  # an empty timestamp ext
        b"\xc7\x00\x07",  # an empty ext 7
        b"\xdd\xff\xff\xff\xff",  # array of 4 billion in 5 bytes
        b"\xdf\xff\xff\xff\xff",  # map of 4 billion
        b"\xdb\xff\xff\xff\xff",  # str of 4 GiB
        b"\xc6\xff\xff\xff\xff",  # bin of 4 GiB
    ],
)
def test_msgpack_refuses(data: bytes) -> None:
    malformed(MSGPACK_CODEC, data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", "invalid type byte"),
        (VALID + b"\x00", "trailing data after the value"),
        (b"\x91" * 5_000 + b"\xc0", "nested too deeply"),
        (VALID[:-1], "incomplete input"),
        (msgpack.packb(msgpack.ExtType(5, b"")), "extension type 5 is not allowed"),
    ],
)
def test_msgpack_refusals_say_why(data: bytes, reason: str) -> None:
    assert reason in malformed(MSGPACK_CODEC, data).message


def test_msgpack_refuses_text_frames() -> None:
    error = malformed(MSGPACK_CODEC, '{"type":"ping","id":"p"}')
    assert "binary frames" in error.message


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_msgpack_deep_nesting_is_malformed_not_a_crash(depth: int) -> None:
    limits = Limits(max_frame_bytes=1_000_000)
    malformed(MSGPACK_CODEC, b"\x91" * depth + b"\xc0", limits)
    malformed(MSGPACK_CODEC, b"\x81\xa1a" * depth + b"\xc0", limits)


def test_msgpack_bytes_keys_and_values_decode_as_bytes() -> None:
    # Not refused by the codec: the command parser refuses them where it reads.
    data = msgpack.packb({b"k": b"v"}, use_bin_type=True)
    assert MSGPACK_CODEC.decode(data, limits=LIMITS) == {b"k": b"v"}


def test_msgpack_floats_decode_as_floats() -> None:
    value = MSGPACK_CODEC.decode(msgpack.packb([float("nan"), 1.5]), limits=LIMITS)
    assert isinstance(value, list)
    assert math.isnan(value[0])
    assert value[1] == 1.5

"""Property tests: whatever a client sends, only ProtocolErrors come out."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    JSON_CODEC,
    MSGPACK_CODEC,
    Close,
    CommandReader,
    Limits,
    ProtocolError,
    Reject,
    parse_command,
)
from protocol.commands import Chat, Like, Ping, SendGift
from tests.protocol.wire import nested

LIMITS = Limits()
FUZZ = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
values = nested(scalars, width=4, key_chars=8, leaves=12)
command_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["send_gift", "like", "chat", "ping", "other"]) | scalars,
        "id": st.text(max_size=70) | scalars,
        "gift": st.text(max_size=70) | scalars,
        "count": st.integers(min_value=-5, max_value=200) | scalars,
        "text": st.text(max_size=200) | scalars,
        "extra": values,
    },
)


def decode_and_parse(codec: Any, data: bytes | str) -> None:
    try:
        obj = codec.decode(data, limits=LIMITS)
        parse_command(obj, limits=LIMITS)
    except ProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    decode_and_parse(JSON_CODEC, data)
    decode_and_parse(MSGPACK_CODEC, data)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_only_raises_protocol_errors(data: str) -> None:
    decode_and_parse(JSON_CODEC, data)
    decode_and_parse(MSGPACK_CODEC, data)


@FUZZ
@given(values, st.integers(min_value=0, max_value=40))
def test_mutated_msgpack_only_raises_protocol_errors(value: Any, cut: int) -> None:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    decode_and_parse(MSGPACK_CODEC, packed)
    decode_and_parse(MSGPACK_CODEC, packed[: len(packed) - cut])
    decode_and_parse(MSGPACK_CODEC, packed + bytes([cut]))


@FUZZ
@given(command_like)
def test_parsed_commands_respect_the_limits(obj: dict[str, Any]) -> None:
    for codec, data in (
        (JSON_CODEC, orjson.dumps(obj)),
        (MSGPACK_CODEC, msgpack.packb(obj, use_bin_type=True)),
    ):
        try:
            command = parse_command(codec.decode(data, limits=LIMITS), limits=LIMITS)
        except ProtocolError:
            continue
        assert 0 < len(command.id) <= LIMITS.max_id_chars
        assert command.id.isprintable()
        match command:
            case SendGift(_, gift, count):
                assert 0 < len(gift) <= LIMITS.max_gift_id_chars
                assert type(count) is int and 1 <= count <= LIMITS.max_gift_count
            case Like(_, count):
                assert type(count) is int and 1 <= count <= LIMITS.max_like_count
            case Chat(_, text):
                assert 0 < len(text) <= LIMITS.max_chat_chars
                assert text == text.strip()
                assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
            case Ping(_):
                pass


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=60), st.floats(0, 0.5)), max_size=40))
def test_reader_never_raises(frames: list[tuple[bytes, float]]) -> None:
    for codec in (JSON_CODEC, MSGPACK_CODEC):
        reader = CommandReader(codec=codec, limits=LIMITS, now=0.0)
        now = 0.0
        for data, step in frames:
            now += step
            result = reader.receive(data, now=now)
            if isinstance(result, Reject | Close) and result.error is not None:
                assert result.error["type"] == "error"

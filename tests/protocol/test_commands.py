"""Command validation, fed with bytes through both codecs wherever the codec matters."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from protocol import (
    JSON_CODEC,
    MSGPACK_CODEC,
    Auth,
    Chat,
    Codec,
    InvalidCommand,
    Like,
    Limits,
    Ping,
    SendGift,
    command_id_of,
    parse_command,
)
from tests.protocol.wire import CODEC_PARAMS, LIMITS, wire


def parse_wire(codec: Codec, obj: Any, limits: Limits = LIMITS) -> object:
    return parse_command(codec.decode(wire(codec, obj), limits=limits), limits=limits)


def rejected(codec: Codec, obj: Any, limits: Limits = LIMITS) -> InvalidCommand:
    with pytest.raises(InvalidCommand) as info:
        parse_wire(codec, obj, limits)
    assert info.value.code == "bad_request"
    return info.value


@CODEC_PARAMS
@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"type": "send_gift", "id": "g1", "gift": "rose", "count": 5}, SendGift("g1", "rose", 5)),
        ({"type": "send_gift", "id": "g2", "gift": "lion"}, SendGift("g2", "lion", 1)),
        (
            {"type": "send_gift", "id": "g3", "gift": "rose", "count": 99},
            SendGift("g3", "rose", 99),
        ),
        (
            {"type": "send_gift", "id": "g4", "gift": "rose", "coins": 1},
            SendGift("g4", "rose", 1, coins=1),
        ),
        (
            {"type": "send_gift", "id": "g5", "gift": "rose", "coins": None},
            SendGift("g5", "rose", 1),
        ),
        ({"type": "like", "id": "l1", "count": 100}, Like("l1", 100)),
        ({"type": "like", "id": "l2"}, Like("l2", 1)),
        ({"type": "chat", "id": "c1", "text": "  hello 👋  "}, Chat("c1", "hello 👋")),
        ({"type": "chat", "id": "c2", "text": "é" * 150}, Chat("c2", "é" * 150)),
        ({"type": "ping", "id": "p1"}, Ping("p1")),
        ({"type": "ping", "id": "x" * 64}, Ping("x" * 64)),
    ],
)
def test_valid_commands(codec: Codec, obj: dict[str, Any], expected: object) -> None:
    assert parse_wire(codec, obj) == expected


@CODEC_PARAMS
def test_unknown_fields_are_ignored(codec: Codec) -> None:
    obj = {"type": "ping", "id": "p", "future": {"nested": [1, 2.5, None]}, "v": 2}
    assert parse_wire(codec, obj) == Ping("p")


def test_command_types_are_exposed() -> None:
    assert [c.TYPE for c in (SendGift, Like, Chat, Ping)] == ["send_gift", "like", "chat", "ping"]


def test_commands_are_immutable_and_matchable() -> None:
    command = SendGift("g", "rose", 2)
    with pytest.raises(AttributeError):
        command.count = 3  # type: ignore[misc]
    match command:
        case SendGift(cid, gift, count):
            assert (cid, gift, count) == ("g", "rose", 2)
        case _:  # pragma: no cover
            pytest.fail("SendGift does not match positionally")


@CODEC_PARAMS
@pytest.mark.parametrize("count", [True, False, 1.0, 5.5, "5", None, [1], {"n": 1}, 0, -1, 100])
def test_send_gift_count_must_be_an_integer_in_range(codec: Codec, count: object) -> None:
    error = rejected(codec, {"type": "send_gift", "id": "g", "gift": "rose", "count": count})
    assert error.message == "count must be an integer from 1 to 99"
    assert error.command_id == "g"


@CODEC_PARAMS
@pytest.mark.parametrize("coins", [True, 1.0, "5", 0, -1, [1]])
def test_send_gift_shown_coins_must_be_a_positive_integer(codec: Codec, coins: object) -> None:
    error = rejected(codec, {"type": "send_gift", "id": "g", "gift": "rose", "coins": coins})
    assert error.message == "coins must be a positive integer"
    assert error.command_id == "g"


@CODEC_PARAMS
@pytest.mark.parametrize("count", [True, 2.0, "1", 0, 101, -5])
def test_like_count_must_be_an_integer_in_range(codec: Codec, count: object) -> None:
    error = rejected(codec, {"type": "like", "id": "l", "count": count})
    assert error.message == "count must be an integer from 1 to 100"


@CODEC_PARAMS
def test_huge_integer_count_is_rejected(codec: Codec) -> None:
    if codec is JSON_CODEC:
        data: bytes | str = '{"type":"like","id":"l","count":123456789012345678901234567890}'
    else:
        data = wire(codec, {"type": "like", "id": "l", "count": 2**64 - 1})
    with pytest.raises(InvalidCommand, match="count must be an integer"):
        parse_command(codec.decode(data, limits=LIMITS), limits=LIMITS)


def test_counts_follow_the_limits() -> None:
    limits = Limits(max_gift_count=3, max_like_count=7)
    assert parse_wire(JSON_CODEC, {"type": "send_gift", "id": "g", "gift": "r", "count": 3}, limits)
    error = rejected(JSON_CODEC, {"type": "send_gift", "id": "g", "gift": "r", "count": 4}, limits)
    assert error.message == "count must be an integer from 1 to 3"
    error = rejected(JSON_CODEC, {"type": "like", "id": "l", "count": 8}, limits)
    assert error.message == "count must be an integer from 1 to 7"


@CODEC_PARAMS
@pytest.mark.parametrize("kind", ["send_gifts", "SEND_GIFT", "", "welcome", "ack"])
def test_unknown_command_type_is_named(codec: Codec, kind: str) -> None:
    error = rejected(codec, {"type": kind, "id": "u"})
    assert error.message.startswith(f"unknown command type {kind!r}")
    assert error.command_id == "u"


def test_unknown_type_in_message_is_shortened() -> None:
    error = rejected(JSON_CODEC, {"type": "x" * 10_000, "id": "u"})
    assert len(error.message) < 120


@CODEC_PARAMS
@pytest.mark.parametrize("kind", [None, 1, True, ["ping"], {"t": "ping"}])
def test_type_must_be_a_string(codec: Codec, kind: object) -> None:
    assert rejected(codec, {"type": kind, "id": "t"}).message == "type must be a string"


@CODEC_PARAMS
@pytest.mark.parametrize(
    ("obj", "message", "command_id"),
    [
        ({"id": "a"}, "missing field 'type'", "a"),
        ({"type": "ping"}, "missing field 'id'", None),
        ({"type": "send_gift", "id": "a"}, "missing field 'gift'", "a"),
        ({"type": "chat", "id": "a"}, "missing field 'text'", "a"),
    ],
)
def test_missing_fields(
    codec: Codec, obj: dict[str, Any], message: str, command_id: str | None
) -> None:
    error = rejected(codec, obj)
    assert error.message == message
    assert error.command_id == command_id


@CODEC_PARAMS
@pytest.mark.parametrize(
    "bad_id", ["", "x" * 65, "a\nb", "\x00", "tab\there", "\x7f", 7, None, True]
)
def test_id_must_be_a_short_printable_string(codec: Codec, bad_id: object) -> None:
    error = rejected(codec, {"type": "ping", "id": bad_id})
    assert error.message == "id must be a non-empty string of at most 64 printable characters"
    assert error.command_id is None


@CODEC_PARAMS
@pytest.mark.parametrize("gift", ["", "g" * 65, "ro\x00se", 1, None, ["rose"]])
def test_gift_id_must_be_a_short_printable_string(codec: Codec, gift: object) -> None:
    error = rejected(codec, {"type": "send_gift", "id": "s", "gift": gift})
    assert error.message == "gift must be a non-empty string of at most 64 printable characters"
    assert error.command_id == "s"


@CODEC_PARAMS
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text must not be empty"),
        ("   \n\t ", "text must not be empty"),
        ("x" * 151, "text must be at most 150 characters"),
        ("line\nbreak", "text must not contain control characters"),
        ("nul\x00", "text must not contain control characters"),
        ("del\x7fete", "text must not contain control characters"),
        ("esc\x1b[31m", "text must not contain control characters"),
        (42, "text must be a string"),
        (None, "text must be a string"),
    ],
)
def test_chat_text(codec: Codec, text: object, message: str) -> None:
    assert rejected(codec, {"type": "chat", "id": "c", "text": text}).message == message


def test_chat_length_counts_after_stripping() -> None:
    text = "  " + "x" * 150 + "  "
    assert parse_wire(JSON_CODEC, {"type": "chat", "id": "c", "text": text}) == Chat("c", "x" * 150)


def test_non_map_is_not_a_command() -> None:
    for obj in ([], [{"type": "ping", "id": "p"}], "ping", 1, None):
        with pytest.raises(InvalidCommand, match="must be a map") as info:
            parse_command(obj, limits=LIMITS)
        assert info.value.command_id is None


def test_non_string_keys_are_rejected_from_msgpack() -> None:
    data: bytes = msgpack.packb({"type": "ping", "id": "p", b"raw": 1}, use_bin_type=True)
    with pytest.raises(InvalidCommand, match="map keys must be strings") as info:
        parse_command(MSGPACK_CODEC.decode(data, limits=LIMITS), limits=LIMITS)
    assert info.value.command_id == "p"


def test_bytes_values_are_not_strings() -> None:
    data: bytes = msgpack.packb({"type": "ping", "id": b"p"}, use_bin_type=True)
    with pytest.raises(InvalidCommand, match="id must be"):
        parse_command(MSGPACK_CODEC.decode(data, limits=LIMITS), limits=LIMITS)


def test_command_id_of() -> None:
    assert command_id_of({"id": "abc"}, limits=LIMITS) == "abc"
    assert command_id_of({"id": ""}, limits=LIMITS) is None
    assert command_id_of({"id": 3}, limits=LIMITS) is None
    assert command_id_of(["abc"], limits=LIMITS) is None
    assert command_id_of({"id": "abcd"}, limits=Limits(max_id_chars=3)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frame_bytes": 0},
        {"max_gift_count": -1},
        {"command_burst": 0},
        {"flood_strikes": 0},
        {"max_chat_chars": 1.5},
        {"command_rate": 0.0},
        {"command_rate": float("nan")},
    ],
)
def test_impossible_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Limits"):
        Limits(**kwargs)


def test_limits_defaults_are_the_documented_ones() -> None:
    assert Limits() == Limits(
        max_frame_bytes=65_536,
        max_id_chars=64,
        max_gift_id_chars=64,
        max_gift_count=99,
        max_like_count=100,
        max_chat_chars=150,
        command_rate=10.0,
        command_burst=20,
        flood_strikes=20,
    )
    with pytest.raises(TypeError):
        Limits(65_536)  # type: ignore[call-arg]


# -- auth ----------------------------------------------------------------------------
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln-_"


@CODEC_PARAMS
def test_auth_command(codec: Codec) -> None:
    assert parse_wire(codec, {"type": "auth", "id": "a1", "token": JWT}) == Auth("a1", JWT)


@CODEC_PARAMS
@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "auth", "id": "a1"}, "missing field 'token'"),
        ({"type": "auth", "id": "a1", "token": ""}, "token must be a non-empty string"),
        ({"type": "auth", "id": "a1", "token": 7}, "token must be a non-empty string"),
        ({"type": "auth", "id": "a1", "token": "a b.c"}, "token must be a compact JWT"),
        ({"type": "auth", "id": "a1", "token": "x" * 8_193}, "at most 8192 characters"),
    ],
)
def test_bad_auth_commands(codec: Codec, obj: dict[str, Any], message: str) -> None:
    error = rejected(codec, obj)
    assert message in error.message
    assert error.command_id == "a1"


def test_auth_token_limit_is_configurable() -> None:
    limits = Limits(max_token_chars=10)
    assert parse_command({"type": "auth", "id": "a", "token": "x" * 10}, limits=limits)
    with pytest.raises(InvalidCommand, match="at most 10"):
        parse_command({"type": "auth", "id": "a", "token": "x" * 11}, limits=limits)
    with pytest.raises(ValueError):
        Limits(max_token_chars=0)

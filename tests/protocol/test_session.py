"""CommandReader: bytes and a clock in, a decision out. Time is an argument, never slept."""

from __future__ import annotations

from typing import Any

import pytest

from protocol import (
    JSON_CODEC,
    Close,
    CloseCode,
    Codec,
    CommandReader,
    Like,
    Limits,
    Ping,
    Reject,
    SendGift,
)
from tests.protocol.wire import CODEC_PARAMS, wire


def ping(codec: Codec, n: int) -> bytes | str:
    return wire(codec, {"type": "ping", "id": f"p{n}"})


@CODEC_PARAMS
def test_valid_command_is_returned(codec: Codec) -> None:
    reader = CommandReader(codec=codec, limits=Limits(), now=0.0)
    data = wire(codec, {"type": "send_gift", "id": "g1", "gift": "rose", "count": 3})
    assert reader.receive(data, now=0.0) == SendGift("g1", "rose", 3)
    assert reader.receive(wire(codec, {"type": "like", "id": "l"}), now=0.1) == Like("l", 1)
    assert (reader.commands, reader.rejected) == (2, 0)


@CODEC_PARAMS
def test_invalid_command_is_rejected_and_the_connection_stays_open(codec: Codec) -> None:
    reader = CommandReader(codec=codec, limits=Limits(), now=0.0)
    result = reader.receive(wire(codec, {"type": "like", "id": "l1", "count": 0}), now=0.0)
    assert result == Reject(
        {
            "type": "error",
            "id": "l1",
            "code": "bad_request",
            "message": "count must be an integer from 1 to 100",
        }
    )
    assert reader.closed is None
    assert reader.receive(ping(codec, 1), now=0.0) == Ping("p1")
    assert (reader.commands, reader.rejected) == (1, 1)


@CODEC_PARAMS
def test_oversize_frame_closes_with_1009(codec: Codec) -> None:
    reader = CommandReader(codec=codec, limits=Limits(max_frame_bytes=100), now=0.0)
    result = reader.receive(wire(codec, {"type": "chat", "id": "c", "text": "x" * 100}), now=0.0)
    assert isinstance(result, Close)
    assert result.code is CloseCode.TOO_LARGE
    assert result.error is not None
    assert result.error["code"] == "too_large"
    assert result.error["id"] is None


@CODEC_PARAMS
@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1\xff{",  # neither JSON nor MessagePack
        "[1, 2",  # truncated JSON; a text frame for the MessagePack codec
    ],
)
def test_undecodable_frame_closes_with_1008(codec: Codec, payload: bytes | str) -> None:
    reader = CommandReader(codec=codec, limits=Limits(), now=0.0)
    result = reader.receive(payload, now=0.0)
    assert isinstance(result, Close)
    assert result.code is CloseCode.POLICY
    assert result.error is not None
    assert result.error["code"] == "bad_request"


@CODEC_PARAMS
@pytest.mark.parametrize("obj", [[{"type": "ping", "id": "p"}], "ping", 5, None])
def test_a_frame_that_is_not_a_map_closes_with_1008(codec: Codec, obj: Any) -> None:
    reader = CommandReader(codec=codec, limits=Limits(), now=0.0)
    result = reader.receive(wire(codec, obj), now=0.0)
    assert isinstance(result, Close)
    assert result.code is CloseCode.POLICY
    assert result.error is not None
    assert "map" in result.error["message"]


def test_after_close_every_frame_gets_the_same_close() -> None:
    reader = CommandReader(codec=JSON_CODEC, limits=Limits(), now=0.0)
    first = reader.receive("nope", now=0.0)
    assert isinstance(first, Close)
    assert reader.closed is first
    assert reader.receive(ping(JSON_CODEC, 1), now=5.0) is first
    assert reader.commands == 0


@CODEC_PARAMS
def test_burst_then_rate_limited_with_the_command_id(codec: Codec) -> None:
    limits = Limits(command_rate=10.0, command_burst=5)
    reader = CommandReader(codec=codec, limits=limits, now=100.0)
    for n in range(5):
        assert reader.receive(ping(codec, n), now=100.0) == Ping(f"p{n}")
    result = reader.receive(ping(codec, 5), now=100.0)
    assert isinstance(result, Reject)
    assert result.error["code"] == "rate_limited"
    assert result.error["id"] == "p5"
    assert reader.strikes == 1
    # 0.1 s later one token is back, exactly one.
    assert reader.receive(ping(codec, 6), now=100.1) == Ping("p6")
    assert reader.strikes == 0
    assert isinstance(reader.receive(ping(codec, 7), now=100.1), Reject)


def test_sustained_rate_is_allowed_indefinitely() -> None:
    limits = Limits(command_rate=10.0, command_burst=1)
    reader = CommandReader(codec=JSON_CODEC, limits=limits, now=0.0)
    for n in range(1_000):
        assert reader.receive(ping(JSON_CODEC, n), now=n * 0.1) == Ping(f"p{n}")
    assert reader.commands == 1_000


def test_bucket_never_holds_more_than_the_burst() -> None:
    limits = Limits(command_rate=10.0, command_burst=3)
    reader = CommandReader(codec=JSON_CODEC, limits=limits, now=0.0)
    results = [reader.receive(ping(JSON_CODEC, n), now=3600.0) for n in range(4)]
    assert [type(r) for r in results] == [Ping, Ping, Ping, Reject]


def test_a_clock_going_backwards_refills_nothing() -> None:
    limits = Limits(command_rate=10.0, command_burst=1)
    reader = CommandReader(codec=JSON_CODEC, limits=limits, now=10.0)
    assert isinstance(reader.receive(ping(JSON_CODEC, 1), now=10.0), Ping)
    assert isinstance(reader.receive(ping(JSON_CODEC, 2), now=5.0), Reject)
    assert isinstance(reader.receive(ping(JSON_CODEC, 3), now=10.05), Reject)
    assert isinstance(reader.receive(ping(JSON_CODEC, 4), now=10.1), Ping)


def test_invalid_commands_pay_for_tokens_too() -> None:
    limits = Limits(command_rate=1.0, command_burst=2)
    reader = CommandReader(codec=JSON_CODEC, limits=limits, now=0.0)
    junk = '{"type":"dance","id":"j"}'
    first, second, third = (reader.receive(junk, now=0.0) for _ in range(3))
    assert isinstance(first, Reject) and first.error["code"] == "bad_request"
    assert isinstance(second, Reject) and second.error["code"] == "bad_request"
    assert isinstance(third, Reject) and third.error["code"] == "rate_limited"
    assert third.error["id"] == "j"


def test_rate_limited_command_without_a_valid_id_gets_a_null_id() -> None:
    reader = CommandReader(codec=JSON_CODEC, limits=Limits(command_burst=1), now=0.0)
    reader.receive(ping(JSON_CODEC, 0), now=0.0)
    result = reader.receive('{"type":"ping","id":""}', now=0.0)
    assert isinstance(result, Reject)
    assert result.error["id"] is None


@CODEC_PARAMS
def test_flood_closes_with_4029_on_the_last_strike(codec: Codec) -> None:
    limits = Limits(command_rate=1.0, command_burst=1, flood_strikes=3)
    reader = CommandReader(codec=codec, limits=limits, now=0.0)
    assert isinstance(reader.receive(ping(codec, 0), now=0.0), Ping)
    assert isinstance(reader.receive(ping(codec, 1), now=0.0), Reject)
    assert isinstance(reader.receive(ping(codec, 2), now=0.0), Reject)
    result = reader.receive(ping(codec, 3), now=0.0)
    assert isinstance(result, Close)
    assert result.code is CloseCode.RATE_LIMITED
    assert int(result.code) == 4029
    assert result.error is not None
    assert (result.error["code"], result.error["id"]) == ("rate_limited", "p3")
    assert (reader.commands, reader.rejected) == (1, 2)


def test_an_accepted_command_resets_the_strikes() -> None:
    limits = Limits(command_rate=1.0, command_burst=1, flood_strikes=3)
    reader = CommandReader(codec=JSON_CODEC, limits=limits, now=0.0)
    now = 0.0
    for _ in range(10):  # two strikes, then a token: never three strikes in a row
        assert isinstance(reader.receive(ping(JSON_CODEC, 0), now=now), Ping)
        assert isinstance(reader.receive(ping(JSON_CODEC, 1), now=now), Reject)
        assert isinstance(reader.receive(ping(JSON_CODEC, 2), now=now), Reject)
        assert reader.strikes == 2
        now += 1.0
    assert reader.closed is None
    assert (reader.commands, reader.rejected) == (10, 20)


def test_default_limits_allow_twenty_at_once_then_ten_per_second() -> None:
    reader = CommandReader(codec=JSON_CODEC, limits=Limits(), now=0.0)
    results = [reader.receive(ping(JSON_CODEC, n), now=0.0) for n in range(21)]
    assert sum(isinstance(r, Ping) for r in results) == 20
    assert isinstance(results[-1], Reject)
    later = [reader.receive(ping(JSON_CODEC, n), now=1.0) for n in range(11)]
    assert sum(isinstance(r, Ping) for r in later) == 10

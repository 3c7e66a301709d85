"""Stable codes: these values are the public contract."""

from __future__ import annotations

import pytest

from protocol import (
    CloseCode,
    EncodeError,
    ErrorCode,
    FrameTooLarge,
    InvalidCommand,
    MalformedFrame,
    ProtocolError,
)


def test_error_code_values() -> None:
    assert [c.value for c in ErrorCode] == [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "insufficient_funds",
        "limit_exceeded",
        "rate_limited",
        "room_not_live",
        "conflict",
        "too_large",
        "internal",
    ]
    assert str(ErrorCode.CONFLICT) == "conflict"
    assert ErrorCode("too_large") is ErrorCode.TOO_LARGE


def test_close_code_values() -> None:
    assert {c.name: c.value for c in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "POLICY": 1008,
        "TOO_LARGE": 1009,
        "INTERNAL_ERROR": 1011,
        "RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "ROOM_NOT_FOUND": 4004,
        "TOO_SLOW": 4008,
        "ROOM_ENDED": 4010,
        "RATE_LIMITED": 4029,
    }


def test_which_close_codes_mean_reconnect() -> None:
    assert {c.value for c in CloseCode if c.reconnect} == {1001, 1011, 1012, 1013, 4008}
    assert CloseCode(4010).reconnect is False


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (ProtocolError, "internal"),
        (MalformedFrame, "bad_request"),
        (FrameTooLarge, "too_large"),
        (InvalidCommand, "bad_request"),
        (EncodeError, "internal"),
    ],
)
def test_exception_tree_and_codes(cls: type[ProtocolError], code: str) -> None:
    exc = cls("what happened", command_id="c1")
    assert isinstance(exc, ProtocolError)
    assert exc.code == code
    assert isinstance(exc.code, ErrorCode)
    assert exc.message == "what happened"
    assert str(exc) == "what happened"
    assert exc.command_id == "c1"
    assert cls("m").command_id is None

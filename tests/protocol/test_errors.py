"""Stable codes: these values are the public contract."""

from __future__ import annotations

import pytest

from protocol import errors


def test_error_code_values() -> None:
    assert [c.value for c in errors.ErrorCode] == [
        "bad_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "insufficient_funds",
        "limit_exceeded",
        "rate_limited",
        "room_not_live",
        "conflict",
        "price_changed",
        "too_large",
        "internal",
    ]
    assert str(errors.ErrorCode.CONFLICT) == "conflict"
    assert errors.ErrorCode("too_large") is errors.ErrorCode.TOO_LARGE


def test_close_code_values() -> None:
    assert {c.name: c.value for c in errors.CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "POLICY": 1008,
        "TOO_LARGE": 1009,
        "INTERNAL_ERROR": 1011,
        "RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "TOKEN_EXPIRED": 4001,
        "ROOM_NOT_FOUND": 4004,
        "TOO_SLOW": 4008,
        "ROOM_ENDED": 4010,
        "RATE_LIMITED": 4029,
    }


def test_which_close_codes_mean_reconnect() -> None:
    reconnect = {c.value for c in errors.CloseCode if c.reconnect}
    assert reconnect == {1001, 1011, 1012, 1013, 4008}
    assert errors.CloseCode(4001).reconnect is False  # only with a fresh token
    assert errors.CloseCode(4010).reconnect is False


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.ProtocolError, "internal"),
        (errors.MalformedFrame, "bad_request"),
        (errors.FrameTooLarge, "too_large"),
        (errors.InvalidCommand, "bad_request"),
        (errors.EncodeError, "internal"),
    ],
)
def test_exception_tree_and_codes(cls: type[errors.ProtocolError], code: str) -> None:
    exc = cls("what happened", command_id="c1")
    assert isinstance(exc, errors.ProtocolError)
    assert exc.code == code
    assert isinstance(exc.code, errors.ErrorCode)
    assert exc.message == "what happened"
    assert str(exc) == "what happened"
    assert exc.command_id == "c1"
    assert cls("m").command_id is None

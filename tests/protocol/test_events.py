"""Event builders: the field names of the public contract, spelled once."""

from __future__ import annotations

from typing import Any

import pytest

import protocol
from protocol import CONNECTION_EVENT_TYPES, ROOM_EVENT_TYPES, ErrorCode, events

USER = {"id": "u1", "username": "ann", "display_name": "Ann", "avatar": None}
WELCOME: dict[str, Any] = {
    "session": "s",
    "room": {"id": "r"},
    "you": None,
    "seq": 3,
    "viewers": 1,
    "leaderboard": [],
    "goal": None,
    "resumed": False,
}


def test_builders_set_type_and_exactly_the_documented_fields() -> None:
    built: dict[str, tuple[dict[str, Any], set[str]]] = {
        "welcome": (
            events.welcome(**WELCOME),
            {"session", "room", "you", "seq", "viewers", "leaderboard", "goal", "resumed"},
        ),
        "gift": (
            events.gift(
                tx="t",
                gift={"id": "rose"},
                sender=USER,
                count=1,
                combo={"id": "c", "count": 1, "end": True},
                diamonds=0,
            ),
            {"tx", "gift", "sender", "count", "combo", "diamonds"},
        ),
        "like": (events.like(sender=USER, count=2, total=9), {"sender", "count", "total"}),
        "chat": (events.chat(id="m", sender=USER, text="hi"), {"id", "sender", "text"}),
        "join": (events.join(count=3), {"count"}),
        "viewers": (events.viewers(count=3), {"count"}),
        "leaderboard": (events.leaderboard(top=[]), {"top"}),
        "goal": (
            events.goal(target=5, progress=1, title="t"),
            {"target", "progress", "title", "reached"},
        ),
        "goal_reached": (
            events.goal_reached(target=5, progress=6, title="t"),
            {"target", "progress", "title"},
        ),
        "chat_deleted": (events.chat_deleted(id="m", user="u1"), {"id", "user"}),
        "room_ended": (events.room_ended(), set()),
        "entrance": (
            events.entrance(user=USER, effect={"id": "entrance_comet"}),
            {"user", "effect"},
        ),
        "stream_effect": (events.stream_effect(effect=None), {"effect"}),
        "ack": (events.ack(id="a"), {"id"}),
        "catalog": (events.catalog(version=4), {"version"}),
        "error": (events.error(id=None, code="internal", message="m"), {"id", "code", "message"}),
    }
    for kind, (event, fields) in built.items():
        assert type(event) is dict
        assert event["type"] == kind
        assert set(event) == fields | {"type"}, kind
        assert next(iter(event)) == "type", "type comes first, for readable logs"
    assert set(built) == ROOM_EVENT_TYPES | CONNECTION_EVENT_TYPES


def test_welcome_carries_the_stream_effect_only_when_there_is_one() -> None:
    assert "stream_effect" not in events.welcome(**WELCOME)
    effect = {"id": "effect_sparkles", "name": "Sparkle Filter", "image": "/i.svg"}
    assert events.welcome(**WELCOME, stream_effect=effect)["stream_effect"] == effect


def test_welcome_carries_the_catalog_version_when_given() -> None:
    welcome = events.welcome(**WELCOME, catalog_version=7)
    assert welcome["catalog_version"] == 7


def test_room_and_connection_types_are_disjoint() -> None:
    assert ROOM_EVENT_TYPES.isdisjoint(CONNECTION_EVENT_TYPES)
    assert {"welcome", "ack", "error", "catalog"} == CONNECTION_EVENT_TYPES
    room_types = (
        "gift like chat chat_deleted join viewers leaderboard goal goal_reached room_ended entrance"
        " stream_effect"
    )
    assert set(room_types.split()) == ROOM_EVENT_TYPES


def test_room_event_builders_leave_seq_and_ts_to_the_broker() -> None:
    event = events.viewers(count=1)
    assert "seq" not in event and "ts" not in event
    # welcome's seq is the snapshot's position, not a stamp.
    assert (
        events.welcome(
            session="s",
            room={},
            you=None,
            seq=7,
            viewers=0,
            leaderboard=[],
            goal=None,
            resumed=True,
        )["seq"]
        == 7
    )


def test_join_takes_exactly_one_of_users_or_count() -> None:
    assert events.join(users=[USER]) == {"type": "join", "users": [USER]}
    assert events.join(count=0) == {"type": "join", "count": 0}
    with pytest.raises(TypeError, match="exactly one"):
        events.join()
    with pytest.raises(TypeError, match="exactly one"):
        events.join(users=[USER], count=1)


def test_ack_carries_the_result() -> None:
    event = events.ack(id="g1", tx="tx9", balance={"coins": 12})
    assert event == {"type": "ack", "id": "g1", "tx": "tx9", "balance": {"coins": 12}}
    with pytest.raises(TypeError, match="'type'"):
        events.ack(id="g1", type="gift")


def test_error_code_is_a_plain_string() -> None:
    event = events.error(id="x", code=ErrorCode.ROOM_NOT_LIVE, message="offline")
    assert type(event["code"]) is str
    assert event == {"type": "error", "id": "x", "code": "room_not_live", "message": "offline"}


def test_builders_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        events.viewers(3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        events.error("x", "internal", "m")  # type: ignore[call-arg]


def test_package_reexports_the_builders() -> None:
    assert protocol.events is events
    assert protocol.gift is events.gift
    assert protocol.error is events.error
    assert protocol.welcome is events.welcome
    for name in protocol.__all__:
        assert hasattr(protocol, name), name

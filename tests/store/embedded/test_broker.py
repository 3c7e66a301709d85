"""The in-process broker with a controllable clock (no sleeping)."""

from __future__ import annotations

import gc
import logging
import tracemalloc

import pytest

from store.domain.models import Event
from store.embedded.broker import MemoryBroker


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []

    def on_events(self, room_id: str, events: list[Event]) -> None:
        self.calls.append((room_id, [e["seq"] for e in events]))

    def on_reset(self, room_id: str) -> None:  # pragma: no cover - never called here
        raise AssertionError("the memory broker never resets")


class Exploding(Recorder):
    def on_events(self, room_id: str, events: list[Event]) -> None:
        super().on_events(room_id, events)
        raise RuntimeError("listener bug")


def make(size: int = 100, seconds: float = 60.0) -> tuple[MemoryBroker, Clock]:
    clock = Clock()
    return MemoryBroker(history_size=size, history_seconds=seconds, clock=clock), clock


async def test_publish_stamps_in_place_and_delivers_in_order() -> None:
    broker, clock = make()
    recorder = Recorder()
    await broker.subscribe("r", recorder)
    events: list[Event] = [{"type": "chat"}, {"type": "like"}]
    returned = await broker.publish("r", events)
    assert returned is events
    assert events == [
        {"type": "chat", "seq": 1, "ts": clock.now},
        {"type": "like", "seq": 2, "ts": clock.now},
    ]
    await broker.publish("r", [{"type": "join"}])
    assert recorder.calls == [("r", [1, 2]), ("r", [3])]
    assert await broker.last_seq("r") == 3


async def test_empty_publish_uses_no_seq() -> None:
    broker, _ = make()
    assert await broker.publish("r", []) == []
    assert await broker.last_seq("r") == 0


async def test_a_failing_listener_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, _ = make()
    bad, good = Exploding(), Recorder()
    await broker.subscribe("r", bad)
    await broker.subscribe("r", good)
    with caplog.at_level(logging.ERROR, logger="store.embedded.broker"):
        await broker.publish("r", [{"type": "chat"}])
        await broker.publish("r", [{"type": "chat"}])
    assert good.calls == [("r", [1]), ("r", [2])]
    assert bad.calls == [("r", [1]), ("r", [2])]
    assert "listener failed" in caplog.text


async def test_history_window_by_size() -> None:
    broker, _ = make(size=3)
    await broker.publish("r", [{"type": "chat"} for _ in range(5)])
    assert await broker.history("r", since=0) is None
    assert await broker.history("r", since=1) is None
    assert [e["seq"] for e in await broker.history("r", since=2) or []] == [3, 4, 5]
    assert [e["seq"] for e in await broker.history("r", since=4) or []] == [5]
    assert await broker.history("r", since=5) == []
    assert await broker.history("r", since=9) == []


async def test_history_window_by_age() -> None:
    broker, clock = make(seconds=10)
    await broker.publish("r", [{"type": "chat"}, {"type": "chat"}])
    clock.advance(5)
    await broker.publish("r", [{"type": "like"}])
    assert [e["seq"] for e in await broker.history("r", since=0) or []] == [1, 2, 3]
    clock.advance(6)  # the first two are now 11 s old
    assert await broker.history("r", since=0) is None
    assert [e["seq"] for e in await broker.history("r", since=2) or []] == [3]
    clock.advance(60)  # everything expired: only "nothing missed" can be answered
    assert await broker.history("r", since=2) is None
    assert await broker.history("r", since=3) == []


async def test_history_of_an_unknown_room() -> None:
    broker, _ = make()
    assert await broker.history("nowhere", since=0) == []
    assert await broker.history("nowhere", since=-5) == []


async def test_subscriptions_are_reference_counted() -> None:
    broker, _ = make()
    recorder = Recorder()
    first = await broker.subscribe("r", recorder)
    second = await broker.subscribe("r", recorder)
    assert broker.listeners("r") == 1
    await broker.publish("r", [{"type": "chat"}])
    assert recorder.calls == [("r", [1])]

    await first.close()
    await first.close()
    assert broker.listeners("r") == 1
    await second.close()
    assert broker.listeners("r") == 0
    await broker.publish("r", [{"type": "chat"}])
    assert recorder.calls == [("r", [1])]


async def test_close_drops_listeners_but_keeps_history() -> None:
    broker, _ = make()
    recorder = Recorder()
    await broker.subscribe("r", recorder)
    await broker.publish("r", [{"type": "chat"}])
    await broker.close()
    assert broker.listeners("r") == 0
    await broker.publish("r", [{"type": "chat"}])
    assert recorder.calls == [("r", [1])]
    assert [e["seq"] for e in await broker.history("r", since=0) or []] == [1, 2]


def test_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError):
        MemoryBroker(history_size=0, history_seconds=1)
    with pytest.raises(ValueError):
        MemoryBroker(history_size=1, history_seconds=0)


async def test_history_is_kept_encoded_out_of_the_collectors_view() -> None:
    broker, clock = make()
    gift: Event = {
        "type": "gift",
        "sender": {"id": "u1", "name": "Ann", "badge": {"level": 3}},
        "combo": {"id": "c1", "count": 2, "end": False},
    }
    await broker.publish("r", [gift, {"type": "leaderboard", "top": [{"user": {"id": "u1"}}]}])
    gift["sender"]["name"] = "changed after publish"  # the history keeps what was published
    replayed = await broker.history("r", since=0)
    assert replayed is not None and [e["seq"] for e in replayed] == [1, 2]
    assert replayed[0]["sender"] == {"id": "u1", "name": "Ann", "badge": {"level": 3}}
    assert replayed[0]["ts"] == clock.now and replayed[1]["top"] == [{"user": {"id": "u1"}}]
    gc.collect()
    kept = list(broker._rooms["r"].history)
    assert kept and not any(gc.is_tracked(entry) for entry in kept)


async def test_a_room_that_stops_publishing_loses_its_history_with_the_window() -> None:
    broker, clock = make(seconds=10)
    await broker.publish("quiet", [{"type": "chat"}, {"type": "chat"}])
    clock.advance(5)
    await broker.publish("busy", [{"type": "chat"}])
    assert len(broker._rooms["quiet"].history) == 2  # still within the window
    clock.advance(6)
    await broker.publish("busy", [{"type": "chat"}])  # another room's publish ages it out
    assert len(broker._rooms["quiet"].history) == 0
    assert [len(broker._rooms["busy"].history)] == [2]
    assert await broker.history("quiet", since=0) is None
    assert await broker.history("quiet", since=2) == []
    assert await broker.last_seq("quiet") == 2  # seq goes on where it was
    await broker.publish("quiet", [{"type": "chat"}])
    assert [e["seq"] for e in await broker.history("quiet", since=2) or []] == [3]


async def test_a_kept_event_costs_about_its_own_size() -> None:
    """orjson's bytes carry a 4 KiB buffer; the history keeps a right-sized copy."""
    broker, _ = make(size=2_000)
    event: Event = {"type": "gift", "sender": {"id": "u1", "name": "Ann"}, "text": "x" * 400}
    await broker.publish("r", [dict(event)])  # the room's state exists before measuring
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(1_000):
            await broker.publish("r", [dict(event)])
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_event = (after - before) / 1_000
    assert 400 < per_event < 1_000

"""The hub's fan-out in one process: rounds in slices, order and completeness."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from live.metrics import Metrics
from live.realtime import hub as hub_module
from live.realtime.hub import ROUND_SLICE, Connection, Hub
from live.realtime.sinks import Outgoing
from protocol import JSON_CODEC
from store.embedded.broker import MemoryBroker

ROOM = "room"


class ListSink:
    """Keeps every frame written to it, decoded."""

    def __init__(self) -> None:
        self.frames: list[list[dict[str, Any]]] = []
        self.closed_with: int | None = None

    def write(self, out: Outgoing) -> None:
        self.frames.append(orjson.loads(out.payload))

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    @property
    def closed(self) -> bool:
        return self.closed_with is not None

    def seqs(self) -> list[int]:
        return [e["seq"] for frame in self.frames for e in frame if e["type"] != "welcome"]


def make_hub() -> tuple[Hub, MemoryBroker]:
    broker = MemoryBroker(history_size=1_000, history_seconds=60)
    return Hub(broker=broker, metrics=Metrics(), tick_seconds=0.005), broker


async def connect(hub: Hub, n: int) -> list[tuple[Connection, ListSink]]:
    out = []
    for i in range(n):
        sink = ListSink()
        conn = Connection(session=f"s{i}", room_id=ROOM, codec=JSON_CODEC, sink=sink, profile=None)
        plan = await hub.join(conn, since=None)
        hub.attach(conn, plan, {"type": "welcome", "seq": conn.cursor})
        out.append((conn, sink))
    return out


def chat(n: int) -> dict[str, Any]:
    return {"type": "chat", "id": f"c{n}", "sender": None, "text": str(n)}


async def start_round(broker: MemoryBroker, events: list[dict[str, Any]]) -> None:
    """Publish, then let the flush (due on the next loop iteration) start its round."""
    await broker.publish(ROOM, events)
    await asyncio.sleep(0)


async def settle(hub: Hub) -> None:
    for _ in range(200):
        await asyncio.sleep(0.005)
        channel = hub.channels.get(ROOM)
        if channel is None or (channel._round is None and not channel.pending):
            return


async def test_a_round_reaches_every_viewer_in_slices_and_the_loop_runs_between() -> None:
    hub, broker = make_hub()
    crowd = await connect(hub, ROUND_SLICE * 3 + 5)
    ran_during_round: list[int] = []
    await start_round(broker, [chat(1)])
    channel = hub.channels[ROOM]
    # the first slice went out at once, the rest is still to come
    assert channel._round is not None
    asyncio.get_running_loop().call_soon(
        lambda: ran_during_round.append(sum(1 for _, s in crowd if len(s.frames) > 1))
    )
    await settle(hub)
    assert ran_during_round and ran_during_round[0] < len(crowd)
    assert all(sink.seqs() == [1] for _, sink in crowd)
    assert hub.metrics.registry.get_sample_value("live_frames_out_total") == len(crowd)


async def test_events_published_during_a_round_follow_it_in_order() -> None:
    hub, broker = make_hub()
    crowd = await connect(hub, ROUND_SLICE * 2 + 1)
    await start_round(broker, [chat(1)])
    assert hub.channels[ROOM]._round is not None
    await broker.publish(ROOM, [chat(2)])  # while the first round is under way
    await asyncio.sleep(0)
    await broker.publish(ROOM, [chat(3), chat(4)])
    await settle(hub)
    for _, sink in crowd:
        assert sink.seqs() == [1, 2, 3, 4]
        assert sink.frames[1] == [dict(chat(1), seq=1, ts=sink.frames[1][0]["ts"])]


async def test_a_viewer_joining_mid_round_gets_each_event_once() -> None:
    hub, broker = make_hub()
    crowd = await connect(hub, ROUND_SLICE * 2 + 1)
    await start_round(broker, [chat(1)])
    assert hub.channels[ROOM]._round is not None
    late = await connect(hub, 1)
    await broker.publish(ROOM, [chat(2)])
    await settle(hub)
    for _, sink in crowd:
        assert sink.seqs() == [1, 2]
    assert late[0][1].seqs() == [2]  # its welcome's seq already counted event 1


async def test_closing_everything_finishes_the_round_first() -> None:
    hub, broker = make_hub()
    crowd = await connect(hub, ROUND_SLICE * 2 + 1)
    await start_round(broker, [chat(1)])
    assert hub.channels[ROOM]._round is not None
    hub.close_all(1012, "restart")
    for _, sink in crowd:
        assert sink.seqs() == [1]
        assert sink.closed_with == 1012


async def test_a_gift_round_times_its_first_and_last_connection() -> None:
    hub, broker = make_hub()
    crowd = await connect(hub, ROUND_SLICE * 2 + 3)
    registry = hub.metrics.registry

    def timed(viewer: str) -> float | None:
        return registry.get_sample_value("live_gift_to_frame_seconds_count", {"viewer": viewer})

    await start_round(broker, [chat(1)])
    await settle(hub)
    assert timed("first") is None and timed("last") is None  # no gift: nothing timed
    gift = {"type": "gift", "tx": "t1", "gift": {}, "sender": None, "count": 1}
    await start_round(broker, [gift])
    assert timed("first") == 1 and timed("last") is None  # the round is still under way
    await settle(hub)
    assert timed("last") == 1
    assert all(sink.seqs() == [1, 2] for _, sink in crowd)
    slowest = registry.get_sample_value("live_gift_to_frame_seconds_sum", {"viewer": "last"})
    assert slowest is not None and 0 <= slowest < 5


async def resume(hub: Hub, since: int) -> tuple[bool, ListSink]:
    sink = ListSink()
    conn = Connection(session="back", room_id=ROOM, codec=JSON_CODEC, sink=sink, profile=None)
    plan = await hub.join(conn, since=since)
    hub.attach(conn, plan, {"type": "welcome", "seq": conn.cursor})
    return plan.resumed, sink


async def test_a_viewer_resumes_from_the_channel_with_every_missed_event_once() -> None:
    hub, broker = make_hub()
    await connect(hub, 1)  # keeps the channel open
    for n in range(1, 6):
        await start_round(broker, [chat(n)])
        await settle(hub)
    resumed, sink = await resume(hub, 2)
    assert resumed and sink.frames[0] == [{"type": "welcome", "seq": 2}]
    await broker.publish(ROOM, [chat(6)])
    await settle(hub)
    assert sink.seqs() == [3, 4, 5, 6]


async def test_a_resume_past_the_window_is_a_snapshot_from_the_channel_as_from_the_broker() -> None:
    broker = MemoryBroker(history_size=3, history_seconds=60)
    hub = Hub(broker=broker, metrics=Metrics(), tick_seconds=0.005, history_size=3)
    await connect(hub, 1)
    for n in range(1, 7):
        await start_round(broker, [chat(n)])
        await settle(hub)
    resumed, sink = await resume(hub, 2)  # 4 missed, 3 kept
    assert not resumed and sink.frames == [[{"type": "welcome", "seq": 6}]]
    resumed, sink = await resume(hub, 3)  # 3 missed: still within
    assert resumed and sink.seqs() == [4, 5, 6]


async def test_the_channel_board_follows_the_announcements_and_ends_with_the_room() -> None:
    hub, broker = make_hub()
    await connect(hub, 1)
    board = hub.channels[ROOM].board
    board.fill(stream_id=4, leaderboard=[], goal=None)
    top = [{"user": {"id": "u1"}, "coins": 30}]
    goal = {"type": "goal", "target": 100, "progress": 30, "title": "mic", "reached": False}
    await start_round(broker, [{"type": "leaderboard", "top": top}, goal])
    await settle(hub)
    assert board.leaderboard == top
    assert board.goal == {"target": 100, "progress": 30, "title": "mic", "reached": False}
    board.fill(stream_id=4, leaderboard=[], goal=None)  # an older read loses to them
    assert board.leaderboard == top
    assert board.goal == {"target": 100, "progress": 30, "title": "mic", "reached": False}
    await start_round(broker, [{"type": "goal_reached", "target": 100, "progress": 30}])
    await settle(hub)
    assert board.goal == {"target": 100, "progress": 30, "title": "mic", "reached": True}
    await start_round(broker, [{"type": "room_ended"}])
    await settle(hub)
    assert (board.leaderboard, board.goal, board.goal_known) == (None, None, False)


class OutgoingSink(ListSink):
    """Also keeps the ``Outgoing`` objects, to tell shared bytes from copies."""

    def __init__(self) -> None:
        super().__init__()
        self.outgoing: list[Outgoing] = []

    def write(self, out: Outgoing) -> None:
        super().write(out)
        self.outgoing.append(out)


async def test_viewers_resuming_from_the_same_seq_share_one_catch_up_frame() -> None:
    hub, broker = make_hub()
    await connect(hub, 1)  # keeps the channel open
    gift = {"type": "gift", "id": "g", "count": 1, "overlay": {"stream": {"coins": 5}}}
    for event in [chat(1), chat(2), gift, chat(4)]:
        await start_round(broker, [event])
        await settle(hub)

    async def back(since: int, *, overlay: bool = False) -> OutgoingSink:
        sink = OutgoingSink()
        conn = Connection(
            session="back", room_id=ROOM, codec=JSON_CODEC, sink=sink, profile=None, overlay=overlay
        )
        plan = await hub.join(conn, since=since)
        assert plan.resumed
        hub.attach(conn, plan, {"type": "welcome", "seq": conn.cursor})
        assert conn.cursor == hub.channels[ROOM].delivered_seq
        return sink

    first, second, later, overlay = (
        await back(1),
        await back(1),
        await back(2),
        await back(1, overlay=True),
    )
    last = hub.channels[ROOM].delivered_seq
    assert first.seqs() == second.seqs() == list(range(2, last + 1))
    assert later.seqs() == list(range(3, last + 1))
    assert first.outgoing[1] is second.outgoing[1]  # the same bytes, made once
    assert later.outgoing[1] is not first.outgoing[1]
    gifts = [e for e in first.frames[1] if e["type"] == "gift"]
    overlay_gifts = [e for e in overlay.frames[1] if e["type"] == "gift"]
    assert "overlay" not in gifts[0] and overlay_gifts[0]["overlay"]  # each audience its own
    await start_round(broker, [chat(5)])  # recent changed: made again, with the new event
    await settle(hub)
    again = await back(1)
    assert again.seqs() == list(range(2, last + 2)) and again.outgoing[1] is not first.outgoing[1]


async def test_events_delivered_long_ago_leave_recent_and_a_resume_asks_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "RECENT_SECONDS", -1.0)  # every batch is old at once
    hub, broker = make_hub()
    await connect(hub, 1)  # keeps the channel open
    for n in range(1, 6):
        await start_round(broker, [chat(n)])
        await settle(hub)
    assert not hub.channels[ROOM].recent
    resumed, sink = await resume(hub, 2)  # from the broker's history instead
    assert resumed and sink.seqs() == [3, 4, 5]
    await broker.publish(ROOM, [chat(6)])
    await settle(hub)
    assert sink.seqs() == [3, 4, 5, 6]

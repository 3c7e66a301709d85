"""The hub: rooms, connections and the coalescing fan-out.

One ``RoomChannel`` per room per process holds the room's local connections and
the room's single broker subscription. Events from the broker are collected for
one tick, encoded once per codec in use, and the same bytes are written to every
connection's sink: one frame per viewer per tick, whatever the gift rate, with no
per-viewer task or await on this path. A viewer whose sink backs up past the
limit is closed with 4008 and resumes from its last ``seq``.

A delivery round writes to ``ROUND_SLICE`` connections per loop iteration: in a
big room a round takes tens of milliseconds (a socket write each), and the loop
keeps reading commands and finishing commits between the slices instead of
only between rounds. The next round starts once this one is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from live.errors import BANNED
from live.metrics import Metrics
from live.realtime.sinks import Outgoing, Sink
from protocol import CloseCode, Codec
from protocol import events as ev
from store.domain.models import Event, Profile
from store.ids import now_ms
from store.roles import Broker, Subscription

if TYPE_CHECKING:  # the lease refers back to connections
    from live.realtime.expiry import TokenLease
    from live.realtime.pacing import ConnectionPacer

log = logging.getLogger("live.hub")

RECENT_EVENTS = 2_048
"""Events a channel remembers after sending them, so a viewer joining mid-tick
catches up locally without asking the broker again."""
RECENT_SECONDS = 10.0
"""And none delivered longer ago than this: a joining viewer needs the last
tick's, a reconnect storm's viewers the few seconds they were away; older gaps
resume from the broker. Without an age bound a quiet room's channel kept
2,048 events for minutes, thousands of rooms' worth of dicts that every full
garbage-collection pass walked (docs/PERFORMANCE.md)."""

ROUND_SLICE = 256
"""Connections a delivery round writes to per event loop iteration."""

GOAL_FIELDS = ("target", "progress", "title", "reached")
"""What a ``goal`` event says about the goal (the welcome's ``goal`` map)."""


@dataclass(slots=True)
class Board:
    """The leaderboard and goal a welcome shows, kept by the room's channel.

    Filled once from the engine, then moved by the room's own ``leaderboard``,
    ``goal`` and ``goal_reached`` events as the channel delivers them: every
    change to either is announced (a gift's within the announcement interval, a
    goal set at once), so a welcome is as old as the last announcement at most,
    which is what the viewers already watching see too. ``stream_id`` ties it
    to one stream: a new stream, or the room ending, starts it over.
    """

    stream_id: int | None = None
    leaderboard: list[dict[str, Any]] | None = None
    goal: dict[str, Any] | None = None
    goal_known: bool = False

    def fill(
        self,
        *,
        stream_id: int | None,
        leaderboard: list[dict[str, Any]],
        goal: dict[str, Any] | None,
    ) -> None:
        """What the engine read says, where no announcement said it first."""
        if stream_id != self.stream_id:
            self.clear(stream_id)
        if self.leaderboard is None:
            self.leaderboard = leaderboard
        if not self.goal_known:
            self.goal, self.goal_known = goal, True

    def clear(self, stream_id: int | None = None) -> None:
        self.stream_id = stream_id
        self.leaderboard, self.goal, self.goal_known = None, None, False

    def apply(self, batch: list[Event]) -> None:
        for event in batch:
            kind = event["type"]
            if kind == "leaderboard":
                self.leaderboard = event["top"]
            elif kind == "goal":
                self.goal = {name: event[name] for name in GOAL_FIELDS}
                self.goal_known = True
            elif kind == "goal_reached" and self.goal is not None:
                self.goal = {**self.goal, "reached": True}
            elif kind == "room_ended":
                self.clear()


class Connection:
    """One WebSocket client in one room."""

    __slots__ = (
        "closed",
        "codec",
        "cursor",
        "lease",
        "on_close",
        "overlay",
        "pacer",
        "profile",
        "role",
        "room_id",
        "session",
        "sink",
    )

    def __init__(
        self,
        *,
        session: str,
        room_id: str,
        codec: Codec,
        sink: Sink,
        profile: Profile | None,
        overlay: bool = False,
    ) -> None:
        self.session = session
        self.room_id = room_id
        self.codec = codec
        self.sink = sink
        self.profile = profile
        self.overlay = overlay
        self.role = "overlay" if overlay else ("signed_in" if profile else "guest")
        """Its role when it joined, the label of ``live_connections_by_role``."""
        self.cursor = 0
        """Highest room ``seq`` written to this connection."""
        self.closed = False
        self.on_close: Callable[[int], None] | None = None
        self.lease: TokenLease | None = None
        """The access token's expiry, on a signed-in viewer (``live.realtime.expiry``)."""
        self.pacer: ConnectionPacer | None = None
        """Its alert pacing, when it asked for it (``live.realtime.pacing``): told of
        the room events it is sent."""

    @property
    def is_viewer(self) -> bool:
        return not self.overlay

    def log_context(self) -> dict[str, str]:
        """The ``extra`` of a log line about this connection (see ``live.logs``)."""
        user = self.profile.id if self.profile else ("overlay" if self.overlay else "guest")
        return {"connection": self.session, "room": self.room_id, "user": user}

    def send(self, events: list[Event]) -> None:
        """Encode and send events for this connection alone (welcome, ack, error)."""
        if not self.closed:
            self.sink.write(Outgoing(self.codec.encode(events), binary=self.codec.binary))

    def send_room(self, events: list[Event]) -> None:
        """Send room events to this connection alone, as its audience sees them."""
        view = events if self.overlay else viewer_view(events)
        self.send(view)
        if self.pacer is not None:
            self.pacer(view)

    def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if self.lease is not None:
            self.lease.cancel()
        if self.pacer is not None:
            self.pacer.stop()
        self.sink.close(code, reason)
        if self.on_close is not None:
            self.on_close(code)


class RoomChannel:
    """A room's local connections and its broker subscription (a BrokerListener)."""

    def __init__(self, hub: Hub, room_id: str) -> None:
        self.hub = hub
        self.room_id = room_id
        self.connections: dict[Connection, None] = {}
        self.pending: list[Event] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._delivered: deque[tuple[float, int]] = deque()
        """(loop time, last seq) of each batch delivered, to age ``recent`` out."""
        self.delivered_seq = 0
        self.subscription: Subscription | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = -1e9
        """Loop time of the last delivery (coalescing starts from there)."""
        self._round: _Round | None = None
        """The delivery round in progress, if any (see ``_deliver``)."""
        self._resync: asyncio.Task[None] | None = None
        self.ended = False
        self.viewers = 0
        """Local connections that count as viewers (overlays do not)."""
        self.board = Board()
        self._catch_ups: dict[tuple[int, str, bool], tuple[list[Event], Outgoing]] = {}
        """The catch-ups sent since the last delivery, by cursor, codec and audience
        (see ``_catch_up``)."""
        self._catch_ups_seq = 0
        """The last seq of ``recent`` when ``_catch_ups`` were made."""

    # -- BrokerListener -------------------------------------------------------------
    def on_events(self, room_id: str, events: list[Event]) -> None:
        if self.hub.observer is not None:
            self.hub.observer(room_id, events)
        self.pending.extend(events)
        if self._flush_handle is None and self._resync is None and self._round is None:
            # At most one frame per tick, and no wait when the room was idle: the
            # first event after a quiet tick goes out on the next loop iteration
            # (what else arrives by then joins it); under load, events coalesce.
            loop = asyncio.get_running_loop()
            due = self._last_flush + self.hub.tick_seconds
            if due <= loop.time():
                self._flush_handle = loop.call_soon(self.flush)
            else:
                self._flush_handle = loop.call_at(due, self.flush)

    def on_reset(self, room_id: str) -> None:
        self.hub.metrics.broker_resets.inc()
        self._start_resync()

    # -- fan-out ----------------------------------------------------------------------
    def viewer_count(self) -> int:
        return self.viewers

    def flush(self) -> None:
        self._flush_handle = None
        if not self.pending or self._round is not None:
            return  # a round in progress schedules the next one when it ends
        batch = self.pending
        self.pending = []
        if len(batch) > 1 and any(
            batch[i]["seq"] >= batch[i + 1]["seq"] for i in range(len(batch) - 1)
        ):
            batch = sorted({e["seq"]: e for e in batch}.values(), key=lambda e: e["seq"])
        if batch[0]["seq"] <= self.delivered_seq:
            batch = [e for e in batch if e["seq"] > self.delivered_seq]
            if not batch:
                return
        if batch[0]["seq"] > self.delivered_seq + 1:
            # Events are missing (a broker reconnect we were not told about, or an
            # interrupted delivery): fetch them before sending anything newer.
            self.pending = batch
            self._start_resync()
            return
        self._deliver(batch)

    def _deliver(self, batch: list[Event]) -> None:
        """Start a round that writes ``batch`` to every connection lacking it."""
        self._last_flush = asyncio.get_running_loop().time()
        self.delivered_seq = batch[-1]["seq"]
        recent = self.recent
        recent.extend(batch)
        # forget what this channel delivered over RECENT_SECONDS ago (by its own
        # clock: an event that arrives late is still kept as long as the others)
        delivered = self._delivered
        now = self._last_flush
        delivered.append((now, self.delivered_seq))
        while delivered and delivered[0][0] < now - RECENT_SECONDS:
            _, seq = delivered.popleft()
            while recent and recent[0]["seq"] <= seq:
                recent.popleft()
        self.board.apply(batch)
        # Overlay-only detail (``overlay`` maps) never reaches viewers: a batch is
        # encoded once per codec and audience, the same bytes for all of an audience.
        # Connections that attach from now on catch up from ``recent``.
        gift_ts = [e["ts"] for e in batch if e["type"] == "gift" and e.get("count") and "ts" in e]
        self._round = _Round(
            batch, viewer_view(batch), list(self.connections), gift_ts=min(gift_ts, default=None)
        )
        self._continue_round()

    def _continue_round(self) -> None:
        round_ = self._round
        if round_ is None:
            return
        gift_ts = round_.gift_ts
        first_written: float | None = None
        if round_.next == 0 and gift_ts is not None and round_.targets:
            # the room's first connection on this node alone, to time it
            self._write(round_, round_.targets[:1])
            round_.next = 1
            first_written = self.hub.metrics.gift_to_frame("first", published_ms=gift_ts)
        end = min(round_.next + ROUND_SLICE, len(round_.targets))
        if end > round_.next:
            self._write(round_, round_.targets[round_.next : end])
            # written since the first: the clock is read again
            first_written = None
        round_.next = end
        if end < len(round_.targets):
            asyncio.get_running_loop().call_soon(self._continue_round)
            return
        self._round = None
        if gift_ts is not None and round_.targets:
            # a room with one connection here: its first is its last, written just now
            self.hub.metrics.gift_to_frame("last", published_ms=gift_ts, now=first_written)
        if any(e["type"] == "room_ended" for e in round_.batch):
            self.ended = True
            for conn in list(self.connections):
                self.hub.close_connection(conn, CloseCode.ROOM_ENDED, "room ended")
        if self.pending and self._flush_handle is None and self._resync is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_at(
                max(self._last_flush + self.hub.tick_seconds, loop.time()), self.flush
            )

    def finish_round(self) -> None:
        """Write the rest of the round in progress now (shutdown)."""
        while self._round is not None:
            self._continue_round()

    def _write(self, round_: _Round, targets: list[Connection]) -> None:
        batch = round_.batch
        first = batch[0]["seq"]
        last = batch[-1]["seq"]
        viewers_batch = round_.viewers_batch
        shared = round_.shared
        hub = self.hub
        limit = hub.send_buffer_bytes
        sent = frames = size = 0
        for conn in targets:
            if conn.cursor >= last or conn.closed:
                continue
            view = batch if conn.overlay else viewers_batch
            own = view
            if conn.cursor >= first:  # joined mid-batch: send only what it lacks
                own = [e for e in view if e["seq"] > conn.cursor]
                out = Outgoing(conn.codec.encode(own), binary=conn.codec.binary)
                sent += len(own)
            else:
                name = (conn.codec.subprotocol, view is not viewers_batch)
                out_or_none = shared.get(name)
                if out_or_none is None:
                    out_or_none = Outgoing(conn.codec.encode(view), binary=conn.codec.binary)
                    shared[name] = out_or_none
                out = out_or_none
                sent += len(batch)
            sink = conn.sink
            sink.write(out)
            conn.cursor = last
            if conn.pacer is not None:
                conn.pacer(own)
            frames += 1
            size += len(out.payload)
            if sink.buffered() > limit:
                hub.metrics.slow_closes.inc()
                hub.close_connection(conn, CloseCode.TOO_SLOW, "too slow to keep up")
        if frames:
            metrics = hub.metrics
            metrics.frames_out.inc(frames)
            metrics.bytes_out.inc(size)
            metrics.events_out.inc(sent)

    def _start_resync(self) -> None:
        if self._resync is not None:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._resync = asyncio.get_running_loop().create_task(self._run_resync())

    async def _run_resync(self) -> None:
        try:
            missed = await self.hub.broker.history(self.room_id, since=self.delivered_seq)
        except Exception:
            log.warning(
                "resync of room %s failed",
                self.room_id,
                exc_info=True,
                extra={"room": self.room_id},
            )
            missed = None
        self._resync = None
        if missed is None:
            # The window no longer covers the gap: viewers reconnect and resume or
            # get a fresh snapshot; silently skipping events is never an option.
            for conn in list(self.connections):
                self.hub.close_connection(conn, CloseCode.TOO_SLOW, "missed events, resume")
            with contextlib.suppress(Exception):
                self.delivered_seq = await self.hub.broker.last_seq(self.room_id)
            self.recent.clear()  # no longer a run without gaps: resume from the broker
            self._delivered.clear()
            self._catch_ups.clear()
            self.board.clear()  # announcements may have been among the missed events
            self.pending = [e for e in self.pending if e["seq"] > self.delivered_seq]
        else:
            self.pending = missed + self.pending
        if self.pending:
            self.flush()

    # -- membership ---------------------------------------------------------------------
    def start_point(self, since: int | None) -> tuple[int, bool] | None:
        """Where a joining connection starts, from what this channel delivered:
        ``(cursor, resumed)``, or None when only the broker can tell.

        Without ``since``, the stream starts after the last event delivered here
        (events still on their way reach the connection once it is attached).
        With ``since``, it resumes when every event after it is in ``recent``
        and within the broker's window (``history_size`` events, none older
        than ``history_seconds``), as a resume from the broker would.
        """
        if self._resync is not None or self.ended:
            return None
        last = self.delivered_seq
        if since is None:
            return last, False
        if since > last:
            return None  # seen elsewhere first: the broker knows
        missing = last - since
        if missing == 0:
            return since, True
        hub = self.hub
        if missing > min(len(self.recent), hub.history_size):
            return None
        oldest = self.recent[-missing]
        if oldest["seq"] != since + 1 or oldest.get("ts", 0) < now_ms() - hub.history_ms:
            return None
        return since, True

    def attach(self, conn: Connection) -> None:
        """Add ``conn`` after sending it everything this channel already delivered
        beyond its cursor (call with no await between this and the cursor set-up)."""
        recent = self.recent
        if recent and recent[-1]["seq"] > conn.cursor:  # not caught up (in a storm, most)
            self._catch_up(conn)
        self.connections[conn] = None
        if conn.is_viewer:
            self.viewers += 1

    def _catch_up(self, conn: Connection) -> None:
        """Send ``conn`` the recent events after its cursor, as ``send_room`` would.

        In a reconnect storm thousands of viewers come back from the same last
        seq, between two deliveries: they get the same events, so the view and its
        encoding are made once per cursor, codec and audience, and the same bytes
        go to all of them. What was made is forgotten when ``recent`` changes."""
        last = self.recent[-1]["seq"]
        if last != self._catch_ups_seq:
            self._catch_ups.clear()
            self._catch_ups_seq = last
        codec = conn.codec
        key = (conn.cursor, codec.subprotocol, conn.overlay)
        made = self._catch_ups.get(key)
        if made is None:
            events = [e for e in self.recent if e["seq"] > conn.cursor]
            view = events if conn.overlay else viewer_view(events)
            made = self._catch_ups[key] = (view, Outgoing(codec.encode(view), binary=codec.binary))
        view, out = made
        if not conn.closed:
            conn.sink.write(out)
        if conn.pacer is not None:
            conn.pacer(view)
        conn.cursor = last

    def detach(self, conn: Connection) -> bool:
        if conn not in self.connections:
            return False
        del self.connections[conn]
        if conn.is_viewer:
            self.viewers -= 1
        return True

    # -- signals (Broker.signal) ----------------------------------------------------------
    def on_signal(self, room_id: str, message: dict[str, Any]) -> None:
        """Overlay-only events go to this node's overlays of the room (encoded once
        per codec); ``kick`` closes a banned user's connections, ``overlay_key`` the
        overlays (their key was rotated); ``user`` events go to one user's own
        connections."""
        kind = message.get("kind")
        if kind == "overlay":
            events = message.get("events") or []
            if events:
                overlays = [c for c in self.connections if c.overlay]
                write_per_codec(overlays, events)
                for conn in overlays:
                    if conn.pacer is not None:
                        conn.pacer(events)
        elif kind == "kick":
            user = message.get("user")
            for conn in list(self.connections):
                if conn.profile is not None and conn.profile.id == user and not conn.overlay:
                    conn.send([error_event(None, "forbidden", BANNED)])
                    self.hub.close_connection(conn, CloseCode.POLICY, "banned")
        elif kind == "user":  # events for one user's own (non-overlay) connections
            user = message.get("user")
            events = message.get("events") or []
            mine = [
                c
                for c in self.connections
                if c.profile is not None and c.profile.id == user and not c.overlay
            ]
            if mine and events:
                write_per_codec(mine, events)
        elif kind == "overlay_key":
            for conn in list(self.connections):
                if conn.overlay:
                    conn.send([error_event(None, "unauthorized", "the overlay key was rotated")])
                    self.hub.close_connection(conn, CloseCode.POLICY, "overlay key rotated")


@dataclass(slots=True)
class _Round:
    """One batch on its way to the connections a channel had when it started."""

    batch: list[Event]
    viewers_batch: list[Event]
    targets: list[Connection]
    next: int = 0
    shared: dict[tuple[str, bool], Outgoing] = field(default_factory=dict)
    gift_ts: int | None = None
    """When the batch's earliest gift was published (ms since the epoch), if any."""
    """The batch encoded once per (codec, overlay audience)."""


@dataclass(slots=True)
class JoinPlan:
    channel: RoomChannel
    resumed: bool
    replay: list[Event]


class Hub:
    def __init__(
        self,
        *,
        broker: Broker,
        metrics: Metrics,
        tick_seconds: float = 0.025,
        send_buffer_bytes: int = 1_048_576,
        history_size: int = 1_000,
        history_seconds: float = 120.0,
    ) -> None:
        self.broker = broker
        self.history_size = history_size
        """The broker's resume window (``LIVE_HISTORY_SIZE``, ``LIVE_HISTORY_SECONDS``):
        a resume from a channel's own recent events stays within it."""
        self.history_ms = int(history_seconds * 1000)
        self.metrics = metrics
        self.tick_seconds = tick_seconds
        self.send_buffer_bytes = send_buffer_bytes
        self.channels: dict[str, RoomChannel] = {}
        self.observer: Callable[[str, list[Event]], None] | None = None
        """Sees every room event this node delivers, before the tick (room activity)."""
        self._opening: dict[str, asyncio.Future[RoomChannel]] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}

    async def open_channel(self, room_id: str) -> RoomChannel:
        """The room's channel, subscribed (one broker subscription per room)."""
        closing = self._closing.get(room_id)
        if closing is not None:
            await asyncio.shield(closing)
        channel = self.channels.get(room_id)
        if channel is not None:
            return channel
        opening = self._opening.get(room_id)
        if opening is not None:
            return await asyncio.shield(opening)
        future: asyncio.Future[RoomChannel] = asyncio.get_running_loop().create_future()
        self._opening[room_id] = future
        try:
            channel = RoomChannel(self, room_id)
            channel.subscription = await self.broker.subscribe(room_id, channel)
            channel.delivered_seq = await self.broker.last_seq(room_id)
            # Anything that arrived while we read last_seq is already counted in it.
            channel.pending = [e for e in channel.pending if e["seq"] > channel.delivered_seq]
            self.channels[room_id] = channel
            self.metrics.rooms.set(len(self.channels))
            future.set_result(channel)
            return channel
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it through their await
            raise
        finally:
            del self._opening[room_id]

    async def join(self, conn: Connection, *, since: int | None) -> JoinPlan:
        """Subscribe and choose between resume and snapshot for ``conn``.

        Sets ``conn.cursor`` to the ``seq`` the welcome announces. The caller builds
        the welcome and calls ``attach`` with no await in between. A crowd joining
        an open channel asks the broker nothing (``RoomChannel.start_point``).
        """
        while True:
            channel = await self.open_channel(conn.room_id)
            start = channel.start_point(since)
            if start is not None and self.channels.get(conn.room_id) is channel:
                conn.cursor, resumed = start
                return JoinPlan(channel=channel, resumed=resumed, replay=[])
            missed = None
            if since is not None and since >= 0:
                missed = await self.broker.history(conn.room_id, since=since)
            last = await self.broker.last_seq(conn.room_id)
            if self.channels.get(conn.room_id) is channel:
                break  # else the channel closed while we waited: open it again
        if missed is not None and since is not None and since <= last:
            conn.cursor = since
            return JoinPlan(channel=channel, resumed=True, replay=missed)
        conn.cursor = last
        return JoinPlan(channel=channel, resumed=False, replay=[])

    def attach(self, conn: Connection, plan: JoinPlan, welcome: Event) -> None:
        """Send the welcome, the replay and the local catch-up, then attach (all sync,
        so no room event can slip between the snapshot and the live stream)."""
        conn.send([welcome])
        replay = [e for e in plan.replay if e["seq"] > conn.cursor]
        if replay:
            conn.send_room(replay)
            conn.cursor = replay[-1]["seq"]
        plan.channel.attach(conn)
        self.metrics.connections.inc()
        self.metrics.connections_by_role.labels(conn.role).inc()
        self.metrics.connections_total.inc()

    def close_connection(self, conn: Connection, code: int, reason: str) -> None:
        if not conn.closed:
            self.metrics.closes.labels(str(code)).inc()
            conn.close(code, reason)

    def leave(self, conn: Connection) -> None:
        if conn.lease is not None:
            conn.lease.cancel()
        channel = self.channels.get(conn.room_id)
        if channel is None:
            return
        if channel.detach(conn):
            self.metrics.connections.dec()
            self.metrics.connections_by_role.labels(conn.role).dec()
        # Also when ``conn`` never got attached: the channel it opened closes.
        if not channel.connections and conn.room_id not in self._closing:
            self._closing[conn.room_id] = asyncio.get_running_loop().create_task(
                self._close_channel(channel)
            )

    async def _close_channel(self, channel: RoomChannel) -> None:
        try:
            if channel.connections:
                return
            self.channels.pop(channel.room_id, None)
            self.metrics.rooms.set(len(self.channels))
            if channel.subscription is not None:
                await channel.subscription.close()
        except Exception:
            log.warning(
                "unsubscribe from room %s failed",
                channel.room_id,
                exc_info=True,
                extra={"room": channel.room_id},
            )
        finally:
            self._closing.pop(channel.room_id, None)

    def viewers(self, room_id: str) -> int:
        channel = self.channels.get(room_id)
        return channel.viewer_count() if channel else 0

    def flush_all(self) -> None:
        for channel in list(self.channels.values()):
            channel.finish_round()
            channel.flush()
            channel.finish_round()

    def send_all(self, events: list[Event]) -> None:
        """Connection events for every connection of this node (a catalog change)."""
        write_per_codec(
            [conn for channel in self.channels.values() for conn in channel.connections], events
        )

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection (shutdown: 1012 restart, clients reconnect elsewhere)."""
        self.flush_all()
        for channel in list(self.channels.values()):
            for conn in list(channel.connections):
                self.close_connection(conn, code, reason)


def write_per_codec(connections: list[Connection], events: list[Event]) -> None:
    """The same events to many connections, encoded once per codec."""
    shared: dict[str, Outgoing] = {}
    for conn in connections:
        if conn.closed:
            continue
        codec = conn.codec
        out = shared.get(codec.subprotocol)
        if out is None:
            out = shared[codec.subprotocol] = Outgoing(codec.encode(events), binary=codec.binary)
        conn.sink.write(out)


def error_event(command_id: str | None, code: str, message: str) -> Event:
    return ev.error(id=command_id, code=code, message=message)


def public_or_none(profile: Profile | None) -> dict[str, Any] | None:
    return profile.public() if profile is not None else None


def viewer_view(events: list[Event]) -> list[Event]:
    """The events as viewers see them: without the overlay-only ``overlay`` maps
    (the same list when there are none)."""
    if not any("overlay" in e for e in events):
        return events
    return [{k: v for k, v in e.items() if k != "overlay"} if "overlay" in e else e for e in events]

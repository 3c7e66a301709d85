"""The scaled engine's broker: room fan-out across nodes through Redis pub/sub.

- ``publish`` is one Lua script: ``INCRBY`` the room's seq counter by the number
  of events (seq is cluster-wide and gap-free), ``XADD`` the batch to the room's
  capped history stream, ``PUBLISH`` it once. Events travel as one JSON array
  without seq/ts plus a ``<first seq>:<ts>:`` header, so Lua never parses JSON;
  every receiver stamps ``seq = first + index`` and ``ts``. Because seq is
  assigned in the same atomic step as the ``PUBLISH``, messages reach every
  subscriber in seq order.
- Each node holds one pub/sub connection and at most one channel subscription
  per room, reference-counted over its local listeners.
- When that connection drops (or stops answering pings) the node reconnects
  with backoff, resubscribes every room, and once a room's subscription is
  active again calls ``on_reset`` on each of its listeners so they re-sync from
  ``history``: events published meanwhile are never lost silently. A gap in seq
  on a live subscription (which Redis should never cause) is handled the same way.
- ``history`` keeps, like the in-process broker, at most ``history_size`` events
  and none older than ``history_seconds``: the stream holds at least that many
  (``MAXLEN ~`` on batches), and reads apply the exact window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from store.domain.models import Event
from store.errors import Unavailable
from store.listeners import ListenerSubscription, RoomListeners
from store.roles import BrokerListener
from store.scaled import keys
from store.scaled.client import CONNECTION_ERRORS, CommandBatcher, load_script
from store.scaled.keys import channel_name, room_key, room_of_channel

log = logging.getLogger(__name__)

_PUBLISH = load_script("publish")
_HISTORY = load_script("history")

SIGNAL_HEAD: Final = b"!"
"""Header of a signal on a room channel (event batches start with their seq)."""
SUBSCRIBE_TIMEOUT: Final = 10.0
LOCAL_DELIVERY_TIMEOUT: Final = 1.0


def _stamp_in_place(events: list[Event], first: int, ts: int) -> None:
    for index, event in enumerate(events):
        event["seq"] = first + index
        event["ts"] = ts


def _stamp(payload: bytes) -> tuple[int, list[Event]]:
    """Decode ``<first>:<ts>:<json array>`` into stamped events."""
    first_s, ts_s, body = payload.split(b":", 2)
    first = int(first_s)
    events: list[Event] = orjson.loads(body)
    _stamp_in_place(events, first, int(ts_s))
    return first, events


def _parsed_replies(conn: AbstractConnection) -> Any:
    """The connection's hiredis reader (replies read from the socket and not taken
    yet), or ``None`` with another parser: then each message is read on its own."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    return reader if reader is not None and hasattr(reader, "gets") else None


@dataclass(slots=True)
class _Room:
    listeners: RoomListeners = field(default_factory=RoomListeners)
    active: bool = False
    """The channel subscription is confirmed on the current connection."""
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    needs_reset: bool = False
    delivered: int = 0
    """Last seq handed to the listeners on this subscription (0: none yet)."""
    seq_waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class RedisBroker:
    """``Broker`` over Redis pub/sub plus a per-room history stream."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        url: str,
        history_size: int = 1_000,
        history_seconds: float = 120.0,
        ping_interval: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        if history_size < 1 or history_seconds <= 0:
            raise ValueError("history_size must be >= 1 and history_seconds > 0")
        self._batcher = batcher
        self._pool = ConnectionPool.from_url(
            # RESP2: pub/sub messages arrive as plain replies on this connection
            url,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=5.0,
        )
        self._size = history_size
        self._max_age_ms = int(history_seconds * 1000)
        self._ttl = max(int(history_seconds * 2), 60)
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._rooms: dict[str, _Room] = {}
        self._outstanding: dict[bytes, int] = {}
        """channel -> (UN)SUBSCRIBE commands sent and not yet confirmed."""
        self._conn: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0
        """Times the pub/sub connection was re-established (for metrics and tests)."""

    # -- Broker ----------------------------------------------------------------

    async def publish(self, room_id: str, events: list[Event]) -> list[Event]:
        """Stamp ``seq``/``ts`` in place and fan out on every node. When this node
        has listeners on the room, returns once they have the events (or after
        ``LOCAL_DELIVERY_TIMEOUT``), so a publisher reads its own writes."""
        if not events:
            return events
        reply = await self._batcher.evalsha(
            _PUBLISH,
            (room_key(room_id, keys.SEQ), room_key(room_id, keys.HISTORY)),
            (channel_name(room_id), len(events), orjson.dumps(events), self._size, self._ttl),
        )
        first = int(reply[0])
        _stamp_in_place(events, first, int(reply[1]))
        room = self._rooms.get(room_id)
        if room is not None and room.active:
            last = first + len(events) - 1
            if room.delivered < last:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                room.seq_waiters.append((last, waiter))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter, LOCAL_DELIVERY_TIMEOUT)
        return events

    async def subscribe(self, room_id: str, listener: BrokerListener) -> ListenerSubscription:
        """Returns once the room's channel subscription is confirmed by Redis."""
        if self._closed:
            raise Unavailable("the broker is closed")
        room = self._rooms.get(room_id)
        first = room is None
        if room is None:
            room = self._rooms[room_id] = _Room()
        # registered before any await: a concurrent last close cannot drop the room
        room.listeners.add(listener)
        subscription = ListenerSubscription(functools.partial(self._release, room_id, listener))
        if room.active:
            return subscription
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        room.waiters.append(waiter)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if first:
            await self._send_subscribe(room_id)
        try:
            await asyncio.wait_for(waiter, SUBSCRIBE_TIMEOUT)
        except TimeoutError:
            await subscription.close()
            raise Unavailable("could not subscribe to the room's channel") from None
        return subscription

    async def history(self, room_id: str, *, since: int) -> list[Event] | None:
        """Events with ``seq > since`` in order; ``None`` if any of them has already
        left the window; ``[]`` when ``since`` is at or past the last seq."""
        reply = await self._batcher.evalsha(
            _HISTORY,
            (room_key(room_id, keys.SEQ), room_key(room_id, keys.HISTORY)),
            (since,),
            retry_on_disconnect=True,
        )
        last, now = int(reply[0]), int(reply[1])
        if since >= last:
            return []
        entries: Sequence[Any] = reply[2] if len(reply) > 2 else []
        if not entries or since + 1 <= last - self._size:
            return None  # more than history_size events were published since
        cutoff = now - self._max_age_ms
        events: list[Event] = []
        for index, (_entry_id, values) in enumerate(entries):
            fields = {values[i]: values[i + 1] for i in range(0, len(values), 2)}
            first, batch = _stamp(fields[b"s"] + b":" + fields[b"t"] + b":" + fields[b"d"])
            if index == 0 and first > since + 1:
                return None  # the batch holding since+1 has been trimmed
            for event in batch:
                if event["seq"] > since:
                    if not events and event["ts"] < cutoff:
                        return None  # since+1 is older than history_seconds
                    events.append(event)
        return events

    async def last_seq(self, room_id: str) -> int:
        value = await self._batcher.execute("GET", room_key(room_id, keys.SEQ))
        return int(value) if value is not None else 0

    async def signal(self, room_id: str, message: dict[str, Any]) -> None:
        """``PUBLISH`` the message on the room's channel with a ``!`` header, which
        no event batch has (their header starts with a seq): every node hands it
        to its listeners' ``on_signal``, outside the seq order and the history."""
        await self._batcher.execute(
            "PUBLISH",
            channel_name(room_id),
            SIGNAL_HEAD + orjson.dumps(message),
            retry_on_disconnect=False,
        )

    def listeners(self, room_id: str) -> int:
        """Distinct local listeners on the room (for metrics and tests)."""
        room = self._rooms.get(room_id)
        return len(room.listeners) if room is not None else 0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def close(self) -> None:
        """Drop every subscription and the pub/sub connection."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for room in self._rooms.values():
            self._wake(room, error=True)
        self._rooms.clear()
        await self._pool.disconnect()

    # -- subscriptions ---------------------------------------------------------

    async def _release(self, room_id: str, listener: BrokerListener) -> None:
        room = self._rooms.get(room_id)
        if room is None or not room.listeners.release(listener):
            return
        del self._rooms[room_id]
        self._wake(room, error=True)
        await self._send(b"UNSUBSCRIBE", [channel_name(room_id).encode()])

    async def _send_subscribe(self, room_id: str) -> None:
        await self._send(b"SUBSCRIBE", [channel_name(room_id).encode()])

    async def _send(self, command: bytes, channels: list[bytes]) -> None:
        """Send on the live connection; without one, the reconnect resubscribes."""
        conn = self._conn
        if conn is None or not channels:
            return
        for channel in channels:
            self._outstanding[channel] = self._outstanding.get(channel, 0) + 1
        try:
            packed = conn.pack_command(command, *channels)
            await conn.send_packed_command(packed, check_health=False)
        except CONNECTION_ERRORS as exc:
            log.warning("broker: sending %s failed: %s", command.decode(), exc)
            # the reader notices the broken connection and reconnects

    # -- the pub/sub connection --------------------------------------------------

    async def _run(self) -> None:
        """Own the pub/sub connection: connect, resubscribe, read; on failure, back
        off and start again. Runs until ``close``."""
        backoff = 0.05
        while True:
            conn: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                channels = [channel_name(room_id).encode() for room_id in self._rooms]
                self._outstanding = {}
                self._conn = conn
                await self._send(b"SUBSCRIBE", channels)
                backoff = 0.05
                await self._read(conn)
            except CONNECTION_ERRORS as exc:
                if not self._closed:
                    log.warning("broker: pub/sub connection lost: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker: pub/sub reader failed")
            finally:
                was_connected = self._conn is conn
                self._conn = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                if was_connected:
                    self._interrupted()
            if self._closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            self.reconnects += 1

    def _interrupted(self) -> None:
        """The connection is gone: every active room may miss events from now on."""
        for room in self._rooms.values():
            if room.active:
                room.needs_reset = True
            room.active = False
            room.delivered = 0
            for _, waiter in room.seq_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            room.seq_waiters.clear()

    async def _read(self, conn: AbstractConnection) -> None:
        idle = 0
        while True:
            message = await conn.read_response(timeout=self._ping_interval)
            if message is None:
                idle += 1
                if idle >= 3:
                    raise ConnectionError("the pub/sub connection stopped answering pings")
                await conn.send_packed_command(conn.pack_command(b"PING"), check_health=False)
                continue
            idle = 0
            self._handle(message)
            # What the same read brought in is parsed already: take it without one
            # await and one timeout per message (a busy node gets many per read).
            parsed = _parsed_replies(conn)
            if parsed is not None:
                while (message := parsed.gets()) is not False and message is not NOT_ENOUGH_DATA:
                    if isinstance(message, Exception):
                        raise message
                    self._handle(message)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3:
            return
        kind = message[0]
        if kind == b"message":
            self._deliver(message[1], message[2])
        elif kind == b"subscribe":
            self._confirmed(message[1], subscribed=True)
        elif kind == b"unsubscribe":
            self._confirmed(message[1], subscribed=False)

    def _confirmed(self, channel: bytes, *, subscribed: bool) -> None:
        left = self._outstanding.get(channel, 1) - 1
        if left > 0:
            self._outstanding[channel] = left
            return  # a later (UN)SUBSCRIBE of this channel is still in flight
        self._outstanding.pop(channel, None)
        room = self._rooms.get(room_of_channel(channel))
        if not subscribed or room is None or room.active:
            return
        room.active = True
        room.delivered = 0
        self._wake(room, error=False)
        if room.needs_reset:
            room.needs_reset = False
            room.listeners.reset(room_of_channel(channel))

    def _wake(self, room: _Room, *, error: bool) -> None:
        for waiter in room.waiters:
            if not waiter.done():
                if error:
                    waiter.set_exception(Unavailable("the subscription was closed"))
                    waiter.exception()  # retrieved: no "never retrieved" warning
                else:
                    waiter.set_result(None)
        room.waiters.clear()
        for _, seq_waiter in room.seq_waiters:
            if not seq_waiter.done():
                seq_waiter.set_result(None)
        room.seq_waiters.clear()

    def _deliver(self, channel: bytes, payload: bytes) -> None:
        room_id = room_of_channel(channel)
        room = self._rooms.get(room_id)
        if room is None or not room.active:
            return
        if payload[:1] == SIGNAL_HEAD:
            self._deliver_signal(room_id, room, payload[1:])
            return
        try:
            first, events = _stamp(payload)
        except (ValueError, orjson.JSONDecodeError):
            log.error("broker: undecodable message on %r", channel)
            return
        if not events:
            return
        last = first + len(events) - 1
        if room.delivered and last <= room.delivered:
            return  # already delivered: at most once
        if room.delivered and first != room.delivered + 1:
            # never silent loss: the listeners re-sync from history, then go on
            log.warning("broker: seq gap on room %s (%d then %d)", room_id, room.delivered, first)
            room.listeners.reset(room_id)
        room.delivered = last
        room.listeners.events(room_id, events)
        if room.seq_waiters:
            still: list[tuple[int, asyncio.Future[None]]] = []
            for seq, waiter in room.seq_waiters:
                if seq <= last:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    still.append((seq, waiter))
            room.seq_waiters = still

    def _deliver_signal(self, room_id: str, room: _Room, body: bytes) -> None:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.error("broker: undecodable signal on room %s", room_id)
            return
        room.listeners.signal(room_id, message)

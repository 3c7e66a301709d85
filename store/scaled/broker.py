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
- On a Redis Cluster (``redis+cluster://``) rooms use sharded pub/sub: the
  publish script runs ``SPUBLISH`` on the room's shard channel (same slot as its
  seq and history), and the node holds one pub/sub connection per primary that
  serves a room it has listeners in, ``SSUBSCRIBE``-d there. When a slot moves
  (Redis ends the subscription with an unrequested ``sunsubscribe``) or a
  primary's connection drops (failover), the room's subscription is made again
  on the slot's primary now, and its listeners re-sync from ``history`` once it
  is active: a migration or a failover is never a silent gap.
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

import hiredis
import orjson
from redis import exceptions as redis_errors
from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from store.domain.models import Event
from store.errors import Unavailable
from store.listeners import ListenerSubscription, RoomListeners
from store.roles import BrokerListener
from store.scaled import keys
from store.scaled.client import CONNECTION_ERRORS, CommandBatcher, load_script
from store.scaled.cluster import Node, redirection
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
    link: _Link | None = None
    """The pub/sub connection the room's channel is subscribed on."""


@dataclass(slots=True, eq=False)
class _Link:
    """One pub/sub connection: to the single Redis (``node`` ``None``), or to one
    primary of a cluster."""

    node: Node | None
    pool: ConnectionPool
    conn: AbstractConnection | None = None
    task: asyncio.Task[None] | None = None
    outstanding: dict[bytes, int] = field(default_factory=dict)
    """channel -> (UN)SUBSCRIBE commands sent and not yet confirmed."""


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
        self._url = url
        self._sharded = batcher.cluster is not None
        self._subscribe, self._unsubscribe = (
            (b"SSUBSCRIBE", b"SUNSUBSCRIBE") if self._sharded else (b"SUBSCRIBE", b"UNSUBSCRIBE")
        )
        self._links: dict[Node | None, _Link] = {}
        self._size = history_size
        self._max_age_ms = int(history_seconds * 1000)
        self._ttl = max(int(history_seconds * 2), 60)
        self._ping_interval = ping_interval
        self._max_backoff = max_backoff
        self._rooms: dict[str, _Room] = {}
        self._closed = False
        self._rehoming: set[asyncio.Task[None]] = set()
        self._rehoming_rooms: set[str] = set()
        self.reconnects = 0
        """Times a pub/sub connection was re-established (for metrics and tests)."""

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
        if first:
            try:
                await self._home(room_id, room)
            except BaseException:
                await subscription.close()
                raise
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
        """Every pub/sub connection this node needs is up (and there is one)."""
        return bool(self._links) and all(link.conn is not None for link in self._links.values())

    async def close(self) -> None:
        """Drop every subscription and the pub/sub connections."""
        self._closed = True
        for task in [*self._rehoming, *(link.task for link in self._links.values())]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for room in self._rooms.values():
            self._wake(room, error=True)
        self._rooms.clear()
        for link in self._links.values():
            await link.pool.disconnect()
        self._links.clear()

    # -- subscriptions ---------------------------------------------------------

    async def _release(self, room_id: str, listener: BrokerListener) -> None:
        room = self._rooms.get(room_id)
        if room is None or not room.listeners.release(listener):
            return
        del self._rooms[room_id]
        self._wake(room, error=True)
        if room.link is not None:
            await self._send(room.link, self._unsubscribe, [channel_name(room_id).encode()])

    def _link(self, node: Node | None) -> _Link:
        """The pub/sub connection to ``node``, its reader started."""
        link = self._links.get(node)
        if link is None:
            url = self._url if node is None else self._batcher.cluster.node_url(node)  # type: ignore[union-attr]
            pool = ConnectionPool.from_url(
                # RESP2: pub/sub messages arrive as plain replies on this connection
                url,
                protocol=2,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=5.0,
            )
            link = self._links[node] = _Link(node=node, pool=pool)
            link.task = asyncio.get_running_loop().create_task(self._run(link))
        return link

    async def _home(self, room_id: str, room: _Room) -> None:
        """Subscribe the room's channel on the connection to the node serving it
        (the single Redis, or the primary of the channel's slot now)."""
        channel = channel_name(room_id)
        node = await self._batcher.node_of(channel) if self._sharded else None
        if self._rooms.get(room_id) is not room:
            return  # released meanwhile
        link = self._link(node)
        room.link = link
        await self._send(link, self._subscribe, [channel.encode()])

    def _rehome(self, room_id: str, room: _Room) -> None:
        """Cluster: the room's slot moved or its primary failed; subscribe again
        where the slot is served now (retried until it is, or the room is gone)."""

        if room_id in self._rehoming_rooms:
            return

        async def rehome() -> None:
            delay = 0.05
            while not self._closed and self._rooms.get(room_id) is room and not room.active:
                self._batcher.forget_slots()
                try:
                    await self._home(room_id, room)
                except Exception as exc:
                    log.warning("broker: resubscribing room %s failed: %s", room_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

        def done(task: asyncio.Task[None]) -> None:
            self._rehoming.discard(task)
            self._rehoming_rooms.discard(room_id)

        task = asyncio.get_running_loop().create_task(rehome())
        self._rehoming.add(task)
        self._rehoming_rooms.add(room_id)
        task.add_done_callback(done)

    async def _send(self, link: _Link, command: bytes, channels: list[bytes]) -> None:
        """Send on the link's live connection; without one, its reconnect resubscribes."""
        conn = link.conn
        if conn is None or not channels:
            return
        for channel in channels:
            link.outstanding[channel] = link.outstanding.get(channel, 0) + 1
        try:
            packed = conn.pack_command(command, *channels)
            await conn.send_packed_command(packed, check_health=False)
        except CONNECTION_ERRORS as exc:
            log.warning("broker: sending %s failed: %s", command.decode(), exc)
            # the reader notices the broken connection and reconnects

    # -- the pub/sub connection --------------------------------------------------

    async def _run(self, link: _Link) -> None:
        """Own one pub/sub connection: connect, resubscribe, read; on failure, back
        off and start again. Runs until ``close``."""
        backoff = 0.05
        while True:
            conn: AbstractConnection = link.pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                channels = [
                    channel_name(room_id).encode()
                    for room_id, room in self._rooms.items()
                    if room.link is link
                ]
                link.outstanding = {}
                link.conn = conn
                await self._send(link, self._subscribe, channels)
                backoff = 0.05
                await self._read(link, conn)
            except CONNECTION_ERRORS as exc:
                if not self._closed:
                    log.warning("broker: pub/sub connection lost: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker: pub/sub reader failed")
            finally:
                was_connected = link.conn is conn
                link.conn = None
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                if was_connected or self._sharded:
                    self._interrupted(link)
            if self._closed:
                return
            if self._sharded and not any(room.link is link for room in self._rooms.values()):
                # no room needs this primary now (its slots failed over or moved)
                del self._links[link.node]
                await link.pool.disconnect()
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            self.reconnects += 1

    def _interrupted(self, link: _Link) -> None:
        """The connection is gone: its active rooms may miss events from now on. On
        a cluster the primary may have failed over: its rooms move to the node
        serving their slot now (or come back here when it reconnects)."""
        for room_id, room in self._rooms.items():
            if room.link is not link:
                continue
            if self._sharded:
                self._rehome(room_id, room)
            if room.active:
                room.needs_reset = True
            room.active = False
            room.delivered = 0
            for _, waiter in room.seq_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            room.seq_waiters.clear()

    async def _read(self, link: _Link, conn: AbstractConnection) -> None:
        idle = 0
        while True:
            try:
                message = await conn.read_response(timeout=self._ping_interval)
            except redis_errors.ResponseError as exc:
                self._refused(link, str(exc))
                continue
            if message is None:
                idle += 1
                if idle >= 3:
                    raise ConnectionError("the pub/sub connection stopped answering pings")
                await conn.send_packed_command(conn.pack_command(b"PING"), check_health=False)
                continue
            idle = 0
            self._handle(link, message)
            # What the same read brought in is parsed already: take it without one
            # await and one timeout per message (a busy node gets many per read).
            parsed = _parsed_replies(conn)
            if parsed is not None:
                while (message := parsed.gets()) is not False and message is not NOT_ENOUGH_DATA:
                    if isinstance(message, hiredis.ReplyError):
                        self._refused(link, str(message))
                    elif isinstance(message, Exception):
                        raise message
                    else:
                        self._handle(link, message)

    def _refused(self, link: _Link, message: str) -> None:
        """An error reply to an ``SSUBSCRIBE``: ``MOVED`` when the slot map was
        stale (the room subscribes again where the slot is served); anything else
        ends the connection (its reconnect resubscribes)."""
        redirect = redirection(message) if self._sharded else None
        if redirect is None:
            raise ConnectionError(f"the pub/sub connection refused a subscription: {message}")
        slot = redirect[1]
        for room_id, room in self._rooms.items():
            channel = channel_name(room_id).encode()
            if room.link is link and not room.active and key_slot(channel) == slot:
                link.outstanding.pop(channel, None)
                self._rehome(room_id, room)

    def _handle(self, link: _Link, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3:
            return
        kind = message[0]
        if kind in (b"message", b"smessage"):
            self._deliver(message[1], message[2])
        elif kind in (b"subscribe", b"ssubscribe"):
            self._confirmed(link, message[1], subscribed=True)
        elif kind in (b"unsubscribe", b"sunsubscribe"):
            self._confirmed(link, message[1], subscribed=False)

    def _confirmed(self, link: _Link, channel: bytes, *, subscribed: bool) -> None:
        requested = link.outstanding.get(channel, 0)
        left = max(requested, 1) - 1
        if left > 0:
            link.outstanding[channel] = left
            return  # a later (UN)SUBSCRIBE of this channel is still in flight
        link.outstanding.pop(channel, None)
        room_id = room_of_channel(channel)
        room = self._rooms.get(room_id)
        if room is None or room.link is not link:
            return
        if not subscribed:
            if requested == 0 and self._sharded:
                # Redis ended it: the slot moved to another primary
                if room.active:
                    room.needs_reset = True
                room.active = False
                room.delivered = 0
                self._rehome(room_id, room)
            return
        if room.active:
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

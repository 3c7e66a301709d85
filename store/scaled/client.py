"""Lua scripts and the micro-batcher that runs them.

Every money or room operation on the scaled engine is one Lua script (atomic on
the Redis primary). Scripts are read from ``store/scaled/lua/*.lua``; a line
``--@include <name>`` is replaced by ``lua/lib_<name>.lua``, so a block several
scripts share is written once. The SHA1 of the composed source is computed
locally, and scripts are always called by ``EVALSHA``. Redis' script
cache is empty after a restart or a failover, so a ``NOSCRIPT`` reply makes the
batcher ``SCRIPT LOAD`` the script and send the call again: a ``NOSCRIPT`` call
did not run, so re-sending it is always safe.

Throughput comes from batching, not from more connections: ``CommandBatcher``
gathers every call made during one event-loop iteration into one
non-transactional pipeline (one write, one round trip for all of them). While a
pipeline is in flight, new calls queue up and go in the next one, so batches
grow by themselves under load and stay at one call when idle. The batcher
speaks RESP itself over a few plain connections (hiredis packs and parses):
the general-purpose client's per-command and per-reply overhead was the
bottleneck of the gift path, not Redis.

On a Redis Cluster (a ``redis+cluster://`` URL, ``store.scaled.cluster``) the
batcher sends each call to the primary serving its key's slot: one pipeline per
primary per flush, all in flight at once, following ``MOVED`` and ``ASK``.

A script refuses with ``{"E", reason, value...}``: the reason names a refusal of
``store.domain.refusals``, which renders the message (``script_reply_error``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from store.domain.refusals import refusal_error
from store.errors import StoreError, Unavailable
from store.observer import StoreObserver
from store.scaled.cluster import (
    ClusterAddress,
    CrossSlot,
    Node,
    SlotMap,
    command_slot,
    is_cluster_url,
    redirection,
)

log = logging.getLogger(__name__)

Arg = str | bytes | int
"""One command argument as redis-py packs it."""

# Errors that mean "Redis could not be reached or is not serving": the
# operation did not complete (or its outcome is unknown) and may be retried.
CONNECTION_ERRORS: Final = (
    redis_errors.ConnectionError,
    hiredis.ProtocolError,
    redis_errors.TimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    # a cluster without a primary for the slot (a failover under way), on the
    # general-purpose client
    redis_errors.ClusterError,
    redis_errors.RedisClusterException,
    redis_errors.TryAgainError,
)

AnyRedis = Redis | RedisCluster
"""The general-purpose client (ledger worker, audit, repair, overlay presence):
``Redis`` on one primary, redis-py's ``RedisCluster`` on a cluster URL."""


_UNAVAILABLE: Final = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
"""Error replies of a Redis that is not serving right now: the call did not run."""
_MAX_HOPS: Final = 5
"""Redirections (``MOVED``/``ASK``, reconnects) one call may follow in a cluster."""


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script of ``store/scaled/lua``: its composed source and its SHA1
    (computed here, so a caller never needs ``SCRIPT LOAD`` before the first
    ``EVALSHA``)."""

    name: str
    source: bytes
    sha: str
    durable: bool = False
    """The script moves money (a ``--@durable`` line): with ``wait_replicas`` its
    answer waits until replicas have it (see ``CommandBatcher``)."""


_INCLUDE: Final = re.compile(rb"^--@include ([a-z_]+)[ \t]*$", re.MULTILINE)
_DURABLE: Final = re.compile(rb"^--@durable[ \t]*$", re.MULTILINE)


def _lua_file(name: str) -> bytes:
    return resources.files("store.scaled").joinpath("lua", f"{name}.lua").read_bytes()


def _compose(name: str, including: tuple[str, ...] = ()) -> bytes:
    """The script's source with every ``--@include <lib>`` line replaced by the
    source of ``lib_<lib>.lua`` (itself composed)."""
    if name in including:
        raise ValueError(f"lua include cycle: {' -> '.join((*including, name))}")

    def include(match: re.Match[bytes]) -> bytes:
        return _compose("lib_" + match.group(1).decode(), (*including, name)).rstrip(b"\n")

    return _INCLUDE.sub(include, _lua_file(name))


@cache
def load_script(name: str) -> LuaScript:
    """``store/scaled/lua/<name>.lua``, includes composed (cached)."""
    source = _compose(name)
    durable = _DURABLE.search(source) is not None
    return LuaScript(
        name=name, source=source, sha=hashlib.sha1(source).hexdigest(), durable=durable
    )


@cache
def sharded(script: LuaScript) -> LuaScript:
    """``script`` for a Redis Cluster: a room event goes out by ``SPUBLISH`` on the
    room's shard channel (same slot as the room's keys) instead of a ``PUBLISH``
    every node of the cluster would carry."""
    source = script.source.replace(b"redis.call('PUBLISH'", b"redis.call('SPUBLISH'")
    sha = hashlib.sha1(source).hexdigest()
    return LuaScript(name=script.name, source=source, sha=sha, durable=script.durable)


def connect_redis(url: str, *, max_connections: int = 32, timeout: float = 10.0) -> AnyRedis:
    """A client without automatic retries: a retried script call could run twice
    (a publish would assign seq twice), so retrying is the caller's decision.
    RESP2, so replies have one shape whatever the client library's default.
    On a cluster URL, redis-py's ``RedisCluster`` (every seed a startup node): it
    routes each command by its key's slot and follows ``MOVED``/``ASK``; the
    per-slot system keys are found with ``store.scaled.slots``. It retries a
    command whose node went away (the slot map is read again first), which a
    failover needs: what runs on it is idempotent (reads, acknowledgements,
    overlay reports), but for the repair's balance corrections, which its
    closing audit checks."""
    if is_cluster_url(url):
        address = ClusterAddress.parse(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.seeds],
            username=address.username,
            password=address.password,
            ssl=address.tls,
            protocol=2,
            max_connections=max_connections,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 5.0),
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
        )
    pool = ConnectionPool.from_url(
        url,
        protocol=2,
        max_connections=max_connections,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 5.0),
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


def script_reply_error(reply: Any) -> StoreError | None:
    """The refusal of a ``{"E", reason, value...}`` script reply (else ``None``)."""
    if isinstance(reply, list) and reply and reply[0] == b"E":
        values = [value if isinstance(value, int) else text(value) for value in reply[2:]]
        return refusal_error(text(reply[1]), values)
    return None


def checked_reply(reply: Any) -> list[Any]:
    """A script's reply list; its refusal raised, if it refused."""
    error = script_reply_error(reply)
    if error is not None:
        raise error
    if not isinstance(reply, list) or not reply:
        raise StoreError(f"unexpected script reply: {reply!r}")
    return reply


def text(value: Any) -> str:
    """A reply value (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RawConnection:
    """One plain RESP2 connection: write a whole pipeline, read its replies.

    Error replies come back as ``hiredis.ReplyError`` objects in place. Any
    transport failure leaves the connection closed; the caller makes a new one.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        params: dict[str, Any] = dict(parse_url(url))
        self._path: str | None = params.get("path")
        self._host: str = params.get("host", "localhost")
        self._port: int = int(params.get("port", 6379))
        self._db = int(params.get("db", 0) or 0)
        self._username: str | None = params.get("username")
        self._password: str | None = params.get("password")
        self._ssl = url.startswith("rediss://")
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = hiredis.Reader()

    async def connect(self) -> None:
        async with asyncio.timeout(min(self._timeout, 5.0)):
            if self._path is not None:
                self._reader, self._writer = await asyncio.open_unix_connection(self._path)
            else:
                context = ssl.create_default_context() if self._ssl else None
                self._reader, self._writer = await asyncio.open_connection(
                    self._host, self._port, ssl=context
                )
        self._parser = hiredis.Reader()
        handshake: list[tuple[Arg, ...]] = []
        if self._password is not None:
            if self._username:
                handshake.append(("AUTH", self._username, self._password))
            else:
                handshake.append(("AUTH", self._password))
        if self._db:
            handshake.append(("SELECT", self._db))
        if handshake:
            for reply in await self.roundtrip(handshake):
                if isinstance(reply, hiredis.ReplyError):
                    self.close()
                    raise redis_errors.ConnectionError(f"redis handshake failed: {reply}")

    async def roundtrip(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise redis_errors.ConnectionError("not connected")
        try:
            writer.write(b"".join([hiredis.pack_command(c) for c in commands]))  # type: ignore[arg-type]
            replies: list[Any] = []
            async with asyncio.timeout(self._timeout):
                await writer.drain()
                parser = self._parser
                while len(replies) < len(commands):
                    reply = parser.gets()
                    if reply is False:
                        data = await reader.read(1 << 16)
                        if not data:
                            raise redis_errors.ConnectionError("redis closed the connection")
                        parser.feed(data)
                    else:
                        replies.append(reply)
            return replies
        except BaseException:
            self.close()
            raise

    @property
    def connected(self) -> bool:
        """False once Redis closed it too (an idle connection sees the FIN of a
        restarted server here, so it is replaced before a call is lost on it)."""
        if self._reader is None or self._writer is None:
            return False
        if self._reader.at_eof() or self._writer.is_closing():
            self.close()
            return False
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass(slots=True, eq=False)
class _Call:
    args: tuple[Arg, ...]
    script: LuaScript | None
    future: asyncio.Future[Any]
    retry_on_disconnect: bool
    started: float
    """``time.perf_counter()`` when the call was made (its latency includes the wait
    for a pipeline)."""

    @property
    def name(self) -> str:
        """The script's name, or the command's: a bounded metrics label."""
        if self.script is not None:
            return self.script.name
        command = self.args[0]
        return (command.decode() if isinstance(command, bytes) else str(command)).upper()


class CommandBatcher:
    """Pipelines the commands issued in one loop iteration (see the module docstring).

    ``max_in_flight`` pipelines run at once, each on its own connection;
    ``max_batch`` caps one pipeline. ``wait_replicas`` > 0: a pipeline carrying a
    durable script (one that moves money, marked ``--@durable``) ends with ``WAIT
    <wait_replicas> <wait_timeout>``, so its answer goes out only once that many
    replicas have every write before it (one ``WAIT`` per pipeline, shared by all
    its calls). When fewer replicas confirm in time, its durable calls fail as
    *unavailable*: the write is on the primary only, and a failover could lose it.
    Every durable script is idempotent (its request's key), so the client's
    resend answers from the stored receipt once the replicas caught up. Calls
    marked ``retry_on_disconnect`` (the idempotent ones) are sent once more on a
    fresh connection when the first attempt failed on a dead connection, which is
    what every idle connection does once after a Redis restart. ``observer`` is
    told each call's latency.
    """

    def __init__(
        self,
        url: str,
        *,
        max_batch: int = 1_024,
        max_in_flight: int = 4,
        timeout: float = 10.0,
        observer: StoreObserver | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        if wait_replicas < 0 or not 0 < wait_timeout < timeout:
            raise ValueError("wait_replicas must be >= 0 and 0 < wait_timeout < timeout")
        self._wait: tuple[Arg, ...] | None = None
        if wait_replicas:
            self._wait = ("WAIT", wait_replicas, max(1, int(wait_timeout * 1000)))
        # a bad URL fails here, not on the first gift
        self._cluster = ClusterAddress.parse(url) if is_cluster_url(url) else None
        if self._cluster is None:
            parse_url(url)
        self._slots = SlotMap()
        self._discovering = asyncio.Lock()
        self._url = url
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._idle: dict[Node | None, list[RawConnection]] = {}
        """Idle connections by node (``None``: the single Redis)."""
        self._pending: list[_Call] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._observer = observer
        self.pipelines = 0
        """Pipelines sent (for metrics and benchmarks: calls / pipelines = batch size)."""
        self.calls = 0
        self.unreplicated = 0
        """Durable calls failed because too few replicas confirmed their write in time."""
        self.redirections = 0
        """Calls a cluster redirected (``MOVED``/``ASK``): slot migrations, stale maps."""

    def evalsha(
        self,
        script: LuaScript,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        *,
        retry_on_disconnect: bool = False,
    ) -> asyncio.Future[Any]:
        """Run ``script`` (by EVALSHA, loading it on NOSCRIPT); await the reply.
        A plain function returning the future: no coroutine per call on the hot path."""
        if self._cluster is not None:
            script = sharded(script)
        return self._submit(
            ("EVALSHA", script.sha, len(keys), *keys, *args), script, retry_on_disconnect
        )

    def execute(self, *args: Arg, retry_on_disconnect: bool = True) -> asyncio.Future[Any]:
        """Run one plain command in the next pipeline (reads are idempotent); await it.
        On a cluster, ``PUBLISH`` goes out as ``SPUBLISH`` (see ``sharded``)."""
        if self._cluster is not None and args[0] == "PUBLISH":
            args = ("SPUBLISH", *args[1:])
        return self._submit(tuple(args), None, retry_on_disconnect)

    @property
    def cluster(self) -> ClusterAddress | None:
        """The cluster's seeds and credentials (``None``: a single Redis)."""
        return self._cluster

    async def node_of(self, key: str | bytes) -> Node:
        """Cluster: the primary serving ``key``'s slot now (the map read if stale)."""
        if self._cluster is None:
            raise ValueError("not a Redis Cluster")
        if self._slots.stale:
            await self._discover()
        node = self._slots.node(command_slot(("GET", key)))
        if node is None:
            raise Unavailable("redis cluster: no primary serves the slot")
        return node

    def forget_slots(self) -> None:
        """Read the slot map again before the next call (a slot moved, a node failed)."""
        self._slots.stale = True

    async def close(self) -> None:
        """Wait for the pipelines in flight, refuse new calls, close the connections."""
        self._closed = True
        while self._tasks or self._pending:
            if self._pending and not self._scheduled:
                self._schedule()
            await asyncio.sleep(0.001)
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    # -- internals ----------------------------------------------------------

    def _submit(
        self, args: tuple[Arg, ...], script: LuaScript | None, retry: bool
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise Unavailable("the Redis client is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(args, script, future, retry, time.perf_counter()))
        if not self._scheduled:
            self._schedule()
        return future

    def _schedule(self) -> None:
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self._max_in_flight:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Call]) -> None:
        try:
            await self._send(batch)
        except BaseException as exc:  # never leave a caller waiting forever
            error = exc if isinstance(exc, StoreError) else StoreError(f"redis: {exc}")
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(error)
                    self._observe(call, ok=False)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._schedule()

    async def _send(self, batch: list[_Call]) -> None:
        if self._cluster is None:
            await self._send_to(batch, None)
        else:
            await self._route(batch, hops=0)

    async def _route(self, batch: list[_Call], *, hops: int) -> None:
        """Cluster: send each call to the primary of its key's slot, one pipeline
        per primary, all at once."""
        if hops > _MAX_HOPS:
            self._fail(batch, Unavailable("redis cluster: too many redirections"))
            return
        if self._slots.stale:
            await self._discover()
        groups: dict[Node, list[_Call]] = {}
        for call in batch:
            try:
                node = self._slots.node(command_slot(call.args))
            except CrossSlot as exc:
                self._fail([call], StoreError(f"redis cluster: {exc}"))
                continue
            if node is None:
                self._fail([call], Unavailable("redis cluster: no primary serves the slot"))
                continue
            groups.setdefault(node, []).append(call)
        await asyncio.gather(
            *(self._send_to(calls, node, hops=hops) for node, calls in groups.items())
        )

    async def _discover(self) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from a seed or a known primary."""
        assert self._cluster is not None
        async with self._discovering:
            if not self._slots.stale:
                return  # another pipeline just read it
            failure: BaseException | None = None
            for node in dict.fromkeys([*self._slots.primaries, *self._cluster.seeds]):
                conn = RawConnection(self._cluster.node_url(node), timeout=self._timeout)
                try:
                    await conn.connect()
                    (reply,) = await conn.roundtrip([("CLUSTER", "SLOTS")])
                except CONNECTION_ERRORS as exc:
                    failure = exc
                    continue
                finally:
                    conn.close()
                if isinstance(reply, hiredis.ReplyError) or not reply:
                    failure = StoreError(f"redis cluster: CLUSTER SLOTS answered {reply}")
                    continue
                self._slots.load(reply)
                return
            raise Unavailable(f"redis cluster: no seed answered CLUSTER SLOTS: {failure}")

    async def _send_to(
        self, batch: list[_Call], node: Node | None, *, asking: bool = False, hops: int = 0
    ) -> None:
        """One pipeline of ``batch`` to ``node`` (``None``: the single Redis); then
        the scripts it had not loaded, and (cluster) the redirected calls."""
        attempt = 0
        while batch:
            attempt += 1
            commands = [call.args for call in batch]
            wait = self._wait is not None and any(c.script and c.script.durable for c in batch)
            try:
                replies = await self._pipeline(
                    [*commands, self._wait] if wait and self._wait else commands,
                    node,
                    asking=asking,
                )
            except CONNECTION_ERRORS as exc:
                # the idle connections are as old as the one that failed: replace them
                for idle in self._idle.pop(node, []):
                    idle.close()
                retry: list[_Call] = []
                for call in batch:
                    if call.retry_on_disconnect and attempt == 1:
                        retry.append(call)
                    elif not call.future.done():
                        call.future.set_exception(Unavailable(f"redis unavailable: {exc}"))
                        self._observe(call, ok=False)
                if self._cluster is not None:
                    self._slots.stale = True  # a failover may have moved the primary
                    if retry:
                        await self._route(retry, hops=hops + 1)
                    return
                batch = retry
                continue
            if wait:
                confirmed = replies.pop()
                self._unreplicated(batch, replies, confirmed)
            missing: list[_Call] = []
            moved: list[_Call] = []
            asked: dict[Node, list[_Call]] = {}
            answered: list[_Call] = []
            for call, reply in zip(batch, replies, strict=True):
                if call.future.done():
                    continue
                if not isinstance(reply, hiredis.ReplyError):
                    call.future.set_result(reply)
                    answered.append(call)
                    continue
                message = str(reply)
                if message.startswith("NOSCRIPT") and attempt <= 3:
                    missing.append(call)
                    continue
                redirect = redirection(message) if self._cluster is not None else None
                if redirect is not None:
                    kind, slot, target = redirect
                    self.redirections += 1
                    if kind == "MOVED":
                        self._slots.moved(slot, target)
                        moved.append(call)
                    else:
                        asked.setdefault(target, []).append(call)
                    continue
                if message.startswith(_UNAVAILABLE):
                    call.future.set_exception(Unavailable(f"redis unavailable: {message}"))
                else:
                    call.future.set_exception(StoreError(f"redis: {message}"))
                self._observe(call, ok=False)
            self._observe_answered(answered)
            if moved:
                await self._route(moved, hops=hops + 1)
            for target, calls in asked.items():
                if hops < _MAX_HOPS:
                    await self._send_to(calls, target, asking=True, hops=hops + 1)
                else:
                    self._fail(calls, Unavailable("redis cluster: too many redirections"))
            if missing:
                await self._load({c.script for c in missing if c.script is not None}, node)
            batch = missing
        self.pipelines += 1

    def _unreplicated(self, batch: list[_Call], replies: list[Any], confirmed: Any) -> None:
        """After the pipeline's ``WAIT``: when fewer replicas than asked confirmed,
        fail its durable calls that wrote or replayed a write (``{"OK", ...}``,
        ``{"R", ...}``); a refusal, a retry signal or an error wrote nothing."""
        assert self._wait is not None
        wanted = int(self._wait[1])
        if isinstance(confirmed, int) and confirmed >= wanted:
            return
        error = Unavailable(
            f"redis: the write reached the primary but {confirmed} of {wanted} replicas "
            "confirmed it in time; send the request again with the same key"
        )
        for call, reply in zip(batch, replies, strict=True):
            if call.script is None or not call.script.durable or call.future.done():
                continue
            if not isinstance(reply, list) or not reply or reply[0] not in (b"OK", b"R"):
                continue
            call.future.set_exception(error)
            self._observe(call, ok=False)
            self.unreplicated += 1

    def _fail(self, calls: list[_Call], error: StoreError) -> None:
        for call in calls:
            if not call.future.done():
                call.future.set_exception(error)
                self._observe(call, ok=False)

    def _observe(self, call: _Call, *, ok: bool) -> None:
        if self._observer is not None:
            seconds = time.perf_counter() - call.started
            self._observer.backend_call("redis", call.name, seconds, ok=ok)

    def _observe_answered(self, calls: list[_Call]) -> None:
        """The latencies of a pipeline's answered calls, told at once."""
        if self._observer is not None and calls:
            now = time.perf_counter()
            self._observer.backend_calls(
                "redis", [(call.name, now - call.started) for call in calls], ok=True
            )

    async def _load(self, scripts: set[LuaScript], node: Node | None) -> None:
        """The script cache of ``node`` was flushed (restart, failover, SCRIPT
        FLUSH) or never had these: load them there."""
        ordered = sorted(scripts, key=lambda script: script.name)
        for script in ordered:
            log.info("redis script cache miss: loading %s", script.name)
        try:
            replies = await self._pipeline([("SCRIPT", "LOAD", s.source) for s in ordered], node)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"redis unavailable: {exc}") from exc
        for script, sha in zip(ordered, replies, strict=True):
            if isinstance(sha, hiredis.ReplyError) or sha != script.sha.encode():
                raise StoreError(f"redis could not load script {script.name}: {sha!r}")

    async def _pipeline(
        self, commands: list[tuple[Arg, ...]], node: Node | None, *, asking: bool = False
    ) -> list[Any]:
        """One write of every command, then its replies, on an idle connection to
        ``node``. ``asking``: each command follows an ``ASKING`` (a slot being
        imported there), whose replies are dropped."""
        self.calls += len(commands)
        idle = self._idle.setdefault(node, [])
        conn = idle.pop() if idle else RawConnection(self._node_url(node), timeout=self._timeout)
        if not conn.connected:
            await conn.connect()
        if asking:
            commands = [c for command in commands for c in (("ASKING",), command)]
        replies = await conn.roundtrip(commands)  # closes the connection on failure
        if self._closed:
            conn.close()
        else:
            idle.append(conn)
        return replies[1::2] if asking else replies

    def _node_url(self, node: Node | None) -> str:
        if node is None or self._cluster is None:
            return self._url
        return self._cluster.node_url(node)

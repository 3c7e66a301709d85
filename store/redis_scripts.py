"""Lua scripts and the micro-batcher that runs them.

Every money or room operation on the scaled engine is one Lua script (atomic on
the Redis primary). Scripts are read from ``store/lua/*.lua``, their SHA1 is
computed locally, and they are always called by ``EVALSHA``. Redis' script
cache is empty after a restart or a failover, so a ``NOSCRIPT`` reply makes the
batcher ``SCRIPT LOAD`` the script and send the call again: a ``NOSCRIPT`` call
did not run, so re-sending it is always safe.

Throughput comes from batching, not from more connections: ``CommandBatcher``
gathers every call made during one event-loop iteration into one
non-transactional pipeline (one write, one round trip for all of them). While a
pipeline is in flight, new calls queue up and go in the next one, so batches
grow by themselves under load and stay at one call when idle.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from store.errors import StoreError, Unavailable, error_from_code

log = logging.getLogger(__name__)

Arg = str | bytes | int
"""One command argument as redis-py packs it."""

# Errors that mean "Redis could not be reached or is not serving": the
# operation did not complete (or its outcome is unknown) and may be retried.
CONNECTION_ERRORS: Final = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One script of ``store/lua``: its source and its SHA1 (computed here, so a
    caller never needs ``SCRIPT LOAD`` before the first ``EVALSHA``)."""

    name: str
    source: bytes
    sha: str


@cache
def load_script(name: str) -> LuaScript:
    """Read ``store/lua/<name>.lua`` from the package (cached)."""
    source = resources.files("store").joinpath("lua", f"{name}.lua").read_bytes()
    return LuaScript(name=name, source=source, sha=hashlib.sha1(source).hexdigest())


def connect_redis(url: str, *, max_connections: int = 32, timeout: float = 10.0) -> Redis:
    """A client without automatic retries: a retried script call could run twice
    (a publish would assign seq twice), so retrying is the caller's decision.
    RESP2, so replies have one shape whatever the client library's default."""
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
    """Map a structured ``{"E", code, message}`` script reply to a typed error."""
    if isinstance(reply, list) and reply and reply[0] == b"E":
        return error_from_code(_text(reply[1]), _text(reply[2]))
    return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True, eq=False)
class _Call:
    args: tuple[Arg, ...]
    script: LuaScript | None
    future: asyncio.Future[Any]
    retry_on_disconnect: bool


class CommandBatcher:
    """Pipelines the commands issued in one loop iteration (see the module docstring).

    ``max_in_flight`` pipelines run at once, each on its own pooled connection;
    ``max_batch`` caps one pipeline. Calls marked ``retry_on_disconnect`` (the
    idempotent ones) are sent once more on a fresh connection when the first
    attempt failed on a dead connection, which is what every pooled connection
    does once after a Redis restart.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        max_batch: int = 1_024,
        max_in_flight: int = 4,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._redis = redis
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[_Call] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.pipelines = 0
        """Pipelines sent (for metrics and benchmarks: calls / pipelines = batch size)."""
        self.calls = 0

    async def evalsha(
        self,
        script: LuaScript,
        keys: Sequence[Arg],
        args: Sequence[Arg],
        *,
        retry_on_disconnect: bool = False,
    ) -> Any:
        """Run ``script`` (by EVALSHA, loading it on NOSCRIPT) and return its reply."""
        return await self._submit(
            ("EVALSHA", script.sha, len(keys), *keys, *args), script, retry_on_disconnect
        )

    async def execute(self, *args: Arg, retry_on_disconnect: bool = True) -> Any:
        """Run one plain command in the next pipeline (reads are idempotent)."""
        return await self._submit(tuple(args), None, retry_on_disconnect)

    async def close(self) -> None:
        """Wait for the pipelines in flight; refuse new calls."""
        self._closed = True
        while self._tasks or self._pending:
            if self._pending and not self._scheduled:
                self._schedule()
            await asyncio.sleep(0.001)

    # -- internals ----------------------------------------------------------

    def _submit(
        self, args: tuple[Arg, ...], script: LuaScript | None, retry: bool
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise Unavailable("the Redis client is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(_Call(args, script, future, retry))
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
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            if self._pending and not self._scheduled:
                self._schedule()

    async def _send(self, batch: list[_Call]) -> None:
        attempt = 0
        while batch:
            attempt += 1
            try:
                replies = await self._pipeline([call.args for call in batch])
            except CONNECTION_ERRORS as exc:
                retry: list[_Call] = []
                for call in batch:
                    if call.retry_on_disconnect and attempt == 1:
                        retry.append(call)
                    elif not call.future.done():
                        call.future.set_exception(Unavailable(f"redis unavailable: {exc}"))
                batch = retry
                continue
            missing: list[_Call] = []
            for call, reply in zip(batch, replies, strict=True):
                if isinstance(reply, redis_errors.NoScriptError) and attempt <= 3:
                    missing.append(call)
                elif call.future.done():
                    continue
                elif isinstance(reply, redis_errors.BusyLoadingError):
                    call.future.set_exception(Unavailable("redis is loading its data"))
                elif isinstance(reply, redis_errors.ReadOnlyError):
                    call.future.set_exception(Unavailable("redis is a read-only replica"))
                elif isinstance(reply, redis_errors.ResponseError):
                    call.future.set_exception(StoreError(f"redis: {reply}"))
                else:
                    call.future.set_result(reply)
            if missing:
                await self._load({c.script for c in missing if c.script is not None})
            batch = missing
        self.pipelines += 1

    async def _load(self, scripts: set[LuaScript]) -> None:
        """The script cache was flushed (restart, failover, SCRIPT FLUSH): reload."""
        for script in scripts:
            log.info("redis script cache miss: loading %s", script.name)
            sha = await self._redis.script_load(script.source)
            if sha != script.sha:
                raise StoreError(f"redis returned sha {sha} for script {script.name}")

    async def _pipeline(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """One write of every command, then one read per reply. Error replies come
        back as exception objects in place, like ``raise_on_error=False``."""
        self.calls += len(commands)
        pool = self._redis.connection_pool
        conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except redis_errors.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:
            # the connection's state is unknown: never hand it to another caller
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

"""Reads that callers arriving together share.

A crowd joining a room (a reconnect storm, a stream going viral) reads the same
room, leaderboard and goal for every handshake. ``SharedReads`` lets the calls
for one key that overlap share a single read: a caller arriving while that
read is in flight takes its answer, one arriving after it starts a new read.
An answer is therefore never older than the caller's own request by more than
the time one read takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SharedReads:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``await read()``, or the answer of the read for ``key`` already under way.
        The answer is shared: callers must not change it."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(read())
            self._inflight[key] = future
            future.add_done_callback(lambda done: self._done(key, done))
        result: T = await asyncio.shield(future)  # one caller giving up cancels no other
        return result

    def _done(self, key: Hashable, future: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved, even when every caller gave up

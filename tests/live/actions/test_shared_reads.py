"""Reads that overlapping callers share (``live.actions.shared_reads``)."""

from __future__ import annotations

import asyncio

import pytest

from live.actions.shared_reads import SharedReads


class Source:
    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def read(self) -> int:
        self.reads += 1
        n = self.reads
        await self.gate.wait()
        if self.fail:
            raise LookupError("gone")
        return n


async def test_overlapping_calls_share_one_read_later_ones_read_again() -> None:
    shared, source = SharedReads(), Source()
    calls = [asyncio.ensure_future(shared.get("k", source.read)) for _ in range(5)]
    other = asyncio.ensure_future(shared.get("other", source.read))
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*calls) == [1] * 5
    assert await other == 2
    assert await shared.get("k", source.read) == 3  # after the first read ended: a new one


async def test_an_error_reaches_every_caller_and_one_giving_up_stops_no_other() -> None:
    shared, source = SharedReads(), Source()
    source.fail = True
    first = asyncio.ensure_future(shared.get("k", source.read))
    second = asyncio.ensure_future(shared.get("k", source.read))
    quitter = asyncio.ensure_future(shared.get("k", source.read))
    await asyncio.sleep(0)
    quitter.cancel()
    source.gate.set()
    for call in (first, second):
        with pytest.raises(LookupError):
            await call
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert source.reads == 1

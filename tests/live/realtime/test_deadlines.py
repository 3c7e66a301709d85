"""The connection clock: deadlines of many connections on one timer, and a loop
that could not run does not count that time against them."""

from __future__ import annotations

import asyncio
import time

import pytest

from live.realtime.deadlines import LATE_TICK_CREDIT, ConnectionClock, connection_clock


async def test_a_stalled_loop_counts_for_at_most_two_ticks() -> None:
    loop = asyncio.get_running_loop()
    clock = ConnectionClock(loop, shortest=0.4)  # a tick of 0.1 s
    fired = asyncio.Event()
    clock.schedule("peer", after=0.3, call=fired.set)
    time.sleep(1.0)  # noqa: ASYNC251 - the loop cannot run for ten ticks: the stimulus
    resumed = time.monotonic()
    await asyncio.wait_for(fired.wait(), 2)
    # The first tick after the stall counts for two (0.2 s < 0.3 s): the deadline
    # needs at least one more tick of the loop running.
    assert time.monotonic() - resumed >= clock.tick * 0.9
    # two ticks for the stall, one or two for the loop running again
    assert clock.now <= clock.tick * (LATE_TICK_CREDIT + 2) + 1e-9
    assert len(clock) == 0


async def test_discard_and_reschedule_replace_what_a_key_waited_for() -> None:
    loop = asyncio.get_running_loop()
    clock = ConnectionClock(loop, shortest=0.2)
    calls: list[str] = []
    done = asyncio.Event()
    clock.schedule("a", after=0.1, call=lambda: calls.append("a first"))
    clock.schedule("a", after=0.2, call=lambda: calls.append("a second"))
    clock.schedule("b", after=0.1, call=lambda: calls.append("b"))
    clock.discard("b")
    clock.schedule("c", after=0.3, call=done.set)
    assert len(clock) == 2
    await asyncio.wait_for(done.wait(), 3)
    assert calls == ["a second"]
    assert len(clock) == 0


async def test_one_clock_per_loop_and_purpose() -> None:
    loop = asyncio.get_running_loop()
    first = connection_clock(loop, "keepalive", shortest=20)
    assert connection_clock(loop, "keepalive", shortest=20) is first
    assert connection_clock(loop, "handshake", shortest=20) is not first
    assert first.tick == 1.0
    with pytest.raises(ValueError):
        ConnectionClock(loop, shortest=0)

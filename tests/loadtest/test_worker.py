"""A generator process's gifter against a real server: it behaves like an app."""

from __future__ import annotations

import asyncio
import multiprocessing
from urllib.parse import urlsplit

from loadtest import setup
from loadtest.worker import Gifter, GifterPlan, Worker, WorkerPlan
from tests.live.server import SECRET, LiveServer


def test_a_gifter_whose_connection_dropped_connects_again_and_gifts_on(live: LiveServer) -> None:
    people = setup.make_people(secret=SECRET, run="reopen", rooms=1, gifters=1)
    asyncio.run(setup.prepare(live.url, people, gift="rose", coins_each=50))
    address = urlsplit(live.url)
    assert address.hostname is not None and address.port is not None
    plan = WorkerPlan(
        index=0,
        host=address.hostname,
        port=address.port,
        viewers=[],
        gifters=[GifterPlan(room=people.rooms[0], token=people.gifter_tokens[0])],
    )
    ours, _theirs = multiprocessing.Pipe()

    async def scenario() -> None:
        worker = Worker(plan, ours)
        assert await worker.open_gifters() == 0
        gifter = worker.gifters[0]
        first = gifter.peer
        await worker.send_gift(gifter)
        first.drop()  # the connection is lost, as a network or a restart would lose it
        assert not first.is_open

        two_more = asyncio.Event()
        send_gift = worker.send_gift

        async def send_and_count(gifter: Gifter) -> None:
            await send_gift(gifter)
            if worker.tally.counters["gifts_acked"] >= 3:
                two_more.set()

        worker.send_gift = send_and_count  # type: ignore[method-assign]
        worker.gift_interval = 0.05
        looping = asyncio.ensure_future(worker.gifter_loop(gifter))
        try:
            async with asyncio.timeout(20):
                await two_more.wait()
        finally:
            worker.stopping = True
            await looping
        assert gifter.peer is not first and gifter.peer.is_open
        assert worker.tally.counters["gifter_disconnected"] == 1
        assert worker.tally.counters["gifter_reconnects"] == 1
        gifter.peer.drop()

    asyncio.run(scenario())

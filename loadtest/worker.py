"""One generator process: its share of the viewers and gifters, on one event loop.

The coordinator (``loadtest.runner``) starts several of these (a process holds
at most ``RLIMIT_NOFILE`` sockets, and each gets its own loopback source
addresses), sends them orders over a pipe and adds up what they report:

- ``("go", rate)``: start (or re-pace) gifting at ``rate`` gifts/s for this worker;
- ``("storm", None)``: drop every viewer at once and reconnect with ``since``;
- ``("stop", None)``: stop sending, let deliveries land, close, send the final tally.

Every ``report_interval`` the worker sends ``("tick", tally)`` with the counts
since its previous report.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import resource
import socket
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

from live.collector import CollectorTuning
from loadtest.wsclient import Peer, Tally, clock

RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 4008})
"""Close codes after which a real client reconnects and resumes (docs/PROTOCOL.md §8)."""
REPLY_TIMEOUT = 10.0
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
STORM_LIMIT = 60.0
"""Seconds a reconnect storm may take before the worker reports how far it got."""
GC_YOUNG_THRESHOLD = 20_000
"""Allocations between the generator's young garbage collections (CPython: 700)."""
PER_GIFTER_SPACING = 0.105
"""Seconds between two commands of one gifter in one-at-a-time mode (the server
allows 10 per second per connection)."""


@dataclass(frozen=True)
class GifterPlan:
    room: str
    token: str


@dataclass
class WorkerPlan:
    index: int
    host: str
    port: int
    viewers: list[str]
    """The room of each viewer (guests: watching needs no token)."""
    gifters: list[GifterPlan] = field(default_factory=list)
    probe_every: int = 20
    """Every n-th viewer decodes its frames and times gifts (n=1: all of them)."""
    gift: str = "rose"
    count: int = 1
    price: int = 1
    creator_share: int = 50
    like_rate: float = 0.0
    chat_rate: float = 0.0
    one_at_a_time: bool = False
    """Gifters wait until their own gift event arrived before sending the next one."""
    sources: list[str] = field(default_factory=list)
    connect_concurrency: int = 256
    cpu: int | None = None
    report_interval: float = 0.5
    connect_seconds: float = 0.0
    """Viewers not connected this long after the start are not tried (0: no limit)."""
    msgpack_every: int = 0
    """Every n-th viewer speaks MessagePack (0: none)."""


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def settle_collector() -> None:
    """Once connected: freeze what the connections built and collect the young
    generation less often, so the generator's own full garbage collections
    (tens of ms over thousands of peers) do not show up as the server's ack
    latency (the server does the same, ``live.collector``)."""
    CollectorTuning(young_threshold=GC_YOUNG_THRESHOLD, freeze=True).start()


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def run_worker(plan: WorkerPlan, pipe: Connection) -> None:
    """Process entry point."""
    pin(plan.cpu)
    raise_nofile()
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    runner(Worker(plan, pipe).main())


class Gifter:
    def __init__(self, plan: GifterPlan, peer: Peer) -> None:
        self.plan = plan
        self.peer = peer
        self.waiting: dict[str, tuple[float, asyncio.Future[dict[str, Any]]]] = {}
        self.own_gift: asyncio.Future[None] | None = None
        self.own_tx: str | None = None
        self.seen: set[str] = set()
        """Own gifts seen on the gifter's connection (one-at-a-time mode)."""


class Worker:
    def __init__(self, plan: WorkerPlan, pipe: Connection) -> None:
        self.plan = plan
        self.pipe = pipe
        self.tally = Tally()
        self.viewers: list[Peer | None] = [None] * len(plan.viewers)
        self.gifters: list[Gifter] = []
        self.stopping = False
        self.gift_interval: float | None = None
        self.paced = asyncio.Event()
        self.ids = itertools.count()
        self.sources = itertools.cycle(plan.sources or [""])
        self.prefix = f"w{plan.index}-{os.getpid()}-{random.randrange(1 << 30):x}-"
        self.tasks: set[asyncio.Task[Any]] = set()

    # -- connections -------------------------------------------------------------------
    async def connect(
        self,
        room: str,
        *,
        token: str | None = None,
        since: int | None = None,
        decode: bool = False,
        msgpack_codec: bool = False,
        on_reply: Any = None,
    ) -> Peer | None:
        path = f"/v1/rooms/{quote(room)}/live"
        if since is not None:
            path += f"?since={since}"
        loop = asyncio.get_running_loop()
        host_header = f"{self.plan.host}:{self.plan.port}"
        source = next(self.sources)
        peer: Peer | None = None

        def factory() -> Peer:
            nonlocal peer
            peer = Peer(
                self.tally,
                host=host_header,
                path=path,
                token=token,
                decode=decode,
                msgpack_codec=msgpack_codec,
                on_reply=on_reply,
            )
            return peer

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if source:
                # Let connect() pick the port (per destination), not bind(): bind(port 0)
                # slows down badly as a source address's port range fills up.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            await asyncio.wait_for(loop.sock_connect(sock, (self.plan.host, self.plan.port)), 30.0)
            await asyncio.wait_for(loop.create_connection(factory, sock=sock), 30.0)
            assert peer is not None
            await asyncio.wait_for(asyncio.shield(peer.welcomed), 30.0)
        except (OSError, ConnectionError, TimeoutError) as exc:
            if peer is None:
                sock.close()
            name = type(exc).__name__ if not isinstance(exc, ConnectionError) else str(exc)
            self.tally.counters[f"connect_errors.{name.split(':')[0][:40]}"] += 1
            if peer is not None:
                peer.drop()
            return None
        self.tally.counters["connects"] += 1
        return peer

    async def open_viewer(self, i: int, *, since: int | None = None) -> bool:
        plan = self.plan
        probe = plan.probe_every > 0 and i % plan.probe_every == 0
        mp = plan.msgpack_every > 0 and i % plan.msgpack_every == plan.msgpack_every - 1
        peer = await self.connect(plan.viewers[i], since=since, decode=probe, msgpack_codec=mp)
        self.viewers[i] = peer
        if peer is None:
            return False
        if peer.resumed is True and since is not None:
            self.tally.counters["resumed"] += 1
        elif since is not None:
            self.tally.counters["snapshots"] += 1

        def closed(fut: asyncio.Future[int], i: int = i, peer: Peer = peer) -> None:
            self._viewer_closed(i, peer, fut)

        peer.done.add_done_callback(closed)
        return True

    def _viewer_closed(self, i: int, peer: Peer, fut: asyncio.Future[int]) -> None:
        if self.stopping or self.viewers[i] is not peer or peer.close_sent:
            return
        code = fut.result()
        if code in RECONNECT_CODES:
            self.tally.counters["reconnects"] += 1
            self.spawn(self._reconnect(i, peer.last_seq))

    async def _reconnect(self, i: int, since: int | None) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.5))
        if not self.stopping:
            await self.open_viewer(i, since=since)

    async def open_all(
        self, indexes: list[int], *, resume: bool = False, within: float = 0.0
    ) -> tuple[int, float]:
        """Open (or reopen, resuming) the given viewers, at most ``connect_concurrency``
        in flight, and none after ``within`` seconds (if given); returns (how many
        failed, seconds). Viewers left untried count in ``connect_skipped``."""
        started = clock()
        gate = asyncio.Semaphore(self.plan.connect_concurrency)
        failed = 0

        async def one(i: int) -> None:
            nonlocal failed
            async with gate:
                if within and clock() - started > within:
                    self.tally.counters["connect_skipped"] += 1
                    return
                previous = self.viewers[i]
                since = previous.last_seq if resume and previous is not None else None
                if not await self.open_viewer(i, since=since):
                    failed += 1

        await asyncio.gather(*(one(i) for i in indexes))
        return failed, clock() - started

    async def open_gifters(self) -> int:
        failed = 0
        for g in self.plan.gifters:
            box: list[Gifter] = []
            peer = await self._connect_gifter(g, box)
            if peer is None:
                failed += 1
                continue
            gifter = Gifter(g, peer)
            box.append(gifter)
            if self.plan.one_at_a_time:
                peer.on_gift = self._own_gift_hook(gifter)
            self.gifters.append(gifter)
        return failed

    async def _connect_gifter(self, g: GifterPlan, box: list[Gifter]) -> Peer | None:
        """A gifter's connection; its replies go to the gifter in ``box`` (filled in
        once it exists)."""

        def on_reply(event: dict[str, Any], now: float) -> None:
            if not box:
                return
            entry = box[0].waiting.pop(str(event.get("id")), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(event)

        return await self.connect(
            g.room, token=g.token, decode=self.plan.one_at_a_time, on_reply=on_reply
        )

    async def _reopen_gifter(self, gifter: Gifter) -> bool:
        """A gifter whose connection dropped connects again, as an app would; its
        commands in flight stay unanswered (counted as such). False if it can't."""
        self.tally.counters["gifter_disconnected"] += 1
        await asyncio.sleep(random.uniform(0.05, 0.5))
        if self.stopping:
            return False
        peer = await self._connect_gifter(gifter.plan, [gifter])
        if peer is None:
            return False
        self.tally.counters["gifter_reconnects"] += 1
        gifter.peer = peer
        if self.plan.one_at_a_time:
            peer.on_gift = self._own_gift_hook(gifter)
        return True

    def _own_gift_hook(self, gifter: Gifter) -> Any:
        def seen(tx: str) -> None:
            gifter.seen.add(tx)
            fut = gifter.own_gift
            if fut is not None and not fut.done() and tx == gifter.own_tx:
                fut.set_result(None)

        return seen

    # -- commands ---------------------------------------------------------------------------
    async def command(self, gifter: Gifter, body: dict[str, Any]) -> dict[str, Any] | None:
        command_id = self.prefix + str(next(self.ids))
        body["id"] = command_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sent = clock()
        gifter.waiting[command_id] = (sent, fut)
        gifter.peer.send_command(body)
        try:
            return await asyncio.wait_for(fut, REPLY_TIMEOUT)
        except TimeoutError:
            gifter.waiting.pop(command_id, None)
            self.tally.counters[f"timeouts.{body['type']}"] += 1
            return None

    async def send_gift(self, gifter: Gifter) -> None:
        plan = self.plan
        tally = self.tally
        tally.counters["gifts_sent"] += 1
        sent = clock()
        if plan.one_at_a_time:
            gifter.own_gift = asyncio.get_running_loop().create_future()
            gifter.own_tx = None
            gifter.seen.clear()
        reply = await self.command(
            gifter, {"type": "send_gift", "gift": plan.gift, "count": plan.count}
        )
        coins = plan.price * plan.count
        diamonds = -(-coins * plan.creator_share // 100)
        if reply is None:
            # no answer in time: committed or not, the money check allows either
            tally.counters["coins_unanswered"] += coins
            tally.counters["diamonds_unanswered"] += diamonds
            return
        now = clock()
        if reply.get("type") != "ack":
            return  # counted by code in the peer
        tally.ack_latency.add_seconds(now - sent)
        tally.counters["gifts_acked"] += 1
        tally.counters["coins_spent"] += coins
        tally.counters["diamonds_expected"] += diamonds
        tx = str(reply.get("tx"))
        tally.gift_acked(tx, sent)
        if plan.one_at_a_time and gifter.own_gift is not None:
            gifter.own_tx = tx
            if tx in gifter.seen or gifter.own_gift.done():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gifter.own_gift, REPLY_TIMEOUT)

    async def gifter_loop(self, gifter: Gifter) -> None:
        plan = self.plan
        like_every = len(self.gifters) / plan.like_rate if plan.like_rate > 0 else None
        chat_every = len(self.gifters) / plan.chat_rate if plan.chat_rate > 0 else None
        now = clock()
        next_gift = now
        next_like = now + random.uniform(0, like_every or 0)
        next_chat = now + random.uniform(0, chat_every or 0)
        first = True
        current: float | None = None
        while not self.stopping:
            interval = self.gift_interval
            if interval is None:
                self.paced.clear()
                await self.paced.wait()
                continue
            if first or interval != current:  # spread the gifters' phases over one interval
                next_gift = min(next_gift, clock() + random.uniform(0, interval))
                if first:
                    next_gift = clock() + random.uniform(0, interval)
                first = False
                current = interval
            candidates = [next_gift]
            if like_every:
                candidates.append(next_like)
            if chat_every:
                candidates.append(next_chat)
            due = min(candidates)
            now = clock()
            if due > now:
                await asyncio.sleep(min(due - now, 0.25))
                continue
            if not gifter.peer.is_open and not await self._reopen_gifter(gifter):
                return
            if due == next_gift:
                next_gift = max(next_gift + interval, now - interval)
                await self.send_gift(gifter)
            elif like_every and due == next_like:
                next_like = max(next_like + like_every, now - like_every)
                reply = await self.command(gifter, {"type": "like", "count": 1})
                if reply is not None and reply.get("type") == "ack":
                    self.tally.counters["likes_acked"] += 1
            elif chat_every:
                next_chat = max(next_chat + chat_every, now - chat_every)
                reply = await self.command(gifter, {"type": "chat", "text": "hello from the crowd"})
                if reply is not None and reply.get("type") == "ack":
                    self.tally.counters["chats_acked"] += 1

    async def relay_loop(self) -> None:
        """One gift at a time: the gifters take turns, each sending only after the
        previous gift reached its sender's own connection (the last one the server
        writes to, as gifters connect after the viewers), so no two gifts can share
        a frame. Each gifter stays under the server's per-connection rate limit."""
        last: dict[int, float] = {}
        turn = 0
        while not self.stopping:
            if self.gift_interval is None:
                self.paced.clear()
                await self.paced.wait()
                continue
            k = turn % len(self.gifters)
            turn += 1
            gifter = self.gifters[k]
            if not gifter.peer.is_open:
                await self._reopen_gifter(gifter)
                continue
            wait = last.get(k, 0.0) + PER_GIFTER_SPACING - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            last[k] = clock()
            await self.send_gift(gifter)

    # -- orders -------------------------------------------------------------------------------
    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def report(self, kind: str, extra: dict[str, Any] | None = None) -> None:
        payload = self.tally.take()
        if extra:
            payload.update(extra)
        self.pipe.send((kind, payload))

    async def reporter(self) -> None:
        while True:
            await asyncio.sleep(self.plan.report_interval)
            self.tally.prune(clock() - 30.0)
            self.report("tick")

    async def storm(self) -> None:
        """Drop every viewer, reconnect them all with ``since``; report when all are
        back, or after ``STORM_LIMIT`` seconds with how many are."""
        started = clock()
        indexes = [i for i, peer in enumerate(self.viewers) if peer is not None]
        for i in indexes:
            peer = self.viewers[i]
            if peer is not None:
                peer.drop()
        reopening = asyncio.get_running_loop().create_task(self.open_all(indexes, resume=True))
        self.tasks.add(reopening)
        done, _ = await asyncio.wait([reopening], timeout=STORM_LIMIT)
        seconds = clock() - started
        back = sum(
            1
            for i in indexes
            if (p := self.viewers[i]) is not None
            and p.welcomed.done()
            and not p.welcomed.exception()
            and p.is_open
        )
        failed = reopening.result()[0] if done else len(indexes) - back
        self.report(
            "storm_done",
            {
                "storm": {
                    "viewers": len(indexes),
                    "failed": failed,
                    "back": back,
                    "seconds": seconds,
                    "finished": bool(done),
                }
            },
        )

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        orders: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def readable() -> None:
            while self.pipe.poll():
                try:
                    orders.put_nowait(self.pipe.recv())
                except EOFError:
                    orders.put_nowait(("stop", None))
                    loop.remove_reader(self.pipe.fileno())
                    return

        loop.add_reader(self.pipe.fileno(), readable)
        started = clock()
        failed_gifters = await self.open_gifters()  # first: a crowd cut short still gifts
        failed, _ = await self.open_all(
            list(range(len(self.viewers))), within=self.plan.connect_seconds
        )
        seconds = clock() - started
        self.report(
            "connected",
            {"connect": {"failed": failed + failed_gifters, "seconds": seconds}},
        )
        settle_collector()
        self.spawn(self.reporter())
        if self.plan.one_at_a_time:
            loops = [loop.create_task(self.relay_loop())] if self.gifters else []
        else:
            loops = [loop.create_task(self.gifter_loop(g)) for g in self.gifters]
        while True:
            kind, arg = await orders.get()
            if kind == "go":
                rate = float(arg)
                self.gift_interval = len(self.gifters) / rate if rate > 0 and self.gifters else None
                self.paced.set()
            elif kind == "storm":
                self.spawn(self.storm())
            elif kind == "stop":
                break
        self.stopping = True
        self.paced.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*loops, return_exceptions=True), REPLY_TIMEOUT)
        await asyncio.sleep(float(arg) if arg else 0.5)  # let the last deliveries land
        for task in list(self.tasks):
            task.cancel()
        self.report("final")
        peers = [p for p in self.viewers if p is not None] + [g.peer for g in self.gifters]
        for peer in peers:
            peer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(p.done for p in peers), return_exceptions=True), 5.0
            )
        loop.remove_reader(self.pipe.fileno())
        self.pipe.send(("closed", None))

"""The coordinator: sets the deployment up, starts the worker processes, drives
the scenario's phases, prints the progress line and builds the report.

Scenarios (``Options.scenario``):

- ``crowd``: viewers across rooms, gifters at a total rate, optional likes and chat;
- ``storm``: a crowd whose viewers all drop at once and reconnect with ``since``;
- ``whale``: a few gifters sending big combos of an expensive gift;
- ``sweep``: a crowd whose gift rate rises step by step until the p99
  gift-to-screen latency passes the bound; reports the capacity.

Every run is bounded: a number of connections, a duration per phase, and a hard
deadline after which the workers are killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import platform
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO
from urllib.parse import urlsplit

from loadtest.processes import process_tree
from loadtest.stats import Counters, Histogram, Sample, rate
from loadtest.worker import GifterPlan, WorkerPlan, pin, raise_nofile, run_worker
from loadtest.writer_counters import WriterCounters, scrape_writer_counters

MAX_CONNECTIONS = 1_000_000
MAX_PHASE_SECONDS = 3_600.0
PER_PROCESS_SOCKETS = 18_000
"""Connections per worker process, below the usual 20,000 open-files cap."""
PER_SOURCE_ADDRESS = 10_000
"""Connections per loopback source address: a third of its ~28,000 ephemeral ports."""


@dataclass
class Options:
    url: str = "http://127.0.0.1:8000"
    secret: str = ""
    scenario: str = "crowd"
    viewers: int = 100
    rooms: int = 1
    gifters: int = 2
    gift_rate: float = 2.0
    """Gifts per second, all gifters together."""
    gift: str = "rose"
    count: int = 1
    like_rate: float = 0.0
    chat_rate: float = 0.0
    duration: float = 10.0
    warmup: float = 2.0
    workers: int = 0
    """Generator processes (0: enough for the connections, at least one)."""
    sources: int = 0
    """Loopback source addresses (0: enough for the connections)."""
    probe_every: int = 20
    msgpack_every: int = 0
    connect_concurrency: int = 256
    connect_seconds: float = 0.0
    """Stop opening viewers this long after the start and go on with those held
    (0: open them all)."""
    creator_share: int = 50
    one_at_a_time: bool = False
    money: bool = True
    """Set up through the HTTP API and check the money at the end (off for the baseline)."""
    server_pid: int | None = None
    metrics_token: str = ""
    """The bearer token of the server's ``/metrics`` page, if it has one."""
    cpus: list[int] | None = None
    """CPUs for the generator processes (default: any)."""
    # sweep
    start_rate: float = 10.0
    factor: float = 1.5
    max_rate: float = 100_000.0
    step_seconds: float = 5.0
    p99_bound_ms: float = 250.0
    bound_on: str = "screen"
    """The latency the sweep's bound applies to: ``screen`` (gift to a viewer's
    screen) or ``ack`` (gift sent to its ack)."""
    overload_factor: float = 1.0
    """Sweep on past the bound while p99 stays under this many times the bound (to
    find the peak throughput too); 1: stop at the first step over the bound."""
    # storm
    storm_settle: float = 5.0
    quiet: bool = False
    report_interval: float = 1.0
    label: str = ""

    def check(self) -> None:
        if not 0 <= self.viewers <= MAX_CONNECTIONS or not 0 <= self.gifters <= 100_000:
            raise ValueError(f"viewers must be 0..{MAX_CONNECTIONS}, gifters 0..100000")
        if self.rooms < 1:
            raise ValueError("rooms must be at least 1")
        for name in ("duration", "warmup", "step_seconds", "storm_settle", "connect_seconds"):
            if not 0 <= getattr(self, name) <= MAX_PHASE_SECONDS:
                raise ValueError(f"{name} must be within 0..{MAX_PHASE_SECONDS:g} seconds")
        if self.bound_on not in ("screen", "ack"):
            raise ValueError("bound_on must be 'screen' or 'ack'")
        if self.money and not self.secret:
            raise ValueError("a secret is needed to mint tokens: --secret or LIVE_SECRET")
        if self.gifters and self.gift_rate / self.gifters > 9.5 and not self.one_at_a_time:
            raise ValueError(
                "more than 9.5 commands/s per gifter would hit the server's rate limit "
                "(10/s): add gifters"
            )


@dataclass
class Acc:
    """Totals over a span of the run."""

    counters: Counters = field(default_factory=Counters)
    gift_latency: Histogram = field(default_factory=Histogram)
    ack_latency: Histogram = field(default_factory=Histogram)
    handshake_latency: Histogram = field(default_factory=Histogram)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    cpu_start: tuple[float, ServerUsage | None] = (0.0, None)
    """(generator CPU seconds, the local server's counters) when the span started."""
    cpu_end: tuple[float, ServerUsage | None] = (0.0, None)
    writer_start: WriterCounters | None = None
    """The server's SQLite writer counters when the span started (embedded engine)."""
    writer_end: WriterCounters | None = None

    def cpu_percent(self) -> dict[str, float | None]:
        """Busy share of one CPU over the span: generator (all workers) and server."""
        wall = self.seconds
        gen = (self.cpu_end[0] - self.cpu_start[0]) / wall * 100 if wall > 0 else None
        server = None
        cpu = self.server_cpu_seconds
        if cpu is not None and wall > 0:
            server = cpu / wall * 100
        return {
            "generator_percent": None if gen is None else round(gen, 1),
            "server_percent": None if server is None else round(server, 1),
        }

    def add(self, payload: dict[str, Any]) -> None:
        self.counters.update(payload["counters"])
        self.gift_latency.merge(Histogram.from_dict(payload["gift_latency"]))
        self.ack_latency.merge(Histogram.from_dict(payload["ack_latency"]))
        self.handshake_latency.merge(Histogram.from_dict(payload["handshake_latency"]))

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def per_second(self, name: str) -> float:
        return rate(self.counters[name], self.seconds)

    @property
    def server_used(self) -> ServerUsage | None:
        """What the server (all its processes) used over the span, if local."""
        start, end = self.cpu_start[1], self.cpu_end[1]
        if start is None or end is None:
            return None
        return end - start

    @property
    def server_cpu_seconds(self) -> float | None:
        """CPU time the server (all its processes) used over the span, if local."""
        usage = self.server_used
        return None if usage is None else usage.cpu

    def writer(self) -> dict[str, Any] | None:
        """How the server's SQLite writer committed over the span
        (``WriterCounters.over``), if the server has one and its page was read."""
        if self.writer_start is None or self.writer_end is None:
            return None
        return (self.writer_end - self.writer_start).over(self.seconds)

    def server_per_gift(self) -> dict[str, float | None] | None:
        """Where an acked gift's server cost went over the span: CPU in the
        processes' event loops and in their other threads (the embedded engine's
        SQLite writer, checkpointer and readers; executors), and bytes written to
        storage. ``None`` without a local server or without acked gifts."""
        usage, gifts = self.server_used, self.counters["gifts_acked"]
        if usage is None or gifts <= 0:
            return None
        return {
            "loop_cpu_us": round(usage.loop_cpu / gifts * 1e6, 1),
            "other_cpu_us": round((usage.cpu - usage.loop_cpu) / gifts * 1e6, 1),
            "written_bytes": None if usage.written is None else round(usage.written / gifts),
        }

    def per_server_cpu_second(self, name: str) -> float | None:
        """Counter ``name`` per second of server CPU over the span: the cost of a
        gift (or a delivery), whatever else the machine was doing meanwhile."""
        cpu = self.server_cpu_seconds
        if not cpu or cpu <= 0:
            return None
        return round(self.counters[name] / cpu, 1)

    def throughput(self) -> dict[str, float | None]:
        return {
            "gift_deliveries_per_s": round(self.per_second("gift_events"), 1),
            "events_per_s": round(self.per_second("room_events"), 1),
            "frames_per_s": round(self.per_second("frames"), 1),
            "bytes_per_s": round(self.per_second("bytes"), 1),
            "gifts_sent_per_s": round(self.per_second("gifts_sent"), 1),
            "gifts_acked_per_s": round(self.per_second("gifts_acked"), 1),
            "gifts_per_server_cpu_s": self.per_server_cpu_second("gifts_acked"),
            "gift_deliveries_per_server_cpu_s": self.per_server_cpu_second("gift_events"),
        }


@dataclass(frozen=True, slots=True)
class ServerUsage:
    """A local server's counters so far, summed over its processes (Linux /proc);
    subtract two to get a span's."""

    cpu: float
    """User plus system CPU seconds of every thread."""
    loop_cpu: float
    """The same for each process's main thread, where its event loop runs."""
    written: int | None
    """Bytes the processes had written to storage (``write_bytes`` of
    ``/proc/PID/io``); ``None`` when a process's file could not be read."""

    def __sub__(self, before: ServerUsage) -> ServerUsage:
        written = None
        if self.written is not None and before.written is not None:
            written = self.written - before.written
        return ServerUsage(self.cpu - before.cpu, self.loop_cpu - before.loop_cpu, written)


def _stat_cpu(path: str) -> float | None:
    """User plus system seconds from a ``/proc/.../stat`` file (a process or a thread)."""
    try:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _write_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def server_usage(pid: int | None) -> ServerUsage | None:
    """CPU (all threads, and main threads apart) and storage writes so far of a
    local process and its descendants. Reaped children's share is left out: a
    worker that exits mid-run takes it with it."""
    if pid is None:
        return None
    cpu = loop_cpu = 0.0
    written: int | None = 0
    seen = False
    for each in process_tree(pid):
        whole = _stat_cpu(f"/proc/{each}/stat")
        if whole is None:
            continue
        seen = True
        cpu += whole
        loop_cpu += _stat_cpu(f"/proc/{each}/task/{each}/stat") or 0.0
        more = _write_bytes(each)
        written = None if written is None or more is None else written + more
    return ServerUsage(cpu, loop_cpu, written) if seen else None


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time so far of a local process and its descendants."""
    usage = server_usage(pid)
    return None if usage is None else usage.cpu


def rss_kib(pid: int | None) -> int | None:
    """Resident set size of a local process and its descendants, from /proc (Linux)."""
    if pid is None:
        return None
    total: int | None = None
    for each in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{each}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total = (total or 0) + int(line.split()[1])
                    break
    return total


def open_sockets(pid: int | None) -> list[int]:
    """Open sockets of a local process and of each of its descendants, in
    ``process_tree`` order (Linux): how ``live serve --workers`` spread a crowd."""
    if pid is None:
        return []
    counts = []
    for each in process_tree(pid):
        try:
            fds = os.listdir(f"/proc/{each}/fd")
        except OSError:
            continue
        sockets = 0
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                sockets += os.readlink(f"/proc/{each}/fd/{fd}").startswith("socket:")
        counts.append(sockets)
    return counts


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.")


class Run:
    """One scenario against one deployment."""

    def __init__(self, options: Options, *, out: TextIO | None = None) -> None:
        options.check()
        self.o = options
        self.out = out if out is not None else sys.stderr
        parts = urlsplit(options.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        if parts.scheme in ("https", "wss"):
            raise ValueError("TLS targets are not supported yet: point at the plain port")
        self.base_url = f"http://{self.host}:{self.port}"
        self.run_id = secrets.token_hex(3)
        self.people: Any = None
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        self.total = Acc()
        self.window = Acc()
        self.phases: list[Acc] = []
        self.writer_readable = True
        """Whether the server's SQLite writer counters can be read: once a read
        gives nothing (the Redis engine, a refused or unreachable page), the run
        stops asking, so a page that never answers costs one timeout, not one per
        step."""
        self.samples: list[Sample] = []
        self.open_by_worker: dict[int, int] = {}
        self.cpu_by_worker: dict[int, float] = {}
        self.t0 = time.monotonic()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.report: dict[str, Any] = {}
        self._lines = 0
        self.deadline = time.monotonic() + self._budget()

    def _budget(self) -> float:
        o = self.o
        steps = 1
        if o.scenario == "sweep" and o.start_rate > 0 and o.factor > 1:
            steps = math.ceil(math.log(max(o.max_rate / o.start_rate, 1.0), o.factor)) + 2
        connect = (o.viewers + o.gifters) / 50 + 60  # a busy machine: tens of handshakes/s
        if o.connect_seconds:
            connect = min(connect, o.connect_seconds + 120)
        return connect + o.warmup + o.duration * steps + o.storm_settle + 300

    # -- plumbing -----------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.o.quiet:
            print(text, file=self.out, flush=True)

    def _worker_count(self) -> int:
        if self.o.workers > 0:
            return self.o.workers
        return max(1, math.ceil((self.o.viewers + self.o.gifters) / PER_PROCESS_SOCKETS))

    def _sources(self) -> list[str]:
        if not _loopback(self.host):
            return []
        n = self.o.sources or math.ceil((self.o.viewers + self.o.gifters) / PER_SOURCE_ADDRESS)
        return [f"127.0.0.{1 + k}" for k in range(max(1, min(n, 250)))]

    def plans(self) -> list[WorkerPlan]:
        o = self.o
        n = self._worker_count()
        host = "127.0.0.1" if self.host == "localhost" else self.host
        rooms = (
            self.people.rooms if self.people else [f"lt-{self.run_id}-{r}" for r in range(o.rooms)]
        )
        tokens = self.people.gifter_tokens if self.people else ["-"] * o.gifters
        price = self.people.price if self.people else 1
        cpus = o.cpus or []
        plans = []
        for w in range(n):
            viewers = [rooms[i % len(rooms)] for i in range(w, o.viewers, n)]
            gifters = [
                GifterPlan(room=rooms[j % len(rooms)], token=tokens[j])
                for j in range(w, o.gifters, n)
            ]
            plans.append(
                WorkerPlan(
                    index=w,
                    host=host,
                    port=self.port,
                    viewers=viewers,
                    gifters=gifters,
                    probe_every=o.probe_every,
                    msgpack_every=o.msgpack_every,
                    gift=o.gift,
                    count=o.count,
                    price=price,
                    creator_share=o.creator_share,
                    like_rate=o.like_rate * len(gifters) / o.gifters if o.gifters else 0.0,
                    chat_rate=o.chat_rate * len(gifters) / o.gifters if o.gifters else 0.0,
                    one_at_a_time=o.one_at_a_time,
                    sources=self._sources(),
                    connect_concurrency=o.connect_concurrency,
                    connect_seconds=o.connect_seconds,
                    cpu=cpus[w % len(cpus)] if cpus else None,
                    report_interval=0.5,
                )
            )
        return plans

    def start_workers(self) -> None:
        ctx = mp.get_context("spawn")
        for plan in self.plans():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=run_worker, args=(plan, child), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
            self.open_by_worker[plan.index] = 0

    def send(self, kind: str, arg: Any = None, *, rates: bool = False) -> None:
        """An order to every worker; ``rates``: split ``arg`` gifts/s by gifters."""
        o = self.o
        n = len(self.pipes)
        for w, pipe in enumerate(self.pipes):
            value = arg
            if rates:
                mine = len(range(w, o.gifters, n))
                value = float(arg) * mine / o.gifters if o.gifters else 0.0
            with contextlib.suppress(OSError):
                pipe.send((kind, value))

    def pump(self, seconds: float, *, until: str | None = None, count: int = 0) -> None:
        """Take reports for ``seconds`` (or until ``count`` workers said ``until``)."""
        end = time.monotonic() + seconds
        said = 0
        next_line = time.monotonic() + self.o.report_interval
        while True:
            now = time.monotonic()
            if now > self.deadline:
                raise TimeoutError("the run passed its deadline")
            if until is None and now >= end:
                break
            if until is not None and said >= count:
                break
            if until is not None and now >= end:
                raise TimeoutError(f"workers did not report {until!r} within {seconds:g}s")
            for pipe in wait(self.pipes, timeout=min(0.1, max(0.0, end - now))):
                assert isinstance(pipe, Connection)
                try:
                    kind, payload = pipe.recv()
                except EOFError:
                    self.pipes.remove(pipe)
                    continue
                w = self.pipes.index(pipe)
                if payload is not None and "counters" in payload:
                    self.total.add(payload)
                    self.window.add(payload)
                    for acc in self.phases:
                        if acc.ended is None:
                            acc.add(payload)
                    self.open_by_worker[w] = payload["open"]
                    self.cpu_by_worker[w] = payload.get("cpu", 0.0)
                if kind not in ("tick", "closed"):
                    self.events.append((kind, payload))
                if kind == until:
                    said += 1
            if time.monotonic() >= next_line:
                self._sample()
                next_line += self.o.report_interval

    def _sample(self) -> None:
        w = self.window
        w.ended = time.monotonic()
        sample = Sample(
            t=w.ended - self.t0,
            seconds=w.seconds,
            counters=w.counters,
            gift_latency=w.gift_latency,
            ack_latency=w.ack_latency,
            connections=sum(self.open_by_worker.values()),
        )
        self.samples.append(sample)
        self.window = Acc()
        self._lines += 1
        tty = self.out.isatty()
        if not self.o.quiet and (tty or self._lines % 10 == 0):
            p99 = w.gift_latency.percentile(99)
            errors = sum(v for k, v in self.total.counters.items() if k.startswith("errors."))
            closes = sum(v for k, v in self.total.counters.items() if k.startswith("closes."))
            cr = "\r" if tty else ""
            line = (
                f"{cr}{self.o.label + ' ' if self.o.label else ''}{sample.t:6.1f}s "
                f"conns {sample.connections:>6} "
                f"gifts/s {sample.per_second('gifts_acked'):>7.0f} "
                f"deliveries/s {sample.per_second('gift_events'):>9.0f} "
                f"frames/s {sample.per_second('frames'):>8.0f} "
                f"p99 {'-' if p99 is None else f'{p99 / 1000:.1f}ms':>8} "
                f"errors {errors} closes {closes}   "
            )
            print(line, end="" if tty else "\n", file=self.out, flush=True)

    def cpu_mark(self) -> tuple[float, ServerUsage | None]:
        return sum(self.cpu_by_worker.values()), server_usage(self.o.server_pid)

    def writer_mark(self) -> WriterCounters | None:
        if not self.writer_readable:
            return None
        counters = scrape_writer_counters(self.base_url, token=self.o.metrics_token)
        self.writer_readable = counters is not None
        return counters

    def phase(self) -> Acc:
        writer = self.writer_mark()
        acc = Acc(cpu_start=self.cpu_mark(), writer_start=writer)
        self.phases.append(acc)
        return acc

    def end(self, acc: Acc) -> Acc:
        acc.ended = time.monotonic()
        acc.cpu_end = self.cpu_mark()
        acc.writer_end = self.writer_mark()
        return acc

    # -- the run ------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        o = self.o
        from loadtest import setup

        raise_nofile()
        if o.cpus:
            pin(o.cpus[0])
        if o.money:
            self.people = setup.make_people(
                secret=o.secret, run=self.run_id, rooms=o.rooms, gifters=o.gifters
            )
            seconds = o.warmup + o.duration
            if o.scenario == "sweep":
                seconds = o.step_seconds * (self._budget() / max(o.step_seconds, 1))
            per_gifter = o.count * (o.gift_rate if o.scenario != "sweep" else o.max_rate)
            coins_each = int(per_gifter / max(o.gifters, 1) * (seconds + 30) * 1.2) + 1
            if o.one_at_a_time:
                coins_each = int(200 * o.count * (seconds + 30))
            self.say(f"setting up {o.rooms} room(s) and {o.gifters} funded gifter(s)...")
            asyncio.run(
                setup.prepare(self.base_url, self.people, gift=o.gift, coins_each=coins_each)
            )
        rss_before = rss_kib(o.server_pid)
        pids_before = process_tree(o.server_pid) if o.server_pid else []
        self.say(
            f"connecting {o.viewers} viewers and {o.gifters} gifters to {self.base_url} "
            f"from {self._worker_count()} process(es)..."
        )
        connect = self.phase()
        self.start_workers()
        try:
            self.pump(self._budget(), until="connected", count=len(self.pipes))
            self.end(connect)
            connect_reports = [p["connect"] for k, p in self.events if k == "connected"]
            rss_idle = rss_kib(o.server_pid)
            sockets_idle = open_sockets(o.server_pid)
            result: dict[str, Any] = {}
            if o.scenario == "sweep":
                self.pump(o.warmup)  # let the crowd's arrival settle first
                measured = self.phase()
                result["sweep"] = self._sweep()
                self.end(measured)
            else:
                self.send("go", o.gift_rate, rates=True)
                self.pump(o.warmup)
                measured = self.phase()
                if o.scenario == "storm":
                    result["storm"] = self._storm()
                else:
                    self.pump(o.duration)
                self.end(measured)
            rss_end = rss_kib(o.server_pid)
            pids_end = process_tree(o.server_pid) if o.server_pid else []
            self.send("stop", 1.0)
            self.pump(60.0, until="final", count=len(self.pipes))
            with contextlib.suppress(TimeoutError):
                self.pump(15.0, until="closed", count=len(self.pipes))
        finally:
            self._sample()
            if not o.quiet:
                print(file=self.out)
            self.stop_workers()
        money: dict[str, Any] | None = None
        if o.money and self.people is not None:
            money = asyncio.run(
                setup.money_check(
                    self.base_url,
                    self.people,
                    coins_spent=self.total.counters["coins_spent"],
                    diamonds_expected=self.total.counters["diamonds_expected"],
                    coins_unanswered=self.total.counters["coins_unanswered"],
                    diamonds_unanswered=self.total.counters["diamonds_unanswered"],
                )
            )
        self.report = self._report(
            measured=measured,
            connect=connect,
            connect_reports=connect_reports,
            rss=(rss_before, rss_idle, rss_end),
            sockets=sockets_idle,
            gone=sorted(set(pids_before) - set(pids_end)),
            money=money,
            extra=result,
        )
        return self.report

    def stop_workers(self) -> None:
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)

    def _storm(self) -> dict[str, Any]:
        o = self.o
        self.pump(o.storm_settle / 2)
        started = time.monotonic()
        self.send("storm")
        self.pump(max(120.0, o.viewers / 100), until="storm_done", count=len(self.pipes))
        seconds = time.monotonic() - started
        reports = [p["storm"] for k, p in self.events if k == "storm_done"]
        self.pump(o.storm_settle / 2)
        counters = self.total.counters
        return {
            "viewers": sum(r["viewers"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "back": sum(r.get("back", 0) for r in reports),
            "finished": all(r.get("finished", True) for r in reports),
            "seconds": round(seconds, 3),
            "slowest_worker_seconds": round(max((r["seconds"] for r in reports), default=0), 3),
            "resumed": counters["resumed"],
            "snapshots": counters["snapshots"],
            "gaps": counters["gaps"],
        }

    def _sweep(self) -> dict[str, Any]:
        o = self.o
        steps: list[dict[str, Any]] = []
        capacity: dict[str, Any] | None = None
        peak: dict[str, Any] | None = None
        gift_rate = o.start_rate
        broke = None
        while gift_rate <= o.max_rate:
            if o.gifters and gift_rate / o.gifters > 9.5:
                broke = "gifters would pass the per-connection rate limit"
                break
            self.send("go", gift_rate, rates=True)
            self.pump(min(2.0, o.step_seconds / 2))  # settle
            closes_before = sum(
                v for k, v in self.total.counters.items() if k.startswith("closes.")
            )
            acc = self.phase()
            self.pump(o.step_seconds)
            self.end(acc)
            bounded = acc.ack_latency if o.bound_on == "ack" else acc.gift_latency
            p99 = bounded.percentile(99)
            closes = (
                sum(v for k, v in self.total.counters.items() if k.startswith("closes."))
                - closes_before
            )
            step: dict[str, Any] = {
                "gift_rate": round(gift_rate, 2),
                **acc.throughput(),
                "gift_to_screen_ms": acc.gift_latency.summary_ms(),
                "ack_ms": acc.ack_latency.summary_ms(),
                "closes": closes,
                "errors": sum(v for k, v in acc.counters.items() if k.startswith("errors.")),
                "cpu": acc.cpu_percent(),
                "server_writer": acc.writer(),
            }
            # Keeping up: the gifts acked are the rate asked, give or take one
            # gift per gifter (their phases) and 10%.
            keeping_up = acc.counters["gifts_acked"] >= 0.9 * gift_rate * acc.seconds - o.gifters
            ok = p99 is not None and p99 / 1000 <= o.p99_bound_ms and closes == 0 and keeping_up
            step["within_bound"] = ok
            steps.append(step)
            if not o.quiet:
                print(file=self.out)
            self.say(
                f"step {gift_rate:.0f} gifts/s: {step['gift_deliveries_per_s']:.0f} deliveries/s, "
                f"{o.bound_on} p99 {None if p99 is None else round(p99 / 1000, 1)} ms -> "
                f"{'ok' if ok else 'over the bound'}"
            )
            if peak is None or step["gift_deliveries_per_s"] > peak["gift_deliveries_per_s"]:
                peak = step
            if ok and (
                capacity is None
                or step["gift_deliveries_per_s"] > capacity["gift_deliveries_per_s"]
            ):
                capacity = step
            # Past the bound, go on while the server still keeps up (up to
            # ``overload_factor`` times the bound) to find its peak throughput too.
            overloaded = p99 is None or p99 / 1000 > o.p99_bound_ms * o.overload_factor
            if not ok and (overloaded or closes or not keeping_up or o.overload_factor <= 1):
                broke = "p99 over the bound" if closes == 0 else "viewers closed"
                if not keeping_up:
                    broke = "gifts not keeping up with the asked rate"
                break
            gift_rate *= o.factor
        self.send("go", 0)
        return {
            "p99_bound_ms": o.p99_bound_ms,
            "bound_on": o.bound_on,
            "steps": steps,
            "stopped": broke or "reached the maximum rate",
            "capacity_gift_deliveries_per_s": capacity["gift_deliveries_per_s"] if capacity else 0,
            "capacity_gift_rate": capacity["gift_rate"] if capacity else 0,
            "peak_gift_deliveries_per_s": peak["gift_deliveries_per_s"] if peak else 0,
            "peak_gift_rate": peak["gift_rate"] if peak else 0,
            "peak_p99_ms": peak["gift_to_screen_ms"]["p99"] if peak else None,
        }

    # -- the report -------------------------------------------------------------------------
    def _report(
        self,
        *,
        measured: Acc,
        connect: Acc,
        connect_reports: list[dict[str, Any]],
        rss: tuple[int | None, int | None, int | None],
        sockets: list[int],
        gone: list[int],
        money: dict[str, Any] | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        o = self.o
        c = self.total.counters
        opened = connect.counters["connects"]
        connect_seconds = max((r["seconds"] for r in connect_reports), default=0.0)
        rss_before, rss_idle, rss_end = rss
        server: dict[str, Any] = {}
        if rss_before is not None:
            per_conn = None
            if rss_idle is not None and opened:
                per_conn = round((rss_idle - rss_before) / opened, 2)
            server = {
                "pid": o.server_pid,
                "rss_before_kib": rss_before,
                "rss_idle_kib": rss_idle,
                "rss_end_kib": rss_end,
                "rss_per_connection_kib": per_conn,
                "processes": len(sockets),
                "sockets_idle": sockets,
                "processes_gone": gone,
            }
        report: dict[str, Any] = {
            "scenario": o.scenario,
            "label": o.label,
            "target": self.base_url,
            "options": {k: v for k, v in asdict(o).items() if k not in ("secret", "metrics_token")},
            "machine": machine(),
            "workers": len(self.procs),
            "connections": {
                "asked": o.viewers + o.gifters,
                "opened": opened,
                "failed": sum(r["failed"] for r in connect_reports),
                "skipped": c["connect_skipped"],
                "seconds": round(connect_seconds, 3),
                "handshakes_per_s": round(rate(opened, connect_seconds), 1),
                "handshake_ms": connect.handshake_latency.summary_ms(),
                "connect_errors": c.group("connect_errors"),
            },
            "measured_seconds": round(measured.seconds, 3),
            "cpu": measured.cpu_percent(),
            "throughput": measured.throughput(),
            "server_per_gift": measured.server_per_gift(),
            "server_writer": measured.writer(),
            "latency": {
                "gift_to_screen_ms": measured.gift_latency.summary_ms(),
                "ack_ms": measured.ack_latency.summary_ms(),
            },
            "totals": {
                "gifts_sent": c["gifts_sent"],
                "gifts_acked": c["gifts_acked"],
                "likes_acked": c["likes_acked"],
                "chats_acked": c["chats_acked"],
                "gift_events": c["gift_events"],
                "room_events": c["room_events"],
                "frames": c["frames"],
                "bytes": c["bytes"],
            },
            "errors": c.group("errors"),
            "timeouts": c.group("timeouts"),
            "closes": c.group("closes"),
            "resume": {
                "reconnects": c["reconnects"],
                "resumed": c["resumed"],
                "snapshots": c["snapshots"],
                "gaps": c["gaps"],
                "caught_up": c["caught_up"],
            },
            "server": server,
            "money": money,
            "timeline": [s.public() for s in self.samples],
        }
        report.update(extra)
        return report

"""The side-by-side benchmarks (docs/PERFORMANCE.md): ``python -m loadtest bench``.

Each target starts the servers it needs on this machine (our ``live serve`` on a
temporary data dir, and the baseline), runs the same scenario against each in
turn, and reports our figure, the baseline's, their ratio and whether the goal
is met. Servers are pinned to the first CPU and the generator to the others
where the machine has more than one.

Targets: ``fanout`` (sweep, 1 room x 5,000 viewers), ``rate200`` (200 gifts/s
into that room), ``onegift`` (one gift at a time), ``memory`` (idle viewers),
``commit`` (gifts committed per second, and per second of server CPU),
``sustained`` (sweep: the highest offered gift rate with ack p99 <= 50 ms),
``storm`` (reconnect storm; 20,000 viewers when ``--workers`` can hold them), or
``all``; and ``crowd`` (100,000 viewers in one room across ``--workers``: viewers
held, RSS per idle viewer, handshakes/s, one gift to all of them), which ``all``
leaves out since it takes the whole machine for minutes.

``--workers N`` runs ``live serve --workers N`` (scaled engine), pinned to the
first N CPUs; the server's CPU time is that of all its processes, so the rows
per CPU-second compare 1 and N workers whatever else the machine runs.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from loadtest.report import fmt, table, write
from loadtest.runner import PER_PROCESS_SOCKETS, Options, Run, cpu_seconds
from loadtest.servers import SECRET, LocalServers
from loadtest.worker import raise_nofile

FD_LIMIT_MARGIN = 200
CROWD_CONNECT_SECONDS = 600.0
"""The crowd target stops opening viewers after this and measures those held."""
CROWD_CONNECTS_IN_FLIGHT = 600
"""The crowd's handshakes in flight, all generator processes together. Per process,
the wait grows with the processes (6 at 100,000): 200 each kept 1,200 in flight,
a handshake's wait is in-flight / rate (15 s at 80/s), and the slowest passed the
generator's 30 s limit while the server was still working on them."""


@dataclass
class Row:
    target: str
    engine: str
    figure: Any
    baseline: Any
    ratio: float | None
    goal: str
    met: bool | None
    note: str = ""

    def public(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """What ``python -m loadtest bench`` was asked for, besides the targets."""

    engine: str = "embedded"
    out: Path | None = None
    scale: float = 1.0
    """Multiplies the crowd sizes."""
    duration: float | None = None
    """Seconds per measurement (default: each target's own)."""
    keep: bool = False
    """Keep the servers' data directories."""
    workers: int = 1
    """``live serve --workers`` (more than one: scaled engine only)."""
    redis_replicas: int = 0
    """Scaled engine: Redis replicas, and money answered once they all have it."""
    redis_cluster: int = 0
    """Scaled engine: a Redis Cluster of this many primaries (0: one redis-server)."""


class Bench:
    def __init__(self, settings: BenchSettings) -> None:
        engine, workers, keep = settings.engine, settings.workers, settings.keep
        out, scale, duration = settings.out, settings.scale, settings.duration
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        self.server_cpus = set(cpus[:workers])
        self.generator_cpus = cpus[workers:] or cpus
        self.engine = engine
        self.workers = workers
        self.label = engine if workers == 1 else f"{engine}, {workers} workers"
        if settings.redis_cluster:
            self.label += f", cluster of {settings.redis_cluster}"
        if settings.redis_replicas:
            self.label += f", WAIT {settings.redis_replicas}"
        self.out = out
        self.scale = scale
        self.duration = duration
        self.servers = LocalServers(
            engine=engine,
            server_cpus=self.server_cpus,
            helper_cpus=set(self.generator_cpus),
            keep=keep,
            workers=workers,
            redis_replicas=settings.redis_replicas,
            redis_cluster=settings.redis_cluster,
        )
        self.rows: list[Row] = []
        self.reports: dict[str, dict[str, Any]] = {}
        self.fd_limit = raise_nofile()

    def n(self, count: int) -> int:
        return max(1, int(count * self.scale))

    def seconds(self, default: float) -> float:
        return self.duration if self.duration is not None else default

    def options(self, url: str, **kw: Any) -> Options:
        base = Options(
            url=url,
            secret=SECRET,
            cpus=self.generator_cpus,
            probe_every=100,
            warmup=2.0,
            connect_concurrency=200,
            report_interval=1.0,
        )
        return replace(base, **kw)

    def run(self, name: str, server: str, options: Options, pid: int) -> dict[str, Any]:
        options = replace(options, server_pid=pid, label=f"{name}/{server}")
        print(f"\n== {name} against {server} ({self.label}) ==", file=sys.stderr)
        report = Run(options).execute()
        self.reports[f"{name}-{server}"] = report
        if self.out is not None:
            write(report, self.out, name=f"{name}-{server}")
        return report

    def both(
        self, name: str, *, baseline: bool = True, **settings: Any
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Run ``name`` with these options against the baseline (unless told not to)
        and then against our server; their reports."""
        base_report = None
        if baseline:
            url, proc = self.servers.start_baseline()
            try:
                options = replace(self.options(url, **settings), money=False)
                base_report = self.run(name, "baseline", options, proc.pid)
            finally:
                self.servers.stop(proc)
        url, proc = self.servers.start_live()
        try:
            ours = self.run(name, "live", self.options(url, **settings), proc.pid)
        finally:
            self.servers.stop(proc)
        return ours, base_report

    def add(
        self,
        target: str,
        figure: Any,
        baseline: Any = None,
        ratio: float | None = None,
        *,
        goal: str,
        met: bool | None,
        note: str,
    ) -> None:
        row = Row(target, self.label, figure, baseline, ratio, goal, met, note)
        self.rows.append(row)
        print(
            f"-> {row.target}: {fmt(row.figure)} (baseline {fmt(row.baseline)}, ratio "
            f"{fmt(row.ratio)}) goal {row.goal}: "
            f"{'-' if row.met is None else 'met' if row.met else 'NOT met'}",
            file=sys.stderr,
        )

    # -- targets ------------------------------------------------------------------------
    def fanout(self) -> None:
        viewers = self.n(5000)
        ours, base = self.both(
            "fanout",
            **in_one_room("sweep", viewers, gifters=220),
            start_rate=1,
            factor=2,
            max_rate=2000,
            step_seconds=self.seconds(6),
            p99_bound_ms=250,
            overload_factor=4,
            warmup=5.0,
        )
        sweep, base_sweep = ours["sweep"], base["sweep"] if base else None
        figure, baseline, ratio = compare(sweep, base_sweep, "capacity_gift_deliveries_per_s")
        self.add(
            "fan-out capacity, gift deliveries/s at p99 <= 250 ms",
            figure,
            baseline,
            ratio,
            goal=">= 10x baseline",
            met=bool(figure) and (ratio is None or ratio >= 10),
            note=f"1 room, {viewers} viewers; ours at {fmt(sweep['capacity_gift_rate'])} "
            f"gifts/s, {fmt(_at_capacity(sweep, 'gift_deliveries_per_server_cpu_s'))} "
            f"deliveries per server-CPU-second (stopped: {sweep['stopped']})",
        )
        peak, base_peak, peak_ratio = compare(sweep, base_sweep, "peak_gift_deliveries_per_s")
        self.add(
            "fan-out peak, gift deliveries/s (highest sweep step)",
            peak,
            base_peak,
            peak_ratio,
            goal=">= 10x baseline",
            met=peak_ratio is not None and peak_ratio >= 10,
            note=f"ours at {fmt(sweep['peak_gift_rate'])} gifts/s, p99 "
            f"{fmt(sweep['peak_p99_ms'])} ms; baseline at "
            f"{fmt(base_sweep['peak_gift_rate'] if base_sweep else None)} gifts/s, p99 "
            f"{fmt(base_sweep['peak_p99_ms'] if base_sweep else None)} ms",
        )

    def rate200(self) -> None:
        viewers = self.n(5000)
        ours, _ = self.both(
            "rate200",
            baseline=False,
            **in_one_room("crowd", viewers, gifters=200, gift_rate=200, duration=self.seconds(15)),
        )
        p99 = ours["latency"]["gift_to_screen_ms"]["p99"]
        deliveries = ours["throughput"]["gift_deliveries_per_s"]
        self.add(
            "p99 gift-to-screen at 200 gifts/s, ms",
            p99,
            goal="<= 100 ms",
            met=p99 is not None and p99 <= 100 and not ours["closes"],
            note=f"{fmt(deliveries)} gift deliveries/s to {viewers} viewers, "
            f"{fmt(ours['throughput']['gifts_acked_per_s'])} gifts/s acked; "
            f"closes {ours['closes'] or 'none'}",
        )

    def onegift(self) -> None:
        viewers = self.n(5000)
        ours, base = self.both(
            "onegift",
            one_at_a_time=True,
            **in_one_room("crowd", viewers, gifters=50, gift_rate=1.0, duration=self.seconds(10)),
        )
        figure, baseline, ratio = compare(
            ours["throughput"], base["throughput"] if base else None, "frames_per_s"
        )
        self.add(
            "one gift at a time, frames/s",
            figure,
            baseline,
            ratio,
            goal=">= 0.8x baseline",
            met=ratio is not None and ratio >= 0.8,
            note=f"50 gifters take turns, each waiting for its gift to arrive; {viewers} viewers",
        )

    def memory(self) -> None:
        viewers = min(self.n(20_000), self.fd_limit - FD_LIMIT_MARGIN)
        ours, base = self.both(
            "memory",
            warmup=1.0,
            probe_every=1000,
            **in_one_room("crowd", viewers, gifters=0, gift_rate=0, duration=self.seconds(3)),
        )
        figure, baseline, ratio = compare(
            ours["server"], base["server"] if base else None, "rss_per_connection_kib"
        )
        opened = ours["connections"]["opened"]
        note = f"{opened} idle viewers held by one process"
        if viewers < 20_000 * self.scale:
            note += f" (open-files limit {self.fd_limit} here)"
        self.add(
            "server RSS per idle viewer, KiB",
            figure,
            baseline,
            ratio,
            goal="<= 20 KiB",
            met=figure is not None and figure <= 20,
            note=note,
        )

    def commit(self) -> None:
        gifters = self.n(1600)
        goal = 8_000 if self.engine == "scaled" else 5_000
        redis_cpu = RedisCpu(self.servers)
        ours, _ = self.both(
            "commit",
            baseline=False,
            gift="finger_heart",
            connect_concurrency=100,
            **in_one_room(
                "crowd",
                0,
                rooms=gifters,
                gifters=gifters,
                gift_rate=gifters * 9.0,
                duration=self.seconds(15),
            ),
        )
        figure = ours["throughput"]["gifts_acked_per_s"]
        money = ours.get("money") or {}
        self.add(
            "gifts committed per second",
            figure,
            goal=f">= {goal:,}/s, audit passing",
            met=figure >= goal and bool(money.get("ok")),
            note=f"{gifters} gifters in {gifters} rooms; money "
            f"{'ok' if money.get('ok') else 'NOT ok'}, "
            f"errors {ours['errors'] or 'none'}",
        )
        per_cpu = ours["throughput"]["gifts_per_server_cpu_s"]
        self.add(
            "gifts committed per server-CPU-second",
            per_cpu,
            goal=">= 10,000 (<= 100 us of server CPU per gift)",
            met=per_cpu is not None and per_cpu >= 10_000,
            note=f"server CPU {fmt(ours['cpu']['server_percent'])}% of one core over the "
            f"run ({self.workers} process(es)); "
            f"{fmt(1e6 / per_cpu if per_cpu else None)} us per gift{_split(ours)}",
        )
        if redis_cpu.seconds is not None:
            gifts = redis_cpu.gifts
            per_gift = redis_cpu.seconds / gifts * 1e6 if gifts else None
            self.add(
                "Redis CPU per gift",
                per_gift,
                goal="measured (us of redis-server CPU per gift, primaries and replicas)",
                met=None,
                note=f"{fmt(redis_cpu.seconds)} s of Redis CPU over the whole run (set-up "
                f"and warm-up included) for the {gifts} gifts it committed; by command "
                f"(calls and time per gift, a script's own calls also under evalsha): "
                f"{redis_cpu.by_command() or 'not read'}",
            )

    def sustained(self) -> None:
        gifters = self.n(1600)
        bound_ms = 50
        ours, _ = self.both(
            "sustained",
            baseline=False,
            gift="finger_heart",
            connect_concurrency=100,
            **in_one_room("sweep", 0, rooms=gifters, gifters=gifters),
            bound_on="ack",
            p99_bound_ms=bound_ms,
            start_rate=self.n(250),
            factor=1.5,
            max_rate=gifters * 9.5,
            step_seconds=self.seconds(6),
            overload_factor=1,
        )
        sweep = ours["sweep"]
        figure = sweep["capacity_gift_rate"]
        best = _capacity_step(sweep)
        self.add(
            f"sustained gifts/s at ack p99 <= {bound_ms} ms",
            figure,
            goal=">= 2,000/s",
            met=figure >= 2_000 and bool((ours.get("money") or {}).get("ok")),
            note=f"{gifters} gifters in {gifters} rooms, offered rate x1.5 per step; "
            f"at that step ack p99 {fmt(best['ack_ms']['p99'] if best else None)} ms, "
            f"{fmt(_at_capacity(sweep, 'gifts_per_server_cpu_s'))} gifts per "
            f"server-CPU-second (stopped: {sweep['stopped']})",
        )

    def crowd(self) -> None:
        viewers = self.n(100_000)
        held = self.workers * (self.fd_limit - FD_LIMIT_MARGIN)
        if viewers > held:
            print(
                f"crowd: {viewers} viewers need more than {self.workers} server process(es) "
                f"of {self.fd_limit} open files (--workers, scaled engine)",
                file=sys.stderr,
            )
        gifts = 10
        generators = math.ceil((viewers + 1) / PER_PROCESS_SOCKETS)
        ours, _ = self.both(
            "crowd",
            baseline=False,  # one baseline process holds at most the open-files limit
            warmup=10.0,
            probe_every=100,
            connect_concurrency=max(1, CROWD_CONNECTS_IN_FLIGHT // generators),
            connect_seconds=CROWD_CONNECT_SECONDS,
            **in_one_room(
                "crowd", viewers, gifters=1, gift_rate=0.5, duration=self.seconds(gifts / 0.5)
            ),
        )
        opened = ours["connections"]["opened"]
        closes = sum(ours["closes"].values())
        busiest = sorted(ours["server"].get("sockets_idle") or [], reverse=True)[: self.workers]
        gone = ours["server"].get("processes_gone") or []
        where = (
            f"{self.workers} server process(es) ({', '.join(map(str, busiest))} sockets), "
            f"{ours['workers']} generator processes; server processes gone (a worker that "
            f"died or was killed, and its replacement started): {len(gone)}"
        )
        self.add(
            "concurrent viewers held",
            opened,
            goal=f">= {viewers:,}, none closed",
            met=opened >= viewers + 1 and closes == 0,
            note=f"{where}; failed {ours['connections']['failed']}, not tried within "
            f"{CROWD_CONNECT_SECONDS:g} s {ours['connections']['skipped']}, closes {closes}",
        )
        rss = ours["server"].get("rss_per_connection_kib")
        self.add(
            "server RSS per idle viewer, KiB (all server processes)",
            rss,
            goal="<= 16 KiB",
            met=rss is not None and rss <= 16,
            note=f"{opened} idle viewers; RSS {fmt(ours['server'].get('rss_before_kib'))} -> "
            f"{fmt(ours['server'].get('rss_idle_kib'))} KiB",
        )
        connections = ours["connections"]
        self.add(
            "handshakes per second (the crowd's arrival)",
            connections["handshakes_per_s"],
            goal="reported",
            met=None,
            note=f"{opened} in {fmt(connections['seconds'])} s; handshake p50 "
            f"{fmt(connections['handshake_ms']['p50'])} ms, p99 "
            f"{fmt(connections['handshake_ms']['p99'])} ms",
        )
        latency = ours["latency"]["gift_to_screen_ms"]
        p99 = latency["p99"]
        self.add(
            f"one gift to all {opened:,} viewers: p99 gift-to-screen, ms",
            p99,
            goal="<= 2,000 ms",
            met=p99 is not None and p99 <= 2000 and closes == 0,
            note=f"p50 {fmt(latency['p50'])} ms over {latency['count']} probe receipts; "
            f"{ours['totals']['gifts_acked']} gifts acked, one every 2 s; money "
            f"{'ok' if (ours.get('money') or {}).get('ok') else 'NOT ok'}",
        )

    def storm(self) -> None:
        one_process = (self.fd_limit - FD_LIMIT_MARGIN) // 2  # old and new sockets overlap
        viewers = min(self.n(20_000), one_process * self.workers)
        ours, base = self.both(
            "storm",
            baseline=viewers <= one_process,  # the baseline is one process
            **in_one_room("storm", viewers, gifters=4),
            gift_rate=2,
            duration=0,
            storm_settle=6.0,
            probe_every=200,
            connect_concurrency=500,
        )
        storm = ours["storm"]
        figure, baseline, ratio = compare(storm, base["storm"] if base else None, "seconds")
        ok = storm["failed"] == 0 and storm["resumed"] >= storm["viewers"] and not storm["gaps"]
        ok = ok and storm.get("finished", True)
        self.add(
            "reconnect storm, seconds to reconnect and resume",
            figure,
            baseline,
            ratio,
            goal="20,000 in <= 10 s",
            met=ok and figure <= 10 and viewers >= 20_000,
            note=f"{storm['viewers']} viewers, resumed {storm['resumed']}, gaps "
            f"{storm['gaps']}, failed {storm['failed']} (the baseline only reconnects)",
        )
        if ratio is not None:
            self.add(
                "reconnect storm against the baseline, seconds ours / baseline",
                ratio,
                goal="<= 1.0 (no slower than the baseline)",
                met=ok and ratio <= 1.0,
                note=f"{storm['viewers']} viewers in one process: {fmt(figure)} s against "
                f"{fmt(baseline)} s",
            )

    TARGETS = ("fanout", "rate200", "onegift", "memory", "commit", "sustained", "storm", "crowd")
    EVERY = TARGETS[:-1]
    """``all``: the crowd needs ``--workers`` and the whole machine for minutes."""

    def finish(self) -> str:
        text = table(
            (
                (
                    r.target,
                    r.engine,
                    r.figure,
                    r.baseline,
                    r.ratio,
                    r.goal,
                    "" if r.met is None else "met" if r.met else "not met",
                    r.note,
                )
                for r in self.rows
            ),
            headers=("target", "engine", "figure", "baseline", "ratio", "goal", "", "note"),
        )
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / f"bench-{self.engine}.json").write_bytes(
                orjson.dumps(
                    {
                        "rows": [r.public() for r in self.rows],
                        "time": time.time(),
                        "server_cpus": sorted(self.server_cpus),
                        "server_workers": self.workers,
                        "generator_cpus": self.generator_cpus,
                    },
                    option=orjson.OPT_INDENT_2,
                )
            )
            (self.out / f"bench-{self.engine}.txt").write_text(text + "\n")
        return text


class RedisCpu:
    """CPU time of every redis-server of the scaled engine over one run (``both``):
    sampled when the live server starts and stops, and the gifts the run committed
    (from the ledger, once the run's audit filed them all)."""

    def __init__(self, servers: LocalServers) -> None:
        self.seconds: float | None = None
        self.gifts = 0
        self.commands: dict[str, tuple[int, int]] = {}
        self._servers = servers
        self._start: float | None = None
        self._commands_start: dict[str, tuple[int, int]] = {}
        servers.on_live.append(self)

    def started(self) -> None:
        self._start = self._sample()
        if self._servers.scaled is not None:
            self._commands_start = self._servers.scaled.command_time()

    def stopping(self) -> None:
        end = self._sample()
        if self._start is not None and end is not None:
            self.seconds = end - self._start
        scaled = self._servers.scaled
        if scaled is not None:
            self.gifts = scaled.count("SELECT count(*) FROM transactions WHERE kind = 'gift'")
            for name, (calls, usec) in scaled.command_time().items():
                before_calls, before_usec = self._commands_start.get(name, (0, 0))
                if calls > before_calls:
                    self.commands[name] = (calls - before_calls, usec - before_usec)
        self._servers.on_live.remove(self)

    def by_command(self) -> str:
        return per_gift_by_command(self.commands, self.gifts)

    def _sample(self) -> float | None:
        scaled = self._servers.scaled
        if scaled is None:
            return None
        samples = [cpu_seconds(pid) for pid in scaled.redis_pids()]
        return sum(s for s in samples if s is not None)


def per_gift_by_command(commands: dict[str, tuple[int, int]], gifts: int, most: int = 8) -> str:
    """The ``most`` commands that took most of Redis's time, per committed gift
    (``name <calls>x <time> us``, the costliest first); ``commands`` maps a command to
    its calls and microseconds over the run."""
    if not gifts:
        return ""
    ranked = sorted(commands.items(), key=lambda item: -item[1][1])[:most]
    return ", ".join(
        f"{name} {calls / gifts:.2f}x {usec / gifts:.1f} us" for name, (calls, usec) in ranked
    )


def in_one_room(scenario: str, viewers: int, **settings: Any) -> dict[str, Any]:
    """The options of ``scenario`` with its viewers in one room (unless ``rooms`` says)."""
    return {"scenario": scenario, "viewers": viewers, "rooms": 1, **settings}


def _capacity_step(sweep: dict[str, Any]) -> dict[str, Any] | None:
    """The sweep step its capacity figure comes from (None if no step was within)."""
    within = [s for s in sweep["steps"] if s["within_bound"]]
    return max(within, key=lambda s: s["gift_deliveries_per_s"], default=None)


def _split(report: dict[str, Any]) -> str:
    """Where a gift's server cost went (the crowd's ``server_per_gift``), and how
    full the SQLite writer's commits were (``server_writer``), for a note."""
    cost = report.get("server_per_gift")
    if not cost:
        return ""
    text = (
        f" (event loops {fmt(cost['loop_cpu_us'])} us, other threads {fmt(cost['other_cpu_us'])} us"
    )
    if cost.get("written_bytes") is not None:
        text += f"; {fmt(cost['written_bytes'] / 1024)} KiB written to storage"
    writer = report.get("server_writer")
    if writer:
        text += f"; {writer['operations_per_commit']:.2f} operations per SQLite commit"
    return text + ")"


def _at_capacity(sweep: dict[str, Any], name: str) -> Any:
    step = _capacity_step(sweep)
    return step.get(name) if step else None


def compare(
    ours: dict[str, Any], base: dict[str, Any] | None, name: str
) -> tuple[Any, Any, float | None]:
    """Our figure ``name``, the baseline's (if it ran), and their ratio (if both)."""
    figure = ours.get(name)
    baseline = base.get(name) if base else None
    ratio = figure / baseline if figure is not None and baseline else None
    return figure, baseline, ratio


def run_bench(targets: list[str], settings: BenchSettings) -> int:
    names = list(Bench.EVERY) if "all" in targets else targets
    if settings.workers < 1 or (settings.workers > 1 and settings.engine != "scaled"):
        print("--workers must be >= 1, and above 1 only with --engine scaled", file=sys.stderr)
        return 2
    if settings.redis_cluster < 0 or (settings.redis_cluster and settings.engine != "scaled"):
        print("--redis-cluster N needs N >= 1 and --engine scaled", file=sys.stderr)
        return 2
    unknown = [t for t in names if t not in Bench.TARGETS]
    if unknown:
        print(
            f"unknown targets {unknown}; choose from {', '.join(Bench.TARGETS)} or all",
            file=sys.stderr,
        )
        return 2
    bench = Bench(settings)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)  # stop the servers it started on the way out
    try:
        for name in names:
            getattr(bench, name)()
    finally:
        bench.servers.close()
        print("\n" + bench.finish())
    return 0

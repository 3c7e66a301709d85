"""The node's Prometheus metrics, through ``prometheus_client``.

Under ``live serve --workers N`` every worker writes its values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``live serve`` before the workers
start) and a scrape of any worker reads all of them: one view of the whole node.
Without that directory the metrics live in this process's own registry.
Label sets are bounded: codes, reasons, roles, operations, never user or room ids.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.responses import Response

from live.auth import bearer_token
from live.errors import error_response
from store.observer import Backend

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: where workers share their values."""

ENGINE_VALUE_HELP = {
    "outbox_lag": "Ledger entries in the Redis outbox not yet committed to PostgreSQL.",
    "backend_up": "1 if the engine's backend (Redis) answered this scrape, else 0.",
    "sqlite_write_queue": "Operations waiting for the SQLite writer.",
    "sqlite_commits_total": "Group commits of the SQLite writer (one fsync each).",
    "sqlite_operations_total": "Operations the SQLite writer ran in its group commits.",
    "sqlite_commit_seconds_total": "Time the SQLite writer spent in group commits, "
    "from BEGIN to the end of COMMIT (fsync included).",
    "sqlite_retries_total": "Group commits rolled back and run again without an "
    "operation that failed after writing.",
    "sqlite_checkpoints_total": "Background WAL checkpoints of the SQLite file.",
}
"""Help of the engine's values on ``/metrics``; a name ending in ``_total`` is a
counter, any other a gauge."""

# Buckets (seconds) around docs/PERFORMANCE.md's targets: a gift acked and on
# screen within 100-250 ms at p99, wallet commits in a few milliseconds.
FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ACK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
POSTGRES_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# The ledger worker files within a second when healthy; minutes mean PostgreSQL is behind.
LEDGER_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# No ``*_created`` series: a page has the same series with one worker or many.
disable_created_metrics()  # type: ignore[no-untyped-call]

LOOP_SAMPLE_SECONDS = 0.5
"""How often the event loop lag sampler wakes."""

PROCESS_REFRESH_SECONDS = 5.0
"""How often a worker copies its process metrics into the shared gauges: reading
them lists ``/proc/self/fd``, one entry per open socket, which cost a worker holding
thousands of viewers a few percent of its CPU at every loop sample. A scrape
refreshes the worker it reaches at once; the others' are at most this old."""


_Family = TypeVar("_Family", Histogram, Counter)


class LabelCache:
    """``family.labels(*labels)``, kept: a plain dict read instead of the library's
    locked lookup (about a microsecond) on the hot path."""

    def __init__(self) -> None:
        self._series: dict[tuple[int, tuple[str, ...]], Histogram | Counter] = {}

    def __call__(self, family: _Family, *labels: str) -> _Family:
        key = (id(family), labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = family.labels(*labels)
        return child  # type: ignore[return-value]


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe`` of each value, with one increment per bucket they
    fall in and one of the sum (each observation is two locked increments: a
    Redis pipeline's tens of calls made them a visible share of a gift)."""
    bounds: Sequence[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets: Sequence[Any] | None = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) < 2:
        for value in values:  # not the client library's layout: one at a time
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        index = bisect_left(bounds, value)  # the first bound >= value, as observe's
        counts[index] = counts.get(index, 0) + 1
    total.inc(sum(values))
    for index, count in counts.items():
        buckets[index].inc(count)


class StoreMetrics:
    """The engine's backend calls and the ledger worker's progress: the
    ``store.observer.StoreObserver`` the engine is given."""

    def __init__(self, *, registry: CollectorRegistry | None, series: LabelCache) -> None:
        self._series = series

        def calls(backend: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(
                f"live_{backend}_call_seconds",
                f"{doc}, outcome (ok or error).",
                ("call", "outcome"),
                buckets=buckets,
                registry=registry,
            )

        self.redis_seconds = calls(
            "redis",
            "Redis call latency, pipeline wait included: call (script or command)",
            FAST_BUCKETS,
        )
        self.postgres_seconds = calls(
            "postgres",
            "PostgreSQL call latency, pool wait included: call (file, history, audit, check)",
            POSTGRES_BUCKETS,
        )
        self.ledger_lag_seconds = Histogram(
            "live_ledger_lag_seconds",
            "Age of an outbox entry when the ledger worker moved it into PostgreSQL.",
            buckets=LEDGER_LAG_BUCKETS,
            registry=registry,
        )
        self.ledger_entries = Counter(
            "live_ledger_entries",
            "Outbox entries the ledger worker moved: filed in PostgreSQL or parked "
            "as dead letters.",
            ("outcome",),
            registry=registry,
        )
        self._families = {"redis": self.redis_seconds, "postgresql": self.postgres_seconds}

    def backend_call(self, backend: Backend, call: str, seconds: float, *, ok: bool) -> None:
        family = self._families[backend]
        self._series(family, call, "ok" if ok else "error").observe(seconds)

    def backend_calls(
        self, backend: Backend, calls: Sequence[tuple[str, float]], *, ok: bool
    ) -> None:
        family = self._families[backend]
        outcome = "ok" if ok else "error"
        by_call: dict[str, list[float]] = {}
        for call, seconds in calls:
            found = by_call.get(call)
            if found is None:
                by_call[call] = [seconds]
            else:
                found.append(seconds)
        for call, values in by_call.items():
            observe_all(self._series(family, call, outcome), values)

    def ledger_filed(self, *, filed: int, parked: int, ages: Sequence[float]) -> None:
        if filed:
            self._series(self.ledger_entries, "filed").inc(filed)
        if parked:
            self._series(self.ledger_entries, "parked").inc(parked)
        for age in ages:
            self.ledger_lag_seconds.observe(age)


class Metrics:
    """Every metric of one node; hot-path increments cost about a microsecond."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        own = None if multiprocess_dir else self.registry
        self.series = LabelCache()

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=own)

        def gauge(
            name: str, doc: str, *labels: str, workers: Literal["livesum", "sum"] = "livesum"
        ) -> Gauge:
            """``workers``: how a scrape combines the workers' values."""
            return Gauge(name, doc, labels, registry=own, multiprocess_mode=workers)

        def histogram(name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=own)

        self.connections = gauge("live_connections", "Open WebSocket connections.")
        self.connections_by_role = gauge(
            "live_connections_by_role",
            "Open WebSocket connections by role at join: guest, signed_in or overlay.",
            "role",
        )
        # Summed over all workers ever seen: prometheus_client cannot hold a
        # counter named live_connections_total next to the gauge live_connections.
        self.connections_total = gauge(
            "live_connections_total", "WebSocket connections accepted (only grows).", workers="sum"
        )
        self.rooms = gauge("live_rooms", "Rooms with local connections (summed over workers).")
        self.events_in = counter("live_events_in", "Commands received.")
        self.events_out = counter("live_events_out", "Room events delivered to connections.")
        self.frames_out = counter("live_frames_out", "WebSocket frames sent.")
        self.bytes_out = counter("live_bytes_out", "Payload bytes sent.")
        self.gifts_committed = counter("live_gifts_committed", "Gifts committed by the wallet.")
        self.gifts = counter(
            "live_gifts", "Gift commands by outcome: committed, replayed or refused.", "outcome"
        )
        self.gift_outcome = {o: self.gifts.labels(o) for o in ("committed", "replayed", "refused")}
        """The outcomes' series, bound once (a label lookup costs about a microsecond)."""
        self.coins = counter("live_coins", "Coins of committed gifts (each counted once).")
        self.gift_errors = counter(
            "live_gift_errors", "Gift commands refused, by error code.", "code"
        )
        self.items = counter(
            "live_item_purchases",
            "Item purchases by outcome: committed, replayed or refused.",
            "outcome",
        )
        self.item_outcome = {o: self.items.labels(o) for o in ("committed", "replayed", "refused")}
        self.item_coins = counter("live_item_coins", "Coins of committed item purchases.")
        self.item_errors = counter(
            "live_item_errors", "Item purchases refused, by error code.", "code"
        )
        self.closes = counter(
            "live_closes", "Connections closed by the server, by close code.", "code"
        )
        self.slow_closes = counter("live_slow_closes", "Viewers closed for not keeping up (4008).")
        self.refused = counter(
            "live_handshakes_refused",
            "WebSocket handshakes refused: origin, ip, user or room (full).",
            "reason",
        )
        self.broker_resets = counter(
            "live_broker_resets", "Broker reconnects seen by room channels."
        )
        self.wallet_seconds = histogram(
            "live_wallet_commit_seconds",
            "Wallet call latency: operation (gift, item, purchase, refund), outcome (ok or code).",
            FAST_BUCKETS,
            "operation",
            "outcome",
        )
        self.ack_seconds = histogram(
            "live_ack_seconds",
            "Command received to its answer built, by command (gift, chat, auth).",
            ACK_BUCKETS,
            "command",
        )
        self.handshake_seconds = histogram(
            "live_handshake_seconds",
            "WebSocket handshake: request to welcome sent (admitted connections).",
            ACK_BUCKETS,
        )
        self.gift_to_frame_seconds = histogram(
            "live_gift_to_frame_seconds",
            "Gift published to its frame written to the room's first or last "
            "connection on this node.",
            ACK_BUCKETS,
            "viewer",
        )
        self.loop_lag_seconds = histogram(
            "live_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every half second).",
            LAG_BUCKETS,
        )
        gc_pause_seconds = histogram(
            "live_gc_pause_seconds",
            "Pauses of the garbage collector (the whole process stops), by generation.",
            LAG_BUCKETS,
            "generation",
        )
        self._gc_pauses = [gc_pause_seconds.labels(str(generation)) for generation in range(3)]
        self.store = StoreMetrics(registry=own, series=self.series)
        if multiprocess_dir:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
            self._process = ProcessMirror()
        else:
            ProcessCollector(registry=self.registry)

    def wallet_call(self, operation: str) -> WalletCall:
        """Time a wallet call; the outcome is ``ok`` or the error's code."""
        return WalletCall(self, operation)

    def wallet_called(self, operation: str, *, started: float, error: BaseException | None) -> None:
        """``wallet_call`` spelled out for the gift path (no context manager to make
        and enter per gift): the call began at ``started`` (``time.perf_counter``)
        and ended now with ``error`` (``None``: it returned)."""
        outcome = "ok"
        if error is not None and isinstance(error, Exception):
            outcome = str(getattr(error, "code", "internal"))
        self.series(self.wallet_seconds, operation, outcome).observe(time.perf_counter() - started)

    @staticmethod
    def refusals(*, outcomes: Mapping[str, Counter], errors: Counter) -> Refusals:
        """Count a gift or item purchase refused inside, by its error's code (a
        fixed set: anything without one is ``internal``)."""
        return Refusals(outcomes, errors)

    @staticmethod
    def count_refusal(
        error: Exception, *, outcomes: Mapping[str, Counter], errors: Counter
    ) -> None:
        """``refusals`` spelled out for the gift path: count ``error`` as a refusal."""
        errors.labels(str(getattr(error, "code", "internal"))).inc()
        outcomes["refused"].inc()

    def gift_to_frame(self, viewer: str, *, published_ms: int, now: float | None = None) -> float:
        """A delivery round wrote a gift to its ``first`` or ``last`` connection
        (``now``: the wall clock read already, seconds); returns the time used."""
        if now is None:
            now = time.time()
        delay = now - published_ms / 1000
        self.series(self.gift_to_frame_seconds, viewer).observe(max(0.0, delay))
        return now

    def gc_paused(self, generation: int, seconds: float) -> None:
        """A garbage collection of ``generation`` stopped the process for ``seconds``."""
        self._gc_pauses[min(max(generation, 0), 2)].observe(seconds)

    async def sample_loop_lag(
        self, *, every: float = LOOP_SAMPLE_SECONDS, refresh_every: float = PROCESS_REFRESH_SECONDS
    ) -> None:
        """Run forever: how late a sleep wakes is the loop's lag; also refresh this
        worker's process metrics every ``refresh_every`` seconds (a scrape reaches
        only one worker)."""
        loop = asyncio.get_running_loop()
        refreshed = -refresh_every  # the first sample refreshes
        while True:
            started = loop.time()
            await asyncio.sleep(every)
            now = loop.time()
            self.loop_lag_seconds.observe(max(0.0, now - started - every))
            if self.multiprocess_dir and now - refreshed >= refresh_every:
                refreshed = now
                self._process.refresh()

    def render(self, engine_values: dict[str, float] | None = None) -> bytes:
        """The Prometheus text page: this node's metrics and the engine's values
        (read from the shared backend, so any one worker may report them)."""
        if self.multiprocess_dir:
            self._process.refresh()
        page = generate_latest(self.registry)
        if engine_values:
            extra = CollectorRegistry()
            extra.register(EngineValues(engine_values))
            page += generate_latest(extra)
        return page

    def close(self) -> None:
        """This worker is going away: drop its live gauges from the shared view."""
        if self.multiprocess_dir:
            mark_process_dead(os.getpid(), path=self.multiprocess_dir)  # type: ignore[no-untyped-call]


class EngineValues(Collector):
    """The engine's values (outbox lag, SQLite commits...) as ``live_<name>``:
    counters when the name ends in ``_total``, gauges otherwise."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def collect(self) -> Iterator[Metric]:
        for name, value in sorted(self.values.items()):
            help_text = ENGINE_VALUE_HELP.get(name, name.replace("_", " ") + ".")
            if name.endswith("_total"):  # the family takes the name without it
                yield CounterMetricFamily(f"live_{name}", help_text, value=value)
            else:
                yield GaugeMetricFamily(f"live_{name}", help_text, value=value)


class ProcessMirror:
    """Process metrics (CPU, memory, open files) of this worker, copied into
    shared gauges labelled by pid, since a multiprocess scrape reads only files."""

    def __init__(self) -> None:
        self._collector = ProcessCollector(registry=None)
        self._gauges: dict[str, Gauge] = {}

    def refresh(self) -> None:
        for family in self._collector.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is None:
                    gauge = self._gauges[sample.name] = Gauge(
                        sample.name,
                        family.documentation,
                        registry=None,
                        multiprocess_mode="liveall",
                    )
                gauge.set(sample.value)


def multiprocess_dir() -> str | None:
    """The shared directory ``live serve --workers`` gave this worker, if any."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def scrape_allowed(authorization: str | None, *, token: str) -> bool:
    """Whether a scrape may read the page: no token is configured, or the request
    carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    if not token:
        return True
    given = bearer_token(authorization) or ""
    return hmac.compare_digest(given.encode(), token.encode())


def scrape_refusal() -> Response:
    """The answer to a scrape without the right token."""
    refused = error_response("unauthorized", "metrics need the bearer token", status=401)
    refused.headers["WWW-Authenticate"] = "Bearer"
    return refused


class LedgerMetrics:
    """The ``live ledger`` worker's own page: what it filed, how late, its
    PostgreSQL calls and its process (CPU, memory, open files)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.store = StoreMetrics(registry=self.registry, series=LabelCache())
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


MAX_REQUEST_HEAD = 16_384
REQUEST_HEAD_SECONDS = 10.0


async def serve_metrics(
    render: Callable[[], bytes], *, host: str, port: int, token: str = ""
) -> asyncio.Server:
    """A small HTTP listener answering ``GET /metrics`` with ``render()`` (bearer
    ``token`` required when set), for a process that runs no web server. One
    request per connection; close the returned server to stop it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_HEAD_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
            response = _metrics_answer(head, render=render, token=token)
            status = f"{response.status_code} {HTTPStatus(response.status_code).phrase}"
            lines = [f"HTTP/1.1 {status}"]
            lines += [f"{name}: {value}" for name, value in response.headers.items()]
            lines.append("connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a client that went away or sent no complete request head
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, limit=MAX_REQUEST_HEAD)


def _metrics_answer(head: bytes, *, render: Callable[[], bytes], token: str) -> Response:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return error_response("bad_request", "malformed request line", status=400)
    method, target = parts[0], parts[1].partition("?")[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if target != "/metrics":
        return error_response("not_found", "only /metrics is served here", status=404)
    if method != "GET":
        return error_response("bad_request", "metrics answer GET only", status=405)
    if not scrape_allowed(headers.get("authorization"), token=token):
        return scrape_refusal()
    return Response(render(), media_type=PROMETHEUS_TEXT)


class WalletCall:
    """``Metrics.wallet_call``: a class, not a generator, as it runs for every gift."""

    __slots__ = ("_metrics", "_operation", "_started")

    def __init__(self, metrics: Metrics, operation: str) -> None:
        self._metrics = metrics
        self._operation = operation
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self._metrics.wallet_called(self._operation, started=self._started, error=exc)


class Refusals:
    """``Metrics.refusals``: a class, not a generator, as it runs for every gift."""

    __slots__ = ("_errors", "_outcomes")

    def __init__(self, outcomes: Mapping[str, Counter], errors: Counter) -> None:
        self._outcomes = outcomes
        self._errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is not None and isinstance(exc, Exception):
            Metrics.count_refusal(exc, outcomes=self._outcomes, errors=self._errors)

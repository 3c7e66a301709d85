"""Measurements that can be taken in many processes and added up in one.

``Histogram`` keeps latencies in log-spaced buckets (2% wide), so it is small,
mergeable across worker processes and exact enough for percentiles; ``Counters``
is a bag of named integers. Both turn into plain dicts to cross a pipe.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GROWTH = 1.02
"""Each bucket is 2% wider than the one before: percentiles are within 1% of the truth."""
_LOG_GROWTH = math.log(GROWTH)
MIN_US = 1.0
"""Values below one microsecond share the first bucket."""


def bucket_of(value_us: float) -> int:
    if value_us <= MIN_US:
        return 0
    return int(math.log(value_us / MIN_US) / _LOG_GROWTH) + 1


def bucket_value(index: int) -> float:
    """A representative value of bucket ``index`` (its geometric middle)."""
    if index <= 0:
        return MIN_US
    low = MIN_US * GROWTH ** (index - 1)
    return low * math.sqrt(GROWTH)


@dataclass
class Histogram:
    """Latencies in microseconds."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    def add(self, value_us: float) -> None:
        if value_us < 0:
            value_us = 0.0
        self.buckets[bucket_of(value_us)] += 1
        self.count += 1
        self.total += value_us
        if value_us < self.min:
            self.min = value_us
        if value_us > self.max:
            self.max = value_us

    def add_seconds(self, seconds: float) -> None:
        self.add(seconds * 1e6)

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0..100) in microseconds; None when empty. The
        extremes are exact: p=100 is the max and p=0 the min."""
        if self.count == 0:
            return None
        if p >= 100:
            return self.max
        if p <= 0:
            return self.min
        rank = math.ceil(self.count * p / 100)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(max(bucket_value(index), self.min), self.max)
        return self.max  # pragma: no cover - rank <= count always stops the loop

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary_ms(self) -> dict[str, float | int | None]:
        """count, p50/p95/p99/max and mean, in milliseconds."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value / 1000, 3)

        return {
            "count": self.count,
            "p50": ms(self.percentile(50)),
            "p95": ms(self.percentile(95)),
            "p99": ms(self.percentile(99)),
            "max": ms(self.max if self.count else None),
            "mean": ms(self.mean()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "total": self.total,
            "min": self.min if self.count else None,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        h = cls()
        h.buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        h.count = int(data["count"])
        h.total = float(data["total"])
        h.min = math.inf if data["min"] is None else float(data["min"])
        h.max = float(data["max"])
        return h

    @classmethod
    def of(cls, values_us: Iterable[float]) -> Histogram:
        h = cls()
        for v in values_us:
            h.add(v)
        return h


class Counters(Counter[str]):
    """Named counts (``errors.insufficient_funds``, ``closes.4008``, ``frames`` ...)."""

    def group(self, prefix: str) -> dict[str, int]:
        """Counts whose name starts with ``prefix.``, keyed by the rest."""
        start = len(prefix) + 1
        return {k[start:]: v for k, v in sorted(self.items()) if k.startswith(prefix + ".") and v}


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


@dataclass
class Sample:
    """What happened during one interval of a run (one line of the time series)."""

    t: float
    """Seconds since the start of the measured phase, at the end of the interval."""
    seconds: float
    counters: Counters
    gift_latency: Histogram
    ack_latency: Histogram
    connections: int

    def per_second(self, name: str) -> float:
        return rate(self.counters[name], self.seconds)

    def public(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "connections": self.connections,
            "gift_deliveries_per_s": round(self.per_second("gift_events"), 1),
            "events_per_s": round(self.per_second("room_events"), 1),
            "frames_per_s": round(self.per_second("frames"), 1),
            "gifts_acked_per_s": round(self.per_second("gifts_acked"), 1),
            "gift_to_screen_ms": self.gift_latency.summary_ms(),
            "ack_ms": self.ack_latency.summary_ms(),
        }

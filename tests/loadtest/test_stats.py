"""The load tester's statistics: percentiles, merging across processes, rates."""

from __future__ import annotations

import math
import random

import pytest

from loadtest.stats import GROWTH, Counters, Histogram, Sample, bucket_of, bucket_value, rate


def exact_percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)]


def test_empty_histogram_has_no_percentiles() -> None:
    h = Histogram()
    assert h.percentile(50) is None
    assert h.mean() is None
    assert h.summary_ms() == {
        "count": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "mean": None,
    }


@pytest.mark.parametrize("p", [1, 50, 90, 95, 99, 99.9])
def test_percentiles_are_within_the_bucket_width(p: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(9, 1.2) for _ in range(20_000)]  # ~8 ms median, long tail
    h = Histogram.of(values)
    got = h.percentile(p)
    assert got is not None
    assert got == pytest.approx(exact_percentile(values, p), rel=GROWTH - 1)


def test_extremes_are_exact() -> None:
    h = Histogram.of([3.0, 1234.5, 99_999.0])
    assert h.percentile(0) == 3.0
    assert h.percentile(100) == 99_999.0
    assert h.max == 99_999.0 and h.min == 3.0
    assert h.count == 3
    assert h.mean() == pytest.approx((3.0 + 1234.5 + 99_999.0) / 3)


def test_a_percentile_never_leaves_the_observed_range() -> None:
    h = Histogram.of([1000.0] * 10)
    assert h.percentile(50) == 1000.0
    assert h.percentile(99) == 1000.0


def test_negative_and_tiny_values_land_in_the_first_bucket() -> None:
    h = Histogram()
    h.add(-5.0)
    h.add(0.2)
    assert h.buckets == {0: 2}
    assert h.percentile(50) == 0.2  # clamped to what was seen


def test_buckets_grow_by_two_percent() -> None:
    for value in (1.5, 10.0, 999.0, 123_456.0, 9e7):
        index = bucket_of(value)
        assert bucket_value(index) / GROWTH**0.5 <= value * 1.0000001
        assert value <= bucket_value(index) * GROWTH**0.5 * 1.0000001


def test_merge_is_the_same_as_one_histogram_of_everything() -> None:
    rng = random.Random(1)
    a_values = [rng.uniform(100, 5000) for _ in range(1000)]
    b_values = [rng.uniform(3000, 90_000) for _ in range(500)]
    a, b = Histogram.of(a_values), Histogram.of(b_values)
    a.merge(b)
    both = Histogram.of(a_values + b_values)
    assert a.buckets == both.buckets
    assert a.count == 1500
    assert a.min == both.min and a.max == both.max
    assert a.total == pytest.approx(both.total)
    for p in (50, 99):
        assert a.percentile(p) == both.percentile(p)


def test_merging_an_empty_histogram_changes_nothing() -> None:
    h = Histogram.of([10.0, 20.0])
    h.merge(Histogram())
    assert h.count == 2 and h.min == 10.0 and h.max == 20.0


def test_round_trip_through_plain_values() -> None:
    h = Histogram.of([5.0, 50.0, 500.0, 5000.0])
    h.add_seconds(0.25)
    copy = Histogram.from_dict(h.to_dict())
    assert copy == h
    empty = Histogram.from_dict(Histogram().to_dict())
    assert empty.count == 0 and empty.min == math.inf


def test_summary_is_in_milliseconds() -> None:
    h = Histogram.of([2000.0] * 99 + [300_000.0])
    s = h.summary_ms()
    assert s["count"] == 100
    assert s["p50"] == pytest.approx(2.0, rel=0.02)
    assert s["max"] == 300.0


def test_counters_group_by_prefix() -> None:
    c = Counters({"errors.rate_limited": 3, "errors.conflict": 1, "closes.4008": 2, "frames": 9})
    c["errors.internal"] += 0
    assert c.group("errors") == {"conflict": 1, "rate_limited": 3}
    assert c.group("closes") == {"4008": 2}
    assert c.group("nothing") == {}


def test_rates_and_samples() -> None:
    assert rate(10, 0) == 0.0
    assert rate(10, 4) == 2.5
    sample = Sample(
        t=3.0,
        seconds=2.0,
        counters=Counters({"gift_events": 1000, "frames": 100, "gifts_acked": 10}),
        gift_latency=Histogram.of([1000.0]),
        ack_latency=Histogram(),
        connections=50,
    )
    public = sample.public()
    assert public["gift_deliveries_per_s"] == 500
    assert public["frames_per_s"] == 50
    assert public["gifts_acked_per_s"] == 5
    assert public["gift_to_screen_ms"]["p50"] == 1.0
    assert public["connections"] == 50

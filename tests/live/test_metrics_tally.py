"""A Redis pipeline's call latencies are told to the metrics at once
(``StoreMetrics.backend_calls``): the histogram must read exactly as if each
call had been observed on its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from live.metrics import FAST_BUCKETS, LabelCache, StoreMetrics, observe_all

VALUES = [0.0, 0.0001, 0.0005, 0.0005, 0.003, 0.02, 0.02, 0.7, 4.0, 1e9]


def histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("t_seconds", "t", buckets=FAST_BUCKETS, registry=registry)


def test_a_tally_reads_as_one_observation_each() -> None:
    one_by_one, tallied = CollectorRegistry(), CollectorRegistry()
    single = histogram(one_by_one)
    for value in VALUES:
        single.observe(value)
    observe_all(histogram(tallied), VALUES)
    assert generate_latest(tallied) == generate_latest(one_by_one)
    assert b"t_seconds_count 10.0" in generate_latest(tallied)


def test_a_pipeline_is_counted_per_call_and_name() -> None:
    registry = CollectorRegistry()
    metrics = StoreMetrics(registry=registry, series=LabelCache())
    metrics.backend_calls("redis", [("gift", 0.001), ("publish", 0.002), ("gift", 0.5)], ok=True)
    metrics.backend_call("redis", "gift", 0.001, ok=False)
    page = generate_latest(registry).decode()
    assert 'live_redis_call_seconds_count{call="gift",outcome="ok"} 2.0' in page
    assert 'live_redis_call_seconds_count{call="publish",outcome="ok"} 1.0' in page
    assert 'live_redis_call_seconds_count{call="gift",outcome="error"} 1.0' in page
    assert 'live_redis_call_seconds_sum{call="gift",outcome="ok"} 0.501' in page

"""The garbage collector's tuning: thresholds, the start-up freeze, timed pauses."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live.collector import CLOCKED_OLDER_THRESHOLDS, GC_OLDER_THRESHOLDS, CollectorTuning
from tests.live.launch import running
from tests.live.server import Api, LiveServer, sample_value


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """Whatever a test does to the process's collector is undone after it."""
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


@pytest.mark.usefixtures("restored_collector")
def test_start_freezes_raises_the_young_threshold_and_times_passes() -> None:
    pauses: list[tuple[int, float]] = []
    before = gc.get_threshold()
    tuning = CollectorTuning(
        young_threshold=12_345,
        freeze=True,
        observe=lambda generation, seconds: pauses.append((generation, seconds)),
    )
    tuning.start()
    assert gc.get_threshold() == (12_345, *GC_OLDER_THRESHOLDS)
    assert gc.get_freeze_count() > 0
    assert pauses and pauses[0][0] == 2  # the start-up pass before the freeze
    gc.collect(0)
    assert pauses[-1][0] == 0 and pauses[-1][1] >= 0
    timed = len(pauses)
    tuning.close()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # a process that goes on collects them again
    gc.collect(0)
    assert len(pauses) == timed  # no longer timing


@pytest.mark.usefixtures("restored_collector")
def test_zero_threshold_and_no_freeze_leave_cpython_defaults() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    tuning = CollectorTuning(young_threshold=0, freeze=False)
    tuning.start()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
    tuning.close()
    assert gc.get_threshold() == before


@pytest.mark.usefixtures("restored_collector")
async def test_young_passes_run_on_the_clock_where_the_count_would_not_start_them() -> None:
    young = asyncio.Event()

    def observe(generation: int, seconds: float) -> None:
        if generation == 0:
            young.set()

    before = gc.get_threshold()
    tuning = CollectorTuning(
        young_threshold=10_000_000, young_seconds=0.01, freeze=False, observe=observe
    )
    tuning.start()
    # the middle generation every 100 young passes, the count's young passes never here
    assert gc.get_threshold() == (10_000_000, *CLOCKED_OLDER_THRESHOLDS)
    gc.collect(0)  # counts start from zero: only the clock starts a pass from here
    young.clear()
    await asyncio.wait_for(young.wait(), timeout=10)
    tuning.close()
    assert gc.get_threshold() == before


@pytest.mark.usefixtures("restored_collector")
async def test_the_clock_alone_keeps_cpythons_young_threshold() -> None:
    before = gc.get_threshold()
    tuning = CollectorTuning(young_threshold=0, young_seconds=5, freeze=False)
    tuning.start()
    assert gc.get_threshold() == (before[0], *CLOCKED_OLDER_THRESHOLDS)
    tuning.close()
    assert gc.get_threshold() == before


def young_passes(metrics: str) -> float:
    return sample_value(metrics, "live_gc_pause_seconds_count", generation="0") or 0.0


async def test_an_idle_server_runs_its_young_passes_on_the_clock(tmp_path: Path) -> None:
    """Allocations alone would not start one here: the threshold is out of reach."""
    env = {"LIVE_GC_YOUNG_SECONDS": "0.05", "LIVE_GC_YOUNG_THRESHOLD": "10000000"}
    server = LiveServer(data_dir=tmp_path / "data", env=env)
    async with running(server):
        api = Api(server, None)
        first = young_passes((await api.get("/metrics")).text)
        deadline = time.monotonic() + 20
        while young_passes((await api.get("/metrics")).text) < first + 5:
            assert time.monotonic() < deadline, "no young passes on the clock"
            await asyncio.sleep(0.05)
        await api.aclose()

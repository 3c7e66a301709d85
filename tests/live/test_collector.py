"""The garbage collector's tuning: thresholds, the start-up freeze, timed pauses."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from live.collector import GC_OLDER_THRESHOLDS, CollectorTuning


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

"""A short chaos run: every fault of ``loadtest.chaos`` strikes once under a mixed
load on two scaled nodes, and every invariant holds at the end (the long runs
are ``python -m loadtest chaos --seed N --duration 600``)."""

from __future__ import annotations

import pytest

from loadtest.chaos import FAULTS, ChaosConfig, render, run

pytestmark = pytest.mark.scaled


async def test_chaos_smoke() -> None:
    report = await run(
        ChaosConfig(
            seed=11,
            duration=len(FAULTS) * 1.0 + 1.5,
            fault_every=1.0,
            max_hold=0.5,
            gifters=6,
            viewers=6,
            verbose=False,
        )
    )
    assert {fault["fault"] for fault in report["faults"]} == set(FAULTS), render(report)
    assert not [f for f in report["faults"] if "error" in f], render(report)
    assert report["ok"], render(report)
    assert report["counts"]["acked"] > 50 and report["counts"]["events_seen"] > 100

"""A gift's metrics on the embedded engine: a committed gift counts once and times
its wallet call as ``ok``; a refused one counts as refused, by its error's code,
and times its wallet call under that code; a bad request never reaches the
wallet but is still a refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from live.actions.gifts import Gifts
from live.actions.room_activity import RoomActivity
from live.errors import LiveError
from live.metrics import Metrics
from live.realtime.hub import Hub
from live.settings import Settings
from store.errors import InsufficientFunds
from store.roles import Engine
from tests.engines import embedded_engine
from tests.store.test_money_rules import ALICE, ROOM, live, purchase


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with embedded_engine(tmp_path) as opened:
        yield opened


async def test_gifts_count_their_outcomes_and_time_their_wallet_calls(engine: Engine) -> None:
    settings, metrics = Settings(), Metrics()
    hub = Hub(broker=engine.broker, metrics=metrics)
    activity = RoomActivity(settings=settings, engine=engine, hub=hub)
    gifts = Gifts(settings=settings, engine=engine, metrics=metrics, activity=activity)
    await live(engine)
    await purchase(engine, ALICE, "us_70", "pay-1")

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    try:
        await gifts.send(sender=ALICE, room_id=ROOM, gift_id="rose", count=2, key="g1")
        with pytest.raises(InsufficientFunds):
            await gifts.send(sender=ALICE, room_id=ROOM, gift_id="galaxy", count=1, key="g2")
        with pytest.raises(LiveError):
            await gifts.send(sender=ALICE, room_id=ROOM, gift_id="no-such-gift", count=1, key="g3")
    finally:
        await activity.close()

    assert sample("live_gifts_total", outcome="committed") == 1
    assert sample("live_gifts_total", outcome="refused") == 2
    assert sample("live_gift_errors_total", code="insufficient_funds") == 1
    assert sample("live_gift_errors_total", code="not_found") == 1
    wallet = "live_wallet_commit_seconds_count"
    assert sample(wallet, operation="gift", outcome="ok") == 1
    assert sample(wallet, operation="gift", outcome="insufficient_funds") == 1

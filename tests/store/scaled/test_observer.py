"""The scaled engine tells its observer (the server's metrics) about every Redis
and PostgreSQL call and every outbox batch the ledger files: real servers, a
recording observer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from store.domain.models import Profile
from store.engine import open_engine
from store.errors import StoreError
from store.observer import Backend
from store.roles import EngineConfig
from store.scaled.client import CommandBatcher
from store.scaled.keys import OUTBOX
from tests.services import Urls, adult, fund, redis_client, rose

pytestmark = pytest.mark.scaled


@dataclass
class Seen:
    """Records what an engine reports."""

    calls: list[tuple[Backend, str, float, bool]] = field(default_factory=list)
    batches: list[tuple[int, int, list[float]]] = field(default_factory=list)

    def backend_call(self, backend: Backend, call: str, seconds: float, *, ok: bool) -> None:
        self.calls.append((backend, call, seconds, ok))

    def backend_calls(
        self, backend: Backend, calls: Sequence[tuple[str, float]], *, ok: bool
    ) -> None:
        for call, seconds in calls:
            self.backend_call(backend, call, seconds, ok=ok)

    def ledger_filed(self, *, filed: int, parked: int, ages: Sequence[float]) -> None:
        self.batches.append((filed, parked, list(ages)))

    def names(self, backend: Backend, *, ok: bool = True) -> list[str]:
        return [call for b, call, _, good in self.calls if b == backend and good == ok]


async def test_backend_calls_and_ledger_batches_are_reported(urls: Urls) -> None:
    seen = Seen()
    config = EngineConfig(redis_url=urls.redis, database_url=urls.database, observer=seen)
    engine = await open_engine(config)
    try:
        creator = Profile(id="carol", username="carol", adult=True, roles=frozenset({"creator"}))
        alice = adult("alice")
        opened = len(seen.calls)  # the engine's own calls while it opened
        started = time.perf_counter()
        await engine.rooms.go_live(room_id="room", creator=creator, title="live")
        await fund(engine, alice)
        await engine.wallet.send_gift(rose(engine, alice, "k1"))
        elapsed = time.perf_counter() - started
        redis_calls = seen.names("redis")
        assert {"go_live", "purchase"} <= set(redis_calls) and redis_calls.count("gift") == 1
        assert all(backend == "redis" for backend, *_ in seen.calls)
        for _, _, seconds, _ in seen.calls[opened:]:
            assert 0 <= seconds <= elapsed

        await engine.ledger.transactions("alice")
        assert seen.names("postgresql") == ["history"]

        # The two transactions (purchase, gift) are filed, and an entry that can
        # never be filed is parked: each batch is reported with its entries' ages.
        redis = await redis_client(urls)
        try:
            await redis.xadd(OUTBOX, {b"tx": b"not json"})
        finally:
            await redis.aclose()
        before_drain = time.time()
        await engine.ledger.drain()
        filed = sum(batch[0] for batch in seen.batches)
        parked = sum(batch[1] for batch in seen.batches)
        ages = [age for batch in seen.batches for age in batch[2]]
        assert (filed, parked, len(ages)) == (2, 1, 3), seen.batches
        oldest = time.time() - before_drain + elapsed + 1.0
        assert all(0 <= age <= oldest for age in ages), ages
        assert "file" in seen.names("postgresql")
    finally:
        await engine.close()


async def test_a_failed_redis_call_is_reported_as_failed(urls: Urls) -> None:
    seen = Seen()
    batcher = CommandBatcher(urls.redis, observer=seen)
    try:
        with pytest.raises(StoreError):
            await batcher.execute("NOSUCHCOMMAND", "x")
        assert await batcher.execute("PING") == b"PONG"
    finally:
        await batcher.close()
    assert [(c[1], c[3]) for c in seen.calls] == [("NOSUCHCOMMAND", False), ("PING", True)]

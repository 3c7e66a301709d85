"""The Redis wallet under concurrency: pipelined script calls keep every rule."""

from __future__ import annotations

import asyncio

import pytest

from store.domain.models import Profile
from store.errors import InsufficientFunds
from store.roles import Engine
from store.scaled.client import CommandBatcher
from tests.services import Urls, adult, fund, rose

pytestmark = pytest.mark.scaled


async def test_concurrent_gifts_from_one_wallet_stop_exactly_at_zero(engine: Engine) -> None:
    creator = Profile(id="creator", username="creator", adult=True)
    await engine.rooms.go_live(room_id="room", creator=creator, title="t")
    fan = adult("fan")
    coins = await fund(engine, fan, package_id="us_70")
    results = await asyncio.gather(
        *(engine.wallet.send_gift(rose(engine, fan, f"k{n}")) for n in range(coins + 30)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert len(ok) == coins and len(refused) == 30
    assert sorted(r.balance for r in ok) == list(range(coins))
    assert (await engine.wallet.balance(fan.id)).coins == 0
    assert (await engine.wallet.balance(creator.id)).diamonds == coins
    report = await engine.ledger.audit()
    assert report.ok, report.public()
    assert report.transactions == coins + 1


async def test_calls_of_one_loop_iteration_share_a_pipeline(urls: Urls) -> None:
    batcher = CommandBatcher(urls.redis)
    try:
        replies = await asyncio.gather(*(batcher.execute("ECHO", str(n)) for n in range(200)))
        assert replies == [str(n).encode() for n in range(200)]
        assert batcher.calls == 200
        assert batcher.pipelines <= 4
    finally:
        await batcher.close()

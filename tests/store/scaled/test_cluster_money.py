"""The money parts beside the gift on a real Redis Cluster: item purchases,
refunds and withdrawals commit on the user's slot and finish the creator's side
with credit steps (``store.scaled.credits``), which the settle sweeper runs
again from the outbox entry after a node died in between.

"A node died in between" is played by skipping the node's own credit step
(``credits.apply`` replaced for the call); then the settle sweeper passes, and
the steps run once more as after a sweeper that died before acknowledging.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest

from store.domain import accounts as money
from store.domain.catalog import Catalog
from store.domain.items import ItemRequest
from store.domain.models import Profile, PurchaseRequest, TransactionRecord
from store.roles import Ledger
from store.scaled import credits
from store.scaled.client import CommandBatcher
from store.scaled.items import RedisItems
from store.scaled.keys import CLUSTER, wallet_key, withdrawal_owner_key
from store.scaled.outbox import SettleSweeper, decode_entry
from store.scaled.rooms import RedisRooms
from store.scaled.wallet import RedisWallet
from tests.services import Services

pytestmark = [pytest.mark.scaled, pytest.mark.asyncio(loop_scope="session")]

ALICE = Profile(id="alice", username="alice", adult=True)
BOB = Profile(id="bob", username="bob", adult=True)
ROOM = "bob-room"
CATALOG = Catalog()


class OutboxLedger:
    """The ledger's history as far as a refund needs it: the user's unfiled
    transactions, from the outbox of the user's slot."""

    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        records = [decode_entry(fields) for fields in await _entries(self._batcher, user_id)]
        newest = sorted(records, key=lambda r: r.id, reverse=True)
        return [r for r in newest if before is None or r.id < before][:limit]


async def _entries(batcher: CommandBatcher, user_id: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry in the outbox of ``user_id``'s slot, oldest first."""
    reply = await batcher.execute("XRANGE", CLUSTER.outbox(wallet_key(user_id)), "-", "+")
    return [dict(zip(flat[::2], flat[1::2], strict=True)) for _, flat in reply]


async def _sweep(batcher: CommandBatcher, user_id: str, *, again: bool) -> None:
    """The settle sweeper's pass over every outbox; ``again``: the steps of the
    entries of ``user_id``'s slot once more, as a sweeper that died before
    acknowledging them leaves them to the next."""
    if again:
        for fields in await _entries(batcher, user_id):
            await credits.apply(batcher, credits.stream_credits(fields))
    else:
        await SettleSweeper(batcher, consumer="test", claim_idle_ms=0).sweep()


@pytest.fixture
async def batcher(services: Services) -> AsyncIterator[CommandBatcher]:
    cluster = await services.cluster()
    await cluster.flush()
    opened = CommandBatcher(cluster.url)
    try:
        yield opened
    finally:
        await opened.close()


async def _diamonds(batcher: CommandBatcher, user_id: str) -> int:
    return int(await batcher.execute("HGET", wallet_key(user_id), "diamond") or 0)


async def _setup(batcher: CommandBatcher) -> tuple[RedisWallet, RedisItems]:
    ledger = cast(Ledger, OutboxLedger(batcher))  # a refund reads only the history
    wallet = RedisWallet(batcher, ledger=ledger, layout=CLUSTER)
    items = RedisItems(batcher, layout=CLUSTER)
    await RedisRooms(batcher).go_live(room_id=ROOM, creator=BOB, title="hi")
    package = CATALOG.package("us_700")
    assert package is not None
    await wallet.purchase(PurchaseRequest(ALICE, package, "p1"))
    return wallet, items


def _sparkles(key: str) -> ItemRequest:
    item = CATALOG.item("effect_sparkles")  # 299 coins, half to the room's creator
    assert item is not None
    return ItemRequest(buyer=ALICE, item=item, key=key, room_id=ROOM)


async def _skip_credit(_batcher: CommandBatcher, _credits: list[credits.Credit]) -> None:
    """A node that died right after the commit: its credit steps never ran."""


async def test_an_item_share_is_credited_once_by_node_and_sweeper(
    batcher: CommandBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, items = await _setup(batcher)
    first = await items.buy(_sparkles("k1"))
    assert (first.diamonds, first.creator_id, await _diamonds(batcher, BOB.id)) == (149, "bob", 149)
    with monkeypatch.context() as patched:
        patched.setattr(credits, "apply", _skip_credit)
        second = await items.buy(_sparkles("k2"))
    assert await _diamonds(batcher, BOB.id) == 149  # committed, not credited yet
    for again in (False, True):
        await _sweep(batcher, ALICE.id, again=again)
        assert await _diamonds(batcher, BOB.id) == 149 + second.diamonds
    earned = await batcher.execute("HGETALL", "live:{u:bob}:es")
    assert earned == [f"1|{ROOM}".encode(), b"298"]


async def test_a_chargeback_claws_back_a_share_still_on_its_way(
    batcher: CommandBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallet, items = await _setup(batcher)
    await items.buy(_sparkles("k1"))
    with monkeypatch.context() as patched:
        patched.setattr(credits, "apply", _skip_credit)
        await items.buy(_sparkles("k2"))  # its 149 diamonds are not at bob's yet
    assert await _diamonds(batcher, BOB.id) == 149
    receipt = await wallet.refund(
        money.RefundRequest(provider="sandbox", payment_id="p1", kind=money.CHARGEBACK)
    )
    # as on one Redis: 598 coins spent, both shares clawed back, the rest is debt
    assert (receipt.taken, receipt.debt, receipt.clawed_back, receipt.debt_after) == (
        707 - 598,
        598,
        298,
        300,
    )
    assert await _diamonds(batcher, BOB.id) == 149 - 298
    for again in (False, True):  # the late share lands; the clawback is not run twice
        await _sweep(batcher, ALICE.id, again=again)
        assert await _diamonds(batcher, BOB.id) == 0
    replay = await wallet.refund(money.RefundRequest(provider="sandbox", payment_id="p1"))
    assert replay.replayed and replay.tx == receipt.tx
    assert (await wallet.balance(ALICE.id)).debt == 300


async def test_withdrawals_are_found_by_id_and_settled_on_the_creators_slot(
    batcher: CommandBatcher,
) -> None:
    wallet, items = await _setup(batcher)
    await items.buy(_sparkles("k1"))
    await wallet.set_verified(BOB.id, verified=True, by="kyc")
    request = money.WithdrawalRequest(user_id=BOB.id, diamonds=100, key="w1", method="bank")
    reserved = await wallet.reserve_withdrawal(request)
    again = await wallet.reserve_withdrawal(request)
    assert again.replayed and again.id == reserved.id
    assert await batcher.execute("GET", withdrawal_owner_key(reserved.id)) == b"bob"
    found = await wallet.withdrawal(reserved.id)
    assert found is not None and found.status == money.PENDING
    assert await wallet.withdrawal("wd_unknown") is None
    paid = await wallet.settle_withdrawal(
        money.WithdrawalSettlement(withdrawal_id=reserved.id, status=money.SETTLED_PAID)
    )
    assert paid.status == money.SETTLED_PAID and await _diamonds(batcher, BOB.id) == 49
    system = await batcher.execute("HGET", CLUSTER.balances(wallet_key(BOB.id)), "diamond|payout")
    assert system == b"100"
    kinds = [decode_entry(fields).kind for fields in await _entries(batcher, BOB.id)]
    assert kinds == ["withdrawal", "withdrawal_paid"]

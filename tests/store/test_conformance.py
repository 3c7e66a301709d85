"""The engine conformance suite: every engine in ``tests.engines.ENGINES`` must give
the same balances, receipts, errors and events for the same inputs.

Only the role interfaces (``Wallet``, ``Rooms``, ``Ledger``, ``Broker``) are used
here, never an engine's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from store.domain.accounts import CHARGEBACK, LimitsRequest, RefundRequest, UserLimits
from store.domain.models import (
    COIN,
    DIAMOND,
    PLATFORM_EXCHANGE,
    PLATFORM_REVENUE,
    WORLD,
    Event,
    Gift,
    GiftReceipt,
    GiftRequest,
    LeaderEntry,
    Posting,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    Room,
    TransactionRecord,
)
from store.domain.postings import is_balanced
from store.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientFunds,
    NotFound,
    RoomNotLive,
    StoreError,
)
from store.roles import Engine, EngineConfig

ALICE = Profile(id="alice", username="alice", display_name="Alice", adult=True)
BEN = Profile(id="ben", username="ben", adult=True)
CARA = Profile(id="cara", username="cara", adult=True)
TEEN = Profile(id="teen", username="teen", adult=False)
BOB = Profile(id="bob", username="bob", adult=True, roles=frozenset({"creator"}))
KID = Profile(id="kid", username="kid", adult=False, roles=frozenset({"creator"}))
ADMIN = Profile(id="admin", username="admin", adult=True, roles=frozenset({"admin"}))
ROOM = "room-bob"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def gift(engine: Engine, gift_id: str) -> Gift:
    found = engine.catalog.gift(gift_id)
    if found is None:
        raise LookupError(gift_id)
    return found


def assert_replay(again: Any, first: Any, *fields: str) -> None:
    """``again`` is a replay of ``first``: the same receipt in each of ``fields``."""
    assert again.replayed
    assert {f: getattr(again, f) for f in fields} == {f: getattr(first, f) for f in fields}


async def buy(
    engine: Engine, user: Profile, package_id: str = "us_70", payment_id: str | None = None
) -> PurchaseReceipt:
    package = engine.catalog.package(package_id)
    if package is None:
        raise LookupError(package_id)
    return await engine.wallet.purchase(
        PurchaseRequest(
            user=user,
            package=package,
            payment_id=f"pay-{user.id}" if payment_id is None else payment_id,
        )
    )


async def send(
    engine: Engine,
    sender: Profile,
    key: str,
    *,
    gift_id: str = "rose",
    count: int = 1,
    room_id: str = ROOM,
    now: int | None = None,
) -> GiftReceipt:
    found = gift(engine, gift_id)
    return await engine.wallet.send_gift(
        GiftRequest(sender=sender, room_id=room_id, gift=found, count=count, key=key, now=now)
    )


async def live(engine: Engine, creator: Profile = BOB, room_id: str = ROOM) -> Room:
    return await engine.rooms.go_live(room_id=room_id, creator=creator, title="hello")


async def all_transactions(engine: Engine, user_id: str) -> list[TransactionRecord]:
    return await engine.ledger.transactions(user_id, limit=10_000)


async def state(engine: Engine, *users: Profile, room_id: str = ROOM) -> tuple[Any, ...]:
    """Everything a failed call must leave untouched."""
    balances = [await engine.wallet.balance(u.id) for u in users]
    histories = [[t.id for t in await all_transactions(engine, u.id)] for u in users]
    report = await engine.ledger.audit()
    board = await engine.rooms.leaderboard(room_id, limit=100)
    room = await engine.rooms.get(room_id)
    return balances, histories, report.transactions, report.totals, board, room


class Recorder:
    """A broker listener that remembers what it got and lets a test wait for it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Event]] = []
        self.resets: list[str] = []
        self._changed = asyncio.Event()

    def on_events(self, room_id: str, events: list[Event]) -> None:
        self.events.extend((room_id, event) for event in events)
        self._changed.set()

    def on_reset(self, room_id: str) -> None:
        self.resets.append(room_id)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()

    def seqs(self, room_id: str) -> list[int]:
        return [e["seq"] for r, e in self.events if r == room_id]


@contextlib.asynccontextmanager
async def recording(engine: Engine, room_id: str = ROOM) -> AsyncIterator[Recorder]:
    """A ``Recorder`` subscribed to ``room_id`` for the length of the block."""
    recorder = Recorder()
    subscription = await engine.broker.subscribe(room_id, recorder)
    try:
        yield recorder
    finally:
        await subscription.close()


# --------------------------------------------------------------------------- #
# purchases and balances
# --------------------------------------------------------------------------- #


async def test_unknown_user_has_zero_balance(engine: Engine) -> None:
    balance = await engine.wallet.balance("nobody")
    assert (balance.coins, balance.diamonds) == (0, 0)


async def test_purchase_credits_coins_plus_bonus(engine: Engine) -> None:
    receipt = await buy(engine, ALICE, "us_700", "pay-1")
    assert receipt.coins == 707
    assert receipt.balance == 707
    assert receipt.package_id == "us_700"
    assert not receipt.replayed
    balance = await engine.wallet.balance(ALICE.id)
    assert (balance.coins, balance.diamonds) == (707, 0)

    [tx] = await all_transactions(engine, ALICE.id)
    assert tx.id == receipt.tx
    assert tx.kind == "purchase"
    assert set(tx.postings) == {
        Posting(WORLD, COIN, -707),
        Posting("user:alice:coins", COIN, 707),
    }
    assert tx.meta == {
        "package_id": "us_700",
        "coins": 700,
        "bonus": 7,
        "price_minor": 999,
        "currency": "USD",
        "provider": "sandbox",
        "payment_id": "pay-1",
        "user_id": "alice",
    }


async def test_purchase_is_idempotent_on_payment_id(engine: Engine) -> None:
    first = await buy(engine, ALICE, "us_70", "pay-1")
    again = await buy(engine, ALICE, "us_70", "pay-1")
    assert_replay(again, first, "tx", "coins", "balance", "created_at")
    assert (await engine.wallet.balance(ALICE.id)).coins == 70
    assert len(await all_transactions(engine, ALICE.id)) == 1


async def test_purchase_same_payment_other_content_conflicts(engine: Engine) -> None:
    await buy(engine, ALICE, "us_70", "pay-1")
    before = await state(engine, ALICE, BEN)
    with pytest.raises(Conflict) as other_package:
        await buy(engine, ALICE, "us_350", "pay-1")
    assert other_package.value.code == "conflict"
    with pytest.raises(Conflict):
        await buy(engine, BEN, "us_70", "pay-1")
    assert await state(engine, ALICE, BEN) == before


async def test_payment_ids_are_scoped_by_provider(engine: Engine) -> None:
    package = engine.catalog.package("us_70")
    assert package is not None
    for provider in ("sandbox", "other"):
        await engine.wallet.purchase(
            PurchaseRequest(user=ALICE, package=package, payment_id="same", provider=provider)
        )
    assert (await engine.wallet.balance(ALICE.id)).coins == 140


async def test_minors_cannot_buy_coins(engine: Engine) -> None:
    before = await state(engine, TEEN)
    with pytest.raises(Forbidden) as caught:
        await buy(engine, TEEN, "us_70", "pay-teen")
    assert caught.value.message == "only adults can buy coins"
    assert await state(engine, TEEN) == before


async def test_purchase_bad_input_is_rejected(engine: Engine) -> None:
    before = await state(engine, ALICE)
    with pytest.raises(BadRequest):
        await buy(engine, ALICE, "us_70", payment_id="")
    assert await state(engine, ALICE) == before


async def test_a_locked_account_pays_its_debt_by_buying(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350", "p1")
    await send(engine, ALICE, "g1", gift_id="confetti", count=3)  # 300 of 350 spent
    reversal = await engine.wallet.refund(
        RefundRequest(provider="sandbox", payment_id="p1", kind=CHARGEBACK)
    )
    # 50 taken back, 300 spent: half of it clawed back from bob's 150 diamonds
    assert (reversal.taken, reversal.debt, reversal.clawed_back) == (50, 300, 150)
    assert (await engine.wallet.account(ALICE.id)).locked
    with pytest.raises(Forbidden):
        await send(engine, ALICE, "g2")

    # a purchase with every limit enforced is still allowed: it pays the debt first
    partial = await buy(engine, ALICE, "us_70", "p2")
    assert (partial.coins, partial.debt_paid, partial.balance) == (70, 70, 0)
    account = await engine.wallet.account(ALICE.id)
    assert (account.coins, account.debt, account.locked) == (0, 80, True)
    again = await buy(engine, ALICE, "us_70", "p2")
    assert_replay(again, partial, "tx", "debt_paid", "balance")
    assert (await engine.wallet.account(ALICE.id)).debt == 80

    paid_off = await buy(engine, ALICE, "us_350", "p3")
    assert (paid_off.coins, paid_off.debt_paid, paid_off.balance) == (350, 80, 270)
    account = await engine.wallet.account(ALICE.id)
    assert (account.coins, account.debt, account.locked) == (270, 0, False)
    [tx, *_] = await all_transactions(engine, ALICE.id)
    assert tx.id == paid_off.tx and tx.meta["debt_paid"] == 80
    assert set(tx.postings) == {
        Posting(WORLD, COIN, -350),
        Posting("user:alice:debt", COIN, 80),
        Posting("user:alice:coins", COIN, 270),
    }
    assert (await send(engine, ALICE, "g3")).balance == 269  # unlocked: gifts go through
    report = await engine.ledger.audit()
    assert report.ok, report


async def test_purchases_turned_off_are_refused_to_a_locked_account(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_70", "p1")
    await send(engine, ALICE, "g1", gift_id="rose", count=70)
    await engine.wallet.refund(RefundRequest(provider="sandbox", payment_id="p1"))
    await engine.wallet.set_limits(
        LimitsRequest(user_id=ALICE.id, limits=UserLimits(purchases_enabled=False))
    )
    before = await state(engine, ALICE)
    with pytest.raises(Forbidden) as off:
        await buy(engine, ALICE, "us_70", "p2")
    assert off.value.message.startswith("buying coins is turned off")
    assert await state(engine, ALICE) == before


# --------------------------------------------------------------------------- #
# gifts
# --------------------------------------------------------------------------- #


async def test_gift_moves_coins_to_creator_and_platform(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_70")
    receipt = await send(engine, ALICE, "g1", gift_id="rose", count=3)

    assert (receipt.coins, receipt.diamonds, receipt.balance) == (3, 2, 67)  # ceil(1.5)
    assert (receipt.room_id, receipt.stream_id, receipt.creator_id) == (ROOM, 1, BOB.id)
    assert (receipt.gift_id, receipt.count, receipt.replayed) == ("rose", 3, False)
    alice, bob = await engine.wallet.balance(ALICE.id), await engine.wallet.balance(BOB.id)
    assert (alice.coins, alice.diamonds) == (67, 0)
    assert (bob.coins, bob.diamonds) == (0, 2)

    [tx, _purchase] = await all_transactions(engine, ALICE.id)
    assert tx.id == receipt.tx
    assert tx.kind == "gift"
    assert is_balanced(tx.postings)
    assert sorted(tx.postings, key=lambda p: (p.account, p.asset)) == sorted(
        [
            Posting("user:alice:coins", COIN, -3),
            Posting(PLATFORM_REVENUE, COIN, 1),
            Posting(PLATFORM_EXCHANGE, COIN, 2),
            Posting(PLATFORM_EXCHANGE, DIAMOND, -2),
            Posting("user:bob:diamonds", DIAMOND, 2),
        ],
        key=lambda p: (p.account, p.asset),
    )
    assert tx.meta == {
        "room_id": ROOM,
        "stream_id": 1,
        "gift_id": "rose",
        "gift_name": "Rose",
        "gift_coins": 1,
        "count": 3,
        "sender_id": "alice",
        "creator_id": "bob",
        "key": "g1",
    }
    assert [t.id for t in await all_transactions(engine, BOB.id)] == [tx.id]
    assert await engine.rooms.leaderboard(ROOM) == [LeaderEntry(ALICE.public(), 3)]
    assert (await engine.ledger.audit()).ok


@pytest.mark.parametrize(
    ("gift_id", "count", "diamonds"),
    [("rose", 1, 1), ("finger_heart", 1, 3), ("rose", 2, 1), ("perfume", 3, 30)],
)
async def test_creator_share_rounds_up(
    engine: Engine, gift_id: str, count: int, diamonds: int
) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_70")
    receipt = await send(engine, ALICE, "g", gift_id=gift_id, count=count)
    assert receipt.diamonds == diamonds
    assert (await engine.wallet.balance(BOB.id)).diamonds == diamonds


async def test_gift_errors_come_in_order_and_change_nothing(engine: Engine) -> None:
    await live(engine, BOB, ROOM)
    await live(engine, KID, "room-kid")
    await live(engine, CARA, "room-ended")
    await engine.rooms.end("room-ended", by=CARA)
    everyone = (ALICE, TEEN, BOB, KID, CARA)
    before = await state(engine, *everyone)

    # Each case also breaks every later rule (no coins at all), so only the
    # first applicable check may answer.
    cases: list[tuple[Profile, str, type[StoreError], str | None]] = [
        (TEEN, "room-missing", NotFound, "room not found"),
        (TEEN, "room-ended", RoomNotLive, None),
        (TEEN, "room-kid", Forbidden, "only adults can send gifts"),
        (BOB, ROOM, Forbidden, "you cannot gift yourself"),
        (ALICE, "room-kid", Forbidden, None),
        (ALICE, ROOM, InsufficientFunds, None),
    ]
    for n, (sender, room_id, error, message) in enumerate(cases):
        with pytest.raises(error) as caught:
            await send(engine, sender, f"k{n}", room_id=room_id)
        assert caught.value.code == error.code
        if message is not None:
            assert caught.value.message == message
        assert await state(engine, *everyone) == before, f"case {n} changed state"


async def test_gift_bad_input_is_rejected(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE)
    before = await state(engine, ALICE, BOB)
    with pytest.raises(BadRequest):
        await send(engine, ALICE, "k", count=0)
    with pytest.raises(BadRequest):
        await send(engine, ALICE, "", count=1)
    assert await state(engine, ALICE, BOB) == before


async def test_failed_gift_does_not_burn_its_key(engine: Engine) -> None:
    await live(engine)
    with pytest.raises(InsufficientFunds):
        await send(engine, ALICE, "k1")
    await buy(engine, ALICE)
    receipt = await send(engine, ALICE, "k1")
    assert not receipt.replayed
    assert receipt.balance == 69


async def test_resending_a_gift_charges_once(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE)
    first = await send(engine, ALICE, "k1", count=5)
    again = await send(engine, ALICE, "k1", count=5)
    assert_replay(again, first, "tx", "coins", "diamonds", "balance", "created_at")
    assert (await engine.wallet.balance(ALICE.id)).coins == 65
    assert (await engine.wallet.balance(BOB.id)).diamonds == 3
    assert await engine.rooms.leaderboard(ROOM) == [LeaderEntry(ALICE.public(), 5)]
    assert len(await all_transactions(engine, ALICE.id)) == 2


async def test_replay_wins_over_later_checks(engine: Engine) -> None:
    """A resend after the stream ended still returns the first receipt."""
    await live(engine)
    await buy(engine, ALICE)
    first = await send(engine, ALICE, "k1")
    await engine.rooms.end(ROOM, by=BOB)
    again = await send(engine, ALICE, "k1")
    assert again.replayed and again.tx == first.tx
    with pytest.raises(Conflict):
        await send(engine, ALICE, "k1", count=2)


async def test_same_key_other_content_conflicts(engine: Engine) -> None:
    await live(engine)
    await live(engine, CARA, "room-cara")
    await buy(engine, ALICE)
    await send(engine, ALICE, "k1")
    before = await state(engine, ALICE, BOB)
    with pytest.raises(Conflict):
        await send(engine, ALICE, "k1", count=2)
    with pytest.raises(Conflict):
        await send(engine, ALICE, "k1", gift_id="finger_heart")
    with pytest.raises(Conflict):
        await send(engine, ALICE, "k1", room_id="room-cara")
    assert await state(engine, ALICE, BOB) == before


async def test_keys_are_scoped_by_sender(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE)
    await buy(engine, BEN)
    a = await send(engine, ALICE, "same")
    b = await send(engine, BEN, "same", count=2)
    assert a.tx != b.tx
    assert not b.replayed


async def test_concurrent_gifts_spend_exactly_the_funds(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")  # 350 coins: 50 gifts of 7 coins
    results = await asyncio.gather(
        *(send(engine, ALICE, f"k{n}", count=7) for n in range(200)),
        return_exceptions=True,
    )
    receipts = [r for r in results if isinstance(r, GiftReceipt)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(receipts) == 50
    assert len(errors) == 150
    assert all(isinstance(e, InsufficientFunds) for e in errors)
    # every success saw a distinct balance: nothing was spent twice
    assert sorted(r.balance for r in receipts) == list(range(0, 350, 7))
    balance = await engine.wallet.balance(ALICE.id)
    assert balance.coins == 0
    assert (await engine.wallet.balance(BOB.id)).diamonds == sum(r.diamonds for r in receipts)
    report = await engine.ledger.audit()
    assert report.ok, report.public()
    assert report.negative == []


# --------------------------------------------------------------------------- #
# rooms and leaderboards
# --------------------------------------------------------------------------- #


async def test_go_live_creates_a_room(engine: Engine) -> None:
    room = await engine.rooms.go_live(room_id=ROOM, creator=BOB, title="first")
    assert room.id == ROOM
    assert room.creator == BOB.public()
    assert room.creator_id == BOB.id
    assert (room.title, room.live, room.stream_id) == ("first", True, 1)
    assert room.started_at is not None and room.ended_at is None
    assert room.overlay_key
    assert room.creator_adult
    assert "overlay_key" not in room.public()
    assert await engine.rooms.get(ROOM) == room
    assert await engine.rooms.get("missing") is None


async def test_go_live_while_live_only_changes_the_title(engine: Engine) -> None:
    first = await engine.rooms.go_live(room_id=ROOM, creator=BOB, title="first")
    renamed = Profile(id=BOB.id, username="bobby", adult=True)
    second = await engine.rooms.go_live(room_id=ROOM, creator=renamed, title="second")
    assert second.title == "second"
    assert (second.stream_id, second.started_at, second.overlay_key, second.creator) == (
        first.stream_id,
        first.started_at,
        first.overlay_key,
        first.creator,
    )


async def test_another_creator_cannot_take_a_room(engine: Engine) -> None:
    first = await live(engine)
    with pytest.raises(Conflict):
        await engine.rooms.go_live(room_id=ROOM, creator=CARA, title="mine")
    await engine.rooms.end(ROOM, by=BOB)
    with pytest.raises(Conflict):
        await engine.rooms.go_live(room_id=ROOM, creator=CARA, title="mine")
    room = await engine.rooms.get(ROOM)
    assert room is not None
    assert (room.creator, room.stream_id, room.title) == (first.creator, 1, "hello")


async def test_end_rules(engine: Engine) -> None:
    await live(engine)
    with pytest.raises(NotFound):
        await engine.rooms.end("missing", by=BOB)
    with pytest.raises(Forbidden):
        await engine.rooms.end(ROOM, by=ALICE)
    still = await engine.rooms.get(ROOM)
    assert still is not None and still.live

    ended = await engine.rooms.end(ROOM, by=BOB)
    assert not ended.live
    assert ended.ended_at is not None
    assert await engine.rooms.get(ROOM) == ended
    assert await engine.rooms.end(ROOM, by=BOB) == ended  # unchanged

    await live(engine)
    by_admin = await engine.rooms.end(ROOM, by=ADMIN)
    assert not by_admin.live


async def test_going_live_again_starts_a_new_stream(engine: Engine) -> None:
    first = await live(engine)
    await engine.rooms.end(ROOM, by=BOB)
    renamed = Profile(id=BOB.id, username="bob", display_name="Bob!", adult=True)
    second = await engine.rooms.go_live(room_id=ROOM, creator=renamed, title="again")
    assert (second.live, second.stream_id, second.title) == (True, 2, "again")
    assert second.ended_at is None
    assert second.started_at is not None and first.started_at is not None
    assert second.started_at >= first.started_at
    assert second.creator == renamed.public()
    assert second.overlay_key == first.overlay_key


async def test_leaderboard_orders_and_matches_the_ledger(engine: Engine) -> None:
    await live(engine)
    for user in (ALICE, BEN, CARA):
        await buy(engine, user, "us_350")
    await send(engine, CARA, "c1", gift_id="perfume")  # 20
    await send(engine, ALICE, "a1", gift_id="finger_heart", count=2)  # 10
    await send(engine, ALICE, "a2", gift_id="finger_heart", count=2)  # 10 -> 20
    await send(engine, BEN, "b1", gift_id="doughnut")  # 30
    await send(engine, BEN, "b1", gift_id="doughnut")  # replay: no change

    board = await engine.rooms.leaderboard(ROOM)
    assert [(e.user["id"], e.coins) for e in board] == [("ben", 30), ("alice", 20), ("cara", 20)]
    assert board[1].user == ALICE.public()
    assert [(e.user["id"], e.coins) for e in await engine.rooms.leaderboard(ROOM, limit=1)] == [
        ("ben", 30)
    ]
    # a tie at the cut-off, more members than the limit: the lower id stays
    assert [(e.user["id"], e.coins) for e in await engine.rooms.leaderboard(ROOM, limit=2)] == [
        ("ben", 30),
        ("alice", 20),
    ]

    for entry in board:
        spent = sum(
            -p.amount
            for tx in await all_transactions(engine, entry.user["id"])
            if tx.kind == "gift" and tx.meta["room_id"] == ROOM and tx.meta["stream_id"] == 1
            for p in tx.postings
            if p.account == f"user:{entry.user['id']}:coins"
        )
        assert spent == entry.coins

    await engine.rooms.end(ROOM, by=BOB)
    await live(engine)
    assert await engine.rooms.leaderboard(ROOM) == []
    await send(engine, CARA, "c2")
    assert [(e.user["id"], e.coins) for e in await engine.rooms.leaderboard(ROOM)] == [("cara", 1)]
    assert await engine.rooms.leaderboard("missing") == []


# --------------------------------------------------------------------------- #
# ledger
# --------------------------------------------------------------------------- #


async def test_transactions_page_newest_first(engine: Engine) -> None:
    await live(engine)
    await buy(engine, ALICE, "us_350")
    for n in range(6):
        await send(engine, ALICE, f"k{n}")
    everything = await all_transactions(engine, ALICE.id)
    assert len(everything) == 7
    ids = [t.id for t in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 7
    assert [t.kind for t in everything].count("purchase") == 1

    pages: list[str] = []
    before: str | None = None
    while True:
        page = await engine.ledger.transactions(ALICE.id, before=before, limit=3)
        if not page:
            break
        assert len(page) <= 3
        pages.extend(t.id for t in page)
        before = page[-1].id
    assert pages == ids
    assert await engine.ledger.transactions(ALICE.id, before=ids[-1]) == []
    assert await engine.ledger.transactions("nobody") == []
    # the creator sees the gifts (diamond postings), not alice's purchase
    assert len(await all_transactions(engine, BOB.id)) == 6


async def test_audit_after_a_mixed_sequence(engine: Engine) -> None:
    await live(engine)
    await live(engine, CARA, "room-cara")
    await buy(engine, ALICE, "us_700", "p1")
    await buy(engine, ALICE, "us_700", "p1")  # replay
    await buy(engine, BEN, "gb_350", "p2")
    with pytest.raises(Forbidden):
        await buy(engine, TEEN, "us_70", "p3")
    await send(engine, ALICE, "a1", gift_id="confetti")
    await send(engine, ALICE, "a1", gift_id="confetti")  # replay
    await send(engine, BEN, "b1", gift_id="doughnut", count=3, room_id="room-cara")
    with pytest.raises(InsufficientFunds):
        await send(engine, BEN, "b2", gift_id="galaxy")
    with pytest.raises(Conflict):
        await send(engine, ALICE, "a1", gift_id="rose")
    await engine.rooms.end(ROOM, by=BOB)
    with pytest.raises(RoomNotLive):
        await send(engine, ALICE, "a2")
    await live(engine)  # stream 2
    await buy(engine, CARA, "us_70", "p4")
    await send(engine, CARA, "c1", gift_id="finger_heart")

    report = await engine.ledger.audit()
    assert report.ok, report.public()
    assert report.transactions == 6  # 3 purchases + 3 gifts
    assert report.totals == {COIN: 0, DIAMOND: 0}
    assert (report.unbalanced, report.mismatches, report.negative, report.pending) == (
        [],
        [],
        [],
        0,
    )
    assert (await engine.wallet.balance(ALICE.id)).coins == 707 - 100
    assert (await engine.wallet.balance(BEN.id)).coins == 350 - 90
    assert (await engine.wallet.balance(BOB.id)).diamonds == 50 + 3
    cara = await engine.wallet.balance(CARA.id)
    assert (cara.coins, cara.diamonds) == (70 - 5, 45)


async def test_limits_must_be_positive(engine: Engine) -> None:
    with pytest.raises(BadRequest):
        await engine.ledger.transactions(ALICE.id, limit=0)
    with pytest.raises(BadRequest):
        await engine.rooms.leaderboard(ROOM, limit=0)


# --------------------------------------------------------------------------- #
# broker
# --------------------------------------------------------------------------- #


async def test_publish_stamps_gap_free_seq_per_room(engine: Engine) -> None:
    recorder = Recorder()
    sub_a = await engine.broker.subscribe("room-a", recorder)
    sub_b = await engine.broker.subscribe("room-b", recorder)
    try:
        first = await engine.broker.publish("room-a", [{"type": "chat"}, {"type": "like"}])
        assert [e["seq"] for e in first] == [1, 2]
        assert all(isinstance(e["ts"], int) and e["ts"] > 0 for e in first)
        await engine.broker.publish("room-b", [{"type": "chat"}])
        await engine.broker.publish("room-a", [{"type": "join"}])
        await recorder.wait_for(4)
        assert recorder.seqs("room-a") == [1, 2, 3]
        assert recorder.seqs("room-b") == [1]
        assert [e["type"] for r, e in recorder.events if r == "room-a"] == ["chat", "like", "join"]
        assert await engine.broker.last_seq("room-a") == 3
        assert await engine.broker.last_seq("room-b") == 1
        assert await engine.broker.last_seq("room-none") == 0
        assert recorder.resets == []
    finally:
        await sub_a.close()
        await sub_b.close()


async def test_rooms_are_isolated(engine: Engine) -> None:
    only_a, only_b = Recorder(), Recorder()
    sub_a = await engine.broker.subscribe("room-a", only_a)
    sub_b = await engine.broker.subscribe("room-b", only_b)
    try:
        await engine.broker.publish("room-a", [{"type": "chat", "n": 1}])
        await engine.broker.publish("room-b", [{"type": "chat", "n": 2}])
        await only_a.wait_for(1)
        await only_b.wait_for(1)
        assert [(r, e["n"]) for r, e in only_a.events] == [("room-a", 1)]
        assert [(r, e["n"]) for r, e in only_b.events] == [("room-b", 2)]
    finally:
        await sub_a.close()
        await sub_b.close()


async def test_history_serves_resume_within_the_window(engine: Engine) -> None:
    window = EngineConfig().history_size
    room = "room-history"
    assert await engine.broker.history(room, since=0) == []
    await engine.broker.publish(room, [{"type": "chat", "n": n} for n in range(1, 6)])
    assert [e["seq"] for e in await engine.broker.history(room, since=0) or []] == [1, 2, 3, 4, 5]
    assert [e["n"] for e in await engine.broker.history(room, since=3) or []] == [4, 5]
    assert await engine.broker.history(room, since=5) == []
    assert await engine.broker.history(room, since=50) == []

    await engine.broker.publish(room, [{"type": "like"} for _ in range(window)])
    last = await engine.broker.last_seq(room)
    assert last == window + 5
    assert await engine.broker.history(room, since=0) is None  # seq 1.. left the window
    oldest = last - window + 1
    kept = await engine.broker.history(room, since=oldest - 1)
    assert kept is not None
    assert [e["seq"] for e in kept] == list(range(oldest, last + 1))
    assert await engine.broker.history(room, since=oldest - 2) is None


async def test_subscriptions_are_reference_counted(engine: Engine) -> None:
    room = "room-refs"
    shared, witness = Recorder(), Recorder()
    first = await engine.broker.subscribe(room, shared)
    second = await engine.broker.subscribe(room, shared)
    watching = await engine.broker.subscribe(room, witness)
    try:
        await engine.broker.publish(room, [{"type": "chat"}])
        await witness.wait_for(1)
        await shared.wait_for(1)
        assert shared.seqs(room) == [1]  # once, although subscribed twice

        await first.close()
        await first.close()  # closing twice releases once
        await engine.broker.publish(room, [{"type": "chat"}])
        await witness.wait_for(2)
        await shared.wait_for(2)
        assert shared.seqs(room) == [1, 2]

        await second.close()
        await engine.broker.publish(room, [{"type": "chat"}])
        await witness.wait_for(3)
        assert shared.seqs(room) == [1, 2]  # fully unsubscribed
        assert witness.seqs(room) == [1, 2, 3]
    finally:
        await second.close()
        await watching.close()


async def test_engine_reports_ready(engine: Engine) -> None:
    checks = await engine.ready()
    assert checks
    assert set(checks.values()) == {"ok"}

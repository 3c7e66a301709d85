"""The embedded engine's ``Wallet``: every money operation over one SQLite file.

Each operation runs in the writer thread as one function of the connection
that does all its checks before its first write (see ``store.embedded.database``),
so a refused operation has written nothing. The methods here only pick the
clock and fresh ids and hand over to one module per concept: ``purchases``,
``gifts``, ``refunds`` (and debt), ``withdrawals`` (and earnings), ``accounts``
(limits, verification, rate limits, claims), all writing through ``journal``.
The rules, their order and their refusals are those of ``store.roles.Wallet``
and ``store.domain.rules``, shared with the scaled engine. Request arguments are
checked before an engine is called (``store.checked``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from store.domain import accounts as money
from store.domain import models
from store.domain.rules import hash_pin, pin_salt
from store.embedded import accounts, gifts, purchases, refunds, withdrawals
from store.embedded.activity import SQLiteRoomActivity
from store.embedded.boards import GiftMark
from store.embedded.combo_copies import ComboState
from store.embedded.database import SQLiteDatabase
from store.embedded.journal import balance_of
from store.embedded.room_totals import GiftTotals
from store.ids import new_id, now_ms

log = logging.getLogger(__name__)

T = TypeVar("T")


def _clock(now: int | None) -> int:
    """A request's ``now`` (tests drive time), else the clock."""
    return now if now is not None else now_ms()


class SQLiteWallet:
    """``Wallet`` over SQLite (see the module docstring)."""

    def __init__(
        self,
        db: SQLiteDatabase,
        *,
        creator_share_percent: int = 50,
        policy: money.MoneyPolicy | None = None,
        activity: SQLiteRoomActivity | None = None,
    ) -> None:
        if not 0 <= creator_share_percent <= 100:
            raise ValueError("creator_share_percent must be within 0..100")
        self._db = db
        self._share = creator_share_percent
        self._policy = policy or money.MoneyPolicy()
        self._activity = activity

    # -- coins in and out ------------------------------------------------------

    async def purchase(self, request: models.PurchaseRequest) -> models.PurchaseReceipt:
        tx, created_at = new_id("tx"), _clock(request.now)
        return await self._db.write(lambda conn: purchases.purchase(conn, request, tx, created_at))

    async def send_gift(self, request: models.GiftRequest) -> models.GiftReceipt:
        return (await self._send_gift(request, then=None))[0]

    async def _send_gift(
        self,
        request: models.GiftRequest,
        *,
        then: Callable[[sqlite3.Connection, models.GiftReceipt], T] | None,
    ) -> tuple[models.GiftReceipt, T | None]:
        """The gift; ``then`` runs in its transaction once it is written (not for a
        replay), and what it returns comes back with the receipt."""
        plan = gifts.plan_gift(request, share_percent=self._share, policy=self._policy)
        db = self._db
        sender = request.sender

        def write(
            conn: sqlite3.Connection,
        ) -> tuple[tuple[models.GiftReceipt, GiftTotals | None], T | None]:
            result = gifts.send_gift(conn, plan)
            receipt, totals = result
            return result, (
                then(conn, receipt) if then is not None and totals is not None else None
            )

        def committed(
            written: tuple[tuple[models.GiftReceipt, GiftTotals | None], T | None],
        ) -> None:
            receipt, totals = written[0]
            if totals is None:
                return  # a replay changed nothing
            room_id, stream_id = receipt.room_id, receipt.stream_id
            db.note_gift_totals(room_id, stream_id, totals.stream)
            db.boards.gift(
                GiftMark(
                    room_id=room_id,
                    stream_id=stream_id,
                    user_id=sender.id,
                    user=sender.public(),
                    coins=totals.gifter_coins,
                    goal_id=totals.goal_id,
                    goal_progress=totals.goal_progress,
                )
            )

        (receipt, _), extra = await db.write(write, committed=committed)
        return receipt, extra

    async def send_gift_shown(
        self,
        request: models.GiftRequest,
        *,
        sender: Mapping[str, Any],
        window_ms: int,
        board_interval_ms: int = 0,
        board_limit: int = 0,
    ) -> models.ShownGift:
        """``store.roles.GiftShower``: the gift, then at once its event within its
        combo and, unless announced within ``board_interval_ms``, the room's
        leaderboard and goal, in one publish (one frame to the room, not two)."""
        activity = self._activity
        if activity is None:
            return models.ShownGift(await self.send_gift(request), None)

        def hit_and_copy(
            conn: sqlite3.Connection, receipt: models.GiftReceipt
        ) -> tuple[models.ComboHit, ComboState | None]:
            """In the gift's transaction: its combo's copy in the file, with the gift."""
            hit = models.combo_hit(
                receipt, gift=request.gift, sender_id=request.sender.id, sender=sender
            )
            return hit, activity.copy_in_commit(conn, receipt.room_id, hit, window_ms=window_ms)

        receipt, extra = await self._send_gift(request, then=hit_and_copy)
        if receipt.replayed or extra is None:
            return models.ShownGift(receipt, None)
        hit, copied = extra
        board = (board_interval_ms, board_limit) if board_interval_ms > 0 else None
        try:
            wait, board_wait = await activity.publish_gift_shown(
                receipt.room_id, hit, window_ms=window_ms, board=board, copied=copied
            )
        except Exception:  # it fails before its publish: the caller publishes instead
            log.warning("showing gift %s failed", receipt.tx, exc_info=True)
            return models.ShownGift(receipt, None)
        return models.ShownGift(receipt, wait, board_wait)

    async def balance(self, user_id: str) -> models.Balance:
        """Coins and diamonds; zero for a user never seen."""
        return await self._db.read(lambda conn: balance_of(conn, user_id))

    async def refund(self, request: money.RefundRequest) -> money.RefundReceipt:
        tx, now = new_id("tx"), _clock(request.now)
        return await self._db.write(lambda conn: refunds.refund(conn, request, tx, now))

    async def settle_debt(self, request: money.DebtSettlement) -> money.DebtReceipt:
        tx, now = new_id("tx"), _clock(request.now)
        return await self._db.write(lambda conn: refunds.settle_debt(conn, request, tx, now))

    # -- accounts ----------------------------------------------------------------

    async def account(self, user_id: str) -> money.Account:
        return (await self._db.read(lambda conn: accounts.load_account(conn, user_id)))[0]

    async def set_limits(self, request: money.LimitsRequest) -> money.Account:
        user_id = request.user_id
        stored_pin = (await self._db.read(lambda conn: accounts.load_account(conn, user_id)))[1]
        # hashing is slow on purpose: never in the writer thread
        candidate = ""
        if stored_pin and request.pin is not None:
            candidate = await asyncio.to_thread(hash_pin, request.pin, pin_salt(stored_pin))
        new_hash: str | None = None
        if request.new_pin is not None:
            new_hash = await asyncio.to_thread(hash_pin, request.new_pin) if request.new_pin else ""
        return await self._db.write(
            lambda conn: accounts.set_limits(conn, request, candidate, new_hash)
        )

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> money.Account:
        at = now_ms() if verified else None
        return await self._db.write(lambda conn: accounts.set_verified(conn, user_id, at, by))

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        at = _clock(now)
        await self._db.write(
            lambda conn: accounts.rate_limit(conn, user_id, action, per_hour, burst, at)
        )

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        ttl_ms, now = ttl_seconds * 1_000, now_ms()
        return await self._db.write(lambda conn: accounts.claim(conn, scope, key, ttl_ms, now))

    # -- withdrawals ---------------------------------------------------------------

    async def reserve_withdrawal(self, request: money.WithdrawalRequest) -> money.Withdrawal:
        ids, now, policy = (new_id("wd"), new_id("tx")), _clock(request.now), self._policy
        return await self._db.write(
            lambda conn: withdrawals.reserve_withdrawal(conn, request, policy, ids, now)
        )

    async def settle_withdrawal(self, request: money.WithdrawalSettlement) -> money.Withdrawal:
        tx, now = new_id("tx"), _clock(request.now)
        return await self._db.write(
            lambda conn: withdrawals.settle_withdrawal(conn, request, tx, now)
        )

    async def withdrawal(self, withdrawal_id: str) -> money.Withdrawal | None:
        return await self._db.read(lambda conn: withdrawals.load_withdrawal(conn, withdrawal_id))

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[money.Withdrawal]:
        return await self._db.read(
            lambda conn: withdrawals.list_withdrawals(conn, user_id, before, limit)
        )

    async def earnings(self, user_id: str, *, now: int | None = None) -> money.Earnings:
        at, hold = _clock(now), self._policy.hold_seconds
        return await self._db.read(lambda conn: withdrawals.earnings(conn, user_id, at, hold))

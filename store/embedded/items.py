"""In-app items on the embedded engine: buying one (a money operation in the
writer thread, like a gift) and the inventory with what is equipped.

``buy`` does the checks of ``store.roles.Items.buy`` in their order before any
write, then journals the purchase, records the spending (caps, rate bucket) and
the creator's earnings, and writes the inventory row, all in one SQLite
transaction; the receipt is stored under the idempotency key (scope
``item:<buyer id>``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

import orjson

from store.domain import refusals
from store.domain.accounts import MoneyPolicy
from store.domain.items import (
    ItemReceipt,
    ItemRequest,
    Owned,
    expired_from,
    expiry_after,
    item_postings,
    owned_from,
    split_item,
)
from store.domain.models import coins_account
from store.embedded.database import SQLiteDatabase
from store.embedded.gifts import SpendRefusals, check_gift_rules, record_earnings, record_spending
from store.embedded.journal import IdempotencyKey, journal, receipt_body
from store.ids import new_id, now_ms

ITEM_REFUSALS: Final = SpendRefusals(
    off=refusals.ITEMS_OFF,
    action="item purchases",
    daily=refusals.ITEM_DAILY_CAP,
    monthly=refusals.ITEM_MONTHLY_CAP,
)

_ITEM_CONTEXT: Final = (
    "SELECT i.fingerprint, i.result, json_extract(r.creator, '$.id'), r.creator_adult, "
    "r.stream_id, "
    "(SELECT amount FROM balances WHERE account = :account AND asset = 'coin'), "
    "(SELECT expires_at FROM inventory WHERE user_id = :user AND item_id = :item), "
    "(SELECT 1 FROM inventory WHERE user_id = :user AND item_id = :item) "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN idempotency AS i ON i.scope = :scope AND i.key = :key "
    "LEFT JOIN rooms AS r ON r.id = :room"
)


def buy(
    conn: sqlite3.Connection, request: ItemRequest, tx: str, now: int, policy: MoneyPolicy
) -> ItemReceipt:
    """See ``store.roles.Items.buy``."""
    buyer, item = request.buyer, request.item
    key = IdempotencyKey(f"item:{buyer.id}", request.key, request.fingerprint())
    seen, stored, creator_id, creator_adult, stream_id, coins, until, owned = conn.execute(
        _ITEM_CONTEXT,
        {
            "account": coins_account(buyer.id),
            "user": buyer.id,
            "item": item.id,
            "scope": key.scope,
            "key": key.key,
            "room": request.room_id or "",
        },
    ).fetchone()
    if seen is not None:
        if seen != key.fingerprint:
            raise refusals.KEY_REUSED()
        return ItemReceipt(**orjson.loads(stored), replayed=True)
    refusal = request.sale_refusal(now)
    if refusal is not None:
        raise refusal
    if request.room_id is not None and creator_id is None:
        raise refusals.ROOM_NOT_FOUND()
    if not buyer.adult:
        raise refusals.MINOR_ITEM_BUYER()
    total = item.coins
    rules = check_gift_rules(
        conn, sender_id=buyer.id, total=total, now=now, policy=policy, refusing=ITEM_REFUSALS
    )
    if owned and until is None:  # owned for good (a timed one is extended)
        raise refusals.ITEM_OWNED(item.id)
    coins = coins or 0
    if coins < total:
        raise refusals.ITEM_FUNDS(total, coins)

    shares = creator_id is not None and creator_id != buyer.id and bool(creator_adult)
    diamonds, _platform = split_item(item, in_room=shares)
    earner = creator_id if diamonds else ""
    expires_at = expiry_after(item, now=now, owned_until=until)
    receipt = ItemReceipt(
        tx=tx,
        item_id=item.id,
        kind=item.kind,
        coins=total,
        diamonds=diamonds,
        creator_id=earner,
        room_id=request.room_id or "",
        balance=coins - total,
        expires_at=expires_at,
        created_at=now,
    )
    journal(
        conn,
        tx_id=tx,
        kind="item",
        created_at=now,
        meta={
            **request.meta(),
            "expires_at": expires_at,
            "room_id": receipt.room_id,
            "buyer_id": buyer.id,
            "creator_id": earner,
            "key": request.key,
        },
        postings=item_postings(
            buyer_id=buyer.id, creator_id=earner, coins=total, diamonds=diamonds
        ),
    )
    record_spending(conn, rules, sender_id=buyer.id, at=now)
    record_earnings(
        conn,
        creator_id=earner,
        room_id=receipt.room_id,
        stream_id=int(stream_id or 0),
        diamonds=diamonds,
        at=now,
    )
    conn.execute(
        "INSERT INTO inventory (user_id, item_id, kind, acquired_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, item_id) DO UPDATE SET "
        "kind = excluded.kind, expires_at = excluded.expires_at, "
        "acquired_at = CASE WHEN inventory.expires_at IS NOT NULL "
        "AND inventory.expires_at <= excluded.acquired_at "
        "THEN excluded.acquired_at ELSE inventory.acquired_at END",
        (buyer.id, item.id, item.kind, now, expires_at),
    )
    key.remember(conn, receipt_body(receipt))
    return receipt


def _rows(conn: sqlite3.Connection, user_id: str) -> list[tuple[str, str, int, int | None]]:
    return conn.execute(
        "SELECT item_id, kind, acquired_at, expires_at FROM inventory WHERE user_id = ?",
        (user_id,),
    ).fetchall()


def _equipped(conn: sqlite3.Connection, user_id: str) -> dict[str, str]:
    return dict(
        conn.execute("SELECT kind, item_id FROM equipped WHERE user_id = ?", (user_id,)).fetchall()
    )


def inventory(conn: sqlite3.Connection, user_id: str, now: int) -> list[Owned]:
    return owned_from(_rows(conn, user_id), _equipped(conn, user_id), now=now)


def equip(conn: sqlite3.Connection, user_id: str, item_id: str, now: int) -> list[Owned]:
    row = conn.execute(
        "SELECT kind, expires_at FROM inventory WHERE user_id = ? AND item_id = ?",
        (user_id, item_id),
    ).fetchone()
    if row is None or (row[1] is not None and row[1] <= now):
        raise refusals.ITEM_NOT_OWNED(item_id)
    conn.execute(
        "INSERT INTO equipped (user_id, kind, item_id) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id, kind) DO UPDATE SET item_id = excluded.item_id",
        (user_id, row[0], item_id),
    )
    return inventory(conn, user_id, now)


def unequip(conn: sqlite3.Connection, user_id: str, kind: str, now: int) -> list[Owned]:
    conn.execute("DELETE FROM equipped WHERE user_id = ? AND kind = ?", (user_id, kind))
    return inventory(conn, user_id, now)


class SQLiteItems:
    """``Items`` over SQLite (see the module docstring)."""

    def __init__(self, db: SQLiteDatabase, *, policy: MoneyPolicy | None = None) -> None:
        self._db = db
        self._policy = policy or MoneyPolicy()

    async def buy(self, request: ItemRequest) -> ItemReceipt:
        tx, now, policy = new_id("tx"), _clock(request.now), self._policy
        return await self._db.write(
            lambda conn: buy(conn, request, tx, now, policy),
            committed=self._changed(request.buyer.id),
        )

    async def inventory(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        """From the user's rows as read once until this process changes them (every
        gift and join shows the sender's look); expiry is applied on each call."""
        at = _clock(now)
        db = self._db
        rows, equipped = await db.inventories.get(
            user_id, lambda: db.read(lambda conn: (_rows(conn, user_id), _equipped(conn, user_id)))
        )
        return owned_from(rows, equipped, now=at)

    def _changed(self, user_id: str) -> Callable[[object], None]:
        """After a commit that changed the user's items: read them again."""
        return lambda _: self._db.inventories.changed(user_id)

    async def expired(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        at = _clock(now)
        return await self._db.read(lambda conn: expired_from(_rows(conn, user_id), now=at))

    async def equip(self, user_id: str, item_id: str, *, now: int | None = None) -> list[Owned]:
        at = _clock(now)
        return await self._db.write(
            lambda conn: equip(conn, user_id, item_id, at), committed=self._changed(user_id)
        )

    async def unequip(self, user_id: str, kind: str, *, now: int | None = None) -> list[Owned]:
        at = _clock(now)
        return await self._db.write(
            lambda conn: unequip(conn, user_id, kind, at), committed=self._changed(user_id)
        )


def _clock(now: int | None) -> int:
    return now if now is not None else now_ms()

"""In-app items on the scaled engine: buying one is one call of ``item.lua``
(every check before the first write, the outbox entry and the inventory in the
same script); equipping is ``item_equip.lua``; inventories are two hashes per
user (``keys.INVENTORY``: item -> ``kind|acquired_at|expires_at``, and
``keys.EQUIPPED``: kind -> item). Check order and refusals are those of the
embedded engine (``store.roles.Items``).

On a cluster (``KeyLayout.cluster``) the purchase runs on the buyer's slot
alone: the caller reads the room (creator, age, stream) and the script checks
those facts instead, appends the whole transaction to that slot's outbox (its
meta also names the stream, for the sweeper), and the creator's share follows as
a credit step on the creator's slot keyed by the tx id (``store.scaled.credits``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Final

import orjson

from store.domain.accounts import MoneyPolicy
from store.domain.items import (
    DAY_MS,
    ItemReceipt,
    ItemRequest,
    Owned,
    expired_from,
    owned_from,
)
from store.domain.models import coins_account, diamonds_account, fingerprint
from store.errors import StoreError
from store.ids import new_id, now_ms
from store.scaled import credits, keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import entry_head, fields_of, flag, members, spending_args
from store.scaled.keys import SINGLE, KeyLayout, hashed, room_key, user_key, wallet_key

_ITEM: Final = load_script("item")
_EQUIP: Final = load_script("item_equip")
ITEM_KEY_TTL: Final = 7 * 24 * 3600
"""How long a purchase's Idempotency-Key is remembered (as a gift's request id)."""


def inventory_from_ledger(records: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """What ``item.lua`` left in the inventories, replayed from the ledger's item
    transactions (``{id, created_at, meta}``, oldest first): ``(buyer, item) ->
    kind|acquired_at|expires_at`` (``live repair`` puts back what Redis lost)."""
    entries: dict[tuple[str, str], tuple[str, int, int | None]] = {}
    for record in records:
        meta = record["meta"]
        owner = (str(meta["buyer_id"]), str(meta["item_id"]))
        at = int(record["created_at"])
        before = entries.get(owner)
        running = before is not None and (before[2] is None or before[2] > at)
        acquired = before[1] if before is not None and running else at
        expires = meta.get("expires_at")
        until = None if expires is None else int(expires)
        entries[owner] = (str(meta["item_kind"]), acquired, until)
    return {
        owner: f"{kind}|{acquired}|{'' if expires is None else expires}"
        for owner, (kind, acquired, expires) in entries.items()
    }


def item_receipt(record: dict[str, Any], *, balance: int) -> tuple[str, bytes]:
    """The idempotency key and stored value ``item.lua`` wrote for a ledger item
    transaction (``balance``: the buyer's coins right after it)."""
    meta = record["meta"]
    buyer, room_id = str(meta["buyer_id"]), str(meta.get("room_id") or "")
    diamonds = sum(
        amount
        for account, asset, amount in record["postings"]
        if asset == "diamond" and amount > 0 and account.startswith("user:")
    )
    receipt = ItemReceipt(
        tx=record["id"],
        item_id=meta["item_id"],
        kind=meta["item_kind"],
        coins=int(meta["item_coins"]),
        diamonds=diamonds,
        creator_id=str(meta.get("creator_id") or ""),
        room_id=room_id,
        balance=balance,
        expires_at=meta.get("expires_at"),
        created_at=int(record["created_at"]),
    )
    # as ItemRequest.fingerprint()
    stamp = fingerprint("item", meta["item_id"], room_id)
    value = {f.name: getattr(receipt, f.name) for f in fields(receipt) if f.name != "replayed"}
    return user_key(buyer, hashed(keys.ITEM_KEY, meta["key"])), stamp.encode() + orjson.dumps(value)


class RedisItems:
    """``Items`` over Redis (see the module docstring)."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        policy: MoneyPolicy | None = None,
        key_ttl: int = ITEM_KEY_TTL,
        layout: KeyLayout = SINGLE,
    ) -> None:
        self._batcher = batcher
        self._layout = layout
        self._policy = policy or MoneyPolicy()
        self._ttl = key_ttl

    async def buy(self, request: ItemRequest) -> ItemReceipt:
        buyer, room_id = request.buyer, request.room_id
        now = request.now if request.now is not None else now_ms()
        tx_id = new_id("tx")
        refusal = request.sale_refusal(now)
        creator = ""
        room: tuple[str, ...] = ("",)  # "": the script reads the room itself
        if room_id is not None and self._layout.cluster:
            found, adult, stream = await self._batcher.execute(
                "HMGET", room_key(room_id, keys.ROOM), "creator_id", "creator_adult", "stream_id"
            )
            creator = text(found) if found is not None else ""
            room = ("1", text(adult or b""), text(stream or b"0")) if found else ("0",)
        elif self._layout.cluster:
            room = ("0",)
        elif room_id is not None:
            raw = await self._batcher.execute("HGET", room_key(room_id, keys.ROOM), "creator_id")
            creator = text(raw) if raw is not None else ""
        raw_tz = await self._batcher.execute("HGET", user_key(buyer.id, keys.ACCOUNT), "tz")
        tz = text(raw_tz) if raw_tz else "UTC"
        for _ in range(4):
            reply = checked_reply(
                await self._batcher.evalsha(
                    _ITEM,
                    self._keys(request, creator),
                    (
                        *self._args(request, creator, tx_id, now, tz, refusal is not None, room),
                        *room,
                    ),
                    retry_on_disconnect=True,
                )
            )
            if reply[0] == b"S":
                creator = text(reply[1])
            elif reply[0] == b"T":
                tz = text(reply[1])
            elif reply[0] == b"N" and refusal is not None:
                raise refusal
            else:
                receipt = ItemReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
                if reply[0] == b"OK" and self._layout.cluster and receipt.diamonds:
                    share = credits.item_share(
                        tx_id,
                        receipt.creator_id,
                        receipt.diamonds,
                        created_at=now,
                        stream_id=room[2],
                        room_id=receipt.room_id,
                    )
                    await credits.apply(self._batcher, [share])
                return receipt
        raise StoreError("the room's creator or the buyer's time zone kept changing")

    def _keys(self, request: ItemRequest, creator: str) -> tuple[str, ...]:
        buyer_id = request.buyer.id
        wallet = wallet_key(buyer_id)
        cluster = self._layout.cluster  # the room and the creator: other slots
        earner = creator or buyer_id  # no room: the buyer's own keys, never written
        call_keys = (
            user_key(buyer_id, hashed(keys.ITEM_KEY, request.key)),
            wallet,
            room_key(request.room_id, keys.ROOM)
            if request.room_id is not None and not cluster
            else wallet,
            wallet if cluster else wallet_key(earner),
            self._layout.balances(wallet),
            self._layout.outbox(wallet),
            user_key(buyer_id, keys.ACCOUNT),
            user_key(buyer_id, keys.INVENTORY),
        )
        if cluster:  # the creator's side is a credit step
            return call_keys
        return (
            *call_keys,
            user_key(earner, keys.EARNINGS_HOURS),
            user_key(earner, keys.EARNINGS_STREAMS),
        )

    def _args(
        self,
        request: ItemRequest,
        creator: str,
        tx_id: str,
        now: int,
        tz: str,
        refused: bool,
        room: tuple[str, ...],
    ) -> tuple[Arg, ...]:
        buyer, item = request.buyer, request.item
        room_id = request.room_id or ""
        stream = {"stream_id": int(room[2])} if room[0] == "1" else {}
        meta = members(
            {
                **request.meta(),
                "room_id": room_id,
                "buyer_id": buyer.id,
                "key": request.key,
                **stream,
            }
        )
        receipt = members(
            {
                "tx": tx_id,
                "item_id": item.id,
                "kind": item.kind,
                "coins": item.coins,
                "room_id": room_id,
                "created_at": now,
            }
        )
        return (
            request.fingerprint(),
            buyer.id,
            flag(buyer.adult),
            creator,
            flag(request.room_id is not None),
            item.coins,
            item.creator_share,
            item.id,
            item.kind,
            (item.duration_days or 0) * DAY_MS,
            now,
            *spending_args(self._policy, now, tz),
            room_id,
            flag(refused),
            entry_head(tx_id, "item", now),
            meta,
            receipt,
            orjson.dumps(coins_account(buyer.id)),
            orjson.dumps(diamonds_account(creator)),
            orjson.dumps(creator),
            self._ttl,
        )

    async def _stored(
        self, user_id: str
    ) -> tuple[list[tuple[str, str, int, int | None]], dict[str, str]]:
        raw = await self._batcher.execute("HGETALL", user_key(user_id, keys.INVENTORY))
        equipped = fields_of(
            await self._batcher.execute("HGETALL", user_key(user_id, keys.EQUIPPED))
        )
        rows = []
        for item_id, value in fields_of(raw).items():
            kind, acquired, expires = value.split("|")
            rows.append((item_id, kind, int(acquired), int(expires) if expires else None))
        return rows, equipped

    async def inventory(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        rows, equipped = await self._stored(user_id)
        return owned_from(rows, equipped, now=now if now is not None else now_ms())

    async def expired(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        rows, _ = await self._stored(user_id)
        return expired_from(rows, now=now if now is not None else now_ms())

    async def equip(self, user_id: str, item_id: str, *, now: int | None = None) -> list[Owned]:
        at = now if now is not None else now_ms()
        checked_reply(
            await self._batcher.evalsha(
                _EQUIP,
                (user_key(user_id, keys.INVENTORY), user_key(user_id, keys.EQUIPPED)),
                (item_id, at),
                retry_on_disconnect=True,
            )
        )
        return await self.inventory(user_id, now=at)

    async def unequip(self, user_id: str, kind: str, *, now: int | None = None) -> list[Owned]:
        await self._batcher.execute("HDEL", user_key(user_id, keys.EQUIPPED), kind)
        return await self.inventory(user_id, now=now)

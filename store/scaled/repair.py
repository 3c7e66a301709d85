"""Rebuild the scaled engine's Redis money state from the ledger (``live repair``).

The PostgreSQL ledger is the source of truth. Redis can lose the writes of its
last moments when it is not fsyncing every write (``appendfsync everysec`` and a
power loss or kernel crash; a failover to a replica that lagged): transactions
the ledger worker had already filed stay in PostgreSQL, while their effect on
the hot balances and their idempotency records are gone. ``live audit`` then
reports the difference, and a client resending such a gift would be charged a
second time. This module puts back what the ledger proves:

1. files whatever the outbox still holds (as the worker would); on a cluster,
   first finishes every gift the settle group has not (its credit and room
   step), then reads every slot's outbox and system balances;
2. moves every hot balance the audit compares to its ledger value (by the
   difference, with ``HINCRBY``);
3. writes the missing idempotency records of gifts and item purchases (within
   the key's TTL) and purchases of the last ``window_seconds`` (``SET NX``: never
   overwrites), so a resent request gets its first receipt instead of a second
   charge; a rebuilt purchase also counts again in the buyer's purchase counter;
   the items bought (the inventories) are replayed from the ledger, and an entry
   Redis lost or holds with an earlier expiry is put back;
4. moves every room's ``seq`` forward by ``seq_jump``, as event numbers may have
   been handed out twice: viewers see a gap and resume or get a fresh snapshot.

It reports, without changing them, reversals whose idempotency record is gone.
Derived counters (leaderboards, stream totals, goals, supporters, spending caps,
the hold of recent earnings) are not rebuilt: they move no money.

Run it with gifting stopped (web nodes down or drained); it refuses to run if
balances move or the outbox fills while it reads them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final

import asyncpg
import orjson

from store.domain.accounts import REVERSAL_KINDS, debt_account
from store.domain.models import (
    COIN,
    DIAMOND,
    GiftReceipt,
    PurchaseReceipt,
    coins_account,
    diamonds_account,
    fingerprint,
)
from store.errors import StoreError
from store.scaled import keys
from store.scaled.client import AnyRedis, CommandBatcher, connect_redis
from store.scaled.items import ITEM_KEY_TTL, inventory_from_ledger, item_receipt
from store.scaled.keys import (
    CLUSTER,
    SEQ_PATTERN,
    SINGLE,
    SYSTEM_BALANCES,
    KeyLayout,
    gift_key,
    system_field,
    user_key,
    wallet_key,
)
from store.scaled.ledger import PostgresLedger
from store.scaled.outbox import SettleSweeper
from store.scaled.postgres import create_pool
from store.scaled.slots import slot_key
from store.scaled.wallet import DEFAULT_GIFT_KEY_TTL

DEFAULT_SEQ_JUMP: Final = 1_000_000
"""Far more events than any room publishes in the seconds Redis can lose."""
_USER_FIELDS: Final = {
    ("coins", COIN): "coin",
    ("diamonds", DIAMOND): "diamond",
    ("debt", COIN): "debt",
    ("withdrawing", DIAMOND): "withdrawing",
}
_CHUNK: Final = 1_000
_SETTLE_ROUNDS: Final = 1_000


class RepairError(StoreError):
    """The repair can't run safely (writes in progress) or can't place a balance."""


@dataclass
class RepairReport:
    dry_run: bool
    drained: int = 0
    """Outbox entries filed first."""
    balances: list[dict[str, Any]] = field(default_factory=list)
    """Hot balances moved to the ledger's value: account, asset, hot, ledger."""
    gift_keys: list[str] = field(default_factory=list)
    """Transactions whose gift idempotency record was written back."""
    payment_keys: list[str] = field(default_factory=list)
    item_keys: list[str] = field(default_factory=list)
    """Transactions whose item purchase idempotency record was written back."""
    inventory: list[str] = field(default_factory=list)
    """``buyer:item`` entries of inventories put back."""
    rooms_advanced: int = 0
    unrepaired: list[dict[str, Any]] = field(default_factory=list)
    """What the ledger shows but this repair leaves to a person."""

    @property
    def changed(self) -> bool:
        return bool(
            self.balances or self.gift_keys or self.payment_keys or self.item_keys or self.inventory
        )

    def public(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "drained": self.drained,
            "balances": self.balances,
            "gift_keys": len(self.gift_keys),
            "payment_keys": len(self.payment_keys),
            "item_keys": len(self.item_keys),
            "inventory": len(self.inventory),
            "rooms_advanced": self.rooms_advanced,
            "unrepaired": self.unrepaired,
        }


def hot_location(
    account: str, asset: str, *, system_balances: str = SYSTEM_BALANCES
) -> tuple[str, str]:
    """The Redis hash and field holding the hot balance of ``(account, asset)``. A
    system account's lives in ``system_balances``: on a cluster its balance is the
    sum over every slot's hash, so a correction may go to any one of them."""
    if account.startswith("user:"):
        _, _, rest = account.partition(":")
        user_id, _, kind = rest.rpartition(":")
        name = _USER_FIELDS.get((kind, asset))
        if not user_id or name is None:
            raise RepairError(f"no hot balance is kept for {account} ({asset})")
        return wallet_key(user_id), name
    return system_balances, system_field(account, asset)


async def repair_scaled(
    *,
    redis_url: str,
    database_url: str,
    window_seconds: float = 3_600,
    dry_run: bool = False,
    seq_jump: int = DEFAULT_SEQ_JUMP,
    now_ms: int | None = None,
) -> RepairReport:
    redis = connect_redis(redis_url)
    batcher = CommandBatcher(redis_url)
    pool = await create_pool(database_url)
    try:
        return await _repair(
            redis,
            pool,
            PostgresLedger(pool, redis, batcher=batcher),
            layout=SINGLE if batcher.cluster is None else CLUSTER,
            settle=SettleSweeper(batcher, consumer="repair", claim_idle_ms=0),
            window_ms=int(window_seconds * 1000),
            dry_run=dry_run,
            seq_jump=seq_jump,
            now=int(time.time() * 1000) if now_ms is None else now_ms,
        )
    finally:
        await pool.close()
        await batcher.close()
        await redis.aclose()


async def _repair(
    redis: AnyRedis,
    pool: asyncpg.Pool,
    ledger: PostgresLedger,
    *,
    layout: KeyLayout,
    settle: SettleSweeper | None = None,
    window_ms: int,
    dry_run: bool,
    seq_jump: int,
    now: int,
) -> RepairReport:
    report = RepairReport(dry_run=dry_run)
    # a cluster sums a system account over every slot: one slot takes the correction
    system_balances = layout.balances(slot_key(0, "bal")) if layout.cluster else SYSTEM_BALANCES
    report.drained = await ledger.drain(consumer="repair")
    if layout.cluster and settle is not None:
        # finish every gift first (credit, room step, each once by its marker): a
        # credit still to come would otherwise be booked twice, by this repair
        # and by the settle group later
        for _ in range(_SETTLE_ROUNDS):
            if not await settle.sweep():
                break
        report.drained += await ledger.drain(consumer="repair")

    # 1. Balances, from a snapshot that nothing wrote to while it was taken.
    hot = await ledger.hot_balances()
    async with pool.acquire() as conn:
        derived = {
            (row["account"], row["asset"]): int(row["s"])
            for row in await conn.fetch(
                "SELECT account, asset, sum(amount) AS s FROM postings GROUP BY account, asset"
            )
        }
        gifts = await _recent(
            conn, ["gift"], since=now - min(window_ms, DEFAULT_GIFT_KEY_TTL * 1000)
        )
        purchases = await _recent(conn, ["purchase"], since=now - window_ms)
        items = await _recent(conn, ["item"], since=0)  # inventories: every item bought
        reversals = await _recent(conn, list(REVERSAL_KINDS), since=now - window_ms)
    if await ledger.hot_balances() != hot or await ledger.lag() != 0:
        raise RepairError("balances are moving: stop gifting (the web nodes) and run it again")
    for account, asset in sorted(derived.keys() | hot.keys()):
        have, want = hot.get((account, asset), 0), derived.get((account, asset), 0)
        if have != want:
            hot_location(account, asset, system_balances=system_balances)  # fail early
            report.balances.append(
                {"account": account, "asset": asset, "hot": have, "ledger": want}
            )

    # 2. Idempotency records the ledger proves were used.
    gift_writes: list[tuple[str, bytes, int, str]] = []
    for record in await _missing(
        redis, gifts, lambda r: gift_key(r["meta"]["sender_id"], r["meta"]["key"])
    ):
        key, value = await _gift_record(pool, record)
        ttl = DEFAULT_GIFT_KEY_TTL - (now - record["created_at"]) // 1000
        if ttl > 0:
            gift_writes.append((key, value, ttl, record["id"]))
    payment_writes: list[tuple[str, bytes, str, str]] = []
    for record in await _missing(redis, purchases, lambda r: _payment_key(layout, r["meta"])):
        key, value = await _purchase_record(pool, record, layout=layout)
        payment_writes.append((key, value, record["meta"]["user_id"], record["id"]))
    for record in await _missing(
        redis,
        reversals,
        lambda r: layout.reversal(
            r["meta"]["provider"], r["meta"]["payment_id"], str(r["meta"].get("user_id", ""))
        ),
    ):
        report.unrepaired.append(
            {
                "tx": record["id"],
                "kind": record["kind"],
                "what": "its idempotency record is gone: don't send this reversal again",
                "payment": f"{record['meta']['provider']}:{record['meta']['payment_id']}",
            }
        )
    item_writes: list[tuple[str, bytes, int, str]] = []
    recent_items = [r for r in items if r["created_at"] >= now - ITEM_KEY_TTL * 1000]
    for record in await _missing(redis, recent_items, lambda r: item_receipt(r, balance=0)[0]):
        buyer = coins_account(record["meta"]["buyer_id"])
        key, value = item_receipt(record, balance=await _balance_after(pool, buyer, record["id"]))
        ttl = ITEM_KEY_TTL - (now - record["created_at"]) // 1000
        if ttl > 0:
            item_writes.append((key, value, ttl, record["id"]))
    inventory_writes = await _lost_inventory(redis, inventory_from_ledger(items))
    report.item_keys = [tx for *_, tx in item_writes]
    report.inventory = [f"{buyer}:{item}" for (buyer, item), _ in inventory_writes]
    report.gift_keys = [tx for *_, tx in gift_writes]
    report.payment_keys = [tx for *_, tx in payment_writes]
    if dry_run:
        return report

    async with redis.pipeline(transaction=False) as pipe:
        for entry in report.balances:
            name, slot = hot_location(
                entry["account"], entry["asset"], system_balances=system_balances
            )
            pipe.hincrby(name, slot, entry["ledger"] - entry["hot"])
        for key, value, ttl, _ in (*gift_writes, *item_writes):
            pipe.set(key, value, ex=ttl, nx=True)
        for (buyer, item), owned in inventory_writes:
            pipe.hset(user_key(buyer, keys.INVENTORY), item, owned)
        for key, value, user_id, _ in payment_writes:
            pipe.set(key, value, nx=True)
            pipe.hincrby(user_key(user_id, keys.ACCOUNT), "purchases", 1)
        await pipe.execute()
    if report.changed and seq_jump > 0:
        seqs = [key async for key in redis.scan_iter(match=SEQ_PATTERN, count=_CHUNK)]
        async with redis.pipeline(transaction=False) as pipe:
            for key in seqs:
                pipe.incrby(key, seq_jump)
            await pipe.execute()
        report.rooms_advanced = len(seqs)
    return report


async def _recent(conn: Any, kinds: Sequence[str], *, since: int) -> list[dict[str, Any]]:
    """Transactions of ``kinds`` created at or after ``since`` (ms), with postings."""
    rows = await conn.fetch(
        "SELECT t.id, t.kind, t.created_at, t.meta::text AS meta, p.account, p.asset, p.amount"
        " FROM transactions AS t JOIN postings AS p ON p.tx_id = t.id"
        " WHERE t.kind = ANY($1::text[]) AND t.created_at >= $2 ORDER BY t.id, p.n",
        list(kinds),
        since,
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = found.get(row["id"])
        if record is None:
            record = found[row["id"]] = {
                "id": row["id"],
                "kind": row["kind"],
                "created_at": row["created_at"],
                "meta": orjson.loads(row["meta"]),
                "postings": [],
            }
        record["postings"].append((row["account"], row["asset"], int(row["amount"])))
    return list(found.values())


async def _missing(
    redis: AnyRedis, records: list[dict[str, Any]], key_of: Any
) -> list[dict[str, Any]]:
    """The records whose idempotency key (``key_of(record)``) is not in Redis."""
    usable = [r for r in records if _has_key_fields(r)]
    missing: list[dict[str, Any]] = []
    for start in range(0, len(usable), _CHUNK):
        chunk = usable[start : start + _CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for record in chunk:
                pipe.exists(key_of(record))
            found = await pipe.execute()
        missing += [record for record, there in zip(chunk, found, strict=True) if not there]
    return missing


async def _lost_inventory(
    redis: AnyRedis, wanted: dict[tuple[str, str], str]
) -> list[tuple[tuple[str, str], str]]:
    """Inventory entries Redis lost, or holds with an earlier expiry than the ledger's."""
    owners = sorted(wanted)
    lost: list[tuple[tuple[str, str], str]] = []
    for start in range(0, len(owners), _CHUNK):
        chunk = owners[start : start + _CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for buyer, item in chunk:
                pipe.hget(user_key(buyer, keys.INVENTORY), item)
            found = await pipe.execute()
        for owner, stored in zip(chunk, found, strict=True):
            want = wanted[owner]
            have = stored.decode() if stored is not None else None
            if have is None or (have != want and _expiry(have) < _expiry(want)):
                lost.append((owner, want))
    return lost


def _expiry(entry: str) -> float:
    """An inventory entry's expiry, permanent ones last."""
    expires = entry.rpartition("|")[2]
    return float(expires) if expires else float("inf")


def _has_key_fields(record: dict[str, Any]) -> bool:
    meta = record["meta"]
    if record["kind"] == "item":
        return all(isinstance(meta.get(k), str) for k in ("buyer_id", "key", "item_id"))
    if record["kind"] == "gift":
        return all(isinstance(meta.get(k), str) for k in ("sender_id", "key", "room_id", "gift_id"))
    return all(isinstance(meta.get(k), str) for k in ("provider", "payment_id"))


async def _balance_after(pool: asyncpg.Pool, account: str, tx_id: str) -> int:
    """The account's coin balance right after ``tx_id`` (ids sort by creation time)."""
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM postings"
            " WHERE account = $1 AND asset = 'coin' AND tx_id <= $2",
            account,
            tx_id,
        )
    return int(value)


def _sum(record: dict[str, Any], account: str, asset: str) -> int:
    return sum(amount for acc, ass, amount in record["postings"] if acc == account and ass == asset)


def _as_receipt(cls: type[Any], values: dict[str, Any]) -> bytes:
    """The receipt JSON the wallet script stores (every field but ``replayed``)."""
    names = [f.name for f in fields(cls) if f.name != "replayed"]
    missing = [name for name in names if name not in values]
    if missing:
        raise RepairError(f"can't rebuild {cls.__name__}: no value for {missing}")
    return orjson.dumps({name: values[name] for name in names})


async def _gift_record(pool: asyncpg.Pool, record: dict[str, Any]) -> tuple[str, bytes]:
    meta = record["meta"]
    sender, creator = meta["sender_id"], meta.get("creator_id", "")
    receipt = {
        "tx": record["id"],
        "room_id": meta["room_id"],
        "stream_id": int(meta.get("stream_id", 0)),
        "creator_id": creator,
        "gift_id": meta["gift_id"],
        "count": int(meta["count"]),
        "coins": -_sum(record, coins_account(sender), COIN),
        "diamonds": _sum(record, diamonds_account(creator), DIAMOND),
        "balance": await _balance_after(pool, coins_account(sender), record["id"]),
        "created_at": record["created_at"],
    }
    # as GiftRequest.fingerprint()
    stamp = fingerprint("gift", meta["room_id"], meta["gift_id"], int(meta["count"]))
    return gift_key(sender, meta["key"]), stamp.encode() + _as_receipt(GiftReceipt, receipt)


def _payment_key(layout: KeyLayout, meta: dict[str, Any]) -> str:
    return layout.payment(meta["provider"], meta["payment_id"], str(meta.get("user_id", "")))


async def _purchase_record(
    pool: asyncpg.Pool, record: dict[str, Any], *, layout: KeyLayout
) -> tuple[str, bytes]:
    meta = record["meta"]
    user = meta["user_id"]
    debt_paid = _sum(record, debt_account(user), COIN)
    credited = _sum(record, coins_account(user), COIN) + debt_paid
    receipt = {
        "tx": record["id"],
        "package_id": meta["package_id"],
        "coins": credited,
        "balance": await _balance_after(pool, coins_account(user), record["id"]),
        "created_at": record["created_at"],
        "bonus": -_sum(record, "platform:promotions", COIN),
        "user_id": user,
        "debt_paid": debt_paid,
        "promotions": [p["id"] for p in meta.get("promotions", []) if isinstance(p, dict)],
    }
    # as PurchaseRequest.fingerprint()
    stamp = fingerprint("purchase", user, meta["package_id"])
    return _payment_key(layout, meta), stamp.encode() + _as_receipt(PurchaseReceipt, receipt)


__all__ = ["RepairError", "RepairReport", "hot_location", "repair_scaled"]

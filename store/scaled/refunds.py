"""Reversals of purchases (refunds, chargebacks) and the settlement of the debt
they leave, on the scaled engine: ``refund.lua`` and ``settle_debt.lua``.

A reversal whose coins were partly spent claws diamonds back from the gifts
made after the purchase (``store.domain.rules``): the script needs those gifts
and their creators' wallets in KEYS, so they are read from the ledger first.
A gift landing between that read and the script would escape the clawback, so
the read is tied to the wallet's ``spends`` count (bumped by every gift and item
purchase in the same hash) and the script refuses to run on a stale read; the caller reads again.

On a cluster (``KeyLayout.cluster``) the creators' wallets are on other slots.
``refund.lua`` then runs on the buyer's slot alone (payment and reversal keys,
wallet, that slot's system balances and outbox): the caller reads what each
creator holds first (``claw_holding.lua``: the balance plus the credits of the
clawed gifts still on their way), the script applies the same rule to those
holdings and appends the whole reversal, and each creator's clawback follows as
a credit step with a negative amount on the creator's slot, keyed by the
reversal's tx id (``credit_marker_key``): run twice, it claws once, and the
settle sweeper runs it again for a node that died in between. A creator whose
diamonds shrink between that read and the clawback (a withdrawal in the same
milliseconds) can be left below zero, which blocks their withdrawals until
earnings make up for it; on a single Redis the clawback stops at zero.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson

from store.domain import accounts as money
from store.domain import refusals
from store.domain.models import DIAMOND, WORLD, coins_account, diamonds_account
from store.domain.rules import MAX_CLAWBACK_GIFTS, GiftSpend
from store.errors import StoreError
from store.ids import id_ms, new_id, now_ms
from store.roles import Ledger
from store.scaled import credits, keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import entry_head, members
from store.scaled.gifts import STEP_MARKER_TTL
from store.scaled.keys import (
    SINGLE,
    KeyLayout,
    credit_marker_key,
    hashed,
    payment_owner_key,
    user_key,
    wallet_key,
)

_REFUND: Final = load_script("refund")
_SETTLE_DEBT: Final = load_script("settle_debt")
_CLAW_HOLDING: Final = load_script("claw_holding")
_HISTORY_PAGE: Final = 200
SPENDING_KINDS: Final = ("gift", "item")
"""Coins spent on items count like coins spent on gifts (an item bought outside a
room has creator "" and nothing to claw back)."""
_ATTEMPTS: Final = 20
"""Reads of the gifts before giving up on a user who keeps gifting (rate limited)."""


async def refund(
    batcher: CommandBatcher,
    ledger: Ledger,
    request: money.RefundRequest,
    *,
    layout: KeyLayout = SINGLE,
) -> money.RefundReceipt:
    purchase = await _purchase(batcher, layout, request)
    user_id = purchase.get("user_id") or ""
    if not user_id:
        raise refusals.PAYMENT_NOT_FOUND()
    tx_id = new_id("tx")
    now = request.now if request.now is not None else now_ms()
    read_gifts = False
    for _ in range(_ATTEMPTS):
        gifts: list[GiftSpend] = []
        coins, spends = await batcher.execute("HMGET", wallet_key(user_id), "coin", "spends")
        seen = ""
        if read_gifts or int(coins or 0) < int(purchase["coins"]):
            seen = text(spends or b"0")
            gifts = await gifts_after(ledger, user_id, purchase["tx"])
        holdings = await _holdings(batcher, gifts) if layout.cluster else None
        call_keys, args = _refund_call(request, user_id, gifts, tx_id, now, layout, holdings)
        reply = checked_reply(
            await batcher.evalsha(_REFUND, call_keys, (*args, seen), retry_on_disconnect=True)
        )
        if reply[0] == b"G":
            read_gifts = True
            continue
        if reply[0] != b"S":
            if reply[0] == b"OK" and layout.cluster:
                claws = orjson.loads(reply[2])
                await credits.apply(batcher, credits.clawbacks(tx_id, claws))
            return money.RefundReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
        user_id = text(reply[1])
    raise StoreError("the refunded purchase kept changing under a stream of gifts; try again")


async def _purchase(
    batcher: CommandBatcher, layout: KeyLayout, request: money.RefundRequest
) -> dict[str, Any]:
    """The stored purchase (``{}``: none). On a cluster its key is in the buyer's
    slot, found through the payment's owner key (``store.scaled.owners``)."""
    user_id = ""
    if layout.cluster:
        owner_key = payment_owner_key(request.provider, request.payment_id)
        owner = await batcher.execute("GET", owner_key)
        if owner is None:
            return {}
        user_id = text(owner)
    raw = await batcher.execute(
        "GET", layout.payment(request.provider, request.payment_id, user_id)
    )
    return dict(orjson.loads(raw[32:])) if raw is not None else {}


async def _holdings(batcher: CommandBatcher, gifts: list[GiftSpend]) -> dict[str, int]:
    """What each creator of ``gifts`` holds for a clawback (cluster): the balance,
    plus the diamonds of those gifts whose credit has not landed yet (a gift's
    credit follows its debit; the clawback and that credit only add, so they
    commute). A gift older than half the markers' life was credited long ago."""
    recent = now_ms() - STEP_MARKER_TTL * 1000 // 2  # half the markers' life, in ms
    pending: dict[str, list[GiftSpend]] = {}
    for gift in gifts:
        if gift.creator_id:
            late = pending.setdefault(gift.creator_id, [])
            if gift.diamonds > 0 and id_ms(gift.tx) >= recent:
                late.append(gift)
    held = await asyncio.gather(
        *(
            batcher.evalsha(
                _CLAW_HOLDING,
                (
                    wallet_key(creator),
                    *(credit_marker_key(creator, gift.tx) for gift in late),
                ),
                tuple(gift.diamonds for gift in late),
                retry_on_disconnect=True,
            )
            for creator, late in pending.items()
        )
    )
    return {creator: int(h) for creator, h in zip(pending, held, strict=True)}


def _refund_call(
    request: money.RefundRequest,
    user_id: str,
    gifts: list[GiftSpend],
    tx_id: str,
    now: int,
    layout: KeyLayout,
    holdings: dict[str, int] | None,
) -> tuple[tuple[str, ...], tuple[Arg, ...]]:
    """KEYS and ARGV of ``refund.lua``; ``holdings`` (cluster): what each creator
    holds, read by the caller, whose wallets are then left out of KEYS."""
    creators = list(dict.fromkeys(gift.creator_id for gift in gifts if gift.creator_id))
    number = {"": 0} | {creator: n for n, creator in enumerate(creators, start=1)}
    wallet = wallet_key(user_id)
    call_keys = (
        layout.reversal(request.provider, request.payment_id, user_id),
        layout.payment(request.provider, request.payment_id, user_id),
        wallet,
        layout.balances(wallet),
        layout.outbox(wallet),
        *(wallet_key(creator) for creator in creators if holdings is None),
    )
    args: list[Arg] = [
        request.fingerprint(),
        user_id,
        entry_head(tx_id, request.kind, now),
        members(
            {
                "user_id": user_id,
                "provider": request.provider,
                "payment_id": request.payment_id,
                "reason": request.reason,
            }
        ),
        members(
            {
                "tx": tx_id,
                "kind": request.kind,
                "user_id": user_id,
                "provider": request.provider,
                "payment_id": request.payment_id,
                "created_at": now,
            }
        ),
        orjson.dumps(coins_account(user_id)),
        orjson.dumps(money.debt_account(user_id)),
        len(creators),
    ]
    for creator in creators:
        held = "" if holdings is None else holdings[creator]
        args += [orjson.dumps(creator), orjson.dumps(diamonds_account(creator)), held]
    args.append(len(gifts))
    for gift in gifts:
        args += [number[gift.creator_id], gift.coins, gift.diamonds]
    return call_keys, tuple(args)


async def gifts_after(ledger: Ledger, user_id: str, after_tx: str) -> list[GiftSpend]:
    """The user's gifts newer than ``after_tx``, newest first (at most
    ``MAX_CLAWBACK_GIFTS``), from the ledger (outbox included)."""
    coins = coins_account(user_id)
    gifts: list[GiftSpend] = []
    before: str | None = None
    while len(gifts) < MAX_CLAWBACK_GIFTS:
        page = await ledger.transactions(user_id, before=before, limit=_HISTORY_PAGE)
        for record in page:
            if record.id <= after_tx or len(gifts) >= MAX_CLAWBACK_GIFTS:
                return gifts
            spent = -sum(p.amount for p in record.postings if p.account == coins)
            creator = record.meta.get("creator_id")
            if record.kind not in SPENDING_KINDS or spent <= 0 or not isinstance(creator, str):
                continue
            diamonds = sum(p.amount for p in record.postings if p.asset == DIAMOND and p.amount > 0)
            gifts.append(GiftSpend(record.id, creator, spent, diamonds))
        if len(page) < _HISTORY_PAGE:
            break
        before = page[-1].id
    return gifts


async def settle_debt(
    batcher: CommandBatcher, request: money.DebtSettlement, *, layout: KeyLayout = SINGLE
) -> money.DebtReceipt:
    tx_id = new_id("tx")
    now = request.now if request.now is not None else now_ms()
    meta = orjson.dumps(
        {
            "user_id": request.user_id,
            "method": request.method,
            "by": request.by,
            "note": request.note,
            "key": request.key,
        }
    )
    receipt = members(
        {"tx": tx_id, "user_id": request.user_id, "method": request.method, "created_at": now}
    )
    wallet = wallet_key(request.user_id)
    reply = checked_reply(
        await batcher.evalsha(
            _SETTLE_DEBT,
            (
                user_key(request.user_id, hashed(keys.DEBT_KEY, request.key)),
                wallet,
                layout.balances(wallet),
                layout.outbox(wallet),
            ),
            (
                request.fingerprint(),
                entry_head(tx_id, "debt_settlement", now),
                meta,
                WORLD if request.method == money.SETTLED_PAID else money.PLATFORM_WRITEOFF,
                orjson.dumps(money.debt_account(request.user_id)),
                receipt,
            ),
            retry_on_disconnect=True,
        )
    )
    return money.DebtReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")

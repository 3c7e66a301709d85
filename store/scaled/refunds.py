"""Reversals of purchases (refunds, chargebacks) and the settlement of the debt
they leave, on the scaled engine: ``refund.lua`` and ``settle_debt.lua``.

A reversal whose coins were partly spent claws diamonds back from the gifts
made after the purchase (``store.domain.rules``): the script needs those gifts
and their creators' wallets in KEYS, so they are read from the ledger first.
A gift landing between that read and the script would escape the clawback, so
the read is tied to the wallet's ``spends`` count (bumped by every gift and item
purchase in the same hash) and the script refuses to run on a stale read; the caller reads again.
"""

from __future__ import annotations

from typing import Final

import orjson

from store.domain import accounts as money
from store.domain import refusals
from store.domain.models import DIAMOND, WORLD, coins_account, diamonds_account
from store.domain.rules import MAX_CLAWBACK_GIFTS, GiftSpend
from store.errors import StoreError
from store.ids import new_id, now_ms
from store.roles import Ledger
from store.scaled import keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import entry_head, members
from store.scaled.keys import hashed, payment_key, reversal_key, user_key, wallet_key

_REFUND: Final = load_script("refund")
_SETTLE_DEBT: Final = load_script("settle_debt")
_HISTORY_PAGE: Final = 200
SPENDING_KINDS: Final = ("gift", "item")
"""Coins spent on items count like coins spent on gifts (an item bought outside a
room has creator "" and nothing to claw back)."""
_ATTEMPTS: Final = 20
"""Reads of the gifts before giving up on a user who keeps gifting (rate limited)."""


async def refund(
    batcher: CommandBatcher, ledger: Ledger, request: money.RefundRequest
) -> money.RefundReceipt:
    raw = await batcher.execute("GET", payment_key(request.provider, request.payment_id))
    purchase = orjson.loads(raw[32:]) if raw is not None else {}
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
        call_keys, args = _refund_call(request, user_id, gifts, tx_id, now)
        reply = checked_reply(
            await batcher.evalsha(_REFUND, call_keys, (*args, seen), retry_on_disconnect=True)
        )
        if reply[0] == b"G":
            read_gifts = True
            continue
        if reply[0] != b"S":
            return money.RefundReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
        user_id = text(reply[1])
    raise StoreError("the refunded purchase kept changing under a stream of gifts; try again")


def _refund_call(
    request: money.RefundRequest, user_id: str, gifts: list[GiftSpend], tx_id: str, now: int
) -> tuple[tuple[str, ...], tuple[Arg, ...]]:
    creators = list(dict.fromkeys(gift.creator_id for gift in gifts if gift.creator_id))
    number = {"": 0} | {creator: n for n, creator in enumerate(creators, start=1)}
    call_keys = (
        reversal_key(request.provider, request.payment_id),
        payment_key(request.provider, request.payment_id),
        wallet_key(user_id),
        keys.SYSTEM_BALANCES,
        keys.OUTBOX,
        *(wallet_key(creator) for creator in creators),
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
        args += [orjson.dumps(creator), orjson.dumps(diamonds_account(creator))]
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


async def settle_debt(batcher: CommandBatcher, request: money.DebtSettlement) -> money.DebtReceipt:
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
    reply = checked_reply(
        await batcher.evalsha(
            _SETTLE_DEBT,
            (
                user_key(request.user_id, hashed(keys.DEBT_KEY, request.key)),
                wallet_key(request.user_id),
                keys.SYSTEM_BALANCES,
                keys.OUTBOX,
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

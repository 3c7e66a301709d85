"""Crediting a coin purchase on the scaled engine: one call of ``purchase.lua``,
once per payment id (the payment key never expires: a provider may redeliver a
webhook days later). On a Redis Cluster every key of it is in the buyer's slot
(``KeyLayout``): the payment key beside the wallet, that slot's system balances
and outbox; a claim in the payment's own slot, set once, refuses the same
payment id for another user."""

from __future__ import annotations

from typing import Final

import orjson

from store.domain import refusals
from store.domain.accounts import debt_account, purchase_receipt
from store.domain.models import PurchaseReceipt, PurchaseRequest, coins_account
from store.ids import new_id, now_ms
from store.scaled import keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import entry_head, flag, members
from store.scaled.keys import SINGLE, KeyLayout, user_key, wallet_key

_PURCHASE: Final = load_script("purchase")


async def purchase(
    batcher: CommandBatcher, request: PurchaseRequest, *, layout: KeyLayout = SINGLE
) -> PurchaseReceipt:
    """The payment key, the wallet, the account and the system balances and
    outbox ``layout`` puts in the buyer's slot: one script on a cluster too."""
    package = request.package
    user_id = request.user.id
    tx_id = new_id("tx")
    created_at = request.now if request.now is not None else now_ms()
    meta = members(request.meta())
    receipt = members(
        {"tx": tx_id, "package_id": package.id, "created_at": created_at, "user_id": user_id}
    )
    wallet = wallet_key(user_id)
    owner = layout.payment_owner(request.provider, request.payment_id)
    if owner is not None:
        # claimed first and never released: a crash before the script leaves the
        # claim to this user, whose retry goes through
        claimed = await batcher.execute("SET", owner, user_id, "NX", "GET")
        if claimed is not None and text(claimed) != user_id:
            raise refusals.KEY_REUSED()
    grants: list[Arg] = [len(request.promotions)]
    for grant in request.promotions:
        grants += [orjson.dumps(grant.id), grant.coins, flag(grant.first_purchase)]
    reply = checked_reply(
        await batcher.evalsha(
            _PURCHASE,
            (
                layout.payment(request.provider, request.payment_id, user_id),
                wallet,
                layout.balances(wallet),
                layout.outbox(wallet),
                user_key(user_id, keys.ACCOUNT),
            ),
            (
                request.fingerprint(),
                flag(request.user.adult),
                package.coins + package.bonus,
                entry_head(tx_id, "purchase", created_at),
                meta,
                receipt,
                flag(request.enforce_limits),
                orjson.dumps(coins_account(user_id)),
                orjson.dumps(debt_account(user_id)),
                *grants,
            ),
            retry_on_disconnect=True,
        )
    )
    return purchase_receipt(orjson.loads(reply[1]), replayed=reply[0] == b"R")

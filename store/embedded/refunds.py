"""Reversing purchases and settling debt on the embedded engine, as functions of
a connection run in the writer thread.

A refund or chargeback takes the purchase's coins back from the balance; what
was already spent becomes debt (locking the account) and is clawed back from
the creators who earned diamonds from it, as far as they still hold them
(``store.domain.rules.clawbacks``). Settling the debt unlocks the account.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from store.domain import refusals
from store.domain.accounts import (
    PLATFORM_WRITEOFF,
    SETTLED_PAID,
    DebtReceipt,
    DebtSettlement,
    RefundReceipt,
    RefundRequest,
)
from store.domain.models import WORLD, coins_account
from store.domain.postings import refund_postings, settlement_postings
from store.domain.rules import MAX_CLAWBACK_GIFTS, GiftSpend, clawbacks
from store.embedded.journal import (
    IdempotencyKey,
    coins_of,
    debt_of,
    diamonds_of,
    journal,
    receipt_body,
    stored_result,
)
from store.embedded.schema import USER_POSTING

_GIFTS_AFTER: Final = (
    "SELECT p.tx_id, json_extract(t.meta, '$.creator_id'), -p.amount, "
    "(SELECT sum(d.amount) FROM postings AS d WHERE d.tx_id = p.tx_id "
    " AND d.asset = 'diamond' AND d.amount > 0) "
    "FROM postings AS p JOIN transactions AS t ON t.id = p.tx_id "
    f"WHERE p.account = :coins AND p.{USER_POSTING} AND p.tx_id > :after "
    "AND t.kind IN ('gift', 'item') "
    "ORDER BY p.tx_id DESC LIMIT :limit"
)


def gifts_after(conn: sqlite3.Connection, user_id: str, after_tx: str) -> list[GiftSpend]:
    """The user's gifts and item purchases newer than transaction ``after_tx``,
    newest first (at most ``MAX_CLAWBACK_GIFTS``): coins spent on an item count
    like coins spent on a gift (an item's creator share is clawed back; an item
    without one, creator ``""``, has nothing to claw back)."""
    rows = conn.execute(
        _GIFTS_AFTER,
        {"coins": coins_account(user_id), "after": after_tx, "limit": MAX_CLAWBACK_GIFTS},
    ).fetchall()
    return [
        GiftSpend(tx=tx, creator_id=creator, coins=int(coins), diamonds=int(diamonds or 0))
        for tx, creator, coins, diamonds in rows
        if creator is not None
    ]


def refund(conn: sqlite3.Connection, request: RefundRequest, tx: str, now: int) -> RefundReceipt:
    """See ``store.roles.Wallet.refund``: once per payment, whatever the kind."""
    key = IdempotencyKey(f"reversal:{request.provider}", request.payment_id, request.fingerprint())
    stored = key.lookup(conn)
    if stored is not None:
        return RefundReceipt(**stored, replayed=True)
    purchase = stored_result(conn, f"payment:{request.provider}", request.payment_id)
    if purchase is None or not purchase.get("user_id"):
        raise refusals.PAYMENT_NOT_FOUND()
    user_id: str = purchase["user_id"]
    credit = int(purchase["coins"])
    bonus = int(purchase.get("bonus", 0))
    purchase_tx: str = purchase["tx"]
    coins = coins_of(conn, user_id)
    debt_before = debt_of(conn, user_id)
    taken = min(coins, credit)
    shortfall = credit - taken
    claws: list[tuple[str, int]] = []
    if shortfall:
        gifts = gifts_after(conn, user_id, purchase_tx)
        holdings = {g.creator_id: diamonds_of(conn, g.creator_id) for g in gifts}
        claws = clawbacks(shortfall, gifts, holdings)
    clawed = sum(d for _, d in claws)
    receipt = RefundReceipt(
        tx=tx,
        kind=request.kind,
        user_id=user_id,
        provider=request.provider,
        payment_id=request.payment_id,
        purchase_tx=purchase_tx,
        coins=credit,
        taken=taken,
        debt=shortfall,
        clawed_back=clawed,
        debt_after=debt_before + shortfall - clawed,
        created_at=now,
    )
    journal(
        conn,
        tx_id=tx,
        kind=request.kind,
        created_at=now,
        meta={
            "user_id": user_id,
            "provider": request.provider,
            "payment_id": request.payment_id,
            "purchase_tx": purchase_tx,
            "reason": request.reason,
            "coins": credit,
            "taken": taken,
            "debt": shortfall,
            "clawbacks": [{"creator_id": c, "diamonds": d} for c, d in claws],
        },
        postings=refund_postings(
            user_id=user_id,
            paid=credit - bonus,
            bonus=bonus,
            taken=taken,
            debt_change=clawed - shortfall,
            clawbacks=claws,
        ),
    )
    key.remember(conn, receipt_body(receipt))
    return receipt


def settle_debt(
    conn: sqlite3.Connection, request: DebtSettlement, tx: str, now: int
) -> DebtReceipt:
    """See ``store.roles.Wallet.settle_debt``: the whole debt, once per key."""
    key = IdempotencyKey(f"settle:{request.user_id}", request.key, request.fingerprint())
    stored = key.lookup(conn)
    if stored is not None:
        return DebtReceipt(**stored, replayed=True)
    debt = debt_of(conn, request.user_id)
    if debt <= 0:
        raise refusals.NO_DEBT()
    source = WORLD if request.method == SETTLED_PAID else PLATFORM_WRITEOFF
    receipt = DebtReceipt(
        tx=tx, user_id=request.user_id, method=request.method, coins=debt, created_at=now
    )
    journal(
        conn,
        tx_id=tx,
        kind="debt_settlement",
        created_at=now,
        meta={
            "user_id": request.user_id,
            "method": request.method,
            "by": request.by,
            "note": request.note,
            "key": request.key,
        },
        postings=settlement_postings(user_id=request.user_id, source=source, coins=debt),
    )
    key.remember(conn, receipt_body(receipt))
    return receipt

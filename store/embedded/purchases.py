"""Buying coins on the embedded engine: the checks and the credit of one purchase,
as functions of a connection run in the writer thread.

Checks, in order (``store.roles.Wallet.purchase``): the payment key, an adult
buyer, then with ``enforce_limits`` purchases on. Only then the credit is
written: the package plus the promotions it earns, paying off any chargeback
debt first (a locked account may buy: that is how its owner pays the debt).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from store.domain import refusals
from store.domain.accounts import PLATFORM_PROMOTIONS, debt_account, purchase_receipt
from store.domain.models import (
    COIN,
    WORLD,
    Posting,
    PurchaseReceipt,
    PurchaseRequest,
    coins_account,
)
from store.embedded.journal import IdempotencyKey, coins_of, debt_of, journal, receipt_body


@dataclass(frozen=True, slots=True)
class PurchasePlan:
    """A purchase that passed the rules: what it credits and how."""

    paid: int
    """Coins from ``world`` (the package's coins and bulk bonus)."""
    bonus: int
    """Coins from ``platform:promotions``."""
    promotions: tuple[str, ...]
    debt_paid: int
    """Coins that pay off debt instead of reaching the balance."""
    postings: tuple[Posting, ...]
    meta: dict[str, Any]


def check_purchase_rules(
    conn: sqlite3.Connection, request: PurchaseRequest, paid: int
) -> PurchasePlan:
    """Check (3) of a purchase (with ``enforce_limits``), then what it
    credits: promotions (a first-purchase one only for a first purchase) and the
    debt it pays off. Reads only."""
    user_id = request.user.id
    row = conn.execute(
        "SELECT purchases_off, purchases FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchone()
    purchases_off, purchases = (bool(row[0]), int(row[1])) if row else (False, 0)
    debt = debt_of(conn, user_id)
    if request.enforce_limits and purchases_off:
        raise refusals.PURCHASES_OFF()
    grants = [
        g for g in request.promotions if g.coins > 0 and (purchases == 0 or not g.first_purchase)
    ]
    bonus = sum(g.coins for g in grants)
    credit = paid + bonus
    debt_paid = min(debt, credit)
    postings = [Posting(WORLD, COIN, -paid)]
    if bonus:
        postings.append(Posting(PLATFORM_PROMOTIONS, COIN, -bonus))
    if debt_paid:
        postings.append(Posting(debt_account(user_id), COIN, debt_paid))
    if credit > debt_paid:
        postings.append(Posting(coins_account(user_id), COIN, credit - debt_paid))
    meta: dict[str, Any] = {}
    if grants:
        meta["promotions"] = [{"id": g.id, "coins": g.coins} for g in grants]
    if debt_paid:
        meta["debt_paid"] = debt_paid
    return PurchasePlan(
        paid=paid,
        bonus=bonus,
        promotions=tuple(g.id for g in grants),
        debt_paid=debt_paid,
        postings=tuple(postings),
        meta=meta,
    )


def purchase(
    conn: sqlite3.Connection, request: PurchaseRequest, tx: str, created_at: int
) -> PurchaseReceipt:
    """Checks and credit: see ``store.roles.Wallet.purchase``."""
    key = IdempotencyKey(f"payment:{request.provider}", request.payment_id, request.fingerprint())
    stored = key.lookup(conn)
    if stored is not None:
        return purchase_receipt(stored, replayed=True)
    if not request.user.adult:
        raise refusals.MINOR_BUYER()
    user_id = request.user.id
    package = request.package
    credit = package.coins + package.bonus
    plan = check_purchase_rules(conn, request, credit)
    receipt = PurchaseReceipt(
        tx=tx,
        package_id=package.id,
        coins=credit + plan.bonus,
        balance=coins_of(conn, user_id) + credit + plan.bonus - plan.debt_paid,
        created_at=created_at,
        bonus=plan.bonus,
        user_id=user_id,
        debt_paid=plan.debt_paid,
        promotions=plan.promotions,
    )
    journal(
        conn,
        tx_id=receipt.tx,
        kind="purchase",
        created_at=receipt.created_at,
        meta={**request.meta(), **plan.meta},
        postings=plan.postings,
    )
    # Count a credited purchase (the first-purchase bonus needs none before).
    conn.execute(
        "INSERT INTO accounts (user_id, purchases) VALUES (?, 1) "
        "ON CONFLICT (user_id) DO UPDATE SET purchases = purchases + 1",
        (user_id,),
    )
    key.remember(conn, receipt_body(receipt))
    return receipt

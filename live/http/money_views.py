"""The JSON shapes of the money API: receipts, limits, earnings, withdrawals and
the per-user view of the ledger history."""

from __future__ import annotations

import dataclasses
from typing import Any

from live.actions.money import PendingPayment
from live.money_config import cash
from live.settings import Settings
from store.domain.accounts import (
    CHARGEBACK,
    REFUND,
    Account,
    DebtReceipt,
    Earnings,
    RefundReceipt,
    Withdrawal,
    debt_account,
    withdrawing_account,
)
from store.domain.models import (
    COIN,
    DIAMOND,
    PurchaseReceipt,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.domain.rules import effective_cap, local_date_of_hour, local_periods, zone
from store.ids import now_ms


def receipt_public(receipt: RefundReceipt | DebtReceipt) -> dict[str, Any]:
    """A refund's or a debt settlement's receipt: every field, in order."""
    return {f.name: getattr(receipt, f.name) for f in dataclasses.fields(receipt)}


def purchase_public(receipt: PurchaseReceipt) -> dict[str, Any]:
    return {
        "status": "credited",
        "tx": receipt.tx,
        "package": receipt.package_id,
        "coins": receipt.coins,
        "bonus": receipt.bonus,
        "promotions": list(receipt.promotions),
        "debt_paid": receipt.debt_paid,
        "balance": {"coins": receipt.balance},
        "replayed": receipt.replayed,
    }


def pending_public(payment: PendingPayment) -> dict[str, Any]:
    """A payment the client completes with its provider (``client``: what the
    provider's client library needs), credited when the provider confirms it."""
    package = payment.package
    return {
        "status": "pending",
        "provider": payment.provider,
        "payment_id": payment.payment_id,
        "package": package.id,
        "amount_minor": package.price_minor,
        "currency": package.currency,
        "client": dict(payment.client),
    }


def limits_public(settings: Settings, account: Account) -> dict[str, Any]:
    limits = account.limits
    day, month = local_periods(now_ms(), limits.tz)
    return {
        **limits.public(),
        "pin_set": account.pin_set,
        "effective_daily_cap": effective_cap(settings.daily_spend_cap, limits.daily_cap),
        "effective_monthly_cap": effective_cap(settings.monthly_spend_cap, limits.monthly_cap),
        "platform_daily_cap": settings.daily_spend_cap or None,
        "platform_monthly_cap": settings.monthly_spend_cap or None,
        "spent_today": account.day_spent if account.spent_day == day else 0,
        "spent_this_month": account.month_spent if account.spent_month == month else 0,
        "locked": account.locked,
        "debt": account.debt,
    }


def earnings_public(
    settings: Settings, earnings: Earnings, *, tz: str, days: int, now: int
) -> dict[str, Any]:
    zone(tz)
    by_day: dict[str, int] = {}
    for hour, diamonds in earnings.hours:
        day = local_date_of_hour(hour, tz)
        by_day[day] = by_day.get(day, 0) + diamonds
    recent = sorted(by_day.items(), reverse=True)[:days]
    return {
        "user_id": earnings.user_id,
        "diamonds": earnings.balance,
        "held": earnings.held,
        "withdrawable": earnings.withdrawable,
        "pending_withdrawal": earnings.pending,
        "withdrawn": earnings.paid,
        "lifetime": earnings.lifetime,
        "next_release_at": earnings.next_release_at,
        "hold_seconds": settings.hold_seconds,
        "verified": earnings.verified,
        "cash": {
            "rate": settings.diamond_cash_rate,
            "diamonds": cash(settings, earnings.balance),
            "withdrawable": cash(settings, earnings.withdrawable),
        },
        "withdrawal_min": settings.withdrawal_min_diamonds,
        "withdrawal_daily_max": settings.withdrawal_daily_max_diamonds or None,
        "by_stream": [
            {"room_id": s.room_id, "stream_id": s.stream_id, "diamonds": s.diamonds}
            for s in earnings.streams
        ],
        "by_day": [{"date": day, "diamonds": d} for day, d in recent],
        "tz": tz,
        "as_of": now,
    }


def withdrawal_public(settings: Settings, withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        **withdrawal.public(),
        "cash": cash(settings, withdrawal.diamonds),
        "replayed": withdrawal.replayed,
    }


def _counterparty(record: TransactionRecord, user_id: str, sent: bool) -> dict[str, str] | None:
    meta = record.meta
    kind = record.kind
    if kind == "purchase":
        return {"type": "provider", "id": str(meta.get("provider", ""))}
    if kind == "gift":
        other = meta.get("creator_id") if sent else meta.get("sender_id")
        return {"type": "user", "id": str(other or "")}
    if kind in (REFUND, CHARGEBACK):
        if meta.get("user_id") == user_id:
            return {"type": "provider", "id": str(meta.get("provider", ""))}
        return {"type": "user", "id": str(meta.get("user_id", ""))}
    if kind == "debt_settlement":
        return {"type": "platform", "id": str(meta.get("method", ""))}
    if kind.startswith("withdrawal"):
        return {"type": "payout", "id": str(meta.get("method", "") or meta.get("reference", ""))}
    return None


def transaction_public(record: TransactionRecord, user_id: str) -> dict[str, Any]:
    """A transaction as the user sees it: what it did to their coins, diamonds,
    debt and withdrawals, who was on the other side and in which room (the raw
    postings and meta stay, for accountants)."""
    changes = {
        (coins_account(user_id), COIN): 0,
        (diamonds_account(user_id), DIAMOND): 0,
        (debt_account(user_id), COIN): 0,
        (withdrawing_account(user_id), DIAMOND): 0,
    }
    for p in record.postings:
        if (p.account, p.asset) in changes:
            changes[(p.account, p.asset)] += p.amount
    coins = changes[(coins_account(user_id), COIN)]
    meta = record.meta
    sent = record.kind == "gift" and meta.get("sender_id") == user_id
    view: dict[str, Any] = {
        **record.public(),
        "coins": coins,
        "diamonds": changes[(diamonds_account(user_id), DIAMOND)],
        "debt": -changes[(debt_account(user_id), COIN)],
        "withdrawing": changes[(withdrawing_account(user_id), DIAMOND)],
        "counterparty": _counterparty(record, user_id, sent),
        "room_id": meta.get("room_id"),
    }
    if record.kind == "gift":
        view["direction"] = "sent" if sent else "received"
        # as it was when sent (older records have no name or unit price)
        view["gift"] = {
            "id": meta.get("gift_id"),
            "count": meta.get("count"),
            "name": meta.get("gift_name"),
            "coins": meta.get("gift_coins"),
        }
    if record.kind == "item":
        # as it was when bought; a buyer sees what they paid, a creator their share
        view["direction"] = "bought" if meta.get("buyer_id") == user_id else "received"
        view["item"] = {
            "id": meta.get("item_id"),
            "kind": meta.get("item_kind"),
            "name": meta.get("item_name"),
            "coins": meta.get("item_coins"),
            "expires_at": meta.get("expires_at"),
        }
    if record.kind == "purchase":
        view["bonus"] = sum(p.get("coins", 0) for p in meta.get("promotions", []))
        view["package"] = meta.get("package_id")
        view["debt_paid"] = meta.get("debt_paid", 0)
    if record.kind.startswith("withdrawal"):
        view["withdrawal_id"] = meta.get("withdrawal_id")
    return view

"""The money actions of the product, over the engine's wallet: buying coins (with
promotions, parental controls and rate limits checked before any charge),
provider webhooks, refunds, debt, limits, earnings and withdrawals, and the
per-user view of the ledger history.

The wallet enforces every rule atomically (``store.base.Wallet``); what is
checked here as well is checked *before* money moves outside (a charge, a
payout), where a refusal afterwards would be too late.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any, Final

from live.errors import LiveError
from live.payments import (
    PAYMENT_CHARGEBACK,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    PayoutProvider,
    WebhookError,
)
from store.domain import refusals
from store.domain.accounts import (
    CHARGEBACK,
    FAILED,
    PAID,
    REFUND,
    Account,
    DebtReceipt,
    DebtSettlement,
    Earnings,
    LimitsRequest,
    RefundReceipt,
    RefundRequest,
    UserLimits,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
    debt_account,
    withdrawing_account,
)
from store.domain.models import (
    COIN,
    DIAMOND,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    TransactionRecord,
    coins_account,
    diamonds_account,
)
from store.domain.rules import (
    effective_cap,
    local_date_of_hour,
    local_periods,
    zone,
)
from store.ids import now_ms

if TYPE_CHECKING:
    from live.services import Services

log = logging.getLogger("live.money")

MAX_EARNING_DAYS: Final = 366


# --------------------------------------------------------------------------- #
# Buying coins
# --------------------------------------------------------------------------- #


async def purchase(
    services: Services,
    *,
    user: Profile,
    package_id: str,
    key: str,
    provider: str,
    method: str,
    region: str | None = None,
) -> PurchaseReceipt:
    """Charge a package through ``provider`` and credit it (once per payment)."""
    settings, engine = services.settings, services.engine
    package = engine.catalog.package(package_id)
    if package is None:
        raise LiveError("not_found", f"unknown coin package {package_id!r}")
    if region is not None and package.region != region.upper():
        raise LiveError("bad_request", f"package {package.id} is not sold in region {region!r}")
    payments = services.payments.get(provider)
    if payments is None:
        raise LiveError("bad_request", f"payment provider {provider!r} is not enabled")
    if not user.adult:
        raise refusals.MINOR_BUYER()
    # before any money moves: the wallet checks these again when it credits, but a
    # refused charge is better than a charge that cannot be credited
    account = await engine.wallet.account(user.id)
    if account.locked:
        raise refusals.LOCKED(account.debt)
    if not account.limits.purchases_enabled:
        raise refusals.PURCHASES_OFF()
    if settings.purchase_rate_per_hour:
        await engine.wallet.rate_limit(
            user.id,
            "purchases",
            per_hour=settings.purchase_rate_per_hour,
            burst=settings.purchase_burst,
        )
    result = await payments.charge(user=user, package=package, idempotency_key=key, method=method)
    if not result.approved:
        raise LiveError("payment_declined", f"payment declined: {result.reason}")
    now = now_ms()
    # the money is taken: the coins are owed now (a debt is paid off first)
    return await engine.wallet.purchase(
        PurchaseRequest(
            user=user,
            package=package,
            payment_id=result.payment_id,
            provider=provider,
            promotions=engine.catalog.grants(package, now),
            enforce_limits=False,
            now=now,
        )
    )


def package_offers(
    services: Services, region: str, *, first_purchase: bool
) -> list[dict[str, Any]]:
    """The region's packages with their promotions now and the coins a buyer gets
    (``first_purchase``: whether first-purchase promotions apply to this buyer)."""
    catalog = services.engine.catalog
    now = now_ms()
    offers = []
    for package in catalog.packages(region):
        promotions = catalog.promotions(package, now)
        applied = [p for p in promotions if first_purchase or not p.first_purchase]
        bonus = sum(p.coins(package) for p in applied)
        offers.append(
            {
                **package.public(),
                "promotions": [p.public(package) for p in promotions],
                "promotion_coins": bonus,
                "effective_coins": package.coins + package.bonus + bonus,
            }
        )
    return offers


def purchase_public(receipt: PurchaseReceipt) -> dict[str, Any]:
    return {
        "tx": receipt.tx,
        "package": receipt.package_id,
        "coins": receipt.coins,
        "bonus": receipt.bonus,
        "promotions": list(receipt.promotions),
        "debt_paid": receipt.debt_paid,
        "balance": {"coins": receipt.balance},
        "replayed": receipt.replayed,
    }


# --------------------------------------------------------------------------- #
# Webhooks
# --------------------------------------------------------------------------- #


async def payment_webhook(
    services: Services, provider_name: str, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """Verify a provider's delivery and apply it once: a succeeded payment is
    credited, a refund or chargeback reversed (``not_found`` until the payment is
    credited, so the provider delivers it again later); other events are ignored."""
    settings, engine = services.settings, services.engine
    provider = services.payments.get(provider_name)
    secret = settings.webhook_secrets().get(provider_name)
    if provider is None or secret is None:
        raise LiveError("not_found", f"no webhooks for payment provider {provider_name!r}")
    tolerance = settings.webhook_tolerance_seconds
    try:
        event = provider.verify_webhook(
            secret=secret, headers=headers, body=body, now=time.time(), tolerance=tolerance
        )
    except WebhookError as exc:
        raise LiveError(exc.code, exc.message) from None
    # a signature is accepted once: a captured delivery sent again is a replay
    if not await engine.wallet.claim_once(
        f"webhook:{provider_name}", event.signature, ttl_seconds=2 * tolerance + 60
    ):
        raise LiveError("unauthorized", "replayed delivery")
    reply: dict[str, Any] = {"ok": True, "event": event.id, "type": event.type}
    if event.type == PAYMENT_SUCCEEDED:
        package = engine.catalog.package(event.package_id)
        if package is None or event.user is None:
            raise LiveError("bad_request", f"unknown coin package {event.package_id!r}")
        if (event.amount_minor, event.currency) != (package.price_minor, package.currency):
            raise LiveError("bad_request", "the amount paid is not the package's price")
        receipt = await engine.wallet.purchase(
            PurchaseRequest(
                user=event.user,
                package=package,
                payment_id=event.payment_id,
                provider=provider_name,
                # the promotions of when the buyer paid
                promotions=engine.catalog.grants(package, event.created * 1_000),
                enforce_limits=False,
            )
        )
        reply["purchase"] = purchase_public(receipt)
    elif event.type in (PAYMENT_REFUNDED, PAYMENT_CHARGEBACK):
        refund = await engine.wallet.refund(
            RefundRequest(
                provider=provider_name,
                payment_id=event.payment_id,
                kind=CHARGEBACK if event.type == PAYMENT_CHARGEBACK else REFUND,
                reason=event.reason[:500],
            )
        )
        reply["reversal"] = refund_public(refund)
    else:
        reply["ignored"] = True
    return reply


# --------------------------------------------------------------------------- #
# Refunds and debt
# --------------------------------------------------------------------------- #


def refund_public(receipt: RefundReceipt) -> dict[str, Any]:
    return {
        "tx": receipt.tx,
        "kind": receipt.kind,
        "user_id": receipt.user_id,
        "provider": receipt.provider,
        "payment_id": receipt.payment_id,
        "purchase_tx": receipt.purchase_tx,
        "coins": receipt.coins,
        "taken": receipt.taken,
        "debt": receipt.debt,
        "clawed_back": receipt.clawed_back,
        "debt_after": receipt.debt_after,
        "created_at": receipt.created_at,
        "replayed": receipt.replayed,
    }


def debt_public(receipt: DebtReceipt) -> dict[str, Any]:
    return {
        "tx": receipt.tx,
        "user_id": receipt.user_id,
        "method": receipt.method,
        "coins": receipt.coins,
        "created_at": receipt.created_at,
        "replayed": receipt.replayed,
    }


async def settle_debt(
    services: Services, *, user_id: str, method: str, key: str, by: Profile, note: str
) -> DebtReceipt:
    return await services.engine.wallet.settle_debt(
        DebtSettlement(user_id=user_id, method=method, key=key, by=by.id, note=note)
    )


# --------------------------------------------------------------------------- #
# Limits
# --------------------------------------------------------------------------- #

_LIMIT_FIELDS: Final = (
    "daily_cap",
    "monthly_cap",
    "purchases_enabled",
    "gifting_enabled",
    "tz",
    "pin",
    "new_pin",
)


def limits_public(services: Services, account: Account) -> dict[str, Any]:
    settings = services.settings
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


def _cap(body: Mapping[str, Any], name: str, current: int | None) -> int | None:
    if name not in body:
        return current
    value = body[name]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise LiveError("bad_request", f"{name} must be an integer number of coins or null")
    return value


def _flag(body: Mapping[str, Any], name: str, current: bool) -> bool:
    value = body.get(name, current)
    if not isinstance(value, bool):
        raise LiveError("bad_request", f"{name} must be true or false")
    return value


def _pin(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > 16):
        raise LiveError("bad_request", f"{name} must be a string of digits")
    return value


async def set_limits(services: Services, *, user: Profile, body: Mapping[str, Any]) -> Account:
    """Apply the fields given in ``body`` over the user's current limits."""
    unknown = set(body) - set(_LIMIT_FIELDS)
    if unknown:
        raise LiveError("bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
    settings, wallet = services.settings, services.engine.wallet
    current = (await wallet.account(user.id)).limits
    tz = body.get("tz", current.tz)
    if not isinstance(tz, str):
        raise LiveError("bad_request", "tz must be an IANA time zone name")
    limits = UserLimits(
        daily_cap=_cap(body, "daily_cap", current.daily_cap),
        monthly_cap=_cap(body, "monthly_cap", current.monthly_cap),
        purchases_enabled=_flag(body, "purchases_enabled", current.purchases_enabled),
        gifting_enabled=_flag(body, "gifting_enabled", current.gifting_enabled),
        tz=tz,
    )
    pin = _pin(body, "pin")
    if pin is not None and settings.pin_attempts_per_hour:
        # every try of a PIN counts, right or wrong: guessing one takes days
        await wallet.rate_limit(
            user.id,
            "pin attempts",
            per_hour=settings.pin_attempts_per_hour,
            burst=settings.pin_attempts_per_hour,
        )
    return await wallet.set_limits(
        LimitsRequest(user_id=user.id, limits=limits, pin=pin, new_pin=_pin(body, "new_pin"))
    )


# --------------------------------------------------------------------------- #
# Earnings and withdrawals
# --------------------------------------------------------------------------- #


def cash(services: Services, diamonds: int) -> dict[str, Any]:
    """The cash value of ``diamonds`` at the configured rate, rounded down to the
    currency's minor unit (cents)."""
    value = (Decimal(diamonds) * services.settings.cash_rate()).quantize(
        Decimal("0.01"), rounding=ROUND_DOWN
    )
    return {
        "currency": services.settings.payout_currency,
        "amount": str(value),
        "amount_minor": int(value * 100),
    }


def earnings_public(
    services: Services, earnings: Earnings, *, tz: str, days: int, now: int
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
        "hold_seconds": services.settings.hold_seconds,
        "verified": earnings.verified,
        "cash": {
            "rate": services.settings.diamond_cash_rate,
            "diamonds": cash(services, earnings.balance),
            "withdrawable": cash(services, earnings.withdrawable),
        },
        "withdrawal_min": services.settings.withdrawal_min_diamonds,
        "withdrawal_daily_max": services.settings.withdrawal_daily_max_diamonds or None,
        "by_stream": [
            {"room_id": s.room_id, "stream_id": s.stream_id, "diamonds": s.diamonds}
            for s in earnings.streams
        ],
        "by_day": [{"date": day, "diamonds": d} for day, d in recent],
        "tz": tz,
        "as_of": now,
    }


def withdrawal_public(services: Services, withdrawal: Withdrawal) -> dict[str, Any]:
    return {
        **withdrawal.public(),
        "cash": cash(services, withdrawal.diamonds),
        "replayed": withdrawal.replayed,
    }


@dataclass(kw_only=True)
class Payouts:
    """The payout providers enabled on this node, by name."""

    providers: dict[str, PayoutProvider] = field(default_factory=dict)


async def withdraw(
    services: Services,
    payouts: Payouts,
    *,
    user: Profile,
    diamonds: int,
    key: str,
    provider: str,
    destination: str,
) -> Withdrawal:
    """Reserve the diamonds (pending), ask the provider to pay, record the outcome
    (paid, or failed and the diamonds return); a provider answering ``pending``
    leaves it to an admin (``POST /v1/admin/withdrawals/{id}``)."""
    settings, wallet = services.settings, services.engine.wallet
    payout = payouts.providers.get(provider)
    if payout is None:
        raise LiveError("bad_request", f"payout provider {provider!r} is not enabled")
    if settings.withdrawal_rate_per_hour:
        await wallet.rate_limit(
            user.id,
            "withdrawals",
            per_hour=settings.withdrawal_rate_per_hour,
            burst=settings.withdrawal_burst,
        )
    reserved = await wallet.reserve_withdrawal(
        WithdrawalRequest(user_id=user.id, diamonds=diamonds, key=key, method=provider)
    )
    if reserved.replayed or reserved.status != "pending":
        return reserved  # a retried request: the first one paid (or is paying) it
    try:
        result = await payout.pay(reserved, destination=destination)
    except Exception:
        # the outcome is unknown: it stays pending for an admin to resolve
        log.exception("payout %s of withdrawal %s failed", provider, reserved.id)
        return reserved
    if result.status not in (PAID, FAILED):
        return reserved
    return await wallet.settle_withdrawal(
        WithdrawalSettlement(
            withdrawal_id=reserved.id,
            status=result.status,
            reference=result.reference,
            reason=result.reason,
        )
    )


async def resolve_withdrawal(
    services: Services, *, withdrawal_id: str, status: str, reference: str, reason: str
) -> Withdrawal:
    return await services.engine.wallet.settle_withdrawal(
        WithdrawalSettlement(
            withdrawal_id=withdrawal_id, status=status, reference=reference, reason=reason
        )
    )


# --------------------------------------------------------------------------- #
# History
# --------------------------------------------------------------------------- #


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
        view["gift"] = {"id": meta.get("gift_id"), "count": meta.get("count")}
    if record.kind == "purchase":
        view["bonus"] = sum(p.get("coins", 0) for p in meta.get("promotions", []))
        view["package"] = meta.get("package_id")
    if record.kind.startswith("withdrawal"):
        view["withdrawal_id"] = meta.get("withdrawal_id")
    return view


def require_admin(user: Profile) -> None:
    if not user.is_admin:
        raise LiveError("forbidden", "admins only")

"""The money actions over the engine's wallet: buying coins (with promotions,
parental controls and rate limits checked before any charge), provider
webhooks, refunds, debt, limits, balances, history and the ledger's audit.

The wallet enforces every rule atomically (``store.roles.Wallet``); what is
checked here as well is checked *before* money moves outside (a charge), where
a refusal afterwards would be too late.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from live.errors import LiveError
from live.metrics import Metrics
from live.payments import (
    PAYMENT_CHARGEBACK,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    PENDING,
    PaymentError,
    PaymentOrder,
    PaymentProvider,
)
from live.payments.config import offered_in
from live.settings import Settings
from store.domain import refusals
from store.domain.accounts import (
    CHARGEBACK,
    REFUND,
    Account,
    DebtReceipt,
    DebtSettlement,
    LimitsRequest,
    RefundReceipt,
    RefundRequest,
    UserLimits,
)
from store.domain.models import (
    AuditReport,
    Balance,
    CoinPackage,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    TransactionRecord,
)
from store.ids import now_ms
from store.roles import Engine

_LIMIT_FIELDS: Final = (
    "daily_cap",
    "monthly_cap",
    "purchases_enabled",
    "gifting_enabled",
    "tz",
    "pin",
    "new_pin",
)


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


@dataclass(frozen=True, slots=True)
class PendingPayment:
    """A purchase the client completes with the provider; the provider's signed
    event credits it (``client``: what the client needs, a client secret)."""

    provider: str
    payment_id: str
    package: CoinPackage
    client: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What a provider's delivery did: a purchase credited, one reversed, or
    nothing (an event of no interest)."""

    event_id: str
    event_type: str
    purchase: PurchaseReceipt | None = None
    reversal: RefundReceipt | None = None


@dataclass(kw_only=True)
class Money:
    """The money actions (see the module docstring)."""

    settings: Settings
    engine: Engine
    payments: dict[str, PaymentProvider]
    """The payment providers enabled on this node, by name."""
    metrics: Metrics

    # -- buying coins --------------------------------------------------------------------
    async def purchase(
        self,
        *,
        user: Profile,
        package_id: str,
        key: str,
        provider: str,
        method: str,
        region: str | None = None,
        proof: str = "",
    ) -> PurchaseReceipt | PendingPayment:
        """Charge a package through ``provider`` and credit it (once per payment), or
        start the payment the provider's event will credit. A locked account may
        buy: the coins pay its debt first."""
        settings, engine = self.settings, self.engine
        package = engine.catalog.package(package_id)
        if package is None or package.retired:
            raise LiveError("not_found", f"unknown coin package {package_id!r}")
        if region is not None and package.region != region.upper():
            raise LiveError("bad_request", f"package {package.id} is not sold in region {region!r}")
        payments = self.payments.get(provider)
        if payments is None:
            raise LiveError("bad_request", f"payment provider {provider!r} is not enabled")
        if not offered_in(settings, provider, package.region):
            raise LiveError(
                "bad_request", f"payment provider {provider!r} is not offered in {package.region}"
            )
        if not user.adult:
            raise refusals.MINOR_BUYER()
        # before any money moves: the wallet checks this again when it credits, but a
        # refused charge is better than a charge that cannot be credited
        account = await engine.wallet.account(user.id)
        if not account.limits.purchases_enabled:
            raise refusals.PURCHASES_OFF()
        if settings.purchase_rate_per_hour:
            await engine.wallet.rate_limit(
                user.id,
                "purchases",
                per_hour=settings.purchase_rate_per_hour,
                burst=settings.purchase_burst,
            )
        order = PaymentOrder(
            user=user, package=package, idempotency_key=key, method=method, proof=proof
        )
        try:
            result = await payments.charge(order)
        except PaymentError as exc:
            raise LiveError(exc.code, exc.message) from None
        if result.status == PENDING:
            return PendingPayment(provider, result.payment_id, package, result.client)
        if not result.approved:
            raise LiveError("payment_declined", f"payment declined: {result.reason}")
        now = now_ms()
        # the money is taken: the coins are owed now (a debt is paid off first)
        with self.metrics.wallet_call("purchase"):
            return await engine.wallet.purchase(
                PurchaseRequest(
                    user=user,
                    package=package,
                    payment_id=result.payment_id,
                    provider=provider,
                    # the promotions of when the buyer paid
                    promotions=engine.catalog.grants(package, result.paid_at or now),
                    enforce_limits=False,
                    now=now,
                )
            )

    def providers_in(self, region: str) -> list[str]:
        """The providers a buyer in ``region`` may pay with."""
        return sorted(p for p in self.payments if offered_in(self.settings, p, region))

    def check_region(self, region: str) -> None:
        if region not in self.engine.catalog.regions():
            raise LiveError("not_found", f"no coin packages for region {region!r}")

    async def coin_packages(self, region: str, buyer: Profile | None) -> dict[str, Any]:
        """The region's packages, each with its promotions now and the coins a buyer
        receives (``effective_coins``); with a ``buyer``, first-purchase promotions
        count only when they have not bought yet."""
        first_purchase: bool | None = None
        if buyer is not None:
            first_purchase = (await self.engine.wallet.account(buyer.id)).purchases == 0
        return {
            "region": region,
            "providers": self.providers_in(region),
            "first_purchase": first_purchase,
            "packages": self.package_offers(region, first_purchase=bool(first_purchase)),
        }

    def package_offers(self, region: str, *, first_purchase: bool) -> list[dict[str, Any]]:
        """The region's packages with their promotions now and the coins a buyer gets
        (``first_purchase``: whether first-purchase promotions apply to this buyer)."""
        catalog = self.engine.catalog
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

    # -- webhooks, refunds and debt --------------------------------------------------------
    async def payment_webhook(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookOutcome:
        """Verify a provider's delivery and apply it once: a succeeded payment is
        credited, a refund or chargeback reversed (``not_found`` until the payment is
        credited, so the provider delivers it again later); other events are ignored."""
        settings, engine = self.settings, self.engine
        provider = self.payments.get(provider_name)
        if provider is None:
            raise LiveError("not_found", f"no webhooks for payment provider {provider_name!r}")
        tolerance = settings.webhook_tolerance_seconds
        try:
            event = await provider.verify_webhook(headers=headers, body=body, now=time.time())
        except PaymentError as exc:
            raise LiveError(exc.code, exc.message) from None
        # a signature is accepted once: a captured delivery sent again is a replay
        if event.signature and not await engine.wallet.claim_once(
            f"webhook:{provider_name}", event.signature, ttl_seconds=2 * tolerance + 60
        ):
            raise LiveError("unauthorized", "replayed delivery")
        outcome = WebhookOutcome(event_id=event.id, event_type=event.type)
        if event.effect == PAYMENT_SUCCEEDED:
            package = engine.catalog.package(event.package_id)
            if package is None or event.user is None:
                raise LiveError("bad_request", f"unknown coin package {event.package_id!r}")
            # the price the payment was created for, else the package's price now
            expected = (
                (event.expected_minor, event.expected_currency)
                if event.expected_minor is not None
                else (package.price_minor, package.currency)
            )
            if (event.amount_minor, event.currency) != expected:
                raise LiveError("bad_request", "the amount paid is not the package's price")
            with self.metrics.wallet_call("purchase"):
                purchase = await engine.wallet.purchase(
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
            return dataclasses.replace(outcome, purchase=purchase)
        elif event.effect in (PAYMENT_REFUNDED, PAYMENT_CHARGEBACK):
            with self.metrics.wallet_call("refund"):
                reversal = await engine.wallet.refund(
                    RefundRequest(
                        provider=provider_name,
                        payment_id=event.payment_id,
                        kind=CHARGEBACK if event.effect == PAYMENT_CHARGEBACK else REFUND,
                        reason=event.reason[:500],
                    )
                )
            return dataclasses.replace(outcome, reversal=reversal)
        return outcome  # ignored

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        """Refund (or record a chargeback of) a purchase by its payment id."""
        with self.metrics.wallet_call("refund"):
            return await self.engine.wallet.refund(request)

    async def settle_debt(
        self, *, user_id: str, method: str, key: str, by: Profile, note: str
    ) -> DebtReceipt:
        return await self.engine.wallet.settle_debt(
            DebtSettlement(user_id=user_id, method=method, key=key, by=by.id, note=note)
        )

    async def close(self) -> None:
        """Release the providers' connections."""
        for provider in self.payments.values():
            await provider.close()

    # -- the user's account ----------------------------------------------------------------
    async def account(self, user_id: str) -> Account:
        return await self.engine.wallet.account(user_id)

    async def balance(self, user_id: str) -> Balance:
        return await self.engine.wallet.balance(user_id)

    async def transactions(
        self, user_id: str, *, before: str | None, limit: int
    ) -> list[TransactionRecord]:
        return await self.engine.ledger.transactions(user_id, before=before, limit=limit)

    async def set_limits(self, *, user: Profile, body: Mapping[str, Any]) -> Account:
        """Apply the fields given in ``body`` over the user's current limits."""
        unknown = set(body) - set(_LIMIT_FIELDS)
        if unknown:
            raise LiveError("bad_request", f"unknown fields: {', '.join(sorted(unknown))}")
        settings, wallet = self.settings, self.engine.wallet
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

    # -- admins ----------------------------------------------------------------------------
    async def set_verified(self, user_id: str, *, verified: bool, by: Profile) -> Account:
        """Record (or remove) a creator's verification: only verified creators withdraw."""
        return await self.engine.wallet.set_verified(user_id, verified=verified, by=by.id)

    async def audit(self) -> AuditReport:
        return await self.engine.ledger.audit()

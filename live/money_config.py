"""Parsing the money settings (``LIVE_PROMOTIONS``, ``LIVE_PAYMENT_WEBHOOK_SECRETS``,
``LIVE_DIAMOND_CASH_RATE``, ``LIVE_PAYMENT_REGIONS``, ``LIVE_APPLE_PRODUCTS``) into
values; ``ValueError`` says what is wrong. Also the cash value of diamonds at the
configured rate, which the payout actions and the HTTP views both show."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

from store.domain.models import Promotion

if TYPE_CHECKING:  # the settings parse their values with this module
    from live.settings import Settings

_PROMOTION_FIELDS = {"id", "percent", "starts_at", "ends_at", "regions", "packages"}


def _instant(value: Any, what: str) -> int | None:
    """An ISO 8601 time with its offset (or milliseconds since the epoch) in ms."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an ISO 8601 time like 2026-06-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} must be an ISO 8601 time like 2026-06-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{what} needs a UTC offset (like Z or +02:00)")
    return int(moment.timestamp() * 1000)


def _names(value: Any, what: str, *, upper: bool = False) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return frozenset(v.upper() if upper else v for v in value)


def parse_promotions(text: str, *, first_purchase_percent: int = 0) -> list[Promotion]:
    """Campaigns from a JSON list of ``{id, percent, starts_at?, ends_at?, regions?,
    packages?}``, plus the first-purchase bonus when its percent is above 0."""
    promotions: list[Promotion] = []
    if first_purchase_percent:
        promotions.append(
            Promotion(id="first_purchase", percent=first_purchase_percent, first_purchase=True)
        )
    if not text.strip():
        return promotions
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("must be a JSON list of promotions") from None
    if not isinstance(items, list):
        raise ValueError("must be a JSON list of promotions")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - _PROMOTION_FIELDS:
            raise ValueError(f"promotion {n}: expected the fields {sorted(_PROMOTION_FIELDS)}")
        pid, percent = item.get("id"), item.get("percent")
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"promotion {n}: id must be a non-empty string")
        if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 1_000:
            raise ValueError(f"promotion {pid}: percent must be an integer from 1 to 1000")
        starts = _instant(item.get("starts_at"), f"promotion {pid}: starts_at")
        ends = _instant(item.get("ends_at"), f"promotion {pid}: ends_at")
        if starts is not None and ends is not None and ends <= starts:
            raise ValueError(f"promotion {pid}: ends_at must be after starts_at")
        promotions.append(
            Promotion(
                id=pid,
                percent=percent,
                starts_at=starts,
                ends_at=ends,
                regions=_names(item.get("regions"), f"promotion {pid}: regions", upper=True),
                packages=_names(item.get("packages"), f"promotion {pid}: packages"),
            )
        )
    if len({p.id for p in promotions}) != len(promotions):
        raise ValueError("promotion ids must be unique")
    return promotions


def parse_secrets(text: str) -> dict[str, str]:
    """``provider=secret,provider=secret`` (secrets of at least 16 characters)."""
    secrets: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        provider, sep, secret = part.partition("=")
        provider, secret = provider.strip(), secret.strip()
        if not sep or not provider or not secret:
            raise ValueError("expected provider=secret pairs separated by commas")
        if len(secret) < 16:
            raise ValueError(f"the secret of {provider} must be at least 16 characters")
        secrets[provider] = secret
    return secrets


def parse_rate(text: str) -> Decimal:
    """A positive decimal: the cash value of one diamond, in the payout currency."""
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ValueError("must be a decimal number like 0.005") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError("must be a positive decimal number")
    return rate


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def parse_regions(text: str) -> dict[str, frozenset[str]]:
    """``{"provider": ["US", "GB"] or ["*"]}``: the regions each named provider is
    offered in (upper-cased; ``*`` for all)."""
    if not text.strip():
        return {}
    regions: dict[str, frozenset[str]] = {}
    for provider, listed in _json_object(text).items():
        regions[provider] = _names(listed, f"the regions of {provider}", upper=True)
        if not regions[provider]:
            raise ValueError(f"the regions of {provider} must not be empty")
    return regions


def parse_products(text: str) -> dict[str, str]:
    """``{"app store product id": "coin package id"}``."""
    if not text.strip():
        return {}
    products = _json_object(text)
    for product, package in products.items():
        if not product or not isinstance(package, str) or not package:
            raise ValueError("expected product ids mapped to coin package ids")
    return products


def cash(settings: Settings, diamonds: int) -> dict[str, Any]:
    """The cash value of ``diamonds`` at the configured rate, rounded down to the
    currency's minor unit (cents)."""
    value = (Decimal(diamonds) * settings.cash_rate()).quantize(
        Decimal("0.01"), rounding=ROUND_DOWN
    )
    return {
        "currency": settings.payout_currency,
        "amount": str(value),
        "amount_minor": int(value * 100),
    }

"""The payment providers this node offers, built from the settings, and which of
them each region offers."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from live.payments.base import PaymentProvider
from live.payments.sandbox import SandboxPaymentProvider
from live.settings import Settings, SettingsError


def certificate_der(path: Path) -> bytes:
    """A certificate file's DER bytes (the file may hold DER or PEM)."""
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)


def payment_providers(settings: Settings) -> dict[str, PaymentProvider]:
    """The enabled providers by name (``SettingsError`` when one is misconfigured).
    The real providers' libraries are imported only when they are enabled."""
    secrets = settings.webhook_secrets()
    tolerance = settings.webhook_tolerance_seconds
    providers: dict[str, PaymentProvider] = {}
    if settings.sandbox_payments:
        providers["sandbox"] = SandboxPaymentProvider(
            webhook_secret=secrets.get("sandbox"), tolerance=tolerance
        )
    if settings.stripe_api_key:
        from live.payments.stripe_cards import StripePaymentProvider

        providers["stripe"] = StripePaymentProvider(
            api_key=settings.stripe_api_key,
            webhook_secret=secrets["stripe"],
            tolerance=tolerance,
            publishable_key=settings.stripe_publishable_key,
            api_base=settings.stripe_api_base,
            timeout=settings.stripe_timeout_seconds,
            max_network_retries=settings.stripe_max_network_retries,
        )
    if settings.apple_bundle_id:
        from live.payments.apple_store import AppleAppStoreProvider

        roots = []
        for name in settings.apple_root_certificates.split(","):
            if name.strip():
                try:
                    roots.append(certificate_der(Path(name.strip())))
                except (OSError, ValueError) as exc:
                    raise SettingsError(f"LIVE_APPLE_ROOT_CERTIFICATES: {name}: {exc}") from None
        providers["apple"] = AppleAppStoreProvider(
            bundle_id=settings.apple_bundle_id,
            app_apple_id=settings.apple_app_apple_id or None,
            environments=[e.strip() for e in settings.apple_environments.split(",") if e.strip()],
            root_certificates=roots,
            products=settings.apple_product_packages(),
            online_checks=settings.apple_online_checks,
        )
    return providers


def offered_in(settings: Settings, provider: str, region: str) -> bool:
    """Whether ``provider`` is offered to buyers of ``region``'s packages."""
    regions = settings.provider_regions().get(provider)
    return regions is None or "*" in regions or region.upper() in regions

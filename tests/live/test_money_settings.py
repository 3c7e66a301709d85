"""The money settings: promotions, webhook secrets, caps and rates from LIVE_*."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from live.logs import known_secrets
from live.payments.config import offered_in, payment_providers
from live.settings import Settings, SettingsError

SECRET = {"LIVE_SECRET": "s" * 40}


def test_defaults_make_a_policy_and_a_catalog() -> None:
    settings = Settings.from_env(SECRET)
    policy = settings.policy()
    assert (policy.daily_spend_cap, policy.monthly_spend_cap) == (5_000_000, 50_000_000)
    assert (policy.hold_seconds, policy.withdrawal_min, policy.payout_seconds) == (
        604_800,
        2_000,
        3 * 86_400,
    )
    assert settings.engine_config().policy == policy
    assert settings.webhook_secrets() == {}
    assert settings.cash_rate() == Decimal("0.005")
    package = settings.catalog().package("us_700")
    assert package is not None and settings.catalog().grants(package, 0) == ()


def test_promotions_and_secrets_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **SECRET,
            "LIVE_FIRST_PURCHASE_BONUS_PERCENT": "10",
            "LIVE_PROMOTIONS": '[{"id": "spring", "percent": 20, "regions": ["us"],'
            ' "starts_at": "2026-03-20T00:00:00Z", "ends_at": "2026-04-01T00:00:00+00:00"}]',
            "LIVE_PAYMENT_WEBHOOK_SECRETS": "sandbox=0123456789abcdef, acme = fedcba9876543210",
            "LIVE_GIFT_RATE_PER_MINUTE": "0",
        }
    )
    catalog = settings.catalog()
    us, gb = catalog.package("us_700"), catalog.package("gb_700")
    assert us is not None and gb is not None
    during = 1_774_000_000_000  # 2026-03-20T09:46:40Z
    assert [g.id for g in catalog.grants(us, during)] == ["first_purchase", "spring"]
    assert [g.id for g in catalog.grants(gb, during)] == ["first_purchase"]
    assert [g.id for g in catalog.grants(us, during + 30 * 86_400_000)] == ["first_purchase"]
    assert settings.webhook_secrets() == {
        "sandbox": "0123456789abcdef",
        "acme": "fedcba9876543210",
    }
    assert settings.policy().gift_rate_per_minute == 0 and settings.policy().gift_burst == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIVE_PROMOTIONS", "not json"),
        ("LIVE_PROMOTIONS", '{"id": "x"}'),
        ("LIVE_PROMOTIONS", '[{"id": "x", "percent": 0}]'),
        ("LIVE_PROMOTIONS", '[{"id": "x", "percent": 5, "starts_at": "2026-01-01"}]'),
        ("LIVE_PROMOTIONS", '[{"id": "x", "percent": 5, "colour": "red"}]'),
        (
            "LIVE_PROMOTIONS",
            '[{"id": "x", "percent": 5, "starts_at": "2026-02-01T00:00:00Z",'
            ' "ends_at": "2026-01-01T00:00:00Z"}]',
        ),
        ("LIVE_PAYMENT_WEBHOOK_SECRETS", "sandbox"),
        ("LIVE_PAYMENT_WEBHOOK_SECRETS", "sandbox=short"),
        ("LIVE_DIAMOND_CASH_RATE", "free"),
        ("LIVE_DIAMOND_CASH_RATE", "-1"),
        ("LIVE_DAILY_SPEND_CAP", "-5"),
        ("LIVE_GIFT_BURST", "0"),
        ("LIVE_WITHDRAWAL_MIN_DIAMONDS", "0"),
        ("LIVE_PAYOUT_CURRENCY", "dollars"),
        ("LIVE_WEBHOOK_TOLERANCE_SECONDS", "0"),
    ],
)
def test_bad_money_settings_refuse_to_start(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**SECRET, name: value})


def test_payment_providers_come_from_settings_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "stripe-key"
    key_file.write_text("sk_test_from_a_mounted_file_0123456789\n")
    hooks_file = tmp_path / "hooks"
    hooks_file.write_text("stripe=whsec_from_a_file_0123456789")
    settings = Settings.from_env(
        {
            **SECRET,
            "LIVE_STRIPE_API_KEY_FILE": str(key_file),
            "LIVE_PAYMENT_WEBHOOK_SECRETS_FILE": str(hooks_file),
            "LIVE_PAYMENT_REGIONS": '{"stripe": ["us", "gb"], "sandbox": ["*"]}',
        }
    )
    assert settings.stripe_api_key == "sk_test_from_a_mounted_file_0123456789"
    assert settings.webhook_secrets() == {"stripe": "whsec_from_a_file_0123456789"}
    assert settings.provider_regions() == {
        "stripe": frozenset({"US", "GB"}),
        "sandbox": frozenset({"*"}),
    }
    assert offered_in(settings, "stripe", "gb") and not offered_in(settings, "stripe", "IN")
    assert offered_in(settings, "sandbox", "IN") and offered_in(settings, "apple", "IN")
    # the key and the webhook secret are masked wherever they would be logged
    assert {settings.stripe_api_key, "whsec_from_a_file_0123456789"} <= set(known_secrets(settings))
    assert sorted(payment_providers(settings)) == ["sandbox", "stripe"]

    with pytest.raises(SettingsError, match="LIVE_STRIPE_API_KEY_FILE"):
        Settings.from_env({**SECRET, "LIVE_STRIPE_API_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(SettingsError, match="stripe's webhook signing secret"):
        Settings.from_env({**SECRET, "LIVE_STRIPE_API_KEY": "sk_test_0123456789"})


def test_app_store_settings_are_checked(tmp_path: Path) -> None:
    apple = {
        **SECRET,
        "LIVE_APPLE_BUNDLE_ID": "com.example.live",
        "LIVE_APPLE_APP_APPLE_ID": "1234",
        "LIVE_APPLE_PRODUCTS": '{"com.example.live.coins70": "us_70"}',
        "LIVE_APPLE_ROOT_CERTIFICATES": str(tmp_path / "missing.cer"),
    }
    settings = Settings.from_env(apple)
    assert settings.apple_product_packages() == {"com.example.live.coins70": "us_70"}
    with pytest.raises(SettingsError, match="LIVE_APPLE_ROOT_CERTIFICATES"):
        payment_providers(settings)  # the roots are read when the providers are built
    for name, value, message in (
        ("LIVE_APPLE_APP_APPLE_ID", "0", "LIVE_APPLE_APP_APPLE_ID"),
        ("LIVE_APPLE_ENVIRONMENTS", "Xcode", "LIVE_APPLE_ENVIRONMENTS"),
        ("LIVE_APPLE_PRODUCTS", "", "LIVE_APPLE_PRODUCTS"),
        ("LIVE_APPLE_PRODUCTS", '{"p": 5}', "LIVE_APPLE_PRODUCTS"),
        ("LIVE_PAYMENT_REGIONS", '{"stripe": []}', "LIVE_PAYMENT_REGIONS"),
        ("LIVE_PAYMENT_REGIONS", '["stripe"]', "LIVE_PAYMENT_REGIONS"),
    ):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({**apple, name: value})

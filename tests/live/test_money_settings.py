"""The money settings: promotions, webhook secrets, caps and rates from LIVE_*."""

from __future__ import annotations

from decimal import Decimal

import pytest

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

"""The payout provider settings: Stripe Connect on only when complete, secrets
from the environment or files, masked in the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from live.logs import RedactSecrets, known_secrets
from live.payouts import connected_providers
from live.settings import Settings, SettingsError

BASE = {"LIVE_SECRET": "s" * 40}
STRIPE = {
    **BASE,
    "LIVE_STRIPE_CONNECT_PAYOUTS": "true",
    "LIVE_STRIPE_CONNECT_SECRET_KEY": "sk_test_key_0123456789",
    "LIVE_STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_signing_0123456789",
    "LIVE_STRIPE_CONNECT_RETURN_URL": "https://app.example/done",
    "LIVE_STRIPE_CONNECT_REFRESH_URL": "https://app.example/again",
}


def test_stripe_connect_is_off_unless_asked() -> None:
    settings = Settings.from_env(BASE)
    assert settings.stripe_connect_secrets() == ("", "")
    assert connected_providers(settings) == {}
    assert settings.payout_poll_seconds == 300


def test_stripe_connect_on_needs_every_setting() -> None:
    assert list(connected_providers(Settings.from_env(STRIPE))) == ["stripe_connect"]
    for missing in (
        "LIVE_STRIPE_CONNECT_SECRET_KEY",
        "LIVE_STRIPE_CONNECT_WEBHOOK_SECRET",
        "LIVE_STRIPE_CONNECT_RETURN_URL",
        "LIVE_STRIPE_CONNECT_REFRESH_URL",
    ):
        env = {k: v for k, v in STRIPE.items() if k != missing}
        with pytest.raises(SettingsError, match=missing):
            Settings.from_env(env)
    with pytest.raises(SettingsError, match="LIVE_STRIPE_CONNECT_COUNTRY"):
        Settings.from_env({**STRIPE, "LIVE_STRIPE_CONNECT_COUNTRY": "USA"})
    with pytest.raises(SettingsError, match="LIVE_PAYOUT_POLL_SECONDS"):
        Settings.from_env({**STRIPE, "LIVE_PAYOUT_POLL_SECONDS": "-1"})


def test_the_card_payments_key_serves_payouts_unless_set_apart() -> None:
    env = {k: v for k, v in STRIPE.items() if k != "LIVE_STRIPE_CONNECT_SECRET_KEY"}
    cards = {
        "LIVE_STRIPE_API_KEY": "sk_test_cards_0123456789",
        "LIVE_PAYMENT_WEBHOOK_SECRETS": "stripe=whsec_cards_0123456789",
    }
    shared = Settings.from_env({**env, **cards})
    assert shared.stripe_connect_secrets()[0] == "sk_test_cards_0123456789"
    apart = Settings.from_env({**STRIPE, **cards})
    assert apart.stripe_connect_secrets()[0] == "sk_test_key_0123456789"


def test_secrets_come_from_files_and_are_masked(tmp_path: Path) -> None:
    key, hook = tmp_path / "key", tmp_path / "hook"
    key.write_text("sk_live_from_a_file_0123\n")
    hook.write_text("whsec_from_a_file_0123\n")
    env = {
        k: v
        for k, v in STRIPE.items()
        if k not in ("LIVE_STRIPE_CONNECT_SECRET_KEY", "LIVE_STRIPE_CONNECT_WEBHOOK_SECRET")
    }
    settings = Settings.from_env(
        {
            **env,
            "LIVE_STRIPE_CONNECT_SECRET_KEY_FILE": str(key),
            "LIVE_STRIPE_CONNECT_WEBHOOK_SECRET_FILE": str(hook),
        }
    )
    assert settings.stripe_connect_secrets() == (
        "sk_live_from_a_file_0123",
        "whsec_from_a_file_0123",
    )
    with pytest.raises(SettingsError, match="LIVE_STRIPE_CONNECT_SECRET_KEY_FILE"):
        Settings.from_env({**env, "LIVE_STRIPE_CONNECT_SECRET_KEY_FILE": str(tmp_path / "none")})

    record = logging.LogRecord(
        "live", logging.INFO, __file__, 1, "key %s hook %s", settings.stripe_connect_secrets(), None
    )
    RedactSecrets(known_secrets(settings)).filter(record)
    line = record.getMessage()
    assert "sk_live_from_a_file_0123" not in line and "whsec_from_a_file_0123" not in line

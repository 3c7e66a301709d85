from __future__ import annotations

from pathlib import Path

import pytest

from live.settings import Settings, SettingsError


def test_defaults_and_env(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "LIVE_DATA_DIR": str(tmp_path),
            "PORT": "9001",
            "LIVE_TICK_MS": "40",
            "LIVE_SANDBOX_PAYMENTS": "false",
            "LIVE_GC_YOUNG_THRESHOLD": "5000",
            "LIVE_GC_FREEZE": "off",
            "LIVE_GC_YOUNG_SECONDS": "0.5",
        }
    )
    assert settings.port == 9001 and settings.tick_ms == 40
    assert settings.gc_young_threshold == 5_000 and settings.gc_freeze is False
    assert settings.gc_young_seconds == 0.5
    defaults = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path)})
    assert defaults.gc_young_threshold == 20_000 and defaults.gc_young_seconds == 1.0
    off = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), "LIVE_GC_YOUNG_SECONDS": "0"})
    assert off.gc_young_seconds == 0
    assert settings.sandbox_payments is False and not settings.scaled
    # A dev secret is generated once and reused, so `live token` and `live serve` agree.
    again = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path)})
    assert settings.secret == again.secret and len(settings.secret) >= 32


def test_production_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="LIVE_SECRET"):
        Settings.from_env({"LIVE_ENV": "production", "LIVE_DATA_DIR": str(tmp_path)})
    ok = Settings.from_env({"LIVE_ENV": "production", "LIVE_SECRET": "k" * 40})
    assert ok.production


@pytest.mark.parametrize(
    "env",
    [
        {"LIVE_PORT": "http"},
        {"LIVE_TICK_MS": "0"},
        {"LIVE_CATALOG_POLL_SECONDS": "0"},
        {"LIVE_CATALOG_POLL_SECONDS": "soon"},
        {"LIVE_CREATOR_SHARE_PERCENT": "101"},
        {"LIVE_SANDBOX_PAYMENTS": "maybe"},
        {"LIVE_REDIS_URL": "redis://localhost"},
        {"LIVE_ENV": "staging"},
        {"LIVE_REDIS_WAIT_REPLICAS": "-1"},
        {"LIVE_REDIS_WAIT_MS": "0"},
        {"LIVE_SETTLE_DELAY_MS": "999"},
        {"LIVE_OVERLAY_ALERT_BACKLOG": "1"},
        {"LIVE_OVERLAY_ALERT_TIMEOUT_SECONDS": "0"},
        {"LIVE_GC_YOUNG_THRESHOLD": "-1"},
        {"LIVE_GC_YOUNG_THRESHOLD": "lots"},
        {"LIVE_GC_YOUNG_SECONDS": "0.001"},
        {"LIVE_GC_YOUNG_SECONDS": "-1"},
        {"LIVE_GC_YOUNG_SECONDS": "often"},
        {"LIVE_GC_FREEZE": "sometimes"},
    ],
)
def test_invalid_settings_refuse_to_start(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), **env})


def test_redis_wait_reaches_the_engine(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "LIVE_DATA_DIR": str(tmp_path),
            "LIVE_REDIS_WAIT_REPLICAS": "2",
            "LIVE_REDIS_WAIT_MS": "250",
        }
    )
    config = settings.engine_config()
    assert (config.redis_wait_replicas, config.redis_wait_seconds) == (2, 0.25)


def test_the_settle_delay_reaches_the_engine(tmp_path: Path) -> None:
    settings = Settings.from_env({"LIVE_DATA_DIR": str(tmp_path), "LIVE_SETTLE_DELAY_MS": "1500"})
    assert settings.engine_config().settle_delay_seconds == 1.5

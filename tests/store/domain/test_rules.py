"""The money rules' arithmetic (store.domain.rules), which the Lua scripts mirror."""

from __future__ import annotations

from datetime import datetime

import pytest

from store.domain.accounts import UserLimits
from store.domain.rules import (
    HOUR_MS,
    TOKEN,
    GiftSpend,
    check_caps,
    clawbacks,
    effective_cap,
    hash_pin,
    held_diamonds,
    local_periods,
    pin_matches,
    pin_salt,
    refill,
    relaxes,
    wait_ms,
    zone,
)
from store.errors import BadRequest, LimitExceeded

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("tz", "offset_ms", "expected"),
    [
        ("UTC", 0, ("2026-01-01", "2026-01")),
        ("UTC", -1, ("2025-12-31", "2025-12")),
        ("America/New_York", 0, ("2025-12-31", "2025-12")),
        ("Asia/Kolkata", 0, ("2026-01-01", "2026-01")),
        ("Pacific/Kiritimati", 10 * HOUR_MS, ("2026-01-02", "2026-01")),
    ],
)
def test_local_day_and_month(tz: str, offset_ms: int, expected: tuple[str, str]) -> None:
    assert local_periods(NOW + offset_ms, tz) == expected


@pytest.mark.parametrize(
    "tz", ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla", "America/St_Johns"]
)
def test_the_periods_kept_per_minute_match_the_zone_around_local_midnight(tz: str) -> None:
    """Zones a half or three quarters of an hour off: the first and last millisecond
    of every minute within 15 hours of a new year, each read twice (the second read
    is the kept one)."""
    for minute in range(-15 * 60, 15 * 60):
        for at in (NOW + minute * 60_000, NOW + minute * 60_000 + 59_999):
            moment = datetime.fromtimestamp(at / 1000, tz=zone(tz))
            expected = (moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m"))
            assert local_periods(at, tz) == expected
            assert local_periods(at, tz) == expected


@pytest.mark.parametrize("tz", ["", "Nowhere/City", "../etc/passwd", "/etc/localtime"])
def test_unknown_zones_are_refused(tz: str) -> None:
    with pytest.raises(BadRequest):
        zone(tz)


def test_caps() -> None:
    assert effective_cap(0, None) is None
    assert effective_cap(100, None) == 100
    assert effective_cap(100, 30) == 30
    assert effective_cap(0, 30) == 30
    limits = UserLimits(daily_cap=50)
    check_caps(
        total=50, limits=limits, policy_daily=0, policy_monthly=0, day_spent=0, month_spent=0
    )
    with pytest.raises(LimitExceeded):
        check_caps(
            total=1, limits=limits, policy_daily=0, policy_monthly=0, day_spent=50, month_spent=0
        )
    with pytest.raises(LimitExceeded, match="monthly"):
        check_caps(
            total=1,
            limits=UserLimits(),
            policy_daily=0,
            policy_monthly=10,
            day_spent=0,
            month_spent=10,
        )


def test_token_bucket_in_integer_units() -> None:
    assert refill(None, None, NOW, rate=60, burst=3) == 3 * TOKEN
    assert refill(0, NOW, NOW + 500, rate=60, burst=3) == 30_000
    assert refill(0, NOW, NOW + 10**9, rate=60, burst=3) == 3 * TOKEN
    assert refill(0, NOW, NOW - 5, rate=60, burst=3) == 0  # a clock going back
    assert wait_ms(30_000, rate=60) == 500
    assert wait_ms(0, rate=7) == -(-TOKEN // 7)


def test_held_diamonds() -> None:
    hour = NOW // HOUR_MS
    hours = [(hour - 5, 40), (hour, 10), (hour + 1, 5)]
    assert held_diamonds(hours, now_ms=NOW, hold_seconds=0, balance=55) == (0, None)
    # at NOW + 1h, with a one hour hold, hour `hour` is held until NOW + 2h
    assert held_diamonds(hours, now_ms=NOW + HOUR_MS, hold_seconds=3_600, balance=55) == (
        15,
        NOW + 2 * HOUR_MS,
    )
    assert held_diamonds(hours, now_ms=NOW + HOUR_MS, hold_seconds=3_600, balance=12) == (
        12,
        NOW + 2 * HOUR_MS,
    )
    assert held_diamonds(hours, now_ms=NOW + 3 * HOUR_MS, hold_seconds=3_600, balance=55) == (
        0,
        None,
    )


def test_clawbacks_walk_newest_first_and_keep_to_holdings() -> None:
    gifts = [
        GiftSpend("t3", "cara", 30, 15),
        GiftSpend("t2", "bob", 90, 45),
        GiftSpend("t1", "bob", 20, 10),
    ]
    assert clawbacks(0, gifts, {"bob": 100, "cara": 100}) == []
    assert clawbacks(30, gifts, {"bob": 100, "cara": 100}) == [("cara", 15)]
    assert clawbacks(60, gifts, {"bob": 100, "cara": 100}) == [("cara", 15), ("bob", 15)]
    assert clawbacks(500, gifts, {"bob": 100, "cara": 100}) == [("cara", 15), ("bob", 55)]
    assert clawbacks(500, gifts, {"bob": 20, "cara": 0}) == [("bob", 20)]


def test_relaxing_limits() -> None:
    strict = UserLimits(daily_cap=10, monthly_cap=100, purchases_enabled=False)
    assert not relaxes(strict, strict)
    assert not relaxes(strict, UserLimits(daily_cap=5, monthly_cap=100, purchases_enabled=False))
    assert relaxes(strict, UserLimits(daily_cap=11, monthly_cap=100, purchases_enabled=False))
    assert relaxes(strict, UserLimits(daily_cap=None, monthly_cap=100, purchases_enabled=False))
    assert relaxes(strict, UserLimits(daily_cap=10, monthly_cap=100))
    assert relaxes(
        strict, UserLimits(daily_cap=10, monthly_cap=100, purchases_enabled=False, tz="Asia/Tokyo")
    )
    assert not relaxes(UserLimits(), UserLimits(daily_cap=0))


def test_pins_are_salted_hashes() -> None:
    stored = hash_pin("1234")
    assert "1234" not in stored
    assert pin_matches(stored, hash_pin("1234", pin_salt(stored)))
    assert not pin_matches(stored, hash_pin("1235", pin_salt(stored)))
    assert not pin_matches("", "")
    assert hash_pin("1234") != stored  # a new salt each time

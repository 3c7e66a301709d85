"""The money rules' arithmetic and messages, shared by every backend.

Both engines do exactly this (the Redis Lua scripts mirror it line for line, in
integers), so the conformance suite can compare their balances and messages:

- **spending caps** count coins spent on gifts per local day and month of the
  user's time zone; a gift that would pass a cap is refused whole;
- **rate limits** are token buckets in integer units: with a token of 60,000
  units a rate per minute refills that many units per millisecond (gifts), with
  a token of 3,600,000 units a rate per hour does (``Wallet.rate_limit``); an
  operation that fails takes nothing;
- **held diamonds**: diamonds earned in hour ``h`` (``ms // 3_600_000``) become
  withdrawable at ``(h + 1) * 3_600_000 + hold``; ``held`` never exceeds the
  balance (clawbacks and withdrawals take from the withdrawable part first);
- **clawback**: a reversal whose coins were partly spent walks the user's gifts
  made after the purchase, newest first, attributing the spent coins to them;
  a gift covered in full gives back all its diamonds, a partly covered one
  ``floor(diamonds * covered / coins)``; each creator gives back at most the
  diamonds they still hold.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from store.domain import refusals
from store.domain.accounts import UserLimits
from store.errors import BadRequest

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
TOKEN: Final = 60_000
"""Units of one gift rate-limit token (a rate per minute refills that many units per ms)."""
HOUR_TOKEN: Final = 3_600_000
"""Units of one ``Wallet.rate_limit`` token (a rate per hour refills that many per ms)."""
MAX_CLAWBACK_GIFTS: Final = 1_000
"""Gifts a reversal looks through for clawbacks (the newest ones after the purchase)."""
MAX_CAP: Final = 10**12
PIN_PATTERN: Final = re.compile(r"^[0-9]{4,8}$")
_PIN_ITERATIONS: Final = 100_000
MAX_TZ_LENGTH: Final = 64

# ---------------------------------------------------------------------------- #
# Time
# ---------------------------------------------------------------------------- #


@lru_cache(maxsize=1_024)
def zone(tz: str) -> ZoneInfo:
    """The IANA zone ``tz``; ``BadRequest`` for an unknown one."""
    if not tz or len(tz) > MAX_TZ_LENGTH or tz.startswith(("/", ".")) or ".." in tz:
        raise BadRequest("tz must be an IANA time zone name, like Europe/Paris")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {tz!r}") from None


_WHOLE_MINUTES_SINCE_MS: Final = 94_694_400_000
"""1973-01-01 UTC: from then on every zone's offset is a whole number of minutes,
so a local day or month always starts on a UTC minute."""
_PERIODS: dict[tuple[str, int], tuple[str, str]] = {}
"""``local_periods`` by zone and UTC minute: every gift reads its sender's periods."""
MAX_PERIODS: Final = 4_096


def local_periods(now_ms: int, tz: str) -> tuple[str, str]:
    """``(YYYY-MM-DD, YYYY-MM)`` of the moment ``now_ms`` in time zone ``tz``."""
    if now_ms < _WHOLE_MINUTES_SINCE_MS:
        return _local_periods(now_ms, tz)
    key = (tz, now_ms // 60_000)
    found = _PERIODS.get(key)
    if found is None:
        found = _local_periods(now_ms, tz)
        if len(_PERIODS) >= MAX_PERIODS:
            _PERIODS.clear()  # a cache of the last minutes: what is missing is computed
        _PERIODS[key] = found
    return found


def _local_periods(now_ms: int, tz: str) -> tuple[str, str]:
    local = datetime.fromtimestamp(now_ms / 1000, tz=zone(tz))
    return local.strftime("%Y-%m-%d"), local.strftime("%Y-%m")


def day_start_ms(ms: int) -> int:
    """Start of the UTC day holding ``ms`` (the withdrawal day)."""
    return ms - ms % DAY_MS


def local_date_of_hour(hour: int, tz: str) -> str:
    """The local date in ``tz`` of the start of hour ``hour``."""
    return datetime.fromtimestamp(hour * 3_600, tz=zone(tz)).strftime("%Y-%m-%d")


# ---------------------------------------------------------------------------- #
# Spending caps and rate limits
# ---------------------------------------------------------------------------- #


def effective_cap(platform: int, user: int | None) -> int | None:
    """The cap that applies: the lower of the platform's (0: none) and the user's."""
    caps = [c for c in (platform or None, user) if c is not None]
    return min(caps) if caps else None


def check_caps(
    *,
    total: int,
    limits: UserLimits,
    policy_daily: int,
    policy_monthly: int,
    day_spent: int,
    month_spent: int,
    refusing: tuple[refusals.Refusal, refusals.Refusal] = (
        refusals.DAILY_CAP,
        refusals.MONTHLY_CAP,
    ),
) -> None:
    """``LimitExceeded`` when ``total`` more coins would pass a cap (day, then month);
    ``refusing``: the daily and monthly refusals (a gift's, or an item's)."""
    daily = effective_cap(policy_daily, limits.daily_cap)
    if daily is not None and day_spent + total > daily:
        raise refusing[0](daily, day_spent)
    monthly = effective_cap(policy_monthly, limits.monthly_cap)
    if monthly is not None and month_spent + total > monthly:
        raise refusing[1](monthly, month_spent)


def refill(
    tokens: int | None, at: int | None, now: int, rate: int, burst: int, *, token: int = TOKEN
) -> int:
    """Units in the bucket at ``now`` (a bucket never seen is full); ``rate`` units
    come back per millisecond."""
    capacity = burst * token
    if tokens is None or at is None:
        return capacity
    elapsed = max(0, now - at)
    elapsed = min(elapsed, capacity)  # rate >= 1: this much always fills it
    return min(capacity, tokens + elapsed * rate)


def wait_ms(units: int, rate: int, *, token: int = TOKEN) -> int:
    """Milliseconds until the bucket holds one token."""
    return (token - units + rate - 1) // rate


# ---------------------------------------------------------------------------- #
# Held diamonds
# ---------------------------------------------------------------------------- #


def first_held_hour(now_ms: int, hold_seconds: int) -> int:
    """Hours from this one on are still held at ``now_ms``."""
    return (now_ms - hold_seconds * 1_000) // HOUR_MS


def held_diamonds(
    hours: Iterable[tuple[int, int]], *, now_ms: int, hold_seconds: int, balance: int
) -> tuple[int, int | None]:
    """``(held, next_release_at)`` for a creator holding ``balance`` diamonds."""
    if hold_seconds == 0:
        return 0, None
    first = first_held_hour(now_ms, hold_seconds)
    recent = [(h, d) for h, d in hours if h >= first and d > 0]
    held = min(max(balance, 0), sum(d for _, d in recent))
    if held == 0:
        return 0, None
    oldest = min(h for h, _ in recent)
    return held, (oldest + 1) * HOUR_MS + hold_seconds * 1_000


# ---------------------------------------------------------------------------- #
# Clawbacks
# ---------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class GiftSpend:
    """One gift the user made after the reversed purchase."""

    tx: str
    creator_id: str
    coins: int
    diamonds: int


def clawbacks(
    shortfall: int, gifts: Sequence[GiftSpend], holdings: dict[str, int]
) -> list[tuple[str, int]]:
    """``[(creator id, diamonds)]`` to claw back, per creator in order of first
    appearance, for ``shortfall`` spent coins attributed to ``gifts`` (newest first);
    ``holdings`` is each creator's diamond balance (not changed)."""
    left = dict(holdings)
    taken: dict[str, int] = {}
    remaining = shortfall
    for gift in gifts:
        if remaining <= 0:
            break
        if gift.coins <= 0:
            continue
        covered = min(remaining, gift.coins)
        remaining -= covered
        # a partly covered gift gives back its share, rounded down
        owed = gift.diamonds if covered == gift.coins else gift.diamonds * covered // gift.coins
        claw = min(owed, max(left.get(gift.creator_id, 0), 0))
        if claw <= 0:
            continue
        left[gift.creator_id] = left.get(gift.creator_id, 0) - claw
        taken[gift.creator_id] = taken.get(gift.creator_id, 0) + claw
    return list(taken.items())


# ---------------------------------------------------------------------------- #
# Limits and the PIN
# ---------------------------------------------------------------------------- #


def check_limits(limits: UserLimits, *, policy_daily: int, policy_monthly: int) -> None:
    """``BadRequest`` for caps out of range or an unknown time zone."""
    zone(limits.tz)
    for name, cap, platform in (
        ("daily_cap", limits.daily_cap, policy_daily),
        ("monthly_cap", limits.monthly_cap, policy_monthly),
    ):
        if cap is None:
            continue
        if cap < 0 or cap > MAX_CAP:
            raise BadRequest(f"{name} must be a number of coins from 0 to {MAX_CAP}")
        if platform and cap > platform:
            raise BadRequest(f"{name} can be at most the platform's {platform} coins")


def _raises(old: int | None, new: int | None) -> bool:
    if old is None:
        return False
    return new is None or new > old


def relaxes(old: UserLimits, new: UserLimits) -> bool:
    """Whether ``new`` allows anything ``old`` did not."""
    return (
        (new.purchases_enabled and not old.purchases_enabled)
        or (new.gifting_enabled and not old.gifting_enabled)
        or _raises(old.daily_cap, new.daily_cap)
        or _raises(old.monthly_cap, new.monthly_cap)
        or new.tz != old.tz
    )


def check_pin_format(pin: str) -> None:
    if not PIN_PATTERN.match(pin):
        raise BadRequest("a PIN is 4 to 8 digits")


def hash_pin(pin: str, salt: str | None = None) -> str:
    """``salt$hash`` (PBKDF2-SHA256). Slow on purpose: call it off the event loop."""
    salt = salt or os.urandom(16).hex()
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), _PIN_ITERATIONS)
    return f"{salt}${digest.hex()}"


def pin_salt(stored: str) -> str:
    return stored.partition("$")[0]


def pin_matches(stored: str, candidate: str) -> bool:
    return bool(stored) and hmac.compare_digest(stored.encode(), candidate.encode())


def pin_needed(*, old: UserLimits, new: UserLimits, pin_set: bool, new_pin: str | None) -> bool:
    """Whether this change needs the current PIN."""
    return pin_set and (relaxes(old, new) or new_pin is not None)

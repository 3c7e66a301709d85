"""The gift catalog and the coin packages sold per region.

The catalog is configuration, identical on every node: prices are read from
here by the server, never from a client message.
"""

from __future__ import annotations

from collections.abc import Iterable

from store.models import CoinPackage, Gift

# id, name, coins, animation, streakable
_DEFAULT_GIFTS: tuple[tuple[str, str, int, str, bool], ...] = (
    ("rose", "Rose", 1, "float", True),
    ("finger_heart", "Finger Heart", 5, "pop", True),
    ("perfume", "Perfume", 20, "spray", True),
    ("doughnut", "Doughnut", 30, "bounce", True),
    ("confetti", "Confetti", 100, "burst", False),
    ("sunglasses", "Sunglasses", 199, "slide", False),
    ("galaxy", "Galaxy", 1_000, "spiral", False),
    ("lion", "Lion", 29_999, "roar", False),
    ("universe", "Universe", 44_999, "cosmos", False),
)

DEFAULT_GIFTS: tuple[Gift, ...] = tuple(
    Gift(
        id=gid,
        name=name,
        coins=coins,
        animation=anim,
        image=f"/static/gifts/{gid}.svg",
        streakable=streak,
    )
    for gid, name, coins, anim, streak in _DEFAULT_GIFTS
)

# coins, bonus: bulk packages carry bonus coins, so they give better value per coin.
_TIERS: tuple[tuple[int, int], ...] = (
    (70, 0),
    (350, 0),
    (700, 7),
    (1_400, 28),
    (3_500, 175),
    (7_000, 700),
)

# region -> (currency, prices in minor units, one per tier)
_PRICES: dict[str, tuple[str, tuple[int, ...]]] = {
    "US": ("USD", (99, 499, 999, 1_999, 4_999, 9_999)),
    "GB": ("GBP", (89, 449, 899, 1_799, 4_499, 8_999)),
    "EU": ("EUR", (99, 499, 999, 1_999, 4_999, 9_999)),
    "IN": ("INR", (8_900, 44_900, 89_900, 179_900, 449_900, 899_900)),
    "BR": ("BRL", (549, 2_749, 5_499, 10_999, 27_499, 54_999)),
}

DEFAULT_PACKAGES: tuple[CoinPackage, ...] = tuple(
    CoinPackage(
        id=f"{region.lower()}_{coins}",
        region=region,
        currency=currency,
        coins=coins,
        bonus=bonus,
        price_minor=price,
    )
    for region, (currency, prices) in _PRICES.items()
    for (coins, bonus), price in zip(_TIERS, prices, strict=True)
)


class Catalog:
    """Gifts by id and coin packages by id and region."""

    def __init__(
        self,
        *,
        gifts: Iterable[Gift] = DEFAULT_GIFTS,
        packages: Iterable[CoinPackage] = DEFAULT_PACKAGES,
    ) -> None:
        self._gifts = {g.id: g for g in gifts}
        self._packages = {p.id: p for p in packages}

    def gifts(self) -> list[Gift]:
        return sorted(self._gifts.values(), key=lambda g: (g.coins, g.id))

    def gift(self, gift_id: str) -> Gift | None:
        return self._gifts.get(gift_id)

    def regions(self) -> list[str]:
        return sorted({p.region for p in self._packages.values()})

    def packages(self, region: str) -> list[CoinPackage]:
        return sorted(
            (p for p in self._packages.values() if p.region == region),
            key=lambda p: p.coins,
        )

    def package(self, package_id: str) -> CoinPackage | None:
        return self._packages.get(package_id)

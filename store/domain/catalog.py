"""The gift catalog and the coin packages sold per region, as of one version.

The engine stores the catalog (``store.catalogs.Catalogs``) and every node
holds the latest version in memory as a ``Catalog``: prices are read from here
by the server, never from a client message. A fresh store starts with the
defaults below. Promotions are configuration (``LIVE_PROMOTIONS``), not stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from store.domain.items import DEFAULT_ITEMS, Item
from store.domain.models import CoinPackage, Gift, Promotion, PromotionGrant
from store.ids import now_ms as now_ms_clock

# id, name, coins, animation, streakable, tier
_DEFAULT_GIFTS: tuple[tuple[str, str, int, str, bool, int], ...] = (
    ("rose", "Rose", 1, "float", True, 1),
    ("finger_heart", "Finger Heart", 5, "pop", True, 1),
    ("perfume", "Perfume", 20, "spray", True, 1),
    ("doughnut", "Doughnut", 30, "bounce", True, 1),
    ("confetti", "Confetti", 100, "burst", False, 2),
    ("sunglasses", "Sunglasses", 199, "slide", False, 2),
    ("galaxy", "Galaxy", 1_000, "spiral", False, 3),
    ("lion", "Lion", 29_999, "roar", False, 4),
    ("universe", "Universe", 44_999, "cosmos", False, 5),
)

DEFAULT_GIFTS: tuple[Gift, ...] = tuple(
    Gift(
        id=gid,
        name=name,
        coins=coins,
        animation=anim,
        image=f"/static/gifts/{gid}.svg",
        streakable=streak,
        tier=tier,
    )
    for gid, name, coins, anim, streak, tier in _DEFAULT_GIFTS
)

# coins, bonus: bulk packages carry bonus coins and cost less per coin, so in
# every region each tier gives strictly better value per coin than the one before.
_TIERS: tuple[tuple[int, int], ...] = (
    (70, 0),
    (350, 0),
    (700, 7),
    (1_400, 28),
    (3_500, 175),
    (7_000, 700),
    (17_500, 2_625),
)

# region -> (currency, prices in minor units, one per tier; None: not sold there)
_PRICES: dict[str, tuple[str, tuple[int | None, ...]]] = {
    "US": ("USD", (109, 499, 999, 1_999, 4_999, 9_999, 24_999)),
    "GB": ("GBP", (99, 449, 899, 1_799, 4_499, 8_999, 21_999)),
    "EU": ("EUR", (109, 499, 999, 1_999, 4_999, 9_999, 24_999)),
    "IN": ("INR", (9_900, 44_900, 89_900, 179_900, 449_900, 899_900, None)),
    "BR": ("BRL", (599, 2_749, 5_499, 10_999, 27_499, 54_999, None)),
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
    if price is not None
)


class Catalog:
    """Gifts by id, coin packages by id and region, and the promotions on them.

    Retired (and out-of-window) entries stay here, readable by id for history;
    the lists of what is on sale leave them out."""

    def __init__(
        self,
        *,
        gifts: Iterable[Gift] = DEFAULT_GIFTS,
        packages: Iterable[CoinPackage] = DEFAULT_PACKAGES,
        promotions: Iterable[Promotion] = (),
        version: int = 0,
        items: Iterable[Item] = DEFAULT_ITEMS,
    ) -> None:
        self.version = version
        """Increases with every stored change (0: not stored yet)."""
        self._gifts = {g.id: g for g in gifts}
        self._packages = {p.id: p for p in packages}
        self._items = {i.id: i for i in items}
        self._promotions = tuple(promotions)
        ids = [p.id for p in self._promotions]
        if len(set(ids)) != len(ids):
            raise ValueError("promotion ids must be unique")
        for promotion in self._promotions:
            if not 0 < promotion.percent <= 1_000:
                raise ValueError(f"promotion {promotion.id}: percent must be within 1..1000")

    def promotions(self, package: CoinPackage, now_ms: int) -> list[Promotion]:
        """The promotions that apply to ``package`` at ``now_ms`` (first-purchase ones
        included: the wallet decides whether the buyer still qualifies)."""
        return [p for p in self._promotions if p.applies(package, now_ms) and p.coins(package)]

    def grants(self, package: CoinPackage, now_ms: int) -> tuple[PromotionGrant, ...]:
        return tuple(p.grant(package) for p in self.promotions(package, now_ms))

    def with_entries(
        self,
        *,
        gifts: Iterable[Gift],
        packages: Iterable[CoinPackage],
        version: int,
        items: Iterable[Item] = (),
    ) -> Catalog:
        """This catalog's promotions over other gifts, packages and items (a stored version)."""
        return Catalog(
            gifts=gifts,
            packages=packages,
            promotions=self._promotions,
            version=version,
            items=items,
        )

    def all_items(self) -> list[Item]:
        """Every item, retired ones too (the admin's list)."""
        return sorted(self._items.values(), key=lambda i: (i.kind, i.coins, i.id))

    def items(self) -> list[Item]:
        """The items on sale (the shop)."""
        return [i for i in self.all_items() if not i.retired]

    def item(self, item_id: str) -> Item | None:
        """An item by id, retired or not: owners keep a retired item until it expires."""
        return self._items.get(item_id)

    def all_gifts(self) -> list[Gift]:
        """Every gift, retired ones too (the admin's list)."""
        return sorted(self._gifts.values(), key=lambda g: (g.coins, g.id))

    def gifts(self, now_ms: int | None = None, region: str | None = None) -> list[Gift]:
        """The gifts on sale (at ``now_ms``, in ``region`` when given)."""
        now = now_ms if now_ms is not None else now_ms_clock()
        return [g for g in self.all_gifts() if g.offered(now, region)]

    def gift(self, gift_id: str) -> Gift | None:
        """A gift by id, retired or not: history and leaderboards still name it."""
        return self._gifts.get(gift_id)

    def all_packages(self) -> list[CoinPackage]:
        return sorted(self._packages.values(), key=lambda p: (p.region, p.coins, p.id))

    def entries(self, kind: str) -> dict[str, Gift | CoinPackage | Item]:
        """Every entry of a kind (``gift``, ``package``, ``item``) by id, retired ones too."""
        if kind == "gift":
            return dict(self._gifts)
        if kind == "package":
            return dict(self._packages)
        if kind == "item":
            return dict(self._items)
        raise ValueError(f"no catalog entries of kind {kind!r}")

    def regions(self) -> list[str]:
        return sorted({p.region for p in self._packages.values() if not p.retired})

    def packages(self, region: str) -> list[CoinPackage]:
        """The packages on sale in ``region``, smallest first."""
        return sorted(
            (p for p in self._packages.values() if p.region == region and not p.retired),
            key=lambda p: p.coins,
        )

    def package(self, package_id: str) -> CoinPackage | None:
        return self._packages.get(package_id)

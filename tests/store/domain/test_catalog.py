"""The coin packages per region and the promotions on them."""

from __future__ import annotations

import pytest

from store.domain.catalog import Catalog
from store.domain.models import Promotion, PromotionGrant

CURRENCIES = {"US": "USD", "GB": "GBP", "EU": "EUR", "IN": "INR", "BR": "BRL"}
NOW = 1_767_225_600_000


def test_every_region_sells_in_its_currency() -> None:
    catalog = Catalog()
    assert catalog.regions() == sorted(CURRENCIES)
    for region, currency in CURRENCIES.items():
        packages = catalog.packages(region)
        assert packages, region
        assert {p.currency for p in packages} == {currency}
        assert all(p.region == region and p.id.startswith(region.lower()) for p in packages)
        assert all(isinstance(p.price_minor, int) and p.price_minor > 0 for p in packages)


@pytest.mark.parametrize("region", sorted(CURRENCIES))
def test_bigger_packages_give_better_value_per_coin(region: str) -> None:
    packages = Catalog().packages(region)
    per_coin = [p.price_minor / (p.coins + p.bonus) for p in packages]
    assert per_coin == sorted(per_coin, reverse=True)
    assert len(set(per_coin)) == len(per_coin), "each tier must be strictly cheaper per coin"


def test_packages_not_sold_in_a_region_are_not_listed() -> None:
    catalog = Catalog()
    assert catalog.package("us_17500") is not None
    for region in ("IN", "BR"):
        assert all(p.coins < 17_500 for p in catalog.packages(region))
        assert catalog.package(f"{region.lower()}_17500") is None


def test_promotions_apply_in_their_window_regions_and_packages() -> None:
    campaign = Promotion(
        id="spring",
        percent=20,
        starts_at=NOW,
        ends_at=NOW + 1_000,
        regions=frozenset({"US"}),
        packages=frozenset({"us_700", "gb_700"}),
    )
    first = Promotion(id="welcome", percent=10, first_purchase=True)
    catalog = Catalog(promotions=[campaign, first])
    us_700, us_70, gb_700 = (catalog.package(i) for i in ("us_700", "us_70", "gb_700"))
    assert us_700 is not None and us_70 is not None and gb_700 is not None
    assert catalog.grants(us_700, NOW) == (
        PromotionGrant("spring", 140),
        PromotionGrant("welcome", 70, first_purchase=True),
    )
    assert catalog.grants(us_700, NOW - 1) == (PromotionGrant("welcome", 70, True),)
    assert catalog.grants(us_700, NOW + 1_000) == (PromotionGrant("welcome", 70, True),)
    assert [p.id for p in catalog.promotions(gb_700, NOW)] == ["welcome"]  # not in GB
    assert [p.id for p in catalog.promotions(us_70, NOW)] == ["welcome"]  # not this package
    assert campaign.public(us_700) == {
        "id": "spring",
        "percent": 20,
        "coins": 140,
        "first_purchase": False,
        "starts_at": NOW,
        "ends_at": NOW + 1_000,
    }


def test_promotions_must_be_sane() -> None:
    with pytest.raises(ValueError):
        Catalog(promotions=[Promotion("a", 10), Promotion("a", 20)])
    with pytest.raises(ValueError):
        Catalog(promotions=[Promotion("a", 0)])

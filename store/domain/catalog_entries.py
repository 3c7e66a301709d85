"""Catalog entries as documents: validation, and the JSON/TOML shape of each kind.

One shape serves the admin API, ``live catalog export/import`` and the engines'
storage, so a gift reads the same wherever it is written. Every entry is
validated whole before anything is stored; a bad field is a ``BadRequest``
that names it (``gifts[3].coins: ...``).

A kind is a name (``gift``, ``package``, ``item``) with a reader and a writer
in ``KINDS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from store.domain.catalog import Catalog
from store.domain.items import (
    BUBBLE,
    COLOR,
    ENTRANCE_EFFECT,
    ITEM_KINDS,
    MAX_DURATION_DAYS,
    NAME_STYLE,
    Item,
)
from store.domain.models import Asset, CoinPackage, Gift
from store.errors import BadRequest

GIFT: Final = "gift"
PACKAGE: Final = "package"
ITEM: Final = "item"

ASSET_FORMATS: Final = frozenset({"lottie", "webp", "mp4-alpha", "webm-alpha", "gif", "svg", "png"})
MAX_COINS: Final = 10_000_000
MAX_TIER: Final = 5

ENTRY_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
LOCALE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
REGION: Final = re.compile(r"^[A-Z]{2}$")
CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
ANIMATION: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
URL: Final = re.compile(r"^(/|https?://)[\x21-\x7e]{0,499}$")


class EntryError(BadRequest):
    """A catalog entry's field is missing or wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Fields:
    """Typed reads of one entry's fields, each error naming ``prefix.field``."""

    def __init__(self, raw: object, prefix: str, defaults: Mapping[str, Any]) -> None:
        if not isinstance(raw, Mapping):
            raise EntryError(prefix, "must be a map")
        self.raw = {**defaults, **raw}
        self.prefix = prefix

    def fail(self, name: str, message: str) -> EntryError:
        return EntryError(f"{self.prefix}.{name}" if self.prefix else name, message)

    def value(self, name: str) -> object:
        if name not in self.raw:
            raise self.fail(name, "is required")
        return self.raw[name]

    def text(self, name: str, pattern: re.Pattern[str] | None = None, *, most: int = 200) -> str:
        value = self.value(name)
        if not isinstance(value, str) or not value.strip() or len(value) > most:
            raise self.fail(name, f"must be a non-empty string of at most {most} characters")
        if not value.isprintable() or (pattern is not None and not pattern.match(value)):
            raise self.fail(name, f"{value[:40]!r} is not valid here")
        return value

    def optional_text(self, name: str, pattern: re.Pattern[str]) -> str | None:
        return None if self.raw.get(name) is None else self.text(name, pattern, most=500)

    def integer(self, name: str, least: int, most: int) -> int:
        value = self.value(name)
        if type(value) is not int or not least <= value <= most:
            raise self.fail(name, f"must be an integer from {least} to {most}")
        return value

    def optional_time(self, name: str) -> int | None:
        return None if self.raw.get(name) is None else self.integer(name, 0, 2**53)

    def flag(self, name: str) -> bool:
        value = self.value(name)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def check_known(self, known: Sequence[str]) -> None:
        for name in self.raw:
            if name not in known:
                raise self.fail(str(name), "is not a field of this entry")


def _asset(f: _Fields) -> Asset | None:
    """An entry's optional animation asset (``{url, format}``)."""
    raw_asset = f.raw.get("asset")
    if raw_asset is None:
        return None
    a = _Fields(raw_asset, f"{f.prefix}.asset" if f.prefix else "asset", {})
    a.check_known(("url", "format"))
    asset_format = a.text("format", most=20)
    if asset_format not in ASSET_FORMATS:
        raise a.fail("format", f"must be one of {', '.join(sorted(ASSET_FORMATS))}")
    return Asset(url=a.text("url", URL, most=500), format=asset_format)


def _asset_document(asset: Asset | None) -> dict[str, str] | None:
    return {"url": asset.url, "format": asset.format} if asset else None


_GIFT_DEFAULTS: Final = {
    "animation": "pop",
    "streakable": False,
    "tier": 1,
    "regions": [],
    "translations": {},
    "retired": False,
}
_GIFT_FIELDS: Final = (
    "id",
    "name",
    "coins",
    "image",
    "animation",
    "asset",
    "sound",
    "streakable",
    "tier",
    "translations",
    "regions",
    "available_from",
    "available_until",
    "retired",
)


def gift_from_document(raw: object, *, prefix: str = "") -> Gift:
    """A validated gift from its document (missing optional fields take defaults)."""
    f = _Fields(raw, prefix, _GIFT_DEFAULTS)
    f.check_known(_GIFT_FIELDS)
    translations = f.value("translations")
    if not isinstance(translations, Mapping):
        raise f.fail("translations", "must be a map of locale to name")
    names: list[tuple[str, str]] = []
    for locale, name in sorted(translations.items()):
        if not isinstance(locale, str) or not LOCALE.match(locale):
            raise f.fail("translations", f"{str(locale)[:20]!r} is not a locale like fr or pt-BR")
        if not isinstance(name, str) or not name.strip() or len(name) > 60:
            raise f.fail(
                f"translations.{locale}", "must be a non-empty name of at most 60 characters"
            )
        names.append((locale, name))
    regions = f.value("regions")
    if not isinstance(regions, list) or not all(
        isinstance(r, str) and REGION.match(r) for r in regions
    ):
        raise f.fail("regions", "must be a list of two-letter region codes like US")
    asset = _asset(f)
    gift = Gift(
        id=f.text("id", ENTRY_ID, most=64),
        name=f.text("name", most=60),
        coins=f.integer("coins", 1, MAX_COINS),
        animation=f.text("animation", ANIMATION, most=32),
        image=f.text("image", URL, most=500),
        streakable=f.flag("streakable"),
        tier=f.integer("tier", 1, MAX_TIER),
        translations=tuple(names),
        asset=asset,
        sound=f.optional_text("sound", URL),
        regions=frozenset(regions),
        available_from=f.optional_time("available_from"),
        available_until=f.optional_time("available_until"),
        retired=f.flag("retired"),
    )
    if (
        gift.available_from is not None
        and gift.available_until is not None
        and gift.available_from >= gift.available_until
    ):
        raise f.fail("available_until", "must be after available_from")
    return gift


def gift_document(gift: Gift) -> dict[str, Any]:
    """Everything about a gift (the admin's view, export and storage)."""
    doc: dict[str, Any] = {
        "id": gift.id,
        "name": gift.name,
        "coins": gift.coins,
        "image": gift.image,
        "animation": gift.animation,
        "streakable": gift.streakable,
        "tier": gift.tier,
        "regions": sorted(gift.regions),
        "retired": gift.retired,
    }
    for name, value in (
        ("translations", dict(gift.translations) or None),
        ("asset", _asset_document(gift.asset)),
        ("sound", gift.sound),
        ("available_from", gift.available_from),
        ("available_until", gift.available_until),
    ):
        if value is not None:  # TOML has no null: an absent field is "none"
            doc[name] = value
    return doc


_PACKAGE_FIELDS: Final = ("id", "region", "currency", "coins", "bonus", "price_minor", "retired")


def package_from_document(raw: object, *, prefix: str = "") -> CoinPackage:
    f = _Fields(raw, prefix, {"bonus": 0, "retired": False})
    f.check_known(_PACKAGE_FIELDS)
    coins = f.integer("coins", 1, MAX_COINS)
    return CoinPackage(
        id=f.text("id", ENTRY_ID, most=64),
        region=f.text("region", REGION, most=2),
        currency=f.text("currency", CURRENCY, most=3),
        coins=coins,
        bonus=f.integer("bonus", 0, MAX_COINS),
        price_minor=f.integer("price_minor", 1, 2**40),
        retired=f.flag("retired"),
    )


def package_document(package: CoinPackage) -> dict[str, Any]:
    return {name: getattr(package, name) for name in _PACKAGE_FIELDS}


_ITEM_FIELDS: Final = (
    "id",
    "kind",
    "name",
    "coins",
    "image",
    "duration_days",
    "asset",
    "color",
    "bubble",
    "creator_share",
    "retired",
)


def item_from_document(raw: object, *, prefix: str = "") -> Item:
    """A validated in-app item (``store.domain.items``); ``duration_days`` absent:
    permanent."""
    f = _Fields(raw, prefix, {"creator_share": 0, "retired": False})
    f.check_known(_ITEM_FIELDS)
    kind = f.text("kind", most=20)
    if kind not in ITEM_KINDS:
        raise f.fail("kind", f"must be one of {', '.join(ITEM_KINDS)}")
    duration = f.raw.get("duration_days")
    item = Item(
        id=f.text("id", ENTRY_ID, most=64),
        kind=kind,
        name=f.text("name", most=60),
        coins=f.integer("coins", 1, MAX_COINS),
        image=f.text("image", URL, most=500),
        duration_days=None
        if duration is None
        else f.integer("duration_days", 1, MAX_DURATION_DAYS),
        asset=_asset(f),
        color=f.optional_text("color", COLOR),
        bubble=f.optional_text("bubble", BUBBLE),
        creator_share=f.integer("creator_share", 0, 100),
        retired=f.flag("retired"),
    )
    if kind != NAME_STYLE and (item.color is not None or item.bubble is not None):
        raise f.fail("color", "only a name_style item has a color or bubble")
    if kind == NAME_STYLE and item.color is None and item.bubble is None:
        raise f.fail("color", "a name_style item needs a color, a bubble or both")
    if kind == ENTRANCE_EFFECT and item.asset is None:
        raise f.fail("asset", "an entrance_effect item needs an animation asset")
    return item


def item_document(item: Item) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": item.id,
        "kind": item.kind,
        "name": item.name,
        "coins": item.coins,
        "image": item.image,
        "creator_share": item.creator_share,
        "retired": item.retired,
    }
    for name, value in (
        ("duration_days", item.duration_days),
        ("asset", _asset_document(item.asset)),
        ("color", item.color),
        ("bubble", item.bubble),
    ):
        if value is not None:  # TOML has no null: absent is "none" (permanent)
            doc[name] = value
    return doc


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of catalog entry: its names and how to read and write one."""

    name: str
    plural: str
    """The key of the list in a catalog document (``gifts``)."""
    read: Callable[..., Any]
    write: Callable[[Any], dict[str, Any]]


KINDS: Final = {
    GIFT: Kind(GIFT, "gifts", gift_from_document, gift_document),
    PACKAGE: Kind(PACKAGE, "packages", package_from_document, package_document),
    ITEM: Kind(ITEM, "items", item_from_document, item_document),
}


def catalog_document(catalog: Catalog) -> dict[str, Any]:
    """The whole catalog, retired entries too: what ``live catalog export`` writes
    and ``entries_from_document`` reads back."""
    return {
        "version": catalog.version,
        "gifts": [gift_document(g) for g in catalog.all_gifts()],
        "packages": [package_document(p) for p in catalog.all_packages()],
        "items": [item_document(i) for i in catalog.all_items()],
    }


def entries_from_document(raw: object) -> dict[str, dict[str, Any]]:
    """A whole catalog document (``{"gifts": [...], "packages": [...]}``) validated:
    kind -> id -> entry. Ids are unique per kind; a ``version`` key is ignored."""
    if not isinstance(raw, Mapping):
        raise EntryError("catalog", "must be a map with gifts, packages and items lists")
    plurals = {kind.plural: kind for kind in KINDS.values()}
    for key in raw:
        if key not in plurals and key != "version":
            raise EntryError(str(key), f"is not a list of the catalog ({', '.join(plurals)})")
    result: dict[str, dict[str, Any]] = {}
    for plural, kind in plurals.items():
        items = raw.get(plural, [])
        if not isinstance(items, list):
            raise EntryError(plural, "must be a list")
        entries: dict[str, Any] = {}
        for index, item in enumerate(items):
            entry = kind.read(item, prefix=f"{plural}[{index}]")
            if entry.id in entries:
                raise EntryError(f"{plural}[{index}].id", f"{entry.id!r} appears twice")
            entries[entry.id] = entry
        result[kind.name] = entries
    return result


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """What an import changes (or would, in a dry run): ``kind:id`` names."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    version: int
    """The catalog's version after the import (before it, in a dry run or when
    nothing changed)."""

    def public(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "unchanged": list(self.unchanged),
            "version": self.version,
        }

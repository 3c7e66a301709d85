"""Catalog entries as documents: validation, and the JSON/TOML shape of each kind.

One shape serves the admin API, ``live catalog export/import`` and the engines'
storage, so a gift reads the same wherever it is written. Every entry is
validated whole before anything is stored; a bad field is a ``BadRequest``
that names it (``gifts[3].coins: ...``).

A kind is a name (``gift``, ``package``) with a reader and a writer; a future
kind of entry (in-app items) is one more pair in ``KINDS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from store.domain.catalog import Catalog
from store.domain.models import Asset, CoinPackage, Gift
from store.errors import BadRequest

GIFT: Final = "gift"
PACKAGE: Final = "package"

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
    asset = None
    raw_asset = f.raw.get("asset")
    if raw_asset is not None:
        a = _Fields(raw_asset, f"{f.prefix}.asset" if f.prefix else "asset", {})
        a.check_known(("url", "format"))
        asset_format = a.text("format", most=20)
        if asset_format not in ASSET_FORMATS:
            raise a.fail("format", f"must be one of {', '.join(sorted(ASSET_FORMATS))}")
        asset = Asset(url=a.text("url", URL, most=500), format=asset_format)
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
        ("asset", {"url": gift.asset.url, "format": gift.asset.format} if gift.asset else None),
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
}


def catalog_document(catalog: Catalog) -> dict[str, Any]:
    """The whole catalog, retired entries too: what ``live catalog export`` writes
    and ``entries_from_document`` reads back."""
    return {
        "version": catalog.version,
        "gifts": [gift_document(g) for g in catalog.all_gifts()],
        "packages": [package_document(p) for p in catalog.all_packages()],
    }


def entries_from_document(raw: object) -> dict[str, dict[str, Any]]:
    """A whole catalog document (``{"gifts": [...], "packages": [...]}``) validated:
    kind -> id -> entry. Ids are unique per kind; a ``version`` key is ignored."""
    if not isinstance(raw, Mapping):
        raise EntryError("catalog", "must be a map with gifts and packages lists")
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

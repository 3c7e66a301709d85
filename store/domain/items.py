"""In-app items bought with coins: badges, name styles, entrance and creator effects.

An item is a catalog entry (kind ``item``) like a gift: a coin price, an image
and optional animation asset, permanent or lasting ``duration_days`` from the
purchase, and a retired flag. Buying one is a money operation under the same
rules as a gift (``store.roles.Items.buy``); the coins go to
``platform:revenue``, and when the item is bought in a room and has a
``creator_share``, that share goes to the room's creator as diamonds, exactly
like a gift. What a user owns (with its expiry) and has equipped is their
inventory; the equipped badge and name style travel in their public profile.
No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from store.domain import refusals
from store.domain.models import (
    COIN,
    DIAMOND,
    PLATFORM_EXCHANGE,
    PLATFORM_REVENUE,
    Asset,
    Posting,
    Profile,
    coins_account,
    diamonds_account,
    fingerprint,
)
from store.errors import StoreError

BADGE: Final = "badge"
NAME_STYLE: Final = "name_style"
ENTRANCE_EFFECT: Final = "entrance_effect"
CREATOR_EFFECT: Final = "creator_effect"
ITEM_KINDS: Final = (BADGE, NAME_STYLE, ENTRANCE_EFFECT, CREATOR_EFFECT)
"""Each kind is one slot: a user equips at most one item of each kind."""

DAY_MS: Final = 86_400_000
MAX_DURATION_DAYS: Final = 3_650
COLOR: Final = re.compile(r"^#[0-9a-fA-F]{6}$")
BUBBLE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    kind: str
    """One of ``ITEM_KINDS``."""
    name: str
    coins: int
    image: str
    """The badge icon, or the picture the shop shows."""
    duration_days: int | None = None
    """How long one purchase lasts (``None``: permanent)."""
    asset: Asset | None = None
    """The animation played (entrance and creator effects)."""
    color: str | None = None
    """A name style's colour (``#rrggbb``)."""
    bubble: str | None = None
    """A name style's chat bubble (a style name clients know, like ``gold``)."""
    creator_share: int = 0
    """Percent of the price the room's creator earns (as diamonds) when the item
    is bought in a room; 0: all of it is the platform's."""
    retired: bool = False
    """No longer sold; owners keep it until it expires."""

    def public(self) -> dict[str, Any]:
        """The item as the shop lists it and events carry it."""
        view: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "coins": self.coins,
            "image": self.image,
            "duration_days": self.duration_days,
        }
        for name, value in (
            ("asset", {"url": self.asset.url, "format": self.asset.format} if self.asset else None),
            ("color", self.color),
            ("bubble", self.bubble),
        ):
            if value is not None:
                view[name] = value
        if self.creator_share:
            view["creator_share"] = self.creator_share
        return view

    def style(self) -> dict[str, Any]:
        """What a profile shows of an equipped badge or name style."""
        if self.kind == BADGE:
            return {"id": self.id, "name": self.name, "image": self.image}
        view: dict[str, Any] = {"id": self.id}
        if self.color is not None:
            view["color"] = self.color
        if self.bubble is not None:
            view["bubble"] = self.bubble
        return view

    def effect(self) -> dict[str, Any]:
        """What a room shows of its creator's equipped creator effect: ``id``,
        ``name``, ``image`` and the ``asset`` played over the video."""
        view: dict[str, Any] = {"id": self.id, "name": self.name, "image": self.image}
        if self.asset is not None:
            view["asset"] = {"url": self.asset.url, "format": self.asset.format}
        return view


# id, kind, name, coins, days, extra
_DEFAULT_ITEMS: tuple[tuple[str, str, str, int, int | None, dict[str, Any]], ...] = (
    ("badge_star", BADGE, "Star Badge", 99, 30, {}),
    ("badge_crown", BADGE, "Crown Badge", 999, None, {}),
    ("name_gold", NAME_STYLE, "Golden Name", 199, 30, {"color": "#e6b422", "bubble": "gold"}),
    ("name_neon", NAME_STYLE, "Neon Name", 149, 7, {"color": "#39ff14", "bubble": "neon"}),
    (
        "entrance_comet",
        ENTRANCE_EFFECT,
        "Comet Entrance",
        499,
        30,
        {"asset": Asset(url="/static/items/entrance_comet.svg", format="svg")},
    ),
    (
        "effect_sparkles",
        CREATOR_EFFECT,
        "Sparkle Filter",
        299,
        30,
        {
            "asset": Asset(url="/static/items/effect_sparkles.svg", format="svg"),
            "creator_share": 50,
        },
    ),
)

DEFAULT_ITEMS: tuple[Item, ...] = tuple(
    Item(
        id=item_id,
        kind=kind,
        name=name,
        coins=coins,
        image=f"/static/items/{item_id}.svg",
        duration_days=days,
        **extra,
    )
    for item_id, kind, name, coins, days, extra in _DEFAULT_ITEMS
)


# --------------------------------------------------------------------------- #
# Buying
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class ItemRequest:
    buyer: Profile
    item: Item
    key: str
    """The client's Idempotency-Key: one purchase per (buyer, key)."""
    room_id: str | None = None
    """Bought while watching this room: its creator earns the item's share."""
    shown_coins: int | None = None
    """The price the client showed its user (``None``: not said)."""
    now: int | None = None

    def fingerprint(self) -> str:
        return fingerprint("item", self.item.id, self.room_id or "")

    def sale_refusal(self, now_ms: int) -> StoreError | None:
        """Why the item can't be sold now, or None; raised after the idempotency
        check, like a gift's."""
        if self.item.retired:
            return refusals.ITEM_NOT_OFFERED(self.item.id)
        if self.shown_coins is not None and self.shown_coins != self.item.coins:
            return refusals.PRICE_CHANGED(self.item.id, self.item.coins, self.shown_coins)
        return None

    def meta(self) -> dict[str, Any]:
        """What the ledger keeps of the item: as it was when bought."""
        item = self.item
        return {
            "item_id": item.id,
            "item_kind": item.kind,
            "item_name": item.name,
            "item_coins": item.coins,
            "duration_days": item.duration_days,
        }


def split_item(item: Item, *, in_room: bool) -> tuple[int, int]:
    """``(creator diamonds, platform coins)`` of an item bought (in a room or not):
    the creator's share rounds down, the platform keeps the rest."""
    diamonds = item.coins * item.creator_share // 100 if in_room else 0
    return diamonds, item.coins - diamonds


def item_postings(
    *, buyer_id: str, creator_id: str, coins: int, diamonds: int
) -> tuple[Posting, ...]:
    """The buyer's coins to the platform (and the creator's share as diamonds,
    through ``platform:exchange`` like a gift's). Zero postings are left out."""
    postings = [
        Posting(coins_account(buyer_id), COIN, -coins),
        Posting(PLATFORM_REVENUE, COIN, coins - diamonds),
    ]
    if diamonds:
        postings += [
            Posting(PLATFORM_EXCHANGE, COIN, diamonds),
            Posting(PLATFORM_EXCHANGE, DIAMOND, -diamonds),
            Posting(diamonds_account(creator_id), DIAMOND, diamonds),
        ]
    return tuple(postings)


def expiry_after(item: Item, *, now: int, owned_until: int | None) -> int | None:
    """When the item runs out if bought at ``now``: a timed item still owned is
    extended from its current end; ``None`` for a permanent one."""
    if item.duration_days is None:
        return None
    start = owned_until if owned_until is not None and owned_until > now else now
    return start + item.duration_days * DAY_MS


@dataclass(frozen=True, slots=True)
class ItemReceipt:
    tx: str
    item_id: str
    kind: str
    coins: int
    diamonds: int
    """Diamonds the room's creator earned from it (0 outside a room)."""
    creator_id: str
    """The room's creator who earned them ("" for none)."""
    room_id: str
    balance: int
    """The buyer's coin balance right after."""
    expires_at: int | None
    created_at: int
    replayed: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "tx": self.tx,
            "item": self.item_id,
            "kind": self.kind,
            "coins": self.coins,
            "expires_at": self.expires_at,
            "balance": {"coins": self.balance},
            "replayed": self.replayed,
        }


# --------------------------------------------------------------------------- #
# Inventory
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True)
class Owned:
    """One item a user owns: since when, until when, and whether it is equipped."""

    item_id: str
    kind: str
    acquired_at: int
    expires_at: int | None
    equipped: bool = False

    def active(self, now: int) -> bool:
        return self.expires_at is None or now < self.expires_at

    def public(self) -> dict[str, Any]:
        return {
            "item": self.item_id,
            "kind": self.kind,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "equipped": self.equipped,
        }


def owned_from(
    rows: list[tuple[str, str, int, int | None]], equipped: dict[str, str], *, now: int
) -> list[Owned]:
    """The inventory from stored ``(item, kind, acquired_at, expires_at)`` rows and
    the equipped item per kind: expired items left out (they stop showing by
    themselves), equipped ones marked, newest first."""
    owned = [
        Owned(
            item_id=item_id,
            kind=kind,
            acquired_at=acquired,
            expires_at=expires,
            equipped=equipped.get(kind) == item_id,
        )
        for item_id, kind, acquired, expires in rows
    ]
    active = [o for o in owned if o.active(now)]
    return sorted(active, key=lambda o: (-o.acquired_at, o.item_id))


def expired_from(rows: list[tuple[str, str, int, int | None]], *, now: int) -> list[Owned]:
    """The items whose time ran out, most recent expiry first."""
    gone = [
        Owned(item_id=i, kind=k, acquired_at=a, expires_at=e)
        for i, k, a, e in rows
        if e is not None and e <= now
    ]
    return sorted(gone, key=lambda o: (-(o.expires_at or 0), o.item_id))


@dataclass(frozen=True, slots=True)
class Look:
    """What others see of a user's equipped items (``Profile.look``)."""

    badge: dict[str, Any] | None = None
    name_style: dict[str, Any] | None = None
    entrance: Item | None = None
    creator_effect: Item | None = None
    """The effect shown over the user's stream when they are a room's creator."""
    until: int | None = None
    """When the first of these runs out (the look must be read again then)."""

    def public(self) -> dict[str, Any]:
        view: dict[str, Any] = {}
        if self.badge is not None:
            view["badge"] = self.badge
        if self.name_style is not None:
            view["name_style"] = self.name_style
        return view

"""Plain value types shared by every backend. No I/O here."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from protocol import events
from store.domain import refusals
from store.errors import StoreError

COIN = "coin"
DIAMOND = "diamond"
ASSETS = (COIN, DIAMOND)

WORLD = "world"
PLATFORM_REVENUE = "platform:revenue"
PLATFORM_EXCHANGE = "platform:exchange"
PAYOUT = "payout"

Event = dict[str, Any]
"""One wire event: a map with ``type`` (room events also get ``seq`` and ``ts``)."""


def coins_account(user_id: str) -> str:
    return f"user:{user_id}:coins"


def diamonds_account(user_id: str) -> str:
    return f"user:{user_id}:diamonds"


@dataclass(frozen=True, slots=True)
class Profile:
    """Who a user is, as their verified token says. Never taken from a message."""

    id: str
    username: str
    display_name: str = ""
    avatar: str = ""
    adult: bool = False
    roles: frozenset[str] = frozenset()
    look: dict[str, Any] | None = field(default=None, compare=False)
    """The equipped ``badge`` and ``name_style`` others see (``store.domain.items.Look``),
    read from the user's inventory, never from the token."""

    def public(self) -> dict[str, Any]:
        """The part every viewer may see (the sender of a gift, a chat line)."""
        view: dict[str, Any] = {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name or self.username,
            "avatar": self.avatar,
        }
        if self.look:
            view.update(self.look)
        return view

    @property
    def is_creator(self) -> bool:
        return "creator" in self.roles

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class Asset:
    """A gift's full-screen animation: where it is and how to play it."""

    url: str
    format: str
    """``lottie``, ``webp``, ``mp4-alpha``... (``store.domain.catalog_entries.ASSET_FORMATS``)."""


@dataclass(frozen=True, slots=True)
class Gift:
    id: str
    name: str
    coins: int
    animation: str
    image: str
    streakable: bool
    tier: int = 1
    """1 (small) to 5: how big an alert overlays make of it."""
    translations: tuple[tuple[str, str], ...] = ()
    """``(locale, name)`` pairs, sorted by locale."""
    asset: Asset | None = None
    sound: str | None = None
    regions: frozenset[str] = frozenset()
    """Where it is offered (empty: everywhere)."""
    available_from: int | None = None
    """Limited edition: offered from this instant on (ms since the epoch)..."""
    available_until: int | None = None
    """...and before this one."""
    retired: bool = False
    """No longer offered; still named in history and leaderboards."""

    def offered(self, now_ms: int, region: str | None = None) -> bool:
        """On sale at ``now_ms`` (and in ``region`` when one is given)."""
        if self.retired:
            return False
        if self.available_from is not None and now_ms < self.available_from:
            return False
        if self.available_until is not None and now_ms >= self.available_until:
            return False
        return region is None or not self.regions or region in self.regions

    def public(self) -> dict[str, Any]:
        """The gift as events carry it (what it was when sent)."""
        view: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "coins": self.coins,
            "animation": self.animation,
            "image": self.image,
            "streakable": self.streakable,
            "tier": self.tier,
        }
        if self.translations:
            view["translations"] = dict(self.translations)
        if self.asset is not None:
            view["asset"] = {"url": self.asset.url, "format": self.asset.format}
        if self.sound is not None:
            view["sound"] = self.sound
        return view

    def listing(self) -> dict[str, Any]:
        """The gift as ``GET /v1/gifts`` lists it: with where and until when it is offered."""
        return {
            **self.public(),
            "regions": sorted(self.regions),
            "available_from": self.available_from,
            "available_until": self.available_until,
        }


@dataclass(frozen=True, slots=True)
class CoinPackage:
    id: str
    region: str
    currency: str
    coins: int
    bonus: int
    price_minor: int
    """Price in the currency's minor unit (cents for USD)."""
    retired: bool = False
    """No longer sold; still readable for the purchases made with it."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "region": self.region,
            "currency": self.currency,
            "coins": self.coins,
            "bonus": self.bonus,
            "total_coins": self.coins + self.bonus,
            "price_minor": self.price_minor,
        }


@dataclass(frozen=True, slots=True)
class Promotion:
    """A coin bonus: ``percent`` of a package's coins (its own bulk bonus aside),
    rounded down. A first-purchase promotion applies to a user's first credited
    purchase only; a campaign applies between ``starts_at`` and ``ends_at`` (ms
    since the epoch, ``None``: open-ended) in ``regions`` to ``packages`` (empty:
    all of them)."""

    id: str
    percent: int
    first_purchase: bool = False
    starts_at: int | None = None
    ends_at: int | None = None
    regions: frozenset[str] = frozenset()
    packages: frozenset[str] = frozenset()

    def applies(self, package: CoinPackage, now_ms: int) -> bool:
        if self.starts_at is not None and now_ms < self.starts_at:
            return False
        if self.ends_at is not None and now_ms >= self.ends_at:
            return False
        if self.regions and package.region not in self.regions:
            return False
        return not self.packages or package.id in self.packages

    def coins(self, package: CoinPackage) -> int:
        return package.coins * self.percent // 100

    def grant(self, package: CoinPackage) -> PromotionGrant:
        return PromotionGrant(
            id=self.id, coins=self.coins(package), first_purchase=self.first_purchase
        )

    def public(self, package: CoinPackage) -> dict[str, Any]:
        return {
            "id": self.id,
            "percent": self.percent,
            "coins": self.coins(package),
            "first_purchase": self.first_purchase,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


@dataclass(frozen=True, slots=True)
class PromotionGrant:
    """Bonus coins a purchase carries; the wallet applies a first-purchase grant
    only if the buyer has no credited purchase yet (atomically)."""

    id: str
    coins: int
    first_purchase: bool = False


@dataclass(frozen=True, slots=True)
class Balance:
    coins: int
    diamonds: int
    debt: int = 0
    """Chargeback debt in coins (the account is locked while it is above 0)."""


def fingerprint(*parts: object) -> str:
    """A short stable digest of a request's content, stored beside its idempotency key."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:32]


@functools.lru_cache(maxsize=4_096, typed=True)
def _gift_fingerprint(room_id: str, gift_id: str, count: int) -> str:
    """A gift's fingerprint, kept: a gifter sends the same gift to the same room
    again and again, and this runs for every gift."""
    return fingerprint("gift", room_id, gift_id, count)


@dataclass(frozen=True, slots=True)
class GiftRequest:
    sender: Profile
    room_id: str
    gift: Gift
    count: int
    key: str
    """The client's request id: one effect per (sender, key)."""
    now: int | None = None
    """Milliseconds since the epoch of the gift (default: the clock); the day and
    month of spending caps, the hour of the creator's held diamonds."""
    shown_coins: int | None = None
    """The unit price the client showed its user (``None``: not said); refused with
    ``price_changed`` when it is not the gift's price."""

    @property
    def total_coins(self) -> int:
        return self.gift.coins * self.count

    def meta(self) -> dict[str, Any]:
        """What the ledger keeps of the gift: as it was when sent, whatever the
        catalog says later."""
        return {
            "gift_id": self.gift.id,
            "gift_name": self.gift.name,
            "gift_coins": self.gift.coins,
            "count": self.count,
        }

    def fingerprint(self) -> str:
        return _gift_fingerprint(self.room_id, self.gift.id, self.count)

    def sale_refusal(self, now_ms: int) -> StoreError | None:
        """Why the gift can't be sold now (not offered, or not at the price the
        client showed), or None. Engines raise it only after the idempotency
        check: a resend of a gift already charged replays its receipt, whatever
        the catalog says since."""
        if not self.gift.offered(now_ms):
            return refusals.GIFT_NOT_OFFERED(self.gift.id)
        if self.shown_coins is not None and self.shown_coins != self.gift.coins:
            return refusals.PRICE_CHANGED(self.gift.id, self.gift.coins, self.shown_coins)
        return None


@dataclass(frozen=True, slots=True)
class GiftReceipt:
    tx: str
    room_id: str
    stream_id: int
    creator_id: str
    gift_id: str
    count: int
    coins: int
    """Coins the sender paid in total (gift price times count)."""
    diamonds: int
    """Diamonds the creator earned from this gift."""
    balance: int
    """The sender's coin balance right after this gift."""
    created_at: int
    """Milliseconds since the epoch."""
    replayed: bool = False
    """True when the key was seen before and this is the stored first result."""


@dataclass(frozen=True, slots=True)
class ShownGift:
    """What ``GiftShower.send_gift_shown`` did besides the gift."""

    receipt: GiftReceipt
    combo_wait_ms: int | None
    """The gift's event went out: milliseconds until its combo's window closes
    (0: ended at once). ``None``: no event went out (a replay, or the wallet
    could not here): the caller publishes it."""
    board_wait_ms: int | None = None
    """With the event, the room's leaderboard and goal: 0 when announced after
    it, else milliseconds until the room's announcement lease frees up.
    ``None``: not tried."""


@dataclass(frozen=True, slots=True)
class PurchaseRequest:
    user: Profile
    package: CoinPackage
    payment_id: str
    """The payment provider's id for this payment: one credit per payment id."""
    provider: str = "sandbox"
    promotions: tuple[PromotionGrant, ...] = ()
    """Bonus coins on top of the package (recorded as ``platform:promotions`` postings)."""
    enforce_limits: bool = True
    """Refuse an account with purchases turned off. ``False`` when the money was
    already taken (a provider's webhook): the coins are owed then. Either way the
    credit pays off any chargeback debt first."""
    now: int | None = None

    def fingerprint(self) -> str:
        return fingerprint("purchase", self.user.id, self.package.id)

    def meta(self) -> dict[str, Any]:
        """What the ledger keeps with the purchase: the package as it was sold."""
        package = self.package
        return {
            "package_id": package.id,
            "coins": package.coins,
            "bonus": package.bonus,
            "price_minor": package.price_minor,
            "currency": package.currency,
            "provider": self.provider,
            "payment_id": self.payment_id,
            "user_id": self.user.id,
        }


@dataclass(frozen=True, slots=True)
class PurchaseReceipt:
    tx: str
    package_id: str
    coins: int
    """Coins credited (package coins plus bonus, promotions included)."""
    balance: int
    created_at: int
    replayed: bool = False
    bonus: int = 0
    """Promotion coins included in ``coins``."""
    user_id: str = ""
    debt_paid: int = 0
    """Coins of ``coins`` that paid off chargeback debt instead of reaching the balance."""
    promotions: tuple[str, ...] = ()
    """Ids of the promotions applied."""


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    creator: dict[str, str]
    """The creator's public profile, captured when they went live."""
    title: str
    live: bool
    stream_id: int
    """Counts the room's streams: each go-live starts a new one."""
    started_at: int | None
    ended_at: int | None
    overlay_key: str
    creator_adult: bool = True

    @property
    def creator_id(self) -> str:
        return self.creator["id"]

    def public(self) -> dict[str, Any]:
        """What any viewer may see (never the overlay key)."""
        return {
            "id": self.id,
            "creator": self.creator,
            "title": self.title,
            "live": self.live,
            "stream_id": self.stream_id,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


@dataclass(frozen=True, slots=True)
class LeaderEntry:
    user: dict[str, str]
    coins: int

    def public(self) -> dict[str, Any]:
        return {"user": self.user, "coins": self.coins}


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    id: str
    kind: str
    """``purchase``, ``gift``, ``refund``, ``chargeback``, ``debt_settlement``,
    ``withdrawal``, ``withdrawal_paid`` or ``withdrawal_failed``."""
    created_at: int
    postings: tuple[Posting, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at,
            "postings": [
                {"account": p.account, "asset": p.asset, "amount": p.amount} for p in self.postings
            ],
            "meta": self.meta,
        }


@dataclass(frozen=True, slots=True)
class Mismatch:
    account: str
    asset: str
    hot: int
    ledger: int


@dataclass(slots=True)
class AuditReport:
    """Result of comparing hot balances with balances derived from the ledger."""

    transactions: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    """Sum of all postings per asset: must be zero."""
    unbalanced: list[str] = field(default_factory=list)
    """Transactions whose postings do not sum to zero per asset."""
    mismatches: list[Mismatch] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    """Coin accounts below zero."""
    pending: int = 0
    """Outbox entries not yet in the ledger (scaled engine); the audit is not final while > 0."""

    @property
    def ok(self) -> bool:
        return (
            not self.unbalanced
            and not self.mismatches
            and not self.negative
            and all(v == 0 for v in self.totals.values())
            and self.pending == 0
        )

    @classmethod
    def compare(
        cls,
        *,
        transactions: int,
        totals: dict[str, int],
        unbalanced: list[str],
        hot: dict[tuple[str, str], int],
        ledger: dict[tuple[str, str], int],
        pending: int = 0,
    ) -> AuditReport:
        """The report for hot balances and balances derived from the ledger, both
        keyed by ``(account, asset)``; an account missing on one side counts as 0."""
        mismatches: list[Mismatch] = []
        negative: list[str] = []
        for account, asset in sorted(ledger.keys() | hot.keys()):
            hot_amount = hot.get((account, asset), 0)
            ledger_amount = ledger.get((account, asset), 0)
            if hot_amount != ledger_amount:
                mismatches.append(Mismatch(account, asset, hot_amount, ledger_amount))
            user_coins = (
                asset == COIN and account.startswith("user:") and account.endswith(":coins")
            )
            if user_coins and min(hot_amount, ledger_amount) < 0:
                negative.append(account)
        return cls(transactions, totals, unbalanced, mismatches, negative, pending)

    def public(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "transactions": self.transactions,
            "totals": self.totals,
            "unbalanced": self.unbalanced,
            "mismatches": [
                {"account": m.account, "asset": m.asset, "hot": m.hot, "ledger": m.ledger}
                for m in self.mismatches
            ],
            "negative": self.negative,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class Goal:
    """A creator's diamond goal for the current stream of a room."""

    id: str
    stream_id: int
    target: int
    """Diamonds to reach."""
    title: str
    progress: int
    """Diamonds the room's gifts earned since the goal was set (may pass ``target``)."""
    reached: bool
    """Whether reaching it was announced (``goal_reached`` sent once)."""

    def public(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "progress": self.progress,
            "title": self.title,
            "reached": self.reached or self.progress >= self.target,
        }


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Running totals of one stream of a room."""

    gifts: int = 0
    """Gifts sent (a gift sent with ``count`` 5 counts 5)."""
    coins: int = 0
    """Coins spent on gifts."""
    diamonds: int = 0
    """Diamonds the creator earned."""
    likes: int = 0
    peak_viewers: int = 0

    def public(self) -> dict[str, int]:
        return {
            "gifts": self.gifts,
            "coins": self.coins,
            "diamonds": self.diamonds,
            "likes": self.likes,
            "peak_viewers": self.peak_viewers,
        }


@dataclass(frozen=True, slots=True)
class ComboHit:
    """A committed gift as its room's combo counts it (``RoomActivity.publish_gift``)."""

    event: Event
    """The room's ``gift`` event, without ``combo`` (the engine adds it)."""
    stream_id: int
    sender_id: str
    gift_id: str
    streakable: bool
    count: int
    coins: int
    diamonds: int


def combo_hit(
    receipt: GiftReceipt, *, gift: Gift, sender_id: str, sender: Mapping[str, Any]
) -> ComboHit:
    """A committed gift as its room's combo counts it, with its ``gift`` event (the
    gift's public view, ``sender`` as the room sees them; no ``combo`` yet)."""
    event = events.gift(
        tx=receipt.tx,
        gift=gift.public(),
        sender=sender,
        count=receipt.count,
        combo={},
        diamonds=receipt.diamonds,
    )
    del event["combo"]  # the engine adds it, with the combo's state
    return ComboHit(
        event=event,
        stream_id=receipt.stream_id,
        sender_id=sender_id,
        gift_id=gift.id,
        streakable=gift.streakable,
        count=receipt.count,
        coins=receipt.coins,
        diamonds=receipt.diamonds,
    )


RESTRICTION_KINDS: Final = ("ban", "mute")


@dataclass(frozen=True, slots=True)
class Restriction:
    """A ban or mute of a user in a room."""

    user_id: str
    kind: str
    """``ban`` or ``mute``."""
    until: int | None
    """Milliseconds since the epoch when it lapses; ``None``: until lifted."""
    by: str
    """Who imposed it."""
    created_at: int

    def public(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "kind": self.kind,
            "until": self.until,
            "by": self.by,
            "created_at": self.created_at,
        }


def utc_day(ms: int) -> str:
    """The UTC date (``YYYY-MM-DD``) of a time in milliseconds since the epoch: the
    period of a creator's daily supporters."""
    return _utc_date(ms // 86_400_000)


@functools.lru_cache(maxsize=64)
def _utc_date(day: int) -> str:
    """Day ``day`` since the epoch as a date: every gift names its day."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))

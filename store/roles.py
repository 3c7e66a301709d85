"""The storage roles. Each backend module implements them as ``<Tech><Role>``.

Roles are small on purpose: the hub and the HTTP API only ever see these
protocols, so the embedded engine (SQLite + in-process broker) and the scaled
engine (Redis + PostgreSQL) are interchangeable and pass one conformance suite.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from store.catalogs import Catalogs
from store.domain.accounts import (
    Account,
    DebtReceipt,
    DebtSettlement,
    Earnings,
    LimitsRequest,
    MoneyPolicy,
    RefundReceipt,
    RefundRequest,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.catalog import Catalog
from store.domain.items import ItemReceipt, ItemRequest, Owned
from store.domain.models import (
    AuditReport,
    Balance,
    ComboHit,
    Event,
    GiftReceipt,
    GiftRequest,
    Goal,
    LeaderEntry,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    Restriction,
    Room,
    ShownGift,
    StreamStats,
    TransactionRecord,
)
from store.domain.payout_accounts import PayoutAccount, PayoutSubmission
from store.domain.subscriptions import App, Delivery
from store.domain.subscriptions import Subscription as EventSubscription
from store.observer import StoreObserver


class Wallet(Protocol):
    """Atomic money movements.

    Guarantees:
    - each call is all-or-nothing: on any error nothing changed;
    - one effect per idempotency key (``(sender, key)`` for gifts, the payment
      id for purchases); the same key again returns the first result with
      ``replayed=True``; the same key with other content raises ``Conflict``;
    - a coin balance never goes below zero: concurrent gifts from one wallet
      succeed exactly as far as the funds go;
    - every transaction is written with balanced postings, in the same atomic
      step as the hot balances move (or, on the scaled engine, its outbox entry);
    - every rule (caps, rate limits, locks, holds, thresholds) is checked inside
      that atomic step, so concurrent calls can never overshoot one;
    - ``now`` (milliseconds) in a request stands for the clock, so tests can
      drive time; ``None`` means the clock.

    The accounts, the checks and their order: see ``store.domain.accounts`` and the
    docstrings below; both engines (``store.embedded.wallet`` and
    ``store.scaled.wallet`` with its Lua scripts) implement exactly these, behind the
    request checks of ``store.checked``.
    """

    async def purchase(self, request: PurchaseRequest) -> PurchaseReceipt:
        """Credit a paid package, once per ``(provider, payment id)``. Checks, in
        order: (1) idempotency; (2) the buyer is an adult (``Forbidden``); with
        ``enforce_limits``: (3) purchases are not turned off (``Forbidden``).
        Credits the package's coins and bonus (from ``world``) plus the promotions
        (from ``platform:promotions``; a first-purchase one only when no purchase
        was credited before), paying off any chargeback debt first: an account
        locked by debt may buy, and is unlocked once the debt is paid."""
        ...

    async def send_gift(self, request: GiftRequest) -> GiftReceipt:
        """Debit the sender, credit the room's creator and the platform, bump the
        room's leaderboard and the creator's earnings. Checks, in order: (1)
        idempotency (``Conflict``); (2) the room exists (``NotFound``); (3) it is
        live (``RoomNotLive``); (4) the sender is an adult, (5) is not the creator,
        (6) the creator is an adult, (7) the sender's account is not locked by
        debt, (8) gifting is not turned off (``Forbidden``); (9) the gift rate
        limit (``RateLimited``); (10) the daily and (11) the monthly spending cap
        (``LimitExceeded``); (12) the coins (``InsufficientFunds``)."""
        ...

    async def balance(self, user_id: str) -> Balance: ...

    async def account(self, user_id: str) -> Account:
        """A user's limits and state (defaults for a user never seen)."""
        ...

    async def set_limits(self, request: LimitsRequest) -> Account:
        """Replace the user's limits (``BadRequest`` for caps above the platform's or
        an unknown time zone); relaxing them or changing the PIN needs the current
        PIN once one is set (``Forbidden``)."""
        ...

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> Account:
        """Record (or remove) an admin's verification of a creator."""
        ...

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        """Reverse a credited purchase once per payment (a refund and a chargeback of
        one payment reverse it once: the second gets the first receipt, replayed).
        ``NotFound`` when the payment was never credited. Takes the coins back from
        the balance; what was spent becomes debt (locking the account) and is
        clawed back from the creators who earned diamonds from it, as far as they
        still hold them (``store.domain.rules``), each clawed diamond reducing the debt."""
        ...

    async def settle_debt(self, request: DebtSettlement) -> DebtReceipt:
        """Settle the user's whole debt (unlocking the account), once per key.
        ``BadRequest`` when there is no debt."""
        ...

    async def reserve_withdrawal(self, request: WithdrawalRequest) -> Withdrawal:
        """Move diamonds to ``user:<id>:withdrawing`` (status ``pending``). Checks, in order:
        (1) idempotency per user (``Conflict``); (2) the creator is verified
        (``Forbidden``); (3) the minimum (``BadRequest``); (4) the daily maximum
        (``LimitExceeded``); (5) the diamonds are withdrawable, not held
        (``InsufficientFunds``)."""
        ...

    async def settle_withdrawal(self, request: WithdrawalSettlement) -> Withdrawal:
        """Resolve a pending withdrawal: ``paid`` (to ``payout``) or ``failed`` (the
        diamonds return). ``NotFound``; settling again with the same outcome returns
        it replayed, with the other ``Conflict``."""
        ...

    async def withdrawal(self, withdrawal_id: str) -> Withdrawal | None: ...

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[Withdrawal]:
        """The user's withdrawals, newest first, strictly older than ``before``."""
        ...

    async def earnings(self, user_id: str, *, now: int | None = None) -> Earnings:
        """Diamonds held, withdrawable, pending and paid, and where they came from."""
        ...

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        """Take one token from the user's ``action`` bucket (cluster-wide; ``burst``
        tokens, ``per_hour`` come back an hour), or raise ``RateLimited`` (taking
        nothing)."""
        ...

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        """True the first time ``(scope, key)`` is claimed within ``ttl_seconds``
        (replay protection for signed webhooks), False after that."""
        ...


class Items(Protocol):
    """In-app items bought with coins, and each user's inventory.

    ``buy`` is a money operation with every guarantee of ``Wallet`` (atomic, once
    per ``(buyer, key)``, conflicts, never below zero, rules checked inside the
    atomic step). Checks, in order: (1) idempotency (``Conflict``); (2) the item is
    sold and at the price shown (``NotFound``, ``PriceChanged``); (3) the room,
    when one is given, exists (``NotFound``); (4) the buyer is an adult, (5) the
    account is not locked by debt, (6) spending is not turned off (``Forbidden``);
    (7) the gift rate limit, shared with gifts (``RateLimited``); (8) the daily
    and (9) the monthly spending cap, shared with gifts (``LimitExceeded``); (10)
    a permanent item is not owned already (``Conflict``); (11) the coins
    (``InsufficientFunds``). The coins go to ``platform:revenue``; bought in a
    room whose creator is another adult, the item's ``creator_share`` goes to
    the creator as diamonds (held like a gift's). A timed item still owned is
    extended; an expired one starts again."""

    async def buy(self, request: ItemRequest) -> ItemReceipt: ...

    async def inventory(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        """The user's items that have not expired, newest first, equipped ones marked."""
        ...

    async def expired(self, user_id: str, *, now: int | None = None) -> list[Owned]:
        """The user's items whose time ran out (their history), latest first."""
        ...

    async def equip(self, user_id: str, item_id: str, *, now: int | None = None) -> list[Owned]:
        """Equip an owned, unexpired item in its kind's slot (replacing the one
        there); ``NotFound`` otherwise. Returns the inventory."""
        ...

    async def unequip(self, user_id: str, kind: str, *, now: int | None = None) -> list[Owned]:
        """Empty the kind's slot (nothing to do when it is empty). Returns the inventory."""
        ...


class Rooms(Protocol):
    """Room state shared by every node."""

    async def go_live(self, *, room_id: str, creator: Profile, title: str) -> Room:
        """Create the room or start a new stream in it. ``Conflict`` if another
        creator owns ``room_id``; going live while live just updates the title."""
        ...

    async def end(self, room_id: str, *, by: Profile) -> Room:
        """End the current stream. ``NotFound``; ``Forbidden`` unless ``by`` is the
        creator or an admin; ending an ended room returns it unchanged."""
        ...

    async def get(self, room_id: str) -> Room | None: ...

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[LeaderEntry]:
        """Top gifters of the current stream by coins spent, highest first."""
        ...


class Ledger(Protocol):
    """The durable double-entry journal (append-only)."""

    async def transactions(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[TransactionRecord]:
        """Transactions touching the user's accounts, newest first, strictly older
        than the ``before`` transaction id when given."""
        ...

    async def audit(self) -> AuditReport:
        """Derive balances from postings and compare them with the hot balances."""
        ...


class BrokerListener(Protocol):
    def on_events(self, room_id: str, events: list[Event]) -> None:
        """Stamped events (``seq`` and ``ts`` set), in ``seq`` order. Called on the
        event loop; must not block or await."""
        ...

    def on_reset(self, room_id: str) -> None:
        """The subscription was interrupted (broker reconnect): events may have been
        missed. The listener re-syncs from ``history``/``last_seq``."""
        ...

    # A listener may also define ``on_signal(room_id, message)`` to receive the
    # room's signals (``Broker.signal``); the brokers call it when it exists.


class Subscription(Protocol):
    async def close(self) -> None: ...


class Broker(Protocol):
    """Room fan-out across every node.

    Guarantees:
    - ``seq`` is assigned once per event, cluster-wide, strictly increasing and
      gap-free per room; every node sees the same numbers;
    - each subscriber receives each event at most once, in ``seq`` order; a
      subscriber that may have missed events gets ``on_reset`` (never silent loss);
    - subscriptions are reference-counted: one broker subscription per room per
      node, however many local listeners;
    - ``history`` keeps a bounded window of recent events per room for resume.
    """

    async def publish(self, room_id: str, events: list[Event]) -> list[Event]:
        """Stamp ``seq`` and ``ts`` on the events (in place) and deliver them to
        every subscriber of the room on every node. Returns the stamped events."""
        ...

    async def subscribe(self, room_id: str, listener: BrokerListener) -> Subscription:
        """Returns once the subscription is active: every event published after
        this returns reaches ``listener``."""
        ...

    async def history(self, room_id: str, *, since: int) -> list[Event] | None:
        """Events with ``seq > since``, in order, or ``None`` when some of them are
        no longer in the window (the caller sends a fresh snapshot instead)."""
        ...

    async def last_seq(self, room_id: str) -> int: ...

    async def signal(self, room_id: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to every subscriber of the room on every node (their
        ``on_signal``), without a ``seq``, without keeping it for resume: for
        what is not a room event (overlay-only events, disconnecting a banned
        user). At most once, best effort: a node that is not subscribed, or
        whose subscription is interrupted, does not get it."""
        ...


@runtime_checkable
class BoardAnnouncer(Protocol):
    """A ``RoomActivity`` that announces a room's leaderboard and goal in one step
    (the scaled engine: one script on the room's slot). Without it, a node takes
    the ``throttle`` lease and reads and publishes them in separate calls."""

    async def announce_board(self, room_id: str, *, interval_ms: int, limit: int) -> int:
        """Unless the room's leaderboard was announced within ``interval_ms`` (by
        any node): publish its ``leaderboard`` (top ``limit`` gifters) and, if the
        stream has one, its ``goal``, then ``goal_reached`` when this call is the
        one that found the goal reached (once per goal). 0 when announced, else
        milliseconds until the interval is over."""
        ...


@runtime_checkable
class GiftShower(Protocol):
    """A ``Wallet`` that can publish a committed gift's event, within its sender's
    combo (as ``RoomActivity.publish_gift``), in the gift's own atomic step (the
    scaled engine on a single Redis: one script). Without it, or when it answers
    ``None``, a node publishes the event itself after the commit."""

    async def send_gift_shown(
        self,
        request: GiftRequest,
        *,
        sender: Mapping[str, Any],
        window_ms: int,
        board_interval_ms: int = 0,
        board_limit: int = 0,
    ) -> ShownGift:
        """``Wallet.send_gift``, and for a gift committed now, its ``gift`` event
        (the gift's public view, ``sender`` as the room sees it, the combo of
        ``window_ms``, 0: none) published in the same step; with
        ``board_interval_ms``, after it the room's leaderboard (top
        ``board_limit``) and goal as ``BoardAnnouncer.announce_board`` would."""
        ...


class RoomActivity(Protocol):
    """A live room's shared state beyond money: combos, likes, viewer counts,
    goals, moderation, the overlay key, stream totals and creators' supporters.

    On the scaled engine it lives in Redis, so every node sees the same state; on
    the embedded engine in the process and its SQLite file. Operations that both
    change state and announce it publish their room events themselves, in the
    same atomic step, so events come in the order of the changes, once.

    Gift totals (stream totals, goal progress, supporters) are written by
    ``Wallet.send_gift`` in the gift's own atomic step, so they always equal the
    ledger; this role only reads them.
    """

    async def publish_gift(self, room_id: str, hit: ComboHit, *, window_ms: int) -> int:
        """Publish a committed gift's ``gift`` event.

        A streakable gift joins the open combo of the same sender and gift in the
        room (or opens one with the event's ``tx`` as its id) and keeps it open
        for ``window_ms`` more; a combo whose window already closed is ended first.
        A gift that is not streakable is a combo of its own, ended at once. The
        event gets ``combo`` {id, count, end} and the overlay-only ``overlay``
        map {combo: {coins, diamonds}, stream: {gifts, coins, diamonds}}.
        Returns the milliseconds until the combo's window closes (0: ended)."""
        ...

    async def end_combos(self, room_id: str, *, everything: bool = False) -> int:
        """End the room's combos whose window has closed (``everything``: all of
        them, when the stream ends): each is removed and a final ``gift`` event
        (count 0, diamonds 0, ``combo.end`` true, the combo's totals) is
        published, exactly once however many nodes call this at once. Returns
        the milliseconds until the next open combo closes (0: none open)."""
        ...

    async def open_combo_rooms(self) -> dict[str, int]:
        """Every room with an open combo, including combos opened by a process
        that has since died (kill -9, a lost node): room -> milliseconds until its
        first combo's window closes (0: due now). Whoever calls ``end_combos`` for
        these rooms ends those combos, so the final ``gift`` event of a combo is
        never lost with the node that opened it."""
        ...

    async def add_likes(
        self, room_id: str, *, stream_id: int, likes: Sequence[tuple[Event, int]]
    ) -> list[int]:
        """Add the likes to the stream's total and publish one ``like`` event per
        ``(event without total, count)``, each with the running ``total``.
        Returns those totals, in order."""
        ...

    async def report_viewers(
        self, room_id: str, *, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        """Record ``node``'s viewer count of the room (forgotten after ``ttl_ms``
        unless reported again; 0 forgets it now), add up every node's, keep the
        stream's peak, and publish a ``viewers`` event when the total differs from
        the last one published, at most once per ``interval_ms`` per room across
        nodes. Returns ``(total, retry_ms)``: ``retry_ms > 0`` when a changed
        total could not be published yet; report again after that long."""
        ...

    async def viewers(self, room_id: str) -> int:
        """Viewers of the room on every node (expired reports left out)."""
        ...

    async def throttle(self, room_id: str, name: str, interval_ms: int) -> int:
        """A lease on ``name`` for the room, across nodes: 0 when this caller got it
        (and nobody else will for ``interval_ms``), else milliseconds to wait."""
        ...

    async def set_goal(self, room_id: str, *, target: int, title: str) -> Goal:
        """Start a new goal for the room's current stream, progress 0.
        ``NotFound``, ``RoomNotLive``."""
        ...

    async def goal(self, room_id: str) -> Goal | None:
        """The goal of the room's current stream, if one was set."""
        ...

    async def claim_goal(self, room_id: str, goal_id: str) -> Goal | None:
        """Mark goal ``goal_id`` reached if its progress is at its target and it was
        not marked yet; the goal when this call marked it, else ``None`` (so one
        caller, cluster-wide, announces it)."""
        ...

    async def restrict(self, room_id: str, restriction: Restriction) -> None:
        """Ban or mute a user in the room (replacing the same kind's earlier one)."""
        ...

    async def lift(self, room_id: str, user_id: str, kind: str) -> bool:
        """Lift a ban or mute; whether there was one."""
        ...

    async def restrictions(self, room_id: str) -> list[Restriction]:
        """The room's bans and mutes in force, by user id."""
        ...

    async def is_banned(self, room_id: str, user_id: str) -> bool: ...

    async def check_chat(self, room_id: str, user_id: str, *, limit: int, window_ms: int) -> None:
        """May the user post a comment now? ``Forbidden`` when banned or muted;
        ``RateLimited`` past ``limit`` comments in the current ``window_ms``
        window (this counts as one)."""
        ...

    async def rotate_overlay_key(self, room_id: str) -> str:
        """Give the room a new overlay key (the old one stops working); ``NotFound``."""
        ...

    async def stream_stats(self, room_id: str, stream_id: int) -> StreamStats:
        """Totals of the room's stream ``stream_id`` (zeros when nothing happened)."""
        ...

    async def supporters(
        self, creator_id: str, *, period: str, limit: int = 10
    ) -> list[LeaderEntry]:
        """The creator's top supporters by coins spent on gifts to them, highest
        first, ties by user id: ``period`` ``day`` (today, UTC) or ``all``."""
        ...


class PayoutAccounts(Protocol):
    """Creators' linked payout accounts and their withdrawals' provider state
    (``store.domain.payout_accounts``)."""

    async def link(self, account: PayoutAccount) -> PayoutAccount:
        """Store (or update) the creator's account at ``account.provider``; the
        same provider account can belong to one creator only (``conflict``)."""
        ...

    async def get(self, user_id: str, provider: str) -> PayoutAccount | None: ...

    async def owner(self, provider: str, account_id: str) -> PayoutAccount | None:
        """The creator who linked this provider account, if still linked."""
        ...

    async def save_submission(self, submission: PayoutSubmission) -> None: ...

    async def submission(self, withdrawal_id: str) -> PayoutSubmission | None: ...

    async def open_submissions(self, provider: str, *, limit: int) -> list[PayoutSubmission]:
        """Submissions not yet ``done``, least recently updated first (for polling)."""
        ...


class Subscriptions(Protocol):
    """Creators' event subscriptions and their delivery queues, durable.

    Guarantees:
    - a queued delivery survives a restart of every node (SQLite file on the
      embedded engine, PostgreSQL on the scaled one) until ``delivered``, the
      subscription is deleted or disabled;
    - ``enqueue`` is idempotent per ``(subscription, source)``: nodes that all
      saw the same room event queue it once; deliveries are queued only for
      subscriptions that are ``enabled``;
    - a subscription's deliveries come out of ``claim`` in queue order, one at a
      time: while one is claimed (leased to a node until ``lease_ms`` passes or
      it is settled), no node claims that subscription again, so deliveries are
      in order per subscription across nodes;
    - ``delivered`` and ``failed`` only count for the node holding the lease
      (a node whose lease expired changes nothing).
    """

    async def create(self, subscription: EventSubscription) -> None: ...

    async def get(self, subscription_id: str) -> EventSubscription | None: ...

    async def owned(self, owner_id: str) -> list[EventSubscription]:
        """The owner's subscriptions, oldest first."""
        ...

    async def enabled(self) -> list[EventSubscription]:
        """Every enabled subscription (what each node feeds events to)."""
        ...

    async def set_status(
        self, subscription_id: str, status: str, *, reason: str = ""
    ) -> EventSubscription | None:
        """Pause, resume (``enabled``: failures forgotten, retry now) or disable
        (``reason`` kept; its queue dropped). ``None`` when there is none."""
        ...

    async def set_secret(self, subscription_id: str, secret: str) -> EventSubscription | None: ...

    async def delete(self, subscription_id: str) -> bool:
        """Delete it and its queue; whether there was one."""
        ...

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Queue each delivery at the end of its subscription's queue (see the
        guarantees); returns how many were queued now."""
        ...

    async def pending(self, subscription_id: str) -> int:
        """Deliveries queued for the subscription."""
        ...

    async def claim(
        self, *, node: str, now: int, lease_ms: int, limit: int
    ) -> list[tuple[EventSubscription, Delivery]]:
        """Lease up to ``limit`` enabled subscriptions whose first delivery is due
        (``next_attempt_at <= now``), with that delivery, to ``node``."""
        ...

    async def delivered(self, subscription_id: str, position: int, *, node: str) -> None:
        """The delivery at ``position`` was accepted: drop it, forget the failures,
        release the lease."""
        ...

    async def failed(
        self, subscription_id: str, position: int, *, node: str, now: int, retry_at: int, error: str
    ) -> None:
        """The attempt failed: count it, note ``error`` and when failing started,
        retry no earlier than ``retry_at``, release the lease."""
        ...

    async def add_app(self, app: App) -> None: ...

    async def app(self, client_id: str) -> App | None: ...

    async def apps(self, owner_id: str) -> list[App]: ...

    async def delete_app(self, owner_id: str, client_id: str) -> bool:
        """Delete the owner's app and the subscriptions it made; whether it existed."""
        ...


class OverlayPresence(Protocol):
    """Which overlays are connected to a room, on every node.

    Guarantees:
    - ``report`` replaces what ``node`` said before about the room; a report is
      forgotten ``ttl_ms`` after it was made unless made again (a node that dies
      drops out by itself); an empty list forgets it now;
    - ``overlays`` is every node's unexpired report, oldest connection first.
    Not durable: connections do not outlive their node.
    """

    async def report(
        self, room_id: str, *, node: str, overlays: Sequence[dict[str, Any]], ttl_ms: int
    ) -> None: ...

    async def overlays(self, room_id: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineConfig:
    data_dir: Path = Path("data")
    """Where the embedded engine keeps its SQLite file."""
    redis_url: str | None = None
    database_url: str | None = None
    creator_share_percent: int = 50
    history_size: int = 1_000
    """Events kept per room for resume."""
    history_seconds: float = 120.0
    migrate: bool = True
    """Apply PostgreSQL migrations at start (scaled engine)."""
    policy: MoneyPolicy = field(default_factory=MoneyPolicy)
    """Spending caps, rate limits, holds and withdrawal limits (default: none)."""
    catalog_poll_seconds: float = 0.25
    """How often a node reads the catalog's stored version (a change made through
    another node or ``live catalog import`` is served within this)."""
    observer: StoreObserver | None = None
    """Told of backend call latencies and ledger progress (the server's metrics)."""
    redis_wait_replicas: int = 0
    """Scaled engine: a money operation is answered once this many Redis replicas
    have it (``WAIT``); 0 answers once the primary has it."""
    redis_wait_seconds: float = 1.0
    """How long that ``WAIT`` may take before the operation fails as unavailable."""
    settle_delay_seconds: float = 10.0
    """Redis Cluster: a gift its node has not finished (credited, booked, shown)
    this long after its debit is finished by the settle group of any node (the
    node died); also how long an entry a sweeper left unfinished waits to be
    claimed again."""

    @property
    def scaled(self) -> bool:
        return self.redis_url is not None


@dataclass(kw_only=True, slots=True)
class Engine:
    """One engine: the roles plus the catalog store, and how to check and close them."""

    name: str
    wallet: Wallet
    rooms: Rooms
    ledger: Ledger
    broker: Broker
    activity: RoomActivity
    """A live room's shared state beyond money (combos, likes, viewers, goals...)."""
    catalogs: Catalogs
    """The catalog this node serves, and its changes."""
    subscriptions: Subscriptions
    """Creators' event subscriptions and their delivery queues."""
    presence: OverlayPresence
    """The overlays connected to each room, across nodes."""
    items: Items
    """In-app items bought with coins, and inventories."""
    check: Callable[[], Awaitable[dict[str, str]]]
    """Readiness: returns ``{component: "ok"}`` or raises ``store.errors.Unavailable``."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stats: Callable[[], Awaitable[dict[str, float]]] | None = None
    """Engine values for ``/metrics``: gauges (``outbox_lag`` on the scaled engine)
    and counters (names ending in ``_total``: the SQLite writer's commits)."""
    payout_accounts: PayoutAccounts | None = None
    """Creators' payout accounts (``None``: no real payout provider can be used)."""

    @property
    def catalog(self) -> Catalog:
        """The catalog this node serves now."""
        return self.catalogs.current

    async def metric_values(self) -> dict[str, float]:
        return await self.stats() if self.stats is not None else {}

    async def ready(self) -> dict[str, str]:
        return await self.check()

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        self.closers.clear()

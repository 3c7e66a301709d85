"""The storage roles. Each backend module implements them as ``<Tech><Role>``.

Roles are small on purpose: the hub and the HTTP API only ever see these
protocols, so the embedded engine (SQLite + in-process broker) and the scaled
engine (Redis + PostgreSQL) are interchangeable and pass one conformance suite.
"""

from __future__ import annotations

from typing import Protocol

from store.models import (
    AuditReport,
    Balance,
    Event,
    GiftReceipt,
    GiftRequest,
    LeaderEntry,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    Room,
    TransactionRecord,
)


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
      step as the hot balances move (or, on the scaled engine, its outbox entry).
    """

    async def purchase(self, request: PurchaseRequest) -> PurchaseReceipt: ...

    async def send_gift(self, request: GiftRequest) -> GiftReceipt:
        """Debit the sender, credit the room's creator and the platform, bump the
        room's leaderboard. Raises ``NotFound`` (no such room), ``RoomNotLive``,
        ``Forbidden`` (sender not adult, creator not adult, gifting yourself),
        ``InsufficientFunds``, ``Conflict``."""
        ...

    async def balance(self, user_id: str) -> Balance: ...


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

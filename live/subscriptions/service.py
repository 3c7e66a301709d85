"""Creators' event subscriptions on one node: managing them, integration apps,
test events, and the feed from room events into the delivery queue.

**Feed.** Every node subscribes to the rooms that have enabled subscriptions
(refreshed every ``REFRESH_SECONDS``, at once for a subscription made here) and
queues each room event it sees for the subscriptions that want its type. On
the scaled engine every node does so: the queue keeps one delivery per
``(subscription, room:seq:ts)``, so each event is queued once. An interrupted
broker subscription catches up from the room's history.

**Owners.** A subscription belongs to the creator of its room. It is managed
by that creator (a bearer token) or by an integration app the creator made
(its client credentials), which sees and manages only the subscriptions it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from live.errors import LiveError
from live.settings import Settings
from live.subscriptions import SubscriptionError, sender
from live.subscriptions.messages import ROOM_EVENT_TYPES, delivery, like_milestone, test_delivery
from live.subscriptions.worker import DeliveryWorker, cancel_all
from store.domain.models import Event, Profile
from store.domain.subscriptions import EVENT_TYPES, App, Delivery, Subscription
from store.ids import new_id, new_secret, now_ms
from store.roles import Engine
from store.roles import Subscription as BrokerSubscription

log = logging.getLogger("live.subscriptions")

REFRESH_SECONDS = 2.0
"""How soon a node feeds a subscription made on another node."""
CHALLENGE_BYTES = 24
CREATIONS_PER_HOUR = 60
CREATIONS_BURST = 20
"""Subscriptions a creator (with their apps) may try to make, each sending a challenge."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who manages subscriptions: a creator, or one of the creator's apps."""

    owner_id: str
    app: App | None = None

    def may_manage(self, subscription: Subscription) -> bool:
        if subscription.owner_id != self.owner_id:
            return False
        return self.app is None or subscription.app_id == self.app.client_id


def send_policy(settings: Settings) -> sender.SendPolicy:
    return sender.SendPolicy(
        timeout_seconds=settings.subscription_timeout_seconds,
        max_response_bytes=settings.subscription_max_response_bytes,
        allow_loopback=settings.subscription_allow_loopback,
        allowed_networks=settings.subscription_networks(),
    )


SECRET_CHARS = (16, 100)
"""The length of a signing secret the caller chooses."""


def checked_secret(secret: str | None) -> str:
    """The caller's signing secret, checked, or a random one when none is given."""
    if secret is None:
        return new_secret(32)
    low, high = SECRET_CHARS
    if not low <= len(secret) <= high or not secret.isascii() or not secret.isprintable():
        raise LiveError("bad_request", f"secret must be {low}-{high} printable ASCII characters")
    return secret


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Subscriptions:
    """The node's subscriptions service (see the module docstring)."""

    def __init__(
        self, *, settings: Settings, engine: Engine, policy: sender.SendPolicy | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = engine.subscriptions
        self.policy = policy or send_policy(settings)
        self.worker = DeliveryWorker(
            settings=settings, store=self.store, policy=self.policy, on_revoked=self._revoked
        )
        self._rooms: dict[str, list[Subscription]] = {}
        self._listening: dict[str, BrokerSubscription] = {}
        self._seen: dict[str, int] = {}
        """The last room ``seq`` fed, per room (for catching up after a reset)."""
        self._start: dict[str, int] = {}
        """The room's last ``seq`` when this node started listening to it."""
        self._pending: dict[str, list[Event]] = {}
        self._feeding: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._refreshed = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.worker.start()
        try:  # rooms fed before the node publishes anything (a combo ended at start)
            await self.refresh()
        except Exception:
            log.warning("reading the subscriptions failed", exc_info=True)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def close(self) -> None:
        await cancel_all([self._refresher, *self._tasks])
        for listening in list(self._listening.values()):
            with contextlib.suppress(Exception):
                await listening.close()
        self._listening.clear()
        await self.worker.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _revoked(self, subscription: Subscription) -> None:
        """Tell the creator's own connections to the room (every node)."""
        event = {"type": "subscription_revoked", "subscription": subscription.public()}
        message = {"kind": "user", "user": subscription.owner_id, "events": [event]}
        try:
            await self.engine.broker.signal(subscription.room_id, message)
        except Exception:
            log.warning("telling of revoked %s failed", subscription.id, exc_info=True)

    # -- managing subscriptions ----------------------------------------------------------
    async def caller(self, profile: Profile) -> Caller:
        if not profile.is_creator:
            raise LiveError("forbidden", "only creators have event subscriptions")
        return Caller(profile.id)

    async def app_caller(self, client_id: str, client_secret: str) -> Caller:
        """The app of these client credentials, or ``unauthorized``."""
        app = await self.store.app(client_id) if 0 < len(client_id) <= 200 else None
        if app is None or not hmac.compare_digest(app.secret_hash, _hash(client_secret)):
            raise LiveError("unauthorized", "unknown client id or wrong client secret")
        return Caller(app.owner_id, app)

    async def create(
        self,
        caller: Caller,
        *,
        room_id: str,
        types: list[str],
        callback: str,
        secret: str | None = None,
    ) -> tuple[Subscription, str]:
        """Check the room and the URL, send the challenge, store the subscription.
        Returns it and its secret (shown this once)."""
        room = await self.engine.rooms.get(room_id)
        if room is None or room.creator_id != caller.owner_id:
            raise LiveError("forbidden", "you can subscribe only to your own rooms")
        unknown = [t for t in types if t not in EVENT_TYPES]
        if not types or unknown or len(set(types)) != len(types):
            raise LiveError(
                "bad_request", f"types must be distinct, from: {', '.join(EVENT_TYPES)}"
            )
        # each creation sends a request out: bounded, so it can't be used to scan
        await self.engine.wallet.rate_limit(
            caller.owner_id, "subscribe", per_hour=CREATIONS_PER_HOUR, burst=CREATIONS_BURST
        )
        owned = await self.store.owned(caller.owner_id)
        if len(owned) >= self.settings.subscription_max_per_owner:
            raise LiveError(
                "limit_exceeded",
                f"at most {self.settings.subscription_max_per_owner} subscriptions per creator",
            )
        subscription = Subscription(
            id=new_id("sub"),
            owner_id=caller.owner_id,
            room_id=room_id,
            types=tuple(types),
            callback=callback,
            secret=checked_secret(secret),
            app_id=caller.app.client_id if caller.app else "",
            created_at=now_ms(),
        )
        await self._challenge(subscription)
        await self.store.create(subscription)
        await self.refresh()
        return subscription, subscription.secret

    async def _challenge(self, subscription: Subscription) -> None:
        """The callback must answer the challenge with its value, or nothing is made."""
        challenge = new_secret(CHALLENGE_BYTES)
        try:
            answer = await self.worker.send_once(
                subscription,
                kind="challenge",
                payload={"challenge": challenge, "subscription": subscription.public()},
            )
        except SubscriptionError as exc:
            if exc.code == "refused_url":
                raise LiveError("bad_request", exc.message) from None
            raise LiveError(
                "bad_request", f"the callback failed the challenge: {exc.message}"
            ) from None
        if answer.body.strip() != challenge.encode():
            raise LiveError(
                "bad_request", "the callback failed the challenge: it must answer with its value"
            )

    async def owned(self, caller: Caller) -> list[dict[str, Any]]:
        found = [s for s in await self.store.owned(caller.owner_id) if caller.may_manage(s)]
        return [s.public(pending=await self.store.pending(s.id)) for s in found]

    async def get(self, caller: Caller, subscription_id: str) -> Subscription:
        subscription = await self.store.get(subscription_id)
        if subscription is None or not caller.may_manage(subscription):
            raise LiveError("not_found", "no such subscription")
        return subscription

    async def view(self, caller: Caller, subscription_id: str) -> dict[str, Any]:
        subscription = await self.get(caller, subscription_id)
        return subscription.public(pending=await self.store.pending(subscription.id))

    async def set_status(self, caller: Caller, subscription_id: str, status: str) -> Subscription:
        """Pause or resume (``enabled``; a disabled one comes back too)."""
        await self.get(caller, subscription_id)
        changed = await self.store.set_status(subscription_id, status)
        if changed is None:
            raise LiveError("not_found", "no such subscription")
        await self.refresh()
        self.worker.wake()
        return changed

    async def delete(self, caller: Caller, subscription_id: str) -> None:
        await self.get(caller, subscription_id)
        await self.store.delete(subscription_id)
        await self.refresh()

    async def rotate_secret(
        self, caller: Caller, subscription_id: str, *, secret: str | None = None
    ) -> str:
        """A new secret (the caller's, or a random one): messages signed from now
        on use it (a retry too)."""
        await self.get(caller, subscription_id)
        secret = checked_secret(secret)
        if await self.store.set_secret(subscription_id, secret) is None:
            raise LiveError("not_found", "no such subscription")
        return secret

    async def send_test(self, caller: Caller, subscription_id: str, event_type: str) -> str:
        """Queue a sample ``event_type`` message (``test: true``) for this
        subscription alone; its message id."""
        subscription = await self.get(caller, subscription_id)
        if event_type not in EVENT_TYPES:
            raise LiveError("bad_request", f"type must be one of {', '.join(EVENT_TYPES)}")
        if subscription.status != "enabled":
            raise LiveError("conflict", f"the subscription is {subscription.status}")
        item = test_delivery(subscription, event_type)
        await self._enqueue([item])
        return item.message_id

    # -- apps --------------------------------------------------------------------------------
    async def add_app(self, caller: Caller, *, name: str) -> tuple[App, str]:
        if caller.app is not None:
            raise LiveError("forbidden", "apps cannot make apps")
        secret = new_secret(32)
        app = App(
            client_id=new_id("app"),
            owner_id=caller.owner_id,
            name=name,
            secret_hash=_hash(secret),
            created_at=now_ms(),
        )
        await self.store.add_app(app)
        return app, secret

    async def apps(self, caller: Caller) -> list[App]:
        if caller.app is not None:
            return [caller.app]
        return await self.store.apps(caller.owner_id)

    async def delete_app(self, caller: Caller, client_id: str) -> None:
        if caller.app is not None:
            raise LiveError("forbidden", "apps cannot delete apps")
        if not await self.store.delete_app(caller.owner_id, client_id):
            raise LiveError("not_found", "no such app")
        await self.refresh()

    # -- the feed ------------------------------------------------------------------------------
    async def notify(
        self, room_id: str, event_type: str, event: Event, *, test: bool = False
    ) -> None:
        """Queue an event that is not a room event (a stream started, an item
        bought in the room, an overlay test event) for the room's subscriptions
        to ``event_type``. Never raises: a failure is logged."""
        try:
            wanting = [s for s in self._rooms.get(room_id, []) if event_type in s.types]
            if not wanting:
                return
            source = new_id("evt")
            created = now_ms()
            items = [
                delivery(
                    s,
                    event_type=event_type,
                    event=event,
                    source=source,
                    created_at=created,
                    test=test,
                )
                for s in wanting
            ]
            await self._enqueue(items)
        except Exception:
            log.warning("queueing %s of room %s failed", event_type, room_id, exc_info=True)

    async def _enqueue(self, items: list[Delivery]) -> None:
        if items and await self.store.enqueue(items):
            self.worker.wake()

    async def refresh(self) -> None:
        """Learn the enabled subscriptions; listen to their rooms, and no others."""
        async with self._refreshed:
            rooms: dict[str, list[Subscription]] = {}
            for subscription in await self.store.enabled():
                rooms.setdefault(subscription.room_id, []).append(subscription)
            self._rooms = rooms
            for room_id in list(self._listening):
                if room_id not in rooms:
                    with contextlib.suppress(Exception):
                        await self._listening.pop(room_id).close()
                    self._seen.pop(room_id, None)
                    self._start.pop(room_id, None)
            for room_id in rooms:
                if room_id not in self._listening:
                    # subscribed first: an event published meanwhile is fed, not lost
                    self._listening[room_id] = await self.engine.broker.subscribe(room_id, self)
                    self._start[room_id] = await self.engine.broker.last_seq(room_id)

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("reading the subscriptions failed", exc_info=True)
            await asyncio.sleep(REFRESH_SECONDS)

    def on_events(self, room_id: str, events: list[Event]) -> None:
        """Broker listener: queue the room's events (in order, per room)."""
        self._pending.setdefault(room_id, []).extend(events)
        if room_id not in self._feeding:
            self._feeding.add(room_id)
            self._spawn(self._feed(room_id))

    def on_reset(self, room_id: str) -> None:
        self._spawn(self._catch_up(room_id))

    async def _catch_up(self, room_id: str) -> None:
        since = self._seen.get(room_id, self._start.get(room_id))
        if since is None:
            return
        missed = await self.engine.broker.history(room_id, since=since)
        if missed is None:
            log.warning("room %s: events missed while the broker was away", room_id)
            return
        self.on_events(room_id, missed)

    async def _feed(self, room_id: str) -> None:
        try:
            while self._pending.get(room_id):
                events = self._pending.pop(room_id)
                fresh = [e for e in events if e.get("seq", 0) > self._seen.get(room_id, -1)]
                items = self._deliveries(room_id, fresh)
                while True:
                    try:
                        await self._enqueue(items)
                        break
                    except Exception:
                        log.warning("queueing events of room %s failed", room_id, exc_info=True)
                        await asyncio.sleep(1.0)
                if fresh:
                    self._seen[room_id] = max(self._seen.get(room_id, 0), fresh[-1]["seq"])
        finally:
            self._feeding.discard(room_id)

    def _deliveries(self, room_id: str, events: list[Event]) -> list[Delivery]:
        subscriptions = self._rooms.get(room_id, [])
        items: list[Delivery] = []
        for event in events:
            event_type = ROOM_EVENT_TYPES.get(event.get("type", ""))
            if event_type is None:
                continue
            source = f"{room_id}:{event.get('seq')}:{event.get('ts')}"
            created = event.get("ts") or now_ms()
            found = [(event_type, event, source)]
            if event_type == "like":
                milestone = like_milestone(event, self.settings.subscription_like_milestone)
                if milestone is not None:
                    found.append(("like_milestone", milestone, source + ":milestone"))
            for kind, payload, key in found:
                for subscription in subscriptions:
                    if kind in subscription.types:
                        items.append(
                            delivery(
                                subscription,
                                event_type=kind,
                                event=payload,
                                source=key,
                                created_at=created,
                            )
                        )
        return items


__all__ = ["Caller", "Subscriptions", "send_policy"]

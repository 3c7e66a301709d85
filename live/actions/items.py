"""In-app items: the shop, buying with coins, the inventory and what others see.

Buying is one atomic engine operation (``store.roles.Items.buy``) under the
money rules of gifts. What a user has equipped becomes their *look*: the badge
and name style added to their public profile in every gift, chat, like and join
event (``Looks.dress``), and the entrance effect announced to the room when
they join (not when they resume), at most once per ``ENTRANCE_INTERVAL_MS`` per
user and room across nodes, so a reconnect loop can't spam it.

A creator's equipped creator effect is their room's *stream effect*: read from
the room creator's look for the welcome and the room's state, and published as
a ``stream_effect`` room event when the creator equips or unequips one while
live, and again (empty) when it runs out. Only the room's creator's own effect
counts: anyone else's creator effect shows nowhere.

Looks are cached per user for ``LOOK_TTL_MS`` (and never past the expiry of an
equipped item), so the hot path reads the inventory at most once per user per
few seconds; equipping on this node forgets the cached look at once, another
node sees it within the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from live.errors import LiveError
from live.metrics import Metrics
from live.settings import Settings
from protocol import events as ev
from store.domain.items import (
    BADGE,
    CREATOR_EFFECT,
    ENTRANCE_EFFECT,
    ITEM_KINDS,
    NAME_STYLE,
    Item,
    ItemReceipt,
    ItemRequest,
    Look,
    Owned,
)
from store.domain.models import Profile, Room
from store.ids import now_ms
from store.roles import Engine

log = logging.getLogger("live.items")

LOOK_TTL_MS: Final = 5_000
"""How long a user's look is served from memory (another node's equip shows within it)."""
LOOK_CACHE_SIZE: Final = 50_000
ENTRANCE_INTERVAL_MS: Final = 60_000
"""One entrance effect per user and room per minute, whatever the reconnects."""


@dataclass(kw_only=True)
class Looks:
    """Users' looks, read from their inventories and cached (see the module docstring)."""

    engine: Engine
    _cache: dict[str, tuple[float, Look]] = field(default_factory=dict)

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def look(self, user_id: str) -> Look:
        now = now_ms()
        cached = self._cache.get(user_id)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        look = look_of(self.engine, await self.engine.items.inventory(user_id, now=now))
        ttl = LOOK_TTL_MS if look.until is None else min(LOOK_TTL_MS, max(0, look.until - now))
        if len(self._cache) >= LOOK_CACHE_SIZE:
            self._cache.clear()
        self._cache[user_id] = (time.monotonic() + ttl / 1000, look)
        return look

    async def dress(self, profile: Profile) -> Profile:
        """The profile with its equipped badge and name style (unchanged when none).
        A failed read leaves the profile plain: a look is never worth a lost gift."""
        try:
            look = await self.look(profile.id)
        except Exception:
            log.warning("reading the look of %s failed", profile.id, exc_info=True)
            return profile
        public = look.public() or None
        if public == profile.look:
            return profile
        return dataclasses.replace(profile, look=public)

    async def stream_effect(self, room: Room) -> dict[str, Any] | None:
        """The effect over the room's stream: its creator's equipped creator effect
        while live. A failed read shows none: an effect never costs a join."""
        if not room.live:
            return None
        try:
            effect = (await self.look(room.creator_id)).creator_effect
        except Exception:
            log.warning("reading the look of %s failed", room.creator_id, exc_info=True)
            return None
        return effect.effect() if effect is not None else None


def look_of(engine: Engine, owned: list[Owned]) -> Look:
    """The look of an inventory: its equipped items that the catalog still knows."""
    equipped: dict[str, Item] = {}
    until: int | None = None
    for entry in owned:
        item = engine.catalog.item(entry.item_id)
        if not entry.equipped or item is None:
            continue
        equipped[entry.kind] = item
        if entry.expires_at is not None:
            until = entry.expires_at if until is None else min(until, entry.expires_at)
    badge, style = equipped.get(BADGE), equipped.get(NAME_STYLE)
    return Look(
        badge=badge.style() if badge else None,
        name_style=style.style() if style else None,
        entrance=equipped.get(ENTRANCE_EFFECT),
        creator_effect=equipped.get(CREATOR_EFFECT),
        until=until,
    )


@dataclass(kw_only=True)
class Items:
    settings: Settings
    engine: Engine
    metrics: Metrics
    looks: Looks
    _tasks: set[asyncio.Task[bool]] = field(default_factory=set)
    notify: Callable[..., Awaitable[None]] | None = None
    """Hands an item bought in a room to the room's event subscriptions
    (``live.subscriptions.service.Subscriptions.notify``)."""

    def shop(self) -> list[Item]:
        """The items on sale."""
        return self.engine.catalog.items()

    async def buy(
        self,
        *,
        user: Profile,
        item_id: str,
        key: str,
        room_id: str | None = None,
        shown_coins: int | None = None,
    ) -> ItemReceipt:
        """Buy at the catalog's price, counted by outcome (and refusals by code)
        like gifts."""
        metrics = self.metrics
        with metrics.refusals(outcomes=metrics.item_outcome, errors=metrics.item_errors):
            item = self.engine.catalog.item(item_id)
            if item is None:
                raise LiveError("not_found", f"unknown item {item_id!r}")
            request = ItemRequest(
                buyer=user, item=item, key=key, room_id=room_id, shown_coins=shown_coins
            )
            with metrics.wallet_call("item"):
                receipt = await self.engine.items.buy(request)
        if receipt.replayed:
            metrics.item_outcome["replayed"].inc()
        else:
            metrics.item_outcome["committed"].inc()
            metrics.item_coins.inc(receipt.coins)
            if self.notify is not None and receipt.room_id:
                event = {
                    "type": "item_purchase",
                    "tx": receipt.tx,
                    "buyer": user.public(),
                    "item": item.public(),
                    "coins": receipt.coins,
                    "diamonds": receipt.diamonds,
                    "expires_at": receipt.expires_at,
                }
                await self.notify(receipt.room_id, "item_purchase", event)
        return receipt

    def owned_public(self, owned: list[Owned]) -> list[dict[str, Any]]:
        """Inventory entries with the item as the catalog describes it."""
        views = []
        for entry in owned:
            item = self.engine.catalog.item(entry.item_id)
            views.append({**entry.public(), "details": item.public() if item else None})
        return views

    async def inventory(self, user_id: str) -> list[Owned]:
        return await self.engine.items.inventory(user_id)

    async def equip(
        self, *, user: Profile, item_id: str, room_id: str | None = None
    ) -> list[Owned]:
        """Equip an owned item; a creator effect is shown at once in the creator's
        live room (``room_id``, and the room named like the creator)."""
        owned = await self.engine.items.equip(user.id, item_id)
        self.looks.forget(user.id)
        if any(o.kind == CREATOR_EFFECT and o.item_id == item_id for o in owned):
            await self._effect_changed(user, owned, room_id=room_id)
        return owned

    async def unequip(self, *, user: Profile, kind: str, room_id: str | None = None) -> list[Owned]:
        if kind not in ITEM_KINDS:
            raise LiveError("bad_request", f"kind must be one of {', '.join(ITEM_KINDS)}")
        owned = await self.engine.items.unequip(user.id, kind)
        self.looks.forget(user.id)
        if kind == CREATOR_EFFECT:
            await self._effect_changed(user, owned, room_id=room_id)
        return owned

    async def _effect_changed(
        self, user: Profile, owned: list[Owned], *, room_id: str | None
    ) -> None:
        """Publish the creator's stream effect to each of their live rooms among
        ``room_id`` and the room named like them, and clear it there when it runs
        out. Anyone else's room is left alone."""
        rooms = []
        for candidate in dict.fromkeys(r for r in (room_id, user.id) if r):
            room = await self.engine.rooms.get(candidate)
            if room is not None and room.live and room.creator_id == user.id:
                rooms.append(room)
        if not rooms:
            return
        equipped_effect = (await self.looks.look(user.id)).creator_effect
        effect = equipped_effect.effect() if equipped_effect is not None else None
        for room in rooms:
            await self.engine.broker.publish(room.id, [ev.stream_effect(effect=effect)])
        equipped = next((o for o in owned if o.kind == CREATOR_EFFECT and o.equipped), None)
        if equipped is not None and equipped.expires_at is not None:
            delay_ms = max(0, equipped.expires_at - now_ms())
            for room in rooms:
                self._background(self._clear_when_expired(room.id, user.id, delay_ms))

    async def _clear_when_expired(self, room_id: str, user_id: str, delay_ms: int) -> bool:
        """At the effect's expiry, clear the room's stream effect if the creator has
        none any more (a renewal or another effect leaves it showing)."""
        await asyncio.sleep(delay_ms / 1000)
        self.looks.forget(user_id)
        room = await self.engine.rooms.get(room_id)
        if room is None or not room.live or room.creator_id != user_id:
            return False
        if (await self.looks.look(user_id)).creator_effect is not None:
            return False
        await self.engine.broker.publish(room_id, [ev.stream_effect(effect=None)])
        return True

    def _background(self, work: Awaitable[bool]) -> None:
        async def quietly() -> bool:
            try:
                return await work
            except Exception:
                log.warning("a background item task failed", exc_info=True)
                return False

        task = asyncio.get_running_loop().create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def expired(self, user_id: str) -> list[Owned]:
        return await self.engine.items.expired(user_id)

    def joined(self, profile: Profile, room_id: str) -> None:
        """A signed-in viewer joined the room afresh: announce their entrance effect
        in the background (the join itself never waits for it)."""
        self._background(self.entrance(profile, room_id))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def entrance(self, profile: Profile, room_id: str) -> bool:
        """Announce the user's entrance effect to the room (a fresh join, not a
        resume), once per ``ENTRANCE_INTERVAL_MS`` per user and room across nodes.
        Whether it was announced."""
        look = await self.looks.look(profile.id)
        if look.entrance is None:
            return False
        name = f"entrance:{profile.id}"
        if await self.engine.activity.throttle(room_id, name, ENTRANCE_INTERVAL_MS) > 0:
            return False
        effect = look.entrance.public()
        await self.engine.broker.publish(
            room_id, [ev.entrance(user=(await self.looks.dress(profile)).public(), effect=effect)]
        )
        return True

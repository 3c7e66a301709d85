"""What the HTTP API and the WebSocket endpoint both do: the actions of the product.

Each action validates its input, calls the engine, and publishes the room event
once. Both transports call these, so a gift sent over HTTP and one sent over
WebSocket are indistinguishable to the room and to the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from live import money
from live.activity import Activity
from live.errors import LiveError
from live.hub import Hub
from live.metrics import Metrics
from live.payments import PaymentProvider
from live.reads import SharedReads
from live.settings import Settings
from protocol import events as ev
from store.domain.models import Gift, GiftReceipt, Profile, PurchaseReceipt, Room
from store.domain.models import GiftRequest as WalletGiftRequest
from store.roles import Engine

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")


def check_room_id(room_id: str) -> str:
    if not ROOM_ID.match(room_id):
        raise LiveError("bad_request", "room id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return room_id


def check_key(key: str | None, *, what: str = "Idempotency-Key") -> str:
    if key is None or not IDEMPOTENCY_KEY.match(key):
        raise LiveError("bad_request", f"{what} must be 1-64 printable ASCII characters")
    return key


@dataclass(kw_only=True)
class Services:
    settings: Settings
    engine: Engine
    hub: Hub
    metrics: Metrics
    payments: dict[str, PaymentProvider] = field(default_factory=dict)
    activity: Activity = field(init=False)
    """The room experience on this node: combos, likes, viewers, chat, goals..."""
    shared_reads: SharedReads = field(init=False, default_factory=SharedReads)
    """Reads of a room's state that handshakes arriving together share."""

    def __post_init__(self) -> None:
        self.activity = Activity(self)

    def catalog_gift(self, gift_id: str, count: int) -> Gift:
        """The catalog's gift, with ``count`` in range; ``not_found``/``bad_request``."""
        gift = self.engine.catalog.gift(gift_id)
        if gift is None:
            raise LiveError("not_found", f"unknown gift {gift_id!r}")
        if not 1 <= count <= self.settings.max_gift_count:
            raise LiveError(
                "bad_request",
                f"count must be an integer from 1 to {self.settings.max_gift_count}",
            )
        return gift

    async def send_gift(
        self, *, sender: Profile, room_id: str, gift_id: str, count: int, key: str
    ) -> GiftReceipt:
        try:
            gift = self.catalog_gift(gift_id, count)
            receipt = await self.engine.wallet.send_gift(
                WalletGiftRequest(sender=sender, room_id=room_id, gift=gift, count=count, key=key)
            )
        except Exception as exc:
            self.metrics.gift_errors[getattr(exc, "code", "internal")] += 1
            raise
        if not receipt.replayed:
            self.metrics.gifts_committed += 1
            # the gift event, within its sender's combo; then the room's totals
            await self.activity.gift(gift=gift, sender=sender, receipt=receipt)
        return receipt

    async def purchase(
        self,
        *,
        user: Profile,
        package_id: str,
        key: str,
        provider: str,
        method: str,
        region: str | None = None,
    ) -> PurchaseReceipt:
        """Charge and credit a coin package: see ``live.money.purchase``."""
        return await money.purchase(
            self,
            user=user,
            package_id=package_id,
            key=key,
            provider=provider,
            method=method,
            region=region,
        )

    async def chat(self, *, sender: Profile, room_id: str, message_id: str, text: str) -> None:
        """Post a comment: length, bans, mutes and the per-user rate checked first."""
        room = await self.live_room(room_id)
        await self.activity.chat(sender=sender, room=room, message_id=message_id, text=text)

    async def like(self, *, sender: Profile, room_id: str, count: int) -> int:
        """Add likes (published per sender per tick); the stream's total after them."""
        room = await self.live_room(room_id)
        return await self.activity.like(sender=sender, room=room, count=count)

    async def live_room(self, room_id: str) -> Room:
        room = await self.engine.rooms.get(room_id)
        if room is None:
            raise LiveError("not_found", "room not found")
        if not room.live:
            raise LiveError("room_not_live", "the room is not live")
        return room

    async def go_live(self, *, creator: Profile, room_id: str, title: str) -> Room:
        if not creator.is_creator:
            raise LiveError("forbidden", "only creators can go live")
        return await self.engine.rooms.go_live(room_id=room_id, creator=creator, title=title)

    async def end_room(self, *, room_id: str, by: Profile) -> Room:
        before = await self.engine.rooms.get(room_id)
        room = await self.engine.rooms.end(room_id, by=by)
        if before is not None and before.live:
            await self.activity.end_stream(room_id)  # open combos end before the room
            await self.engine.broker.publish(room_id, [ev.room_ended()])
        return room

    async def room_state(self, room_id: str) -> dict[str, Any]:
        room = await self.engine.rooms.get(room_id)
        if room is None:
            raise LiveError("not_found", "room not found")
        top = await self.engine.rooms.leaderboard(room_id, limit=10)
        goal = await self.engine.activity.goal(room_id)
        return {
            "room": room.public(),
            "viewers": await self.engine.activity.viewers(room_id),
            "seq": await self.engine.broker.last_seq(room_id),
            "leaderboard": [entry.public() for entry in top],
            "goal": goal.public() if goal is not None else None,
            "summary": await self.activity.summary(room),
        }

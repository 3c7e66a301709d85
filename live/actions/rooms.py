"""The room actions: going live and ending, the room's state, chat and likes,
goals, moderation, overlays and supporters.

Creators (of their own room) and admins moderate (``moderated_room``); the
background side of the room experience (combos, announcements, viewers) is
``live.actions.room_activity``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from live.actions.items import Looks
from live.actions.room_activity import TOP_GIFTERS, RoomActivity, goal_event
from live.actions.shared_reads import SharedReads
from live.errors import LiveError
from live.realtime.hub import Board
from live.settings import Settings
from protocol import events as ev
from store.domain import refusals
from store.domain.models import (
    Gift,
    Goal,
    LeaderEntry,
    Profile,
    Restriction,
    Room,
    StreamStats,
)
from store.domain.postings import split_gift
from store.ids import new_id, now_ms
from store.roles import Engine

TEST_SENDER = {
    "id": "test",
    "username": "test_viewer",
    "display_name": "Test Viewer",
    "avatar": "",
}
"""The sender of overlay test events: not a real user."""
Notify = Callable[..., Awaitable[None]]
"""``notify(room_id, event_type, event, *, test=False)``."""


@dataclass(kw_only=True)
class Rooms:
    """What requests do to rooms (see the module docstring)."""

    settings: Settings
    engine: Engine
    activity: RoomActivity
    looks: Looks | None = None
    """Adds the sender's equipped badge and name style to chat and like events."""
    shared_reads: SharedReads = field(default_factory=SharedReads)
    """Reads of a room's state that handshakes arriving together share."""
    notify: Notify | None = None
    """Hands events that are not room events to the event subscriptions
    (``live.subscriptions.service.Subscriptions.notify``)."""

    # -- the stream ---------------------------------------------------------------------
    async def go_live(self, *, creator: Profile, room_id: str, title: str) -> Room:
        if not creator.is_creator:
            raise LiveError("forbidden", "only creators can go live")
        before = await self.engine.rooms.get(room_id)
        room = await self.engine.rooms.go_live(room_id=room_id, creator=creator, title=title)
        if self.notify is not None and (before is None or not before.live):
            started = {"type": "stream_started", "title": room.title, "stream_id": room.stream_id}
            await self.notify(room_id, "stream_started", started)
        return room

    async def end(self, *, room_id: str, by: Profile) -> Room:
        before = await self.engine.rooms.get(room_id)
        room = await self.engine.rooms.end(room_id, by=by)
        if before is not None and before.live:
            await self.activity.end_stream(room_id)  # open combos end before the room
            await self.engine.broker.publish(room_id, [ev.room_ended()])
        return room

    async def existing(self, room_id: str) -> Room:
        """The room; ``not_found`` if there is none."""
        room = await self.engine.rooms.get(room_id)
        if room is None:
            raise refusals.ROOM_NOT_FOUND()
        return room

    async def live_room(self, room_id: str) -> Room:
        room = await self.existing(room_id)
        if not room.live:
            raise refusals.ROOM_NOT_LIVE()
        return room

    async def state(self, room_id: str) -> dict[str, Any]:
        room = await self.existing(room_id)
        top = await self.engine.rooms.leaderboard(room_id, limit=10)
        goal = await self.engine.activity.goal(room_id)
        return {
            "room": room.public(),
            "viewers": await self.engine.activity.viewers(room_id),
            "seq": await self.engine.broker.last_seq(room_id),
            "leaderboard": [entry.public() for entry in top],
            "goal": goal.public() if goal is not None else None,
            "summary": await self.summary(room),
            "stream_effect": await self.stream_effect(room),
        }

    async def summary(self, room: Room) -> dict[str, Any]:
        """The current (or last) stream's summary."""
        stats = await self.engine.activity.stream_stats(room.id, room.stream_id)
        top = await self.engine.rooms.leaderboard(room.id, limit=TOP_GIFTERS)
        end = room.ended_at if room.ended_at is not None else now_ms()
        duration = end - room.started_at if room.started_at is not None else 0
        return {
            "stream_id": room.stream_id,
            "started_at": room.started_at,
            "ended_at": room.ended_at,
            "duration_ms": max(0, duration),
            **stats.public(),
            "top_gifters": [entry.public() for entry in top],
        }

    async def leaderboard(self, room_id: str) -> list[LeaderEntry]:
        await self.existing(room_id)
        return await self.engine.rooms.leaderboard(room_id, limit=10)

    async def supporters(self, creator_id: str, *, period: str, limit: int) -> list[LeaderEntry]:
        """The creator's top supporters: ``period`` ``day`` (today, UTC) or ``all``."""
        return await self.engine.activity.supporters(creator_id, period=period, limit=limit)

    # -- what a WebSocket handshake reads -------------------------------------------------
    async def for_handshake(self, room_id: str) -> Room | None:
        """The room, read once for a crowd joining together."""
        return await self.shared_reads.get(
            ("room", room_id), lambda: self.engine.rooms.get(room_id)
        )

    async def welcome_reads(
        self, room: Room, *, board: Board, overlay: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, StreamStats | None]:
        """The leaderboard and goal of a welcome, and for an overlay the stream's
        running totals. The first two come from the room channel's ``board``
        while the room is live (read from the engine once, then moved by the
        room's announcements); else from a read shared by a crowd joining together."""
        stats = None
        if overlay:
            stats = await self.engine.activity.stream_stats(room.id, room.stream_id)
        fresh = room.live and board.stream_id == room.stream_id
        if fresh and board.leaderboard is not None and board.goal_known:
            return board.leaderboard, board.goal, stats
        room_id = room.id
        shared = self.shared_reads
        top = await shared.get(
            ("leaderboard", room_id), lambda: self.engine.rooms.leaderboard(room_id, limit=10)
        )
        found = await shared.get(("goal", room_id), lambda: self.engine.activity.goal(room_id))
        leaderboard = [entry.public() for entry in top]
        goal = found.public() if found is not None else None
        if room.live:  # kept for the next welcomes (an announcement that came first wins)
            board.fill(stream_id=room.stream_id, leaderboard=leaderboard, goal=goal)
        return leaderboard, goal, stats

    async def stream_effect(self, room: Room) -> dict[str, Any] | None:
        """The effect shown over the room's stream (its creator's equipped creator
        effect), read once for a crowd joining together."""
        looks = self.looks
        if looks is None:
            return None
        return await self.shared_reads.get(
            ("stream_effect", room.id), lambda: looks.stream_effect(room)
        )

    async def is_banned(self, room_id: str, user_id: str) -> bool:
        return await self.engine.activity.is_banned(room_id, user_id)

    # -- chat and likes -------------------------------------------------------------------
    async def chat(self, *, sender: Profile, room_id: str, message_id: str, text: str) -> None:
        """Post a comment: length, bans, mutes and the per-user rate checked first."""
        room = await self.live_room(room_id)
        text = text.strip()
        limit = self.settings.max_chat_chars
        if not text or len(text) > limit:
            raise LiveError("bad_request", f"text must be 1 to {limit} characters")
        await self.engine.activity.check_chat(
            room.id,
            sender.id,
            limit=self.settings.chat_rate_messages,
            window_ms=int(self.settings.chat_rate_seconds * 1000),
        )
        if self.looks is not None:
            sender = await self.looks.dress(sender)
        await self.engine.broker.publish(
            room.id, [ev.chat(id=message_id, sender=sender.public(), text=text)]
        )

    async def like(self, *, sender: Profile, room_id: str, count: int) -> int:
        """Add likes (published per sender per tick); the stream's total after them."""
        room = await self.live_room(room_id)
        if self.looks is not None:
            sender = await self.looks.dress(sender)
        return await self.activity.like(sender=sender, room=room, count=count)

    # -- goals -----------------------------------------------------------------------------
    async def goal(self, room_id: str) -> Goal | None:
        await self.existing(room_id)
        return await self.engine.activity.goal(room_id)

    async def set_goal(self, *, room_id: str, by: Profile, target: int, title: str) -> Goal:
        await self.moderated_room(room_id, by)
        goal = await self.engine.activity.set_goal(room_id, target=target, title=title)
        await self.engine.broker.publish(room_id, [goal_event(goal)])
        return goal

    # -- moderation ------------------------------------------------------------------------
    async def moderated_room(self, room_id: str, by: Profile) -> Room:
        """The room, if ``by`` may moderate it (its creator or an admin)."""
        room = await self.existing(room_id)
        if by.id != room.creator_id and not by.is_admin:
            raise LiveError("forbidden", "only the room's creator or an admin can do that")
        return room

    async def restrict(
        self, *, room_id: str, by: Profile, user_id: str, kind: str, seconds: int | None
    ) -> Restriction:
        room = await self.moderated_room(room_id, by)
        if user_id == room.creator_id:
            raise LiveError("bad_request", "the creator cannot be banned or muted")
        now = now_ms()
        restriction = Restriction(
            user_id=user_id,
            kind=kind,
            until=None if seconds is None else now + seconds * 1000,
            by=by.id,
            created_at=now,
        )
        await self.engine.activity.restrict(room_id, restriction)
        if kind == "ban":
            # every node closes the user's connections to the room
            await self.engine.broker.signal(room_id, {"kind": "kick", "user": user_id})
        return restriction

    async def lift(self, *, room_id: str, by: Profile, user_id: str, kind: str) -> bool:
        await self.moderated_room(room_id, by)
        return await self.engine.activity.lift(room_id, user_id, kind)

    async def restrictions(self, *, room_id: str, by: Profile, kind: str) -> list[Restriction]:
        """The room's bans or mutes (``kind``), for its moderators."""
        await self.moderated_room(room_id, by)
        found = await self.engine.activity.restrictions(room_id)
        return [r for r in found if r.kind == kind]

    async def delete_chat(
        self, *, room_id: str, by: Profile, message_id: str, user_id: str
    ) -> None:
        await self.moderated_room(room_id, by)
        await self.engine.broker.publish(room_id, [ev.chat_deleted(id=message_id, user=user_id)])

    # -- overlays --------------------------------------------------------------------------
    async def rotate_overlay_key(self, *, room_id: str, by: Profile) -> str:
        await self.moderated_room(room_id, by)
        key = await self.engine.activity.rotate_overlay_key(room_id)
        await self.engine.broker.signal(room_id, {"kind": "overlay_key"})
        return key

    async def test_event(
        self, *, room_id: str, by: Profile, gift: Gift, count: int
    ) -> dict[str, Any]:
        """A fake gift for overlays only (``test: true``): no money moves, viewers
        see nothing, nothing is kept for resume."""
        room = await self.moderated_room(room_id, by)
        stats = await self.engine.activity.stream_stats(room_id, room.stream_id)
        tx = new_id("test")
        coins = gift.coins * count
        diamonds, _ = split_gift(coins, self.settings.creator_share_percent)
        event = {
            **ev.gift(
                tx=tx,
                gift=gift.public(),
                sender=TEST_SENDER,
                count=count,
                combo={"id": tx, "count": count, "end": True},
                diamonds=diamonds,
            ),
            "test": True,
            "overlay": {
                "combo": {"coins": coins, "diamonds": diamonds},
                "stream": {"gifts": stats.gifts, "coins": stats.coins, "diamonds": stats.diamonds},
            },
            "ts": now_ms(),
        }
        await self.engine.broker.signal(room_id, {"kind": "overlay", "events": [event]})
        if self.notify is not None:  # the subscriptions get it too, flagged as a test
            await self.notify(room_id, "gift", event, test=True)
        return event

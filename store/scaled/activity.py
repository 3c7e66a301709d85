"""The scaled engine's ``RoomActivity``: a room's shared state in Redis.

Every node reads and changes the same keys, so combos, like totals, viewer
counts, goals, bans and mutes and throttles are correct across nodes. Changes
that are announced publish their events from the same Lua script
(``lua/lib_room.lua``, shared with ``publish.lua``), so the
change and its events are one atomic step: a combo ends exactly once, whichever
node's timer gets there first, and after its last gift's event.

On a Redis Cluster a gift's event also sets the SHOWN flag of the gift's
room-step marker in the same script (``lua/lib_gift_marker.lua``), so it goes
out once, whether the gift's node or the settle group sends it.

Keys: the room slot's in ``store.scaled.keys``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final

from store.domain import models, refusals
from store.ids import new_id, new_secret, now_ms
from store.scaled import keys
from store.scaled.client import CommandBatcher, checked_reply, load_script
from store.scaled.codec import combo_member, fields_of, gift_heads, leader_entries, open_head
from store.scaled.gifts import STEP_MARKER_TTL
from store.scaled.keys import (
    BOARD_LEASE,
    SINGLE,
    KeyLayout,
    channel_name,
    chat_window_key,
    restrictions_key,
    room_key,
    room_marker_key,
    supporters_key,
    throttle_key,
    user_key,
)
from store.scaled.rooms import LEADERBOARD

RESTRICTION_KINDS: Final = ("ban", "mute")
log = logging.getLogger(__name__)
_COMBO: Final = load_script("room_combo")
_LIKES: Final = load_script("room_likes")
_VIEWERS: Final = load_script("room_viewers")
_THROTTLE: Final = load_script("room_throttle")
_GOAL: Final = load_script("room_goal")
_CHAT: Final = load_script("room_chat")
_OVERLAY_KEY: Final = load_script("room_overlay_key")
_BOARD: Final = load_script("room_board")
LISTED_ROOMS: Final = 100_000
"""Rooms remembered as listed for the combo sweep (a full map starts over)."""


def _restriction(user_id: str, kind: str, value: bytes) -> models.Restriction:
    until, by, created_at = value.decode().split("|", 2)
    return models.Restriction(
        user_id=user_id,
        kind=kind,
        until=int(until) or None,
        by=by,
        created_at=int(created_at),
    )


class RedisRoomActivity:
    """``RoomActivity`` over Redis (see the module docstring)."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        history_size: int,
        history_seconds: float,
        layout: KeyLayout = SINGLE,
    ) -> None:
        self._batcher = batcher
        self._layout = layout
        self._size = history_size
        # as the broker: an idle room's history expires, its seq never does
        self._history_ttl = max(int(history_seconds * 2), 60)
        self._listed: dict[str, int] = {}
        """Rooms this node listed for the combo sweep, and until when (ms) that
        entry stands for sure: an open combo keeps it listed until its window
        closes, so the room's gifts until then need not list it again."""

    def _publishing(self, room_id: str) -> tuple[str, int, int]:
        return channel_name(room_id), self._size, self._history_ttl

    # -- combos --------------------------------------------------------------------------
    async def publish_gift(self, room_id: str, hit: models.ComboHit, *, window_ms: int) -> int:
        # on a cluster the gift's room-step marker records that its event is out:
        # sent once, so the call may be sent again
        marker = self._layout.cluster
        head, final_head = gift_heads(hit.event)
        wait = await self._batcher.evalsha(
            _COMBO,
            self._combo_keys(room_id, shown_of=hit if marker else None),
            (
                *self._publishing(room_id),
                "hit",
                combo_member(hit.sender_id, hit.gift_id),
                hit.event["tx"],
                hit.count,
                hit.coins,
                hit.diamonds,
                window_ms if hit.streakable and window_ms > 0 else 0,
                hit.stream_id,
                head,
                final_head,
                *((STEP_MARKER_TTL,) if marker else ()),
            ),
            retry_on_disconnect=marker,
        )
        if wait:  # listed for every node's sweep (an earlier entry is corrected there)
            now = now_ms()
            if self._listed.get(room_id, 0) <= now:
                if len(self._listed) >= LISTED_ROOMS:
                    self._listed.clear()
                self._listed[room_id] = now + int(wait)
                self._list_combos("ZADD", keys.COMBO_ROOMS, "NX", now + wait, room_id)
        return int(wait)

    async def end_combos(self, room_id: str, *, everything: bool = False) -> int:
        wait = await self._batcher.evalsha(
            _COMBO,
            self._combo_keys(room_id),
            (*self._publishing(room_id), "all" if everything else "end"),
            retry_on_disconnect=True,  # ends only what is due: safe to run again
        )
        # Only an index for the sweep: a gift racing this just opens (and lists)
        # its combo again; the script alone decides what ends, once.
        if wait:
            self._list_combos("ZADD", keys.COMBO_ROOMS, "XX", now_ms() + wait, room_id)
        else:
            self._listed.pop(room_id, None)
            self._list_combos("ZREM", keys.COMBO_ROOMS, room_id)
        return int(wait)

    def _list_combos(self, *command: str | int) -> None:
        """Update the list of rooms with open combos, in the next pipeline, without
        waiting for it. The script's change and its events are done: a failure here
        is logged, not raised (the combos still end by the timers of the nodes
        watching the room)."""
        try:
            self._batcher.execute(*command).add_done_callback(_listing_done)
        except Exception:
            log.warning("listing the room's open combos failed", exc_info=True)

    async def open_combo_rooms(self) -> dict[str, int]:
        listed = await self._batcher.execute("ZRANGE", keys.COMBO_ROOMS, 0, -1, "WITHSCORES")
        now = now_ms()
        return {
            (room.decode() if isinstance(room, bytes) else str(room)): max(0, int(float(at)) - now)
            for room, at in zip(listed[::2], listed[1::2], strict=True)
        }

    async def publish_late_gift(self, room_id: str, hit: models.ComboHit) -> bool:
        """Cluster: publish a committed gift's event unless it went out already (its
        room-step marker says), as a combo of its own, ended at once, without
        touching the room's combos: the settle group showing a gift whose node died
        before its event. Returns whether it was published now."""
        shown = await self._batcher.evalsha(
            _COMBO,
            self._combo_keys(room_id, shown_of=hit),
            (
                *self._publishing(room_id),
                "late",
                "",
                hit.event["tx"],
                hit.count,
                hit.coins,
                hit.diamonds,
                0,
                hit.stream_id,
                open_head(hit.event),
                "",
                STEP_MARKER_TTL,
            ),
            retry_on_disconnect=True,
        )
        return bool(shown)

    @staticmethod
    def _combo_keys(room_id: str, *, shown_of: models.ComboHit | None = None) -> tuple[str, ...]:
        """The combo script's keys; with ``shown_of``, its gift's room-step marker."""
        combo = (
            room_key(room_id, keys.COMBOS),
            room_key(room_id, keys.COMBO_DUE),
            room_key(room_id, keys.STREAM_STATS),
            room_key(room_id, keys.SEQ),
            room_key(room_id, keys.HISTORY),
        )
        if shown_of is None:
            return combo
        return (*combo, room_marker_key(room_id, shown_of.event["tx"]))

    # -- likes ---------------------------------------------------------------------------
    async def add_likes(
        self, room_id: str, *, stream_id: int, likes: Sequence[tuple[models.Event, int]]
    ) -> list[int]:
        if not likes:
            return []
        pairs: list[bytes | int] = []
        for event, count in likes:
            pairs += [open_head(event) + b',"total":', count]
        reply = await self._batcher.evalsha(
            _LIKES,
            (
                room_key(room_id, keys.STREAM_STATS),
                room_key(room_id, keys.SEQ),
                room_key(room_id, keys.HISTORY),
            ),
            (*self._publishing(room_id), stream_id, len(likes), *pairs),
        )
        return [int(total) for total in reply]

    # -- viewers -------------------------------------------------------------------------
    async def report_viewers(
        self, room_id: str, *, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        return await self._viewers(room_id, node, count, ttl_ms, interval_ms)

    async def viewers(self, room_id: str) -> int:
        total, _ = await self._viewers(room_id, "", -1, 1, 1)
        return total

    async def _viewers(
        self, room_id: str, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        reply = await self._batcher.evalsha(
            _VIEWERS,
            (
                room_key(room_id, keys.VIEWERS),
                room_key(room_id, keys.VIEWERS_PUBLISHED),
                throttle_key(room_id, "viewers"),
                room_key(room_id, keys.ROOM),
                room_key(room_id, keys.STREAM_STATS),
                room_key(room_id, keys.SEQ),
                room_key(room_id, keys.HISTORY),
            ),
            (*self._publishing(room_id), node, count, ttl_ms, interval_ms),
        )
        return int(reply[0]), int(reply[1])

    async def announce_board(self, room_id: str, *, interval_ms: int, limit: int) -> int:
        wait = await self._batcher.evalsha(
            _BOARD,
            (
                throttle_key(room_id, BOARD_LEASE),
                room_key(room_id, keys.LEADERBOARD),
                room_key(room_id, keys.LEADERBOARD_PROFILES),
                room_key(room_id, keys.ROOM),
                room_key(room_id, keys.GOAL),
                room_key(room_id, keys.SEQ),
                room_key(room_id, keys.HISTORY),
            ),
            (*self._publishing(room_id), interval_ms, limit),
        )
        return int(wait)

    async def throttle(self, room_id: str, name: str, interval_ms: int) -> int:
        wait = await self._batcher.evalsha(
            _THROTTLE, (throttle_key(room_id, name),), (interval_ms,)
        )
        return int(wait)

    # -- goals ---------------------------------------------------------------------------
    async def set_goal(self, room_id: str, *, target: int, title: str) -> models.Goal:
        goal_id = new_id("goal")
        reply = checked_reply(
            await self._batcher.evalsha(
                _GOAL,
                (room_key(room_id, keys.ROOM), room_key(room_id, keys.GOAL)),
                ("set", goal_id, target, title, now_ms()),
            )
        )
        return models.Goal(goal_id, int(reply[1]), target, title, 0, False)

    async def goal(self, room_id: str) -> models.Goal | None:
        stream, values = await _gather(
            self._batcher.execute("HGET", room_key(room_id, keys.ROOM), "stream_id"),
            self._batcher.execute("HGETALL", room_key(room_id, keys.GOAL)),
        )
        if stream is None or not values:
            return None
        fields = fields_of(values)
        if fields.get("stream_id") != stream.decode():
            return None  # the goal of an earlier stream
        return models.Goal(
            id=fields["id"],
            stream_id=int(fields["stream_id"]),
            target=int(fields["target"]),
            title=fields["title"],
            progress=int(fields["progress"]),
            reached=fields["reached"] == "1",
        )

    async def claim_goal(self, room_id: str, goal_id: str) -> models.Goal | None:
        won = await self._batcher.evalsha(
            _GOAL, (room_key(room_id, keys.ROOM), room_key(room_id, keys.GOAL)), ("claim", goal_id)
        )
        if not won:
            return None
        return await self.goal(room_id)

    # -- moderation ----------------------------------------------------------------------
    async def restrict(self, room_id: str, restriction: models.Restriction) -> None:
        value = f"{restriction.until or 0}|{restriction.by}|{restriction.created_at}"
        await self._batcher.execute(
            "HSET", restrictions_key(room_id, restriction.kind), restriction.user_id, value
        )

    async def lift(self, room_id: str, user_id: str, kind: str) -> bool:
        removed = await self._batcher.execute("HDEL", restrictions_key(room_id, kind), user_id)
        return bool(removed)

    async def restrictions(self, room_id: str) -> list[models.Restriction]:
        now = now_ms()
        replies = await _gather(
            *(
                self._batcher.execute("HGETALL", restrictions_key(room_id, k))
                for k in RESTRICTION_KINDS
            )
        )
        found: list[models.Restriction] = []
        for kind, values in zip(RESTRICTION_KINDS, replies, strict=True):
            for i in range(0, len(values), 2):
                item = _restriction(values[i].decode(), kind, values[i + 1])
                if item.until is None or item.until > now:
                    found.append(item)
        return sorted(found, key=lambda r: (r.user_id, r.kind))

    async def is_banned(self, room_id: str, user_id: str) -> bool:
        value = await self._batcher.execute("HGET", restrictions_key(room_id, "ban"), user_id)
        if value is None:
            return False
        ban = _restriction(user_id, "ban", value)
        return ban.until is None or ban.until > now_ms()

    async def check_chat(self, room_id: str, user_id: str, *, limit: int, window_ms: int) -> None:
        reply = checked_reply(
            await self._batcher.evalsha(
                _CHAT,
                (
                    restrictions_key(room_id, "ban"),
                    restrictions_key(room_id, "mute"),
                    chat_window_key(room_id, user_id),
                ),
                (user_id, limit, window_ms),
            )
        )
        if reply[0] == b"L":
            raise refusals.CHAT_RATE(limit, window_ms / 1000)

    # -- room ----------------------------------------------------------------------------
    async def rotate_overlay_key(self, room_id: str) -> str:
        key = new_secret()
        checked_reply(
            await self._batcher.evalsha(_OVERLAY_KEY, (room_key(room_id, keys.ROOM),), (key,))
        )
        return key

    async def stream_stats(self, room_id: str, stream_id: int) -> models.StreamStats:
        names = ("gifts", "coins", "diamonds", "likes", "peak")
        values = await self._batcher.execute(
            "HMGET",
            room_key(room_id, keys.STREAM_STATS),
            *(f"{stream_id}:{name}" for name in names),
        )
        return models.StreamStats(*(int(value or 0) for value in values))

    async def supporters(
        self, creator_id: str, *, period: str, limit: int = 10
    ) -> list[models.LeaderEntry]:
        day = "all" if period == "all" else models.utc_day(now_ms())
        reply = await self._batcher.evalsha(
            LEADERBOARD,
            (supporters_key(creator_id, day), user_key(creator_id, keys.SUPPORTER_PROFILES)),
            (limit,),
            retry_on_disconnect=True,
        )
        return leader_entries(reply, limit)


def _listing_done(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("listing the room's open combos failed: %s", future.exception())


async def _gather(*futures: Any) -> list[Any]:
    """Await futures of one pipeline in order."""
    return [await future for future in futures]

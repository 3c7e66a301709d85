"""The scaled engine's ``RoomActivity``: a room's shared state in Redis.

Every node reads and changes the same keys, so combos, like totals, viewer
counts, goals, bans and mutes and throttles are correct across nodes. Changes
that are announced publish their events from the same Lua script
(``store/lua/lib_room.lua`` is the publish half of ``publish.lua``), so the
change and its events are one atomic step: a combo ends exactly once, whichever
node's timer gets there first, and after its last gift's event.

Keys, beside those of ``store.scaled.wallet`` and ``store.scaled.broker`` (all of
a room's in its slot)::

    live:{r:<room>}:combo        hash    open combos (see room_combo.lua)
    live:{r:<room>}:combo:due    zset    open combo -> deadline (ms)
    live:{r:<room>}:vw           hash    node -> "viewers|expires at (ms)"
    live:{r:<room>}:vw:last      string  the viewer count last published
    live:{r:<room>}:th:<name>    string  throttle lease (expires)
    live:{r:<room>}:bans         hash    user -> "until|by|created at"
    live:{r:<room>}:mutes        hash    user -> "until|by|created at"
    live:{r:<room>}:cr:<user>    string  comments in the user's current window
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from typing import Any, Final

import orjson

from store.domain.models import Event, Goal, LeaderEntry, Restriction, StreamStats, utc_day
from store.errors import BadRequest, StoreError
from store.ids import new_id, new_secret, now_ms
from store.scaled.broker import channel_name, history_key, seq_key
from store.scaled.client import CommandBatcher, LuaScript, load_script, script_reply_error
from store.scaled.wallet import (
    PREFIX,
    goal_key,
    room_key,
    stream_stats_key,
    supporter_profiles_key,
    supporters_key,
)

RESTRICTION_KINDS = KINDS = ("ban", "mute")
_MEMBER_SEPARATOR: Final = "\x1f"


@cache
def _room_script(name: str) -> LuaScript:
    """``store/lua/<name>.lua`` after the shared ``lib_room.lua``."""
    source = load_script("lib_room").source + b"\n" + load_script(name).source
    return LuaScript(name=name, source=source, sha=hashlib.sha1(source).hexdigest())


def combos_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:combo"


def combo_due_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:combo:due"


def viewers_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:vw"


def viewers_published_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:vw:last"


def throttle_key(room_id: str, name: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:th:{name}"


def restrictions_key(room_id: str, kind: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:{kind}s"


def chat_window_key(room_id: str, user_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:cr:{user_id}"


def _open_head(event: Event) -> bytes:
    """An event's JSON without its closing brace (the script appends the rest)."""
    return orjson.dumps(event)[:-1]


def _checked(reply: Any) -> list[Any]:
    error = script_reply_error(reply)
    if error is not None:
        raise error
    if not isinstance(reply, list) or not reply:
        raise StoreError(f"unexpected script reply: {reply!r}")
    return reply


def _restriction(user_id: str, kind: str, value: bytes) -> Restriction:
    until, by, created_at = value.decode().split("|", 2)
    return Restriction(
        user_id=user_id,
        kind=kind,
        until=int(until) or None,
        by=by,
        created_at=int(created_at),
    )


class RedisRoomActivity:
    """``RoomActivity`` over Redis (see the module docstring)."""

    def __init__(
        self, batcher: CommandBatcher, *, history_size: int, history_seconds: float
    ) -> None:
        self._batcher = batcher
        self._size = history_size
        # as the broker: an idle room's history expires, its seq never does
        self._history_ttl = max(int(history_seconds * 2), 60)

    def _publishing(self, room_id: str) -> tuple[str, int, int]:
        return channel_name(room_id), self._size, self._history_ttl

    # -- combos --------------------------------------------------------------------------
    async def publish_gift(
        self,
        room_id: str,
        *,
        event: Event,
        stream_id: int,
        sender_id: str,
        gift_id: str,
        streakable: bool,
        count: int,
        coins: int,
        diamonds: int,
        window_ms: int,
    ) -> int:
        wait = await self._batcher.evalsha(
            _room_script("room_combo"),
            self._combo_keys(room_id),
            (
                *self._publishing(room_id),
                "hit",
                f"{sender_id}{_MEMBER_SEPARATOR}{gift_id}",
                event["tx"],
                count,
                coins,
                diamonds,
                window_ms if streakable and window_ms > 0 else 0,
                stream_id,
                _open_head(event),
                _open_head({**event, "count": 0, "diamonds": 0}),
            ),
        )
        return int(wait)

    async def end_combos(self, room_id: str, *, everything: bool = False) -> int:
        wait = await self._batcher.evalsha(
            _room_script("room_combo"),
            self._combo_keys(room_id),
            (*self._publishing(room_id), "all" if everything else "end"),
            retry_on_disconnect=True,  # ends only what is due: safe to run again
        )
        return int(wait)

    @staticmethod
    def _combo_keys(room_id: str) -> tuple[str, ...]:
        return (
            combos_key(room_id),
            combo_due_key(room_id),
            stream_stats_key(room_id),
            seq_key(room_id),
            history_key(room_id),
        )

    # -- likes ---------------------------------------------------------------------------
    async def add_likes(
        self, room_id: str, *, stream_id: int, likes: Sequence[tuple[Event, int]]
    ) -> list[int]:
        if not likes:
            return []
        if any(count < 1 for _, count in likes):
            raise BadRequest("like counts must be positive")
        pairs: list[bytes | int] = []
        for event, count in likes:
            pairs += [_open_head(event) + b',"total":', count]
        reply = await self._batcher.evalsha(
            _room_script("room_likes"),
            (stream_stats_key(room_id), seq_key(room_id), history_key(room_id)),
            (*self._publishing(room_id), stream_id, len(likes), *pairs),
        )
        return [int(total) for total in reply]

    # -- viewers -------------------------------------------------------------------------
    async def report_viewers(
        self, room_id: str, *, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        if count < 0:
            raise BadRequest("a viewer count cannot be negative")
        return await self._viewers(room_id, node, count, ttl_ms, interval_ms)

    async def viewers(self, room_id: str) -> int:
        total, _ = await self._viewers(room_id, "", -1, 1, 1)
        return total

    async def _viewers(
        self, room_id: str, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        reply = await self._batcher.evalsha(
            _room_script("room_viewers"),
            (
                viewers_key(room_id),
                viewers_published_key(room_id),
                throttle_key(room_id, "viewers"),
                room_key(room_id),
                stream_stats_key(room_id),
                seq_key(room_id),
                history_key(room_id),
            ),
            (*self._publishing(room_id), node, count, ttl_ms, interval_ms),
        )
        return int(reply[0]), int(reply[1])

    async def throttle(self, room_id: str, name: str, interval_ms: int) -> int:
        wait = await self._batcher.evalsha(
            _room_script("room_throttle"), (throttle_key(room_id, name),), (interval_ms,)
        )
        return int(wait)

    # -- goals ---------------------------------------------------------------------------
    async def set_goal(self, room_id: str, *, target: int, title: str) -> Goal:
        if target < 1:
            raise BadRequest("a goal's target must be at least 1 diamond")
        goal_id = new_id("goal")
        reply = _checked(
            await self._batcher.evalsha(
                _room_script("room_goal"),
                (room_key(room_id), goal_key(room_id)),
                ("set", goal_id, target, title, now_ms()),
            )
        )
        return Goal(goal_id, int(reply[1]), target, title, 0, False)

    async def goal(self, room_id: str) -> Goal | None:
        stream, values = await _gather(
            self._batcher.execute("HGET", room_key(room_id), "stream_id"),
            self._batcher.execute("HGETALL", goal_key(room_id)),
        )
        if stream is None or not values:
            return None
        fields = {values[i].decode(): values[i + 1].decode() for i in range(0, len(values), 2)}
        if fields.get("stream_id") != stream.decode():
            return None  # the goal of an earlier stream
        return Goal(
            id=fields["id"],
            stream_id=int(fields["stream_id"]),
            target=int(fields["target"]),
            title=fields["title"],
            progress=int(fields["progress"]),
            reached=fields["reached"] == "1",
        )

    async def claim_goal(self, room_id: str, goal_id: str) -> Goal | None:
        won = await self._batcher.evalsha(
            _room_script("room_goal"), (room_key(room_id), goal_key(room_id)), ("claim", goal_id)
        )
        if not won:
            return None
        return await self.goal(room_id)

    # -- moderation ----------------------------------------------------------------------
    async def restrict(self, room_id: str, restriction: Restriction) -> None:
        if restriction.kind not in RESTRICTION_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(RESTRICTION_KINDS)}")
        value = f"{restriction.until or 0}|{restriction.by}|{restriction.created_at}"
        await self._batcher.execute(
            "HSET", restrictions_key(room_id, restriction.kind), restriction.user_id, value
        )

    async def lift(self, room_id: str, user_id: str, kind: str) -> bool:
        if kind not in RESTRICTION_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(RESTRICTION_KINDS)}")
        removed = await self._batcher.execute("HDEL", restrictions_key(room_id, kind), user_id)
        return bool(removed)

    async def restrictions(self, room_id: str) -> list[Restriction]:
        now = now_ms()
        replies = await _gather(
            *(self._batcher.execute("HGETALL", restrictions_key(room_id, k)) for k in KINDS)
        )
        found: list[Restriction] = []
        for kind, values in zip(KINDS, replies, strict=True):
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
        message = f"too many comments: at most {limit} every {window_ms / 1000:g} seconds"
        reply = await self._batcher.evalsha(
            _room_script("room_chat"),
            (
                restrictions_key(room_id, "ban"),
                restrictions_key(room_id, "mute"),
                chat_window_key(room_id, user_id),
            ),
            (user_id, limit, window_ms, message),
        )
        error = script_reply_error(reply)
        if error is not None:
            raise error  # Forbidden (banned, muted) or RateLimited

    # -- room ----------------------------------------------------------------------------
    async def rotate_overlay_key(self, room_id: str) -> str:
        key = new_secret()
        _checked(
            await self._batcher.evalsha(
                _room_script("room_overlay_key"), (room_key(room_id),), (key,)
            )
        )
        return key

    async def stream_stats(self, room_id: str, stream_id: int) -> StreamStats:
        names = ("gifts", "coins", "diamonds", "likes", "peak")
        values = await self._batcher.execute(
            "HMGET", stream_stats_key(room_id), *(f"{stream_id}:{name}" for name in names)
        )
        return StreamStats(*(int(value or 0) for value in values))

    async def supporters(
        self, creator_id: str, *, period: str, limit: int = 10
    ) -> list[LeaderEntry]:
        if period not in ("day", "all"):
            raise BadRequest("period must be day or all")
        if limit < 1:
            raise BadRequest("limit must be at least 1")
        day = "all" if period == "all" else utc_day(now_ms())
        reply = await self._batcher.evalsha(
            load_script("leaderboard"),
            (supporters_key(creator_id, day), supporter_profiles_key(creator_id)),
            (limit,),
            retry_on_disconnect=True,
        )
        rows = [
            (reply[i].decode(), int(float(reply[i + 1])), reply[i + 2])
            for i in range(0, len(reply), 3)
        ]
        rows.sort(key=lambda row: (-row[1], row[0]))
        return [
            LeaderEntry(user=orjson.loads(user), coins=coins) for _, coins, user in rows[:limit]
        ]


async def _gather(*futures: Any) -> list[Any]:
    """Await futures of one pipeline in order."""
    return [await future for future in futures]

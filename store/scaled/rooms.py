"""The scaled engine's ``Rooms``: the room hash plus the current stream's leaderboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from store.domain.models import LeaderEntry, Profile, Room
from store.ids import new_secret, now_ms
from store.scaled import keys
from store.scaled.client import CommandBatcher, checked_reply, load_script
from store.scaled.codec import fields_of, flag, leader_entries
from store.scaled.keys import room_key

_GO_LIVE: Final = load_script("go_live")
_END: Final = load_script("end")
LEADERBOARD: Final = load_script("leaderboard")
"""Top entries of a zset with a profile hash (room gifters, a creator's supporters)."""


def room_from_hash(room_id: str, values: Sequence[Any]) -> Room:
    """A ``Room`` from a flat ``HGETALL`` reply of the room hash."""
    fields = fields_of(values)
    ended = fields.get("ended_at", "")
    return Room(
        id=room_id,
        creator=orjson.loads(fields["creator"]),
        title=fields["title"],
        live=fields["live"] == "1",
        stream_id=int(fields["stream_id"]),
        started_at=int(fields["started_at"]) if fields.get("started_at") else None,
        ended_at=int(ended) if ended else None,
        overlay_key=fields["overlay_key"],
        creator_adult=fields["creator_adult"] == "1",
    )


class RedisRooms:
    """``Rooms`` over Redis: room hash plus the current stream's leaderboard."""

    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher

    async def go_live(self, *, room_id: str, creator: Profile, title: str) -> Room:
        """New room: stream 1 with a fresh overlay key. Same creator, ended: the next
        stream (title and creator profile refreshed, leaderboard emptied). Same
        creator, live: only the title changes. Another creator: ``Conflict``."""
        reply = checked_reply(
            await self._batcher.evalsha(
                _GO_LIVE,
                (
                    room_key(room_id, keys.ROOM),
                    room_key(room_id, keys.LEADERBOARD),
                    room_key(room_id, keys.LEADERBOARD_PROFILES),
                ),
                (
                    creator.id,
                    orjson.dumps(creator.public()),
                    flag(creator.adult),
                    title,
                    now_ms(),
                    new_secret(),
                ),
                # going live again while live only sets the title: safe to resend
                retry_on_disconnect=True,
            )
        )
        return room_from_hash(room_id, reply[1:])

    async def end(self, room_id: str, *, by: Profile) -> Room:
        """``NotFound``; ``Forbidden`` unless ``by`` is the creator or an admin; an
        ended room is returned unchanged."""
        reply = checked_reply(
            await self._batcher.evalsha(
                _END,
                (room_key(room_id, keys.ROOM),),
                (by.id, flag(by.is_admin), now_ms()),
                retry_on_disconnect=True,
            )
        )
        return room_from_hash(room_id, reply[1:])

    async def get(self, room_id: str) -> Room | None:
        values = await self._batcher.execute("HGETALL", room_key(room_id, keys.ROOM))
        if not values:
            return None
        return room_from_hash(room_id, values)

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[LeaderEntry]:
        """The current stream's gifters, coins descending, ties by user id; ``[]`` for
        an unknown room."""
        reply = await self._batcher.evalsha(
            LEADERBOARD,
            (room_key(room_id, keys.LEADERBOARD), room_key(room_id, keys.LEADERBOARD_PROFILES)),
            (limit,),
            retry_on_disconnect=True,
        )
        return leader_entries(reply, limit)

"""The embedded engine's ``Rooms``: room rows and the current stream's gifters.

The row helpers (``load_room``) are shared with ``store.embedded.activity``,
which reads the same rows for goals and viewer peaks.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Final

import orjson

from store.domain import refusals
from store.domain.models import LeaderEntry, Profile, Room
from store.embedded.boards import TOP
from store.embedded.database import SQLiteDatabase
from store.embedded.journal import dumps
from store.errors import StoreError
from store.ids import new_secret, now_ms

_ROOM_COLUMNS: Final = (
    "id, creator, creator_adult, title, live, stream_id, started_at, ended_at, overlay_key"
)


def _room_from_row(row: tuple[Any, ...]) -> Room:
    return Room(
        id=row[0],
        creator=orjson.loads(row[1]),
        creator_adult=bool(row[2]),
        title=row[3],
        live=bool(row[4]),
        stream_id=row[5],
        started_at=row[6],
        ended_at=row[7],
        overlay_key=row[8],
    )


def load_room(conn: sqlite3.Connection, room_id: str) -> Room | None:
    row = conn.execute(f"SELECT {_ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,)).fetchone()
    return None if row is None else _room_from_row(row)


def stream_leaders(
    conn: sqlite3.Connection, room_id: str, limit: int = TOP
) -> tuple[int | None, list[tuple[str, dict[str, str], int]]]:
    """The room's current stream (``None``: no such room) and its top ``limit``
    gifters as (user id, user, coins), coins descending, ties by user id; both
    from one snapshot (``store.embedded.boards`` follows them from there)."""
    conn.execute("BEGIN")
    try:
        room = conn.execute("SELECT stream_id FROM rooms WHERE id = ?", (room_id,)).fetchone()
        if room is None:
            return None, []
        rows = conn.execute(
            "SELECT user_id, user, coins FROM room_gifters WHERE room_id = ? AND stream_id = ? "
            "ORDER BY coins DESC, user_id ASC LIMIT ?",
            (room_id, room[0], limit),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return room[0], [(user_id, orjson.loads(user), coins) for user_id, user, coins in rows]


async def cached_room(db: SQLiteDatabase, room_id: str) -> Room | None:
    """The room row, read once until this process changes it (``SQLiteDatabase.rooms``)."""
    return await db.rooms.get(room_id, lambda: db.read(lambda conn: load_room(conn, room_id)))


async def room_leaders(db: SQLiteDatabase, room_id: str, limit: int) -> list[LeaderEntry]:
    """The current stream's top ``limit`` gifters, from memory once read
    (``SQLiteDatabase.boards``); ``[]`` for an unknown room."""
    return await db.boards.leaderboard(
        room_id, limit, lambda count: db.read(lambda conn: stream_leaders(conn, room_id, count))
    )


class SQLiteRooms:
    """``Rooms`` over SQLite: room state plus per-stream gifter totals."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def go_live(self, *, room_id: str, creator: Profile, title: str) -> Room:
        """New room: stream 1 with a fresh overlay key. Same creator, ended: the next
        stream (title and creator profile refreshed). Same creator, live: only the
        title changes. Another creator's room: ``Conflict``."""
        return await self._db.write(
            lambda conn: _go_live(conn, room_id, creator, title), committed=self._changed
        )

    async def end(self, room_id: str, *, by: Profile) -> Room:
        """``NotFound``; ``Forbidden`` unless ``by`` is the creator or an admin; an
        ended room is returned unchanged."""
        return await self._db.write(lambda conn: _end(conn, room_id, by), committed=self._changed)

    def _changed(self, room: Room) -> None:
        """A room's stream began or ended: its leaderboard and goal are read again."""
        self._db.rooms.changed(room.id, room)
        self._db.boards.forget(room.id)

    async def get(self, room_id: str) -> Room | None:
        return await cached_room(self._db, room_id)

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[LeaderEntry]:
        """The current stream's gifters, coins descending, ties by user id; ``[]`` for
        an unknown room."""
        return await room_leaders(self._db, room_id, limit)


def _go_live(conn: sqlite3.Connection, room_id: str, creator: Profile, title: str) -> Room:
    room = load_room(conn, room_id)
    now = now_ms()
    profile = dumps(creator.public())
    if room is None:
        conn.execute(
            f"INSERT INTO rooms ({_ROOM_COLUMNS}) VALUES (?, ?, ?, ?, 1, 1, ?, NULL, ?)",
            (room_id, profile, int(creator.adult), title, now, new_secret()),
        )
    elif room.creator_id != creator.id:
        raise refusals.ROOM_TAKEN()
    elif room.live:
        conn.execute("UPDATE rooms SET title = ? WHERE id = ?", (title, room_id))
    else:
        conn.execute(
            "UPDATE rooms SET creator = ?, creator_adult = ?, title = ?, live = 1, "
            "stream_id = stream_id + 1, started_at = ?, ended_at = NULL WHERE id = ?",
            (profile, int(creator.adult), title, now, room_id),
        )
    updated = load_room(conn, room_id)
    if updated is None:  # cannot happen inside one transaction
        raise StoreError("room vanished while going live")
    return updated


def _end(conn: sqlite3.Connection, room_id: str, by: Profile) -> Room:
    room = load_room(conn, room_id)
    if room is None:
        raise refusals.ROOM_NOT_FOUND()
    if by.id != room.creator_id and not by.is_admin:
        raise refusals.NOT_ROOM_OWNER()
    if not room.live:
        return room
    ended_at = now_ms()
    conn.execute("UPDATE rooms SET live = 0, ended_at = ? WHERE id = ?", (ended_at, room_id))
    return dataclasses.replace(room, live=False, ended_at=ended_at)

"""The embedded engine's room tables, and what a gift writes to them.

``record_gift`` runs inside the gift's own SQLite transaction (see
``store.sqlite._send_gift``), so a stream's totals, the goal's progress and the
creator's supporters always equal what the ledger says about the same gifts.
The rest of the room state (bans, mutes, likes, viewer peaks) is written by
``store.embedded.activity``.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from store.domain.models import utc_day

ALL_TIME: Final = "all"
"""``creator_supporters.period`` of the all-time tally; days are ``YYYY-MM-DD``."""

ROOM_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS stream_stats (
        room_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        gifts INTEGER NOT NULL DEFAULT 0,
        coins INTEGER NOT NULL DEFAULT 0,
        diamonds INTEGER NOT NULL DEFAULT 0,
        likes INTEGER NOT NULL DEFAULT 0,
        peak_viewers INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room_id, stream_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS room_goals (
        room_id TEXT PRIMARY KEY,
        goal_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        target INTEGER NOT NULL,
        title TEXT NOT NULL,
        progress INTEGER NOT NULL,
        reached INTEGER NOT NULL,
        set_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS creator_supporters (
        creator_id TEXT NOT NULL,
        period TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user TEXT NOT NULL,
        coins INTEGER NOT NULL,
        PRIMARY KEY (creator_id, period, user_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS creator_supporters_top
        ON creator_supporters (creator_id, period, coins DESC, user_id)""",
    """CREATE TABLE IF NOT EXISTS room_restrictions (
        room_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        until INTEGER,
        by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (room_id, kind, user_id)
    ) WITHOUT ROWID""",
)


def record_gift(
    conn: sqlite3.Connection,
    *,
    room_id: str,
    stream_id: int,
    creator_id: str,
    sender_id: str,
    sender_json: str,
    count: int,
    coins: int,
    diamonds: int,
    created_at: int,
) -> tuple[int, int, int]:
    """A committed gift's room totals: the stream's, the goal's, the creator's
    supporters (today's and all-time). Only writes: nothing here can refuse a gift.
    Returns the stream's gift totals with this gift: (gifts, coins, diamonds)."""
    gifts, stream_coins, stream_diamonds = conn.execute(
        "INSERT INTO stream_stats (room_id, stream_id, gifts, coins, diamonds) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id) DO UPDATE SET "
        "gifts = gifts + excluded.gifts, coins = coins + excluded.coins, "
        "diamonds = diamonds + excluded.diamonds RETURNING gifts, coins, diamonds",
        (room_id, stream_id, count, coins, diamonds),
    ).fetchone()
    conn.execute(
        "UPDATE room_goals SET progress = progress + ? WHERE room_id = ? AND stream_id = ?",
        (diamonds, room_id, stream_id),
    )
    conn.execute(
        "INSERT INTO creator_supporters (creator_id, period, user_id, user, coins) "
        "VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT (creator_id, period, user_id) "
        "DO UPDATE SET coins = coins + excluded.coins, user = excluded.user",
        (
            *(creator_id, ALL_TIME, sender_id, sender_json, coins),
            *(creator_id, utc_day(created_at), sender_id, sender_json, coins),
        ),
    )
    return int(gifts), int(stream_coins), int(stream_diamonds)

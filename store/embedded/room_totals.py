"""What a gift writes to the embedded engine's room tables.

``record_gift`` runs inside the gift's own SQLite transaction (see
``store.embedded.gifts``), so a stream's leaderboard and totals, the goal's
progress and the creator's supporters always equal what the ledger says about
the same gifts. The rest of the room state (bans, mutes, likes, viewer peaks)
is written by ``store.embedded.activity``.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from store.domain.models import GiftReceipt, utc_day

ALL_TIME: Final = "all"
"""``creator_supporters.period`` of the all-time tally; days are ``YYYY-MM-DD``."""


def record_gift(
    conn: sqlite3.Connection, receipt: GiftReceipt, *, sender_id: str, sender_json: str
) -> tuple[int, int, int]:
    """A committed gift's room totals: the stream's leaderboard and totals, the
    goal's, the creator's supporters (today's and all-time). Only writes: nothing
    here can refuse a gift. Returns the stream's gift totals with this gift:
    (gifts, coins, diamonds)."""
    room_id, stream_id, coins = receipt.room_id, receipt.stream_id, receipt.coins
    conn.execute(
        "INSERT INTO room_gifters (room_id, stream_id, user_id, user, coins) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id, user_id) "
        "DO UPDATE SET coins = coins + excluded.coins, user = excluded.user",
        (room_id, stream_id, sender_id, sender_json, coins),
    )
    gifts, stream_coins, stream_diamonds = conn.execute(
        "INSERT INTO stream_stats (room_id, stream_id, gifts, coins, diamonds) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id) DO UPDATE SET "
        "gifts = gifts + excluded.gifts, coins = coins + excluded.coins, "
        "diamonds = diamonds + excluded.diamonds RETURNING gifts, coins, diamonds",
        (room_id, stream_id, receipt.count, coins, receipt.diamonds),
    ).fetchone()
    conn.execute(
        "UPDATE room_goals SET progress = progress + ? WHERE room_id = ? AND stream_id = ?",
        (receipt.diamonds, room_id, stream_id),
    )
    creator_id = receipt.creator_id
    conn.execute(
        "INSERT INTO creator_supporters (creator_id, period, user_id, user, coins) "
        "VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT (creator_id, period, user_id) "
        "DO UPDATE SET coins = coins + excluded.coins, user = excluded.user",
        (
            *(creator_id, ALL_TIME, sender_id, sender_json, coins),
            *(creator_id, utc_day(receipt.created_at), sender_id, sender_json, coins),
        ),
    )
    return int(gifts), int(stream_coins), int(stream_diamonds)

"""What a gift writes to the embedded engine's room tables.

``record_gift`` runs inside the gift's own SQLite transaction (see
``store.embedded.gifts``), so a stream's leaderboard and totals, the goal's
progress and the creator's supporters always equal what the ledger says about
the same gifts. The rest of the room state (bans, mutes, likes, viewer peaks)
is written by ``store.embedded.activity``.
"""

from __future__ import annotations

import sqlite3
from typing import Final, NamedTuple

from store.domain.models import GiftReceipt, utc_day

ALL_TIME: Final = "all"
"""``creator_supporters.period`` of the all-time tally; days are ``YYYY-MM-DD``."""


class GiftTotals(NamedTuple):
    """A room's totals with a gift, as its own statements returned them."""

    gifts: int
    coins: int
    diamonds: int
    """The stream's gift totals."""
    gifter_coins: int
    """The sender's total in the stream (the leaderboard's figure)."""
    goal_id: str | None
    goal_progress: int
    """The room's goal of this stream and its progress (``None``, 0: no goal)."""

    @property
    def stream(self) -> tuple[int, int, int]:
        return self.gifts, self.coins, self.diamonds


def record_gift(
    conn: sqlite3.Connection,
    receipt: GiftReceipt,
    *,
    sender_id: str,
    sender_json: str,
    goal: bool = True,
) -> GiftTotals:
    """A committed gift's room totals: the stream's leaderboard and totals, the
    goal's, the creator's supporters (today's and all-time). Only writes: nothing
    here can refuse a gift. Returns them as they are with this gift (each upsert
    returns its row: no read after). ``goal``: whether the stream has a goal, as
    the gift's checks read it (without one, no statement for it)."""
    room_id, stream_id, coins = receipt.room_id, receipt.stream_id, receipt.coins
    (gifter_coins,) = conn.execute(
        "INSERT INTO room_gifters (room_id, stream_id, user_id, user, coins) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id, user_id) "
        "DO UPDATE SET coins = coins + excluded.coins, user = excluded.user RETURNING coins",
        (room_id, stream_id, sender_id, sender_json, coins),
    ).fetchone()
    gifts, stream_coins, stream_diamonds = conn.execute(
        "INSERT INTO stream_stats (room_id, stream_id, gifts, coins, diamonds) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, stream_id) DO UPDATE SET "
        "gifts = gifts + excluded.gifts, coins = coins + excluded.coins, "
        "diamonds = diamonds + excluded.diamonds RETURNING gifts, coins, diamonds",
        (room_id, stream_id, receipt.count, coins, receipt.diamonds),
    ).fetchone()
    moved = None
    if goal:
        moved = conn.execute(
            "UPDATE room_goals SET progress = progress + ? WHERE room_id = ? AND stream_id = ? "
            "RETURNING goal_id, progress",
            (receipt.diamonds, room_id, stream_id),
        ).fetchone()
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
    return GiftTotals(
        int(gifts),
        int(stream_coins),
        int(stream_diamonds),
        int(gifter_coins),
        None if moved is None else moved[0],
        0 if moved is None else int(moved[1]),
    )

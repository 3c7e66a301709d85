"""The embedded engine's ``RoomActivity``: one process, one SQLite file.

What must survive a restart is in SQLite (stream totals, goals, bans and mutes,
supporters, the overlay key, and a copy of each open combo, so a combo open when
the process dies still ends after the restart); what only matters while the
process runs is in memory (per-node viewer counts, throttle leases, chat rate
windows). There is one node, so "exactly once across nodes" comes from the
event loop: every change and the publish of its events run without an await in
between, and the in-process broker delivers synchronously.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from protocol import events as ev
from store.domain import refusals
from store.domain.models import (
    ComboHit,
    Event,
    Goal,
    LeaderEntry,
    Restriction,
    StreamStats,
    utc_day,
)
from store.embedded.broker import MemoryBroker
from store.embedded.combo_copies import ComboCopies, ComboRow, ComboState, combo_row, continue_in
from store.embedded.database import SQLiteDatabase
from store.embedded.room_totals import ALL_TIME
from store.embedded.rooms import cached_room, load_room, room_leaders
from store.ids import new_id, new_secret, now_ms

log = logging.getLogger(__name__)

BOARD_LEASE: Final = "board"
"""The ``throttle`` lease of a room's leaderboard and goal announcements."""


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


@dataclass(slots=True)
class _Combo:
    id: str
    stream_id: int
    count: int
    coins: int
    diamonds: int
    deadline: float
    """Monotonic milliseconds."""
    end_event: Event
    """The gift event of the combo's last send, with count and diamonds zeroed."""


def _end_event(event: Event) -> Event:
    """A send's ``gift`` event as its combo's final event will show it (adds nothing)."""
    return {**event, "count": 0, "diamonds": 0}


def _overlay(stats: StreamStats, coins: int, diamonds: int) -> dict[str, Any]:
    return {
        "combo": {"coins": coins, "diamonds": diamonds},
        "stream": {"gifts": stats.gifts, "coins": stats.coins, "diamonds": stats.diamonds},
    }


def _with_combo(event: Event, combo: _Combo, *, end: bool, stats: StreamStats) -> Event:
    return {
        **event,
        "combo": {"id": combo.id, "count": combo.count, "end": end},
        "overlay": _overlay(stats, combo.coins, combo.diamonds),
    }


class SQLiteRoomActivity:
    """``RoomActivity`` for the embedded engine (see the module docstring)."""

    def __init__(self, db: SQLiteDatabase, broker: MemoryBroker) -> None:
        self._db = db
        self._broker = broker
        self._combos: dict[str, dict[tuple[str, str], _Combo]] = {}
        self._viewers: dict[str, dict[str, tuple[int, float]]] = {}
        """room -> node -> (count, expires at, monotonic ms)."""
        self._viewers_published: dict[str, int] = {}
        self._peaks: dict[tuple[str, int], int] = {}
        self._leases: dict[tuple[str, str], float] = {}
        self._chat_windows: dict[tuple[str, str], tuple[int, float]] = {}
        self._copies = ComboCopies(db)
        """The file's copy of the open combos (written once per group commit)."""
        self._recovered = False
        """Whether the combos a previous process left in the file are loaded."""

    async def flush_copies(self) -> None:
        """Write the combo changes still waiting (on close, before the database)."""
        await self._copies.flush()

    # -- combos --------------------------------------------------------------------------
    async def publish_gift(self, room_id: str, hit: ComboHit, *, window_ms: int) -> int:
        return (await self.publish_gift_shown(room_id, hit, window_ms=window_ms))[0]

    @staticmethod
    def copy_in_commit(
        conn: sqlite3.Connection, room_id: str, hit: ComboHit, *, window_ms: int
    ) -> ComboState | None:
        """In the writer thread, inside the gift's own transaction: the file's copy
        of the gift's combo (``combo_copies.continue_in``), so the gift's answer
        waits for one commit, not two. ``None``: nothing written (the gift is a
        combo of its own, or the write failed and ``publish_gift_shown`` writes
        the copy after instead); a failure that ended the transaction is raised,
        since the gift is not written either."""
        if not hit.streakable or window_ms <= 0:
            return None
        event = hit.event
        try:
            return continue_in(
                conn,
                (room_id, hit.sender_id, hit.gift_id),
                tx=event["tx"],
                stream_id=hit.stream_id,
                totals=(hit.count, hit.coins, hit.diamonds),
                window_ms=window_ms,
                end_event=_end_event(event),
            )
        except sqlite3.Error:
            if not conn.in_transaction:
                raise
            log.warning("copying the combo of %s in its commit failed", event["tx"], exc_info=True)
            return None

    async def publish_gift_shown(
        self,
        room_id: str,
        hit: ComboHit,
        *,
        window_ms: int,
        board: tuple[int, int] | None = None,
        copied: ComboState | None = None,
    ) -> tuple[int, int | None]:
        """``publish_gift``; with ``board`` (interval ms, entries), also the room's
        leaderboard and goal after the gift, in the same publish (so in the gift's
        frame), unless they were announced within the interval (the ``throttle``
        lease ``board`` that a node's own announcements take). Returns the combo's
        wait, as ``publish_gift``, and the board's: 0 when announced, else
        milliseconds until the lease frees up; ``None`` without ``board``. It
        raises only before its publish (a read of the stream's totals, the
        board or the goal): what fails after it is logged. ``copied``: the combo
        as the gift's own commit wrote it (``copy_in_commit``); when the room's
        memory agrees, the copy is on disk already and is not written again."""
        stream_id, event = hit.stream_id, hit.event
        stats = await self._gift_stats(room_id, stream_id)
        ended = await self._ended_stats(room_id, stream_id)
        shown: list[Event] = []
        goal: Goal | None = None
        board_wait: int | None = None
        interval_ms, limit = board if board is not None else (0, 0)
        if board is not None:
            board_wait = self._lease_left(room_id, BOARD_LEASE)
            if not board_wait:  # from memory but for a room's first gifts
                top = await room_leaders(self._db, room_id, limit)
                goal = await self.goal(room_id)
                shown = [ev.leaderboard(top=[entry.public() for entry in top])]
                if goal is not None:
                    shown.append(ev.goal(**goal.public()))
        # From here to the publish: no await, so no other change of this room slips in.
        if shown:
            board_wait = self._take_lease(room_id, BOARD_LEASE, interval_ms)
            if board_wait:  # announced by another caller meanwhile
                shown, goal = [], None
        now = _monotonic_ms()
        combos = self._combos.get(room_id, {})
        member = (hit.sender_id, hit.gift_id)
        published: list[Event] = []
        combo = combos.get(member)
        if combo is not None and combo.deadline <= now:
            published.append(self._end(combos, member, combo, ended.get(combo.stream_id, stats)))
            combo = None
        end_event = _end_event(event)
        if not hit.streakable or window_ms <= 0:
            if not combos:
                self._combos.pop(room_id, None)
            single = _Combo(
                event["tx"], stream_id, hit.count, hit.coins, hit.diamonds, now, end_event
            )
            published.append(_with_combo(event, single, end=True, stats=stats))
            expired = published[0]["combo"]["id"] if len(published) > 1 else None
            await self._broker.publish(room_id, [*published, *shown])
            if expired is not None:  # the expired combo ended first
                await self._keep_open(self._copies.forget((room_id, *member), expired))
            await self._announce_reached(room_id, goal)
            return 0, board_wait
        combos = self._combos.setdefault(room_id, combos)
        if combo is None:
            combo = _Combo(event["tx"], stream_id, 0, 0, 0, now, end_event)
            combos[member] = combo
        combo.count += hit.count
        combo.coins += hit.coins
        combo.diamonds += hit.diamonds
        combo.deadline = now + window_ms
        combo.end_event = end_event
        published.append(_with_combo(event, combo, end=False, stats=stats))
        await self._broker.publish(room_id, [*published, *shown])
        state = ComboState(combo.id, combo.stream_id, combo.count, combo.coins, combo.diamonds)
        if copied != state:
            await self._keep_open(self._copies.keep(_combo_row(room_id, member, combo, now)))
        await self._announce_reached(room_id, goal)
        return window_ms, board_wait

    async def _announce_reached(self, room_id: str, goal: Goal | None) -> None:
        """After a goal announced with a gift: ``goal_reached`` once, by the caller that
        claims it. The gift is committed and shown already: a failed claim is logged,
        and the room's next announcement claims the goal instead."""
        if goal is None or goal.reached or goal.progress < goal.target:
            return
        try:
            won = await self.claim_goal(room_id, goal.id)
        except Exception:
            log.warning("claiming the goal of room %s failed", room_id, exc_info=True)
            return
        if won is not None:
            await self._broker.publish(
                room_id,
                [ev.goal_reached(target=won.target, progress=won.progress, title=won.title)],
            )

    async def end_combos(self, room_id: str, *, everything: bool = False) -> int:
        combos = self._combos.get(room_id)
        if not combos:
            return 0
        now = _monotonic_ms()
        soonest = min(combo.deadline for combo in combos.values())
        if not everything and soonest > now:
            # the usual wake-up of a busy room: its combos were extended meanwhile
            return max(1, int(soonest - now))
        streams = {combo.stream_id for combo in combos.values()}
        stats = {s: await self._gift_stats(room_id, s) for s in streams}
        combos = self._combos.get(room_id)
        if not combos:
            return 0
        now = _monotonic_ms()
        events: list[Event] = []
        ended: list[tuple[tuple[str, str], str]] = []
        for member, combo in list(combos.items()):
            if everything or combo.deadline <= now:
                events.append(self._end(combos, member, combo, stats.get(combo.stream_id)))
                ended.append((member, combo.id))
        if not combos:
            self._combos.pop(room_id, None)
        if events:
            await self._broker.publish(room_id, events)
            await self._keep_open(
                *(self._copies.forget((room_id, *member), combo_id) for member, combo_id in ended)
            )
        if not combos:
            return 0
        return max(1, int(min(c.deadline for c in combos.values()) - now))

    @staticmethod
    async def _keep_open(*changes: Awaitable[None]) -> None:
        """Wait for the file's copy of the open combos to be up to date. The events
        are out already and the combo lives on in memory: a failed write is logged,
        not raised (it only risks an end after a crash, as when nothing was kept)."""
        failed = False
        for change in changes:  # asked for already: one write takes them all
            try:
                await change
            except Exception:
                if not failed:
                    log.warning("keeping the open combos in the file failed", exc_info=True)
                failed = True

    async def open_combo_rooms(self) -> dict[str, int]:
        if not self._recovered:
            rows = await self._db.read(_open_combos)
            if not self._recovered:
                self._recovered = True
                self._restore(rows)
        now = _monotonic_ms()
        return {
            room_id: max(0, int(min(c.deadline for c in combos.values()) - now))
            for room_id, combos in self._combos.items()
            if combos
        }

    def _restore(self, rows: list[tuple[Any, ...]]) -> None:
        """Load the combos a previous process left open (those this one has not
        opened again since), their wall-clock deadlines made monotonic."""
        mono, wall = _monotonic_ms(), now_ms()
        for room_id, sender_id, gift_id, combo_id, stream_id, *totals, deadline, end in rows:
            combos = self._combos.setdefault(room_id, {})
            member = (sender_id, gift_id)
            if member not in combos:
                count, coins, diamonds = totals
                at = mono + (deadline - wall)
                end_event = orjson.loads(end)
                combos[member] = _Combo(combo_id, stream_id, count, coins, diamonds, at, end_event)

    async def _ended_stats(self, room_id: str, stream_id: int) -> dict[int, StreamStats]:
        """Totals for the streams of this room's expired combos of other streams."""
        combos = self._combos.get(room_id, {})
        now = _monotonic_ms()
        others = {c.stream_id for c in combos.values() if c.deadline <= now} - {stream_id}
        return {s: await self._gift_stats(room_id, s) for s in others}

    async def _gift_stats(self, room_id: str, stream_id: int) -> StreamStats:
        """The stream's gift totals for the overlay detail of gift events: from the
        last committed gift when this process has seen one (no read), else read.
        Only ``gifts``, ``coins`` and ``diamonds`` are meant to be used."""
        totals = self._db.gift_totals.get((room_id, stream_id))
        if totals is not None:
            return StreamStats(*totals)
        stats = await self.stream_stats(room_id, stream_id)
        self._db.note_gift_totals(room_id, stream_id, (stats.gifts, stats.coins, stats.diamonds))
        return stats

    @staticmethod
    def _end(
        combos: dict[tuple[str, str], _Combo],
        member: tuple[str, str],
        combo: _Combo,
        stats: StreamStats | None,
    ) -> Event:
        del combos[member]
        return _with_combo(combo.end_event, combo, end=True, stats=stats or StreamStats())

    # -- likes ---------------------------------------------------------------------------
    async def add_likes(
        self, room_id: str, *, stream_id: int, likes: Sequence[tuple[Event, int]]
    ) -> list[int]:
        if not likes:
            return []
        added = sum(count for _, count in likes)
        total = await self._db.write(lambda conn: _add_likes(conn, room_id, stream_id, added))
        # No await from the write's answer to the publish: totals stay in seq order
        # as long as one caller at a time adds a room's likes (the hub's batcher does).
        running = total - added
        totals: list[int] = []
        events: list[Event] = []
        for event, count in likes:
            running += count
            totals.append(running)
            events.append({**event, "total": running})
        await self._broker.publish(room_id, events)
        return totals

    # -- viewers -------------------------------------------------------------------------
    async def report_viewers(
        self, room_id: str, *, node: str, count: int, ttl_ms: int, interval_ms: int
    ) -> tuple[int, int]:
        now = _monotonic_ms()
        nodes = self._viewers.setdefault(room_id, {})
        if count > 0:
            nodes[node] = (count, now + ttl_ms)
        else:
            nodes.pop(node, None)
        total = self._total(room_id, now)
        room = await cached_room(self._db, room_id)
        if room is not None and room.live:
            key = (room_id, room.stream_id)
            peak = self._peaks.get(key)
            if peak is None:
                peak = (await self.stream_stats(room_id, room.stream_id)).peak_viewers
            if total > peak:
                self._peaks[key] = total
                stream_id = room.stream_id
                await self._db.write(lambda conn: _raise_peak(conn, room_id, stream_id, total))
            else:
                self._peaks[key] = peak
        total = self._total(room_id, _monotonic_ms())
        if self._viewers_published.get(room_id) == total:
            return total, 0
        wait = await self.throttle(room_id, "viewers", interval_ms)
        if wait:
            return total, wait
        self._viewers_published[room_id] = total
        await self._broker.publish(room_id, [{"type": "viewers", "count": total}])
        return total, 0

    def _total(self, room_id: str, now: float) -> int:
        nodes = self._viewers.get(room_id, {})
        for node, (_, expires) in list(nodes.items()):
            if expires <= now:
                del nodes[node]
        if not nodes:
            self._viewers.pop(room_id, None)
        return sum(count for count, _ in nodes.values())

    async def viewers(self, room_id: str) -> int:
        return self._total(room_id, _monotonic_ms())

    async def throttle(self, room_id: str, name: str, interval_ms: int) -> int:
        return self._take_lease(room_id, name, interval_ms)

    def _lease_left(self, room_id: str, name: str) -> int:
        """Milliseconds until the lease is free (0: free now)."""
        until = self._leases.get((room_id, name), 0.0)
        now = _monotonic_ms()
        return max(1, int(until - now)) if until > now else 0

    def _take_lease(self, room_id: str, name: str, interval_ms: int) -> int:
        """``throttle`` without an await: take the lease (0) or say when it frees up."""
        now = _monotonic_ms()
        until = self._leases.get((room_id, name), 0.0)
        if until > now:
            return max(1, int(until - now))
        self._leases[(room_id, name)] = now + interval_ms
        if len(self._leases) > 10_000:
            self._leases = {k: v for k, v in self._leases.items() if v > now}
        return 0

    # -- goals ---------------------------------------------------------------------------
    async def set_goal(self, room_id: str, *, target: int, title: str) -> Goal:
        goal_id = new_id("goal")
        set_at = now_ms()
        boards = self._db.boards
        return await self._db.write(
            lambda conn: _set_goal(conn, room_id, goal_id, target, title, set_at),
            committed=lambda goal: boards.goal_changed(room_id, goal),
        )

    async def goal(self, room_id: str) -> Goal | None:
        """From memory once read (``store.embedded.boards``): gifts move it there."""
        db = self._db
        return await db.boards.goal(room_id, lambda: db.read(lambda conn: _goal(conn, room_id)))

    async def claim_goal(self, room_id: str, goal_id: str) -> Goal | None:
        boards = self._db.boards

        def claimed(goal: Goal | None) -> None:
            if goal is not None:
                boards.goal_changed(room_id, goal)

        return await self._db.write(
            lambda conn: _claim_goal(conn, room_id, goal_id), committed=claimed
        )

    # -- moderation ----------------------------------------------------------------------
    async def restrict(self, room_id: str, restriction: Restriction) -> None:
        await self._db.write(
            lambda conn: _restrict(conn, room_id, restriction),
            committed=lambda _: self._db.restrictions.changed(room_id),
        )

    async def lift(self, room_id: str, user_id: str, kind: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM room_restrictions WHERE room_id = ? AND kind = ? AND user_id = ?",
                (room_id, kind, user_id),
            )
            return cursor.rowcount > 0

        return await self._db.write(op, committed=lambda _: self._db.restrictions.changed(room_id))

    async def restrictions(self, room_id: str) -> list[Restriction]:
        return await self._restrictions_of(room_id, None)

    async def _restrictions_of(self, room_id: str, user_id: str | None) -> list[Restriction]:
        """The room's bans and mutes in force now (of ``user_id`` only, when given):
        the room's rows are read once until this process changes them."""
        db = self._db

        def read() -> Awaitable[list[Restriction]]:
            at = now_ms()
            return db.read(lambda conn: _restrictions(conn, room_id, None, at))

        found = await db.restrictions.get(room_id, read)
        now = now_ms()
        return [
            r
            for r in found
            if (r.until is None or r.until > now) and (user_id is None or r.user_id == user_id)
        ]

    async def is_banned(self, room_id: str, user_id: str) -> bool:
        found = await self._restrictions_of(room_id, user_id)
        return any(r.kind == "ban" for r in found)

    async def check_chat(self, room_id: str, user_id: str, *, limit: int, window_ms: int) -> None:
        found = await self._restrictions_of(room_id, user_id)
        kinds = {r.kind for r in found}
        if "ban" in kinds:
            raise refusals.BANNED()
        if "mute" in kinds:
            raise refusals.MUTED()
        key = (room_id, user_id)
        mono = _monotonic_ms()
        used, ends = self._chat_windows.get(key, (0, 0.0))
        if ends <= mono:
            used, ends = 0, mono + window_ms
        used += 1
        self._chat_windows[key] = (used, ends)
        if len(self._chat_windows) > 100_000:
            self._chat_windows = {k: v for k, v in self._chat_windows.items() if v[1] > mono}
        if used > limit:
            raise refusals.CHAT_RATE(limit, window_ms / 1000)

    # -- room ----------------------------------------------------------------------------
    async def rotate_overlay_key(self, room_id: str) -> str:
        key = new_secret()

        def op(conn: sqlite3.Connection) -> str:
            cursor = conn.execute("UPDATE rooms SET overlay_key = ? WHERE id = ?", (key, room_id))
            if cursor.rowcount == 0:
                raise refusals.ROOM_NOT_FOUND()
            return key

        return await self._db.write(op, committed=lambda _: self._db.rooms.changed(room_id))

    async def stream_stats(self, room_id: str, stream_id: int) -> StreamStats:
        return await self._db.read(lambda conn: _stream_stats(conn, room_id, stream_id))

    async def supporters(
        self, creator_id: str, *, period: str, limit: int = 10
    ) -> list[LeaderEntry]:
        key = ALL_TIME if period == "all" else utc_day(now_ms())

        def op(conn: sqlite3.Connection) -> list[LeaderEntry]:
            rows = conn.execute(
                "SELECT user, coins FROM creator_supporters WHERE creator_id = ? AND period = ? "
                "ORDER BY coins DESC, user_id ASC LIMIT ?",
                (creator_id, key, limit),
            ).fetchall()
            return [LeaderEntry(user=orjson.loads(user), coins=coins) for user, coins in rows]

        return await self._db.read(op)


# --------------------------------------------------------------------------- #
# SQL (run in the writer or reader threads)
# --------------------------------------------------------------------------- #


def _combo_row(room_id: str, member: tuple[str, str], combo: _Combo, now: float) -> ComboRow:
    """The open combo as ``open_combos`` keeps it (deadline in wall-clock ms)."""
    return combo_row(
        (room_id, *member),
        combo_id=combo.id,
        stream_id=combo.stream_id,
        totals=(combo.count, combo.coins, combo.diamonds),
        deadline=now_ms() + int(combo.deadline - now),
        end_event=combo.end_event,
    )


def _open_combos(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT room_id, sender_id, gift_id, combo_id, stream_id, count, coins, diamonds, "
        "deadline, end_event FROM open_combos"
    ).fetchall()


def _stream_stats(conn: sqlite3.Connection, room_id: str, stream_id: int) -> StreamStats:
    row = conn.execute(
        "SELECT gifts, coins, diamonds, likes, peak_viewers FROM stream_stats "
        "WHERE room_id = ? AND stream_id = ?",
        (room_id, stream_id),
    ).fetchone()
    return StreamStats() if row is None else StreamStats(*row)


def _add_likes(conn: sqlite3.Connection, room_id: str, stream_id: int, count: int) -> int:
    row = conn.execute(
        "INSERT INTO stream_stats (room_id, stream_id, likes) VALUES (?, ?, ?) "
        "ON CONFLICT (room_id, stream_id) DO UPDATE SET likes = likes + excluded.likes "
        "RETURNING likes",
        (room_id, stream_id, count),
    ).fetchone()
    return int(row[0])


def _raise_peak(conn: sqlite3.Connection, room_id: str, stream_id: int, viewers: int) -> None:
    conn.execute(
        "INSERT INTO stream_stats (room_id, stream_id, peak_viewers) VALUES (?, ?, ?) "
        "ON CONFLICT (room_id, stream_id) DO UPDATE SET "
        "peak_viewers = max(peak_viewers, excluded.peak_viewers)",
        (room_id, stream_id, viewers),
    )


_GOAL_COLUMNS = "goal_id, stream_id, target, title, progress, reached"


def _goal_from_row(row: tuple[Any, ...]) -> Goal:
    return Goal(
        id=row[0],
        stream_id=row[1],
        target=row[2],
        title=row[3],
        progress=row[4],
        reached=bool(row[5]),
    )


def _set_goal(
    conn: sqlite3.Connection, room_id: str, goal_id: str, target: int, title: str, set_at: int
) -> Goal:
    room = load_room(conn, room_id)
    if room is None:
        raise refusals.ROOM_NOT_FOUND()
    if not room.live:
        raise refusals.ROOM_NOT_LIVE()
    conn.execute(
        f"INSERT OR REPLACE INTO room_goals (room_id, {_GOAL_COLUMNS}, set_at) "
        "VALUES (?, ?, ?, ?, ?, 0, 0, ?)",
        (room_id, goal_id, room.stream_id, target, title, set_at),
    )
    return Goal(goal_id, room.stream_id, target, title, 0, False)


def _goal(conn: sqlite3.Connection, room_id: str) -> Goal | None:
    row = conn.execute(
        f"SELECT {', '.join('g.' + c.strip() for c in _GOAL_COLUMNS.split(','))} "
        "FROM room_goals AS g JOIN rooms AS r ON r.id = g.room_id AND r.stream_id = g.stream_id "
        "WHERE g.room_id = ?",
        (room_id,),
    ).fetchone()
    return None if row is None else _goal_from_row(row)


def _claim_goal(conn: sqlite3.Connection, room_id: str, goal_id: str) -> Goal | None:
    cursor = conn.execute(
        "UPDATE room_goals SET reached = 1 WHERE room_id = ? AND goal_id = ? AND reached = 0 "
        "AND progress >= target",
        (room_id, goal_id),
    )
    if cursor.rowcount == 0:
        return None
    row = conn.execute(
        f"SELECT {_GOAL_COLUMNS} FROM room_goals WHERE room_id = ?", (room_id,)
    ).fetchone()
    return _goal_from_row(row)


def _restrict(conn: sqlite3.Connection, room_id: str, restriction: Restriction) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO room_restrictions (room_id, kind, user_id, until, by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            room_id,
            restriction.kind,
            restriction.user_id,
            restriction.until,
            restriction.by,
            restriction.created_at,
        ),
    )


def _restrictions(
    conn: sqlite3.Connection, room_id: str, user_id: str | None, now: int
) -> list[Restriction]:
    sql = (
        "SELECT user_id, kind, until, by, created_at FROM room_restrictions "
        "WHERE room_id = ? AND (until IS NULL OR until > ?)"
    )
    params: tuple[Any, ...] = (room_id, now)
    if user_id is not None:
        sql += " AND user_id = ?"
        params += (user_id,)
    rows = conn.execute(sql + " ORDER BY user_id, kind", params).fetchall()
    return [Restriction(*row) for row in rows]

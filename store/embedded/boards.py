"""The embedded engine's leaderboards and goals in memory, fed by the commits.

A room's leaderboard (the current stream's top gifters) and goal are announced
about once a second per gifted room and sent in every welcome; reading them
from SQLite each time cost about one read per gift under load. This process is
the only writer of the file, so it can follow them instead: a read fills a
room's entry, and every committed gift updates it (``gift``) with what the
gift's own SQL statements returned: the sender's stream total and the goal's
progress.

Why that stays equal to the file:

- Within a stream a gifter's total and a goal's progress only grow, so an
  update keeps the larger value: updates may be applied in any order, twice,
  or on top of a read that already counted them. A gifter outside the kept top
  can only enter it through a gift of their own, which brings their total.
- A gift committed while a read of the same room is on its way may be missed
  by that read: such updates are logged while the read runs and applied to
  its result before it is kept.
- Anything else that changes these rows (a new stream, a goal set or reached)
  drops the room's entries and makes reads that began before it not keep
  their result (``forget``); the next read fills them again.

Updates arrive through ``SQLiteDatabase.write(..., committed=...)``: on the loop,
after the commit, even if the gift's caller went away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from store.domain.models import Goal, LeaderEntry

TOP: Final = 10
"""Gifters kept per room: leaderboards of at most this many are served from memory."""
MAX_ROOMS: Final = 10_000
"""Rooms kept at most (a cache: when full it starts again, what is missing is read)."""


@dataclass(frozen=True, slots=True)
class GiftMark:
    """What a committed gift changed on its room's leaderboard and goal."""

    room_id: str
    stream_id: int
    user_id: str
    user: dict[str, str]
    coins: int
    """The sender's total in the stream, this gift included."""
    goal_id: str | None
    goal_progress: int


@dataclass(slots=True)
class Board:
    """A room's top gifters of one stream, ``(coins desc, user id)`` order."""

    stream_id: int
    top: list[tuple[str, dict[str, str], int]]
    """(user id, user, coins)."""

    def entries(self, limit: int) -> list[LeaderEntry]:
        return [LeaderEntry(user=user, coins=coins) for _, user, coins in self.top[:limit]]

    def add(self, user_id: str, user: dict[str, str], coins: int) -> None:
        top = self.top
        for index, (known_id, _, known) in enumerate(top):
            if known_id == user_id:
                if coins < known:
                    return  # an older answer, applied late
                del top[index]
                break
        else:
            if len(top) >= TOP and (-coins, user_id) > (-top[-1][2], top[-1][0]):
                return
        top.append((user_id, user, coins))
        top.sort(key=_order)
        del top[TOP:]


def _order(item: tuple[str, dict[str, str], int]) -> tuple[int, str]:
    return -item[2], item[0]


_NO_GOAL: Final = object()
T = TypeVar("T")


class RoomBoards:
    """Leaderboards and goals of the rooms, as the file has them (module docstring)."""

    def __init__(self) -> None:
        self._boards: dict[str, Board] = {}
        self._goals: dict[str, Goal | None] = {}
        self._generations: dict[str, int] = {}
        self._generation = 0
        """Bumped by every ``forget``: a read that saw another value keeps nothing."""
        self._floor = 0
        """The generation of rooms not in ``_generations`` (raised when it is emptied)."""
        self._reading: dict[str, tuple[int, list[GiftMark]]] = {}
        """room -> (reads on their way, gifts committed meanwhile)."""

    # -- reads -------------------------------------------------------------------
    async def leaderboard(
        self,
        room_id: str,
        limit: int,
        read: Callable[[int], Awaitable[tuple[int | None, list[tuple[str, dict[str, str], int]]]]],
    ) -> list[LeaderEntry]:
        """The room's top ``limit`` from memory, or ``read`` (the stream id, or
        ``None`` for no such room, and its top gifters up to a count) and keep it."""
        board = self._boards.get(room_id)
        if board is not None and limit <= TOP:
            return board.entries(limit)
        _, top = await self._read(room_id, lambda: read(max(limit, TOP)), self._keep_board)
        return [LeaderEntry(user=user, coins=coins) for _, user, coins in top[:limit]]

    async def goal(self, room_id: str, read: Callable[[], Awaitable[Goal | None]]) -> Goal | None:
        """The room's goal from memory, or ``read`` and keep it."""
        goal = self._goals.get(room_id, _NO_GOAL)
        if goal is not _NO_GOAL:
            return goal  # type: ignore[return-value]
        return await self._read(room_id, read, self._keep_goal)

    async def _read(
        self,
        room_id: str,
        read: Callable[[], Awaitable[T]],
        keep: Callable[[str, T, list[GiftMark]], None],
    ) -> T:
        generation = self._generations.get(room_id, self._floor)
        count, marks = self._reading.get(room_id, (0, []))
        self._reading[room_id] = (count + 1, marks)
        try:
            value = await read()
        finally:
            count, marks = self._reading[room_id]
            if count > 1:
                self._reading[room_id] = (count - 1, marks)
            else:
                del self._reading[room_id]
        if self._generations.get(room_id, self._floor) == generation:
            keep(room_id, value, marks)
        return value

    def _keep_board(
        self,
        room_id: str,
        value: tuple[int | None, list[tuple[str, dict[str, str], int]]],
        marks: list[GiftMark],
    ) -> None:
        stream_id, top = value
        if stream_id is None:
            return  # no such room: nothing to follow
        board = Board(stream_id, list(top[:TOP]))
        for mark in marks:
            if mark.stream_id == stream_id:
                board.add(mark.user_id, mark.user, mark.coins)
        self._room_slot(self._boards)
        self._boards[room_id] = board

    def _keep_goal(self, room_id: str, goal: Goal | None, marks: list[GiftMark]) -> None:
        for mark in marks:
            goal = _progressed(goal, mark)
        self._room_slot(self._goals)
        self._goals[room_id] = goal

    @staticmethod
    def _room_slot(entries: dict[str, Any]) -> None:
        if len(entries) >= MAX_ROOMS:
            entries.clear()

    # -- changes ------------------------------------------------------------------
    def gift(self, mark: GiftMark) -> None:
        """A gift was committed (see ``GiftMark``)."""
        room_id = mark.room_id
        reading = self._reading.get(room_id)
        if reading is not None:
            reading[1].append(mark)
        board = self._boards.get(room_id)
        if board is not None:
            if board.stream_id == mark.stream_id:
                board.add(mark.user_id, mark.user, mark.coins)
            elif board.stream_id < mark.stream_id:
                del self._boards[room_id]  # a stream this process has not followed
        goal = self._goals.get(room_id, _NO_GOAL)
        if goal is not _NO_GOAL:
            self._goals[room_id] = _progressed(goal, mark)  # type: ignore[arg-type]

    def goal_changed(self, room_id: str, goal: Goal | None) -> None:
        """A goal was set or reached (committed): keep it as it is now."""
        self.forget(room_id, boards=False)
        if goal is not None:
            self._room_slot(self._goals)
            self._goals[room_id] = goal

    def forget(self, room_id: str, *, boards: bool = True) -> None:
        """The room's rows changed otherwise (a new stream): read them again."""
        self._generation += 1
        self._generations[room_id] = self._generation
        if len(self._generations) > 4 * MAX_ROOMS:
            # reads older than this are gone long ago; what they'd keep is re-read
            self._floor = self._generation
            self._generations = {}
            self._boards.clear()
            self._goals.clear()
        self._goals.pop(room_id, None)
        if boards:
            self._boards.pop(room_id, None)


def _progressed(goal: Goal | None, mark: GiftMark) -> Goal | None:
    """The goal with a gift's progress (the larger value: see the module docstring)."""
    if goal is None or mark.goal_id != goal.id or mark.goal_progress <= goal.progress:
        return goal
    return dataclasses.replace(goal, progress=mark.goal_progress)


K = TypeVar("K")
V = TypeVar("V")


class Rows(Generic[K, V]):
    """Rows read through and kept until this process changes them (``changed``):
    for rows only this process writes, which change far less often than they are
    read (rooms, a room's restrictions). A read that a change overlapped keeps
    nothing, so a kept row is never older than the last change."""

    def __init__(self, *, size: int = MAX_ROOMS) -> None:
        self._size = size
        self._rows: dict[K, V] = {}
        self._changes: dict[K, int] = {}
        self._count = 0
        self._floor = 0

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        if key in self._rows:
            return self._rows[key]
        seen = self._changes.get(key, self._floor)
        value = await read()
        if self._changes.get(key, self._floor) == seen:
            if len(self._rows) >= self._size:
                self._rows.clear()
            self._rows[key] = value
        return value

    def changed(self, key: K, value: V | None = None) -> None:
        """The row changed (committed); ``value``: what it is now, if known."""
        self._count += 1
        if len(self._changes) >= 4 * self._size:
            self._floor = self._count
            self._changes = {}
            self._rows.clear()
        else:
            self._changes[key] = self._count
        self._rows.pop(key, None)
        if value is not None:
            self._rows[key] = value

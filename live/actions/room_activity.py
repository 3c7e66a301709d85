"""The background side of the room experience on one node: combos, leaderboard
and goal announcements, viewers, joins and likes (what a request starts is in
``live.actions.rooms``).

The shared state lives in the engine (``store.roles.RoomActivity``: Redis on
the scaled engine, so it is right across nodes); this module holds what one
process does about it:

- **Combos**: every gift's event goes out through ``publish_gift``, which
  continues or opens its sender's combo. A per-room timer ends combos when
  their window closes; the node that sent a combo's gift arms it, and so does
  every node watching the room (a little later), so a combo ends on time even
  if that node dies. Ending is atomic in the engine: exactly one ``end`` event.
- **Leaderboard and goal**: a gift marks its room; the room's ``leaderboard``
  and ``goal`` events are published at most once per interval per room across
  nodes (a lease in the engine), the first one at once: with the gift's own
  event when the engine's wallet shows gifts (``store.roles.GiftShower``, both
  engines but a Redis Cluster), else by this module. Reaching the goal is
  claimed atomically, so one node announces ``goal_reached``, once.
- **Viewers**: each node reports its own viewer count of each room, on change
  and as a heartbeat (a dead node's count expires); the engine adds them up and
  publishes ``viewers`` when the sum changes, throttled per room.
- **Joins**: viewers joining this node within a short window are announced in
  one ``join`` event, by name when a few signed-in users, else as a count. The
  window grows with the room and with the nodes it is spread over, so a room's
  ``join`` events are as few on N nodes as on one.
- **Likes**: taps from one sender within one tick become one ``like`` event;
  the engine keeps the stream's total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from live.realtime.hub import Connection, Hub
from live.settings import Settings
from protocol import events as ev
from store.domain.models import Event, Gift, GiftReceipt, Goal, Profile, Room, combo_hit
from store.ids import new_secret
from store.roles import BoardAnnouncer, Engine

log = logging.getLogger("live.activity")

TOP_GIFTERS = 10
JOIN_NAMES = 10
"""A join batch names at most this many users; bigger ones (or with guests) count."""
CROWD_STEP = 1_000
"""Viewers per step of a big room's announcement intervals: a ``join`` or
``viewers`` event is a frame to every viewer, and each node announces the joins
it saw, so a room of n steps announces joins n times less often (a crowd
arriving at 100,000 viewers costs about as many frames per second as one at
1,000) and its viewer count n / 10 times less often."""
MAX_SPREAD = 16
"""At most this factor for a room spread over many nodes (``RoomActivity._spread``):
a node holding a sliver of a big room still announces its joins within minutes."""
RETRY_SECONDS = 1.0
"""After a failed engine call, background work tries again this much later."""
Marks = dict[str, bool]
"""Rooms with news for a piece of background work (see ``RoomActivity._mark``)."""
RoomWork = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Likes:
    stream_id: int
    senders: dict[str, tuple[Profile, int, list[asyncio.Future[int]]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Joins:
    names: list[dict[str, str]] = field(default_factory=list)
    guests: int = 0


class RoomActivity:
    """One node's share of the room experience (see the module docstring)."""

    def __init__(self, *, settings: Settings, engine: Engine, hub: Hub) -> None:
        self.settings = settings
        self.engine = engine
        self.hub = hub
        self.node = new_secret(9)
        """This process, in the engine's per-node viewer counts."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        # combos: one timer per room, at the earliest time a combo may be due
        self._combo_timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._sweeping: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # leaderboard and goal: rooms with gifts not announced yet
        self._boards: dict[str, bool] = {}
        self._announcer = engine.activity if isinstance(engine.activity, BoardAnnouncer) else None
        """The engine's one-step announcement, when it has one."""
        # viewers: rooms whose count must be reported; the rest of the cluster's count
        self._reports: dict[str, bool] = {}
        self._others: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        """The viewer count this node last reported, per room."""
        self._heartbeat: asyncio.Task[None] | None = None
        # joins and likes waiting for their batch
        self._joins: dict[str, _Joins] = {}
        self._likes: dict[str, _Likes] = {}
        self._likes_flushing: set[str] = set()
        self.hub.observer = self.observe
        self.on_overlay: Callable[[Connection, bool], None] | None = None
        """Told of each overlay attached (True) or gone (False): presence."""

    # -- background work ---------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("room activity task failed", exc_info=task.exception())

    def _later(self, seconds: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(seconds, fn)

    def _mark(self, marks: Marks, room_id: str, work: RoomWork, failure: str) -> None:
        """The room has news for ``work``: start it unless it runs already. It runs
        again as long as the room is marked again (each run clears the mark before
        it reads); a failed run is logged (``failure``) and retried a little later."""
        running = room_id in marks
        marks[room_id] = True
        if not running:
            self._spawn(self._while_marked(marks, room_id, work, failure))

    async def _while_marked(self, marks: Marks, room_id: str, work: RoomWork, failure: str) -> None:
        try:
            while marks.get(room_id):
                try:
                    await work(room_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning(failure, room_id, exc_info=True)
                    marks[room_id] = True
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            marks.pop(room_id, None)

    async def close(self) -> None:
        """Stop the timers; forget this node's viewer counts (other nodes need not
        wait for them to expire)."""
        self._closed = True
        if self.hub.observer == self.observe:
            self.hub.observer = None
        for _, handle in self._combo_timers.values():
            handle.cancel()
        self._combo_timers.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(2.0):  # a backend that is down can't hold up shutdown
                for room_id in list(self._others):
                    await self.engine.activity.report_viewers(
                        room_id, node=self.node, count=0, ttl_ms=1, interval_ms=self._viewers_ms
                    )

    # -- gifts and combos -------------------------------------------------------------
    async def gift(self, *, gift: Gift, sender: Profile, receipt: GiftReceipt) -> None:
        """Announce a committed gift (within its combo) and mark the room's totals."""
        hit = combo_hit(receipt, gift=gift, sender_id=sender.id, sender=sender.public())
        window_ms = self.settings.combo_window_ms
        wait = await self.engine.activity.publish_gift(receipt.room_id, hit, window_ms=window_ms)
        self.gift_shown(receipt.room_id, wait_ms=wait)

    def gift_shown(self, room_id: str, *, wait_ms: int, board_wait_ms: int | None = None) -> None:
        """A committed gift's event went out (its combo's window closes in
        ``wait_ms``, 0: ended): time its combo's end, and announce the room's
        totals: not at all when they went out with it (``board_wait_ms`` 0), once
        the room's lease frees up when the gift found it held (``board_wait_ms``
        > 0: no call to learn that first), else as ``touch``."""
        if wait_ms > 0:
            self._arm_combos(room_id, wait_ms / 1000)
        if board_wait_ms is None:
            self.touch(room_id)
        elif board_wait_ms > 0:
            running = room_id in self._boards
            self._boards[room_id] = True
            if not running:
                self._spawn(self._announce_after(room_id, board_wait_ms / 1000))

    async def _announce_after(self, room_id: str, seconds: float) -> None:
        """The room's announcements, from when its lease frees up (the room stays
        marked meanwhile, so its gifts start no other run)."""
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            self._boards.pop(room_id, None)
            raise
        await self._while_marked(self._boards, room_id, self._announce, "announcing room %s failed")

    def observe(self, room_id: str, events: list[Event]) -> None:
        """The hub's view of every room event this node delivers: an open combo
        sent through another node gets a timer here too, in case that node dies
        (later than that node's, so normally it ends the combo and ours finds
        nothing to do); a ``viewers`` event updates the rest of the cluster's count."""
        armed = False
        for event in events:
            kind = event.get("type")
            if kind == "gift" and not armed and not event.get("combo", {}).get("end", True):
                window = self.settings.combo_window_ms
                self._arm_combos(room_id, (window + max(250, window // 2)) / 1000)
                armed = True
            elif kind == "viewers" and room_id in self._reported:
                # the cluster's count: the rest of it is what this node didn't report
                self._others[room_id] = max(0, event["count"] - self._reported[room_id])

    def _arm_combos(self, room_id: str, seconds: float) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        armed = self._combo_timers.get(room_id)
        if armed is not None:
            if armed[0] <= due:
                return
            armed[1].cancel()
        handle = loop.call_at(due, self._combos_due, room_id)
        self._combo_timers[room_id] = (due, handle)

    def _combos_due(self, room_id: str) -> None:
        self._combo_timers.pop(room_id, None)
        if room_id not in self._sweeping:
            self._spawn(self._end_combos(room_id))

    async def _end_combos(self, room_id: str) -> None:
        self._sweeping.add(room_id)
        try:
            wait = await self.engine.activity.end_combos(room_id)
        except Exception:
            log.warning("ending the combos of room %s failed", room_id, exc_info=True)
            wait = int(RETRY_SECONDS * 1000)
        finally:
            self._sweeping.discard(room_id)
        if wait > 0:
            self._arm_combos(room_id, wait / 1000)

    def start_sweeping(self) -> None:
        """End, on time, the combos no timer of this node knows about: those a
        process left open when it died (read again at start) and, on a cluster,
        those of a node gone since (looked up every few combo windows)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving (a command-line tool): nothing to end
        if self._sweeper is None and not self._closed:
            self._sweeper = loop.create_task(self._sweep_loop())

    async def _sweep_loop(self) -> None:
        every = max(1.0, self.settings.combo_window_ms * 2 / 1000)
        while True:
            try:
                rooms = await self.engine.activity.open_combo_rooms()
            except Exception:
                log.warning("listing open combos failed", exc_info=True)
                rooms = {}
            for room_id, wait in rooms.items():
                self._arm_combos(room_id, wait / 1000)
            await asyncio.sleep(every)

    async def end_stream(self, room_id: str) -> None:
        """The stream is ending: end its open combos now, before ``room_ended``."""
        with contextlib.suppress(Exception):
            await self.engine.activity.end_combos(room_id, everything=True)

    # -- leaderboard and goal ---------------------------------------------------------
    def touch(self, room_id: str) -> None:
        """The room's gift totals changed: announce them (throttled)."""
        self._mark(self._boards, room_id, self._announce, "announcing room %s failed")

    async def _announce(self, room_id: str) -> None:
        interval = self.settings.leaderboard_interval_ms
        if self._announcer is not None:
            self._boards[room_id] = False  # gifts from now on announce again
            wait = await self._announcer.announce_board(
                room_id, interval_ms=interval, limit=TOP_GIFTERS
            )
            if wait > 0:
                self._boards[room_id] = True  # not announced: the next run does
            elif self._boards.get(room_id):
                wait = interval  # gifts came meanwhile: the lease is ours until then
            if wait > 0:
                await asyncio.sleep(wait / 1000)
            return
        wait = await self.engine.activity.throttle(room_id, "board", interval)
        if wait > 0:
            await asyncio.sleep(wait / 1000)  # still marked: the next run announces
            return
        self._boards[room_id] = False  # gifts from now on announce again
        await self._publish_board(room_id)

    async def _publish_board(self, room_id: str) -> None:
        top = await self.engine.rooms.leaderboard(room_id, limit=TOP_GIFTERS)
        goal = await self.engine.activity.goal(room_id)
        events = [ev.leaderboard(top=[entry.public() for entry in top])]
        if goal is not None:
            events.append(goal_event(goal))
        await self.engine.broker.publish(room_id, events)
        if goal is not None and not goal.reached and goal.progress >= goal.target:
            won = await self.engine.activity.claim_goal(room_id, goal.id)
            if won is not None:
                await self.engine.broker.publish(
                    room_id,
                    [ev.goal_reached(target=won.target, progress=won.progress, title=won.title)],
                )

    # -- viewers and joins --------------------------------------------------------------
    @property
    def _viewers_ms(self) -> int:
        return self.settings.viewers_interval_ms

    @property
    def _ttl_ms(self) -> int:
        return int(self.settings.viewers_ttl_seconds * 1000)

    async def prepare_welcome(self, room_id: str) -> None:
        """Learn the rest of the cluster's viewers of the room once, for welcomes."""
        if room_id not in self._others:
            try:
                total = await self.engine.activity.viewers(room_id)
            except Exception:
                log.warning("reading the viewers of room %s failed", room_id, exc_info=True)
                return
            self._others.setdefault(room_id, max(0, total - self.hub.viewers(room_id)))

    def viewers(self, room_id: str) -> int:
        """Viewers of the room on every node, as this node knows it now."""
        return self._others.get(room_id, 0) + self.hub.viewers(room_id)

    def _crowd_steps(self, room_id: str) -> int:
        """How many ``CROWD_STEP``s of viewers the room has (at least 1)."""
        return max(1, self.viewers(room_id) // CROWD_STEP)

    def _spread(self, room_id: str) -> float:
        """The room's viewers over this node's (1 for a room on this node alone,
        about N for one spread evenly over N nodes, at most ``MAX_SPREAD``). Every
        node announces the joins it saw: its window times this keeps the room's
        ``join`` events as few as if one node held all of its viewers."""
        local = self.hub.viewers(room_id)
        if local <= 0:
            return 1.0
        return min(float(MAX_SPREAD), max(1.0, self.viewers(room_id) / local))

    def joined(self, conn: Connection, *, resumed: bool) -> None:
        """A connection was attached to its room."""
        if conn.overlay:
            if self.on_overlay is not None:
                self.on_overlay(conn, True)
            return
        self._report(conn.room_id)
        if resumed:
            return  # back after a drop: not news for the room
        joins = self._joins.get(conn.room_id)
        if joins is None:
            joins = self._joins[conn.room_id] = _Joins()
            room_id = conn.room_id
            steps = self._crowd_steps(room_id) * self._spread(room_id)
            every = self.settings.join_interval_ms * steps / 1000
            self._later(every, lambda: self._flush_joins(room_id))
        if conn.profile is None:
            joins.guests += 1
        else:
            joins.names.append(conn.profile.public())

    def left(self, conn: Connection) -> None:
        if not conn.overlay:
            self._report(conn.room_id)
        elif self.on_overlay is not None:
            self.on_overlay(conn, False)

    def _flush_joins(self, room_id: str) -> None:
        joins = self._joins.pop(room_id, None)
        if joins is None:
            return
        if joins.guests == 0 and len(joins.names) <= JOIN_NAMES:
            event = ev.join(users=joins.names)
        else:
            event = ev.join(count=joins.guests + len(joins.names))
        self._spawn(self._publish_quietly(room_id, [event]))

    async def _publish_quietly(self, room_id: str, events: list[Event]) -> None:
        try:
            await self.engine.broker.publish(room_id, events)
        except Exception:
            log.warning("publishing to room %s failed", room_id, exc_info=True)

    def _report(self, room_id: str) -> None:
        failure = "reporting viewers of room %s failed"
        self._mark(self._reports, room_id, self._report_viewers, failure)
        if self._heartbeat is None and not self._closed:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _report_viewers(self, room_id: str) -> None:
        self._reports[room_id] = False
        count = self.hub.viewers(room_id)
        total, wait = await self.engine.activity.report_viewers(
            room_id,
            node=self.node,
            count=count,
            ttl_ms=self._ttl_ms,
            interval_ms=self._viewers_ms * max(1, self._crowd_steps(room_id) // 10),
        )
        if count or self.hub.viewers(room_id):
            self._others[room_id] = max(0, total - count)
            self._reported[room_id] = count
        else:
            self._others.pop(room_id, None)
            self._reported.pop(room_id, None)
        if wait > 0:  # the new total could not be published yet
            self._reports[room_id] = True
            await asyncio.sleep(wait / 1000)
        elif self._reports.get(room_id):
            await asyncio.sleep(0.05)  # a crowd joining: report its sum, not each

    async def _heartbeats(self) -> None:
        """Report every room with local viewers well within the report TTL."""
        while True:
            await asyncio.sleep(self.settings.viewers_ttl_seconds / 3)
            for room_id in list(self._others):
                self._report(room_id)

    # -- likes ---------------------------------------------------------------------------
    async def like(self, *, sender: Profile, room: Room, count: int) -> int:
        """Add likes to this tick's batch; the stream's total once it is published."""
        batch = self._likes.get(room.id)
        if batch is None:
            batch = self._likes[room.id] = _Likes(room.stream_id)
            if room.id not in self._likes_flushing:  # else it is scheduled when that ends
                self._later(self.hub.tick_seconds, lambda: self._flush_likes(room.id))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        _, before, futures = batch.senders.get(sender.id, (sender, 0, []))
        futures.append(future)
        batch.senders[sender.id] = (sender, before + count, futures)
        return await future

    def _flush_likes(self, room_id: str) -> None:
        batch = self._likes.pop(room_id, None)
        if batch is not None and batch.senders:
            self._likes_flushing.add(room_id)
            self._spawn(self._publish_likes(room_id, batch))

    async def _publish_likes(self, room_id: str, batch: _Likes) -> None:
        senders = list(batch.senders.values())
        likes = [
            ({"type": "like", "sender": sender.public(), "count": count}, count)
            for sender, count, _ in senders
        ]
        try:
            totals = await self.engine.activity.add_likes(
                room_id, stream_id=batch.stream_id, likes=likes
            )
            for (_, _, futures), total in zip(senders, totals, strict=True):
                for future in futures:
                    if not future.done():
                        future.set_result(total)
        except Exception as exc:
            for _, _, futures in senders:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
        finally:
            for _, _, futures in senders:
                for future in futures:
                    if not future.done():  # cancelled: the server is stopping
                        future.cancel()
            # one batch at a time per room: totals reach the room in order
            self._likes_flushing.discard(room_id)
            if room_id in self._likes:
                self._later(self.hub.tick_seconds, lambda: self._flush_likes(room_id))


def goal_event(goal: Goal) -> Event:
    return ev.goal(**goal.public())

"""Overlay presence: which overlays are connected to a room, since when.

Each node keeps its own overlay connections per room and reports them to the
engine (``store.roles.OverlayPresence``: Redis on the scaled engine, so every
node answers for the whole cluster), on every change and as a heartbeat well
within the report's lifetime (``viewers_ttl_seconds``), so a dead node's
overlays drop out by themselves. After each change the room's creator gets an
``overlays`` event on their own connections to the room (a ``user`` signal,
on every node), and ``GET /v1/rooms/{room}/overlays`` answers at any time.
Rotating the overlay key closes the old overlays, which reports them gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from live.realtime.hub import Connection
from live.settings import Settings
from store.ids import new_secret, now_ms
from store.roles import Engine

log = logging.getLogger("live.overlays")


def overlays_event(overlays: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "overlays", "count": len(overlays), "overlays": overlays}


class Overlays:
    """One node's overlay connections, reported to the engine."""

    def __init__(self, *, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.node = new_secret(9)
        self._local: dict[str, dict[str, dict[str, Any]]] = {}
        self._dirty: dict[str, bool] = {}
        """Rooms whose report is due: True also tells the creator."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def _ttl_ms(self) -> int:
        return int(self.settings.viewers_ttl_seconds * 1000)

    def joined(self, conn: Connection) -> None:
        overlay = {"id": conn.session, "connected_at": now_ms()}
        self._local.setdefault(conn.room_id, {})[conn.session] = overlay
        self._changed(conn.room_id, announce=True)

    def left(self, conn: Connection) -> None:
        room = self._local.get(conn.room_id)
        if room is None or room.pop(conn.session, None) is None:
            return
        if not room:
            del self._local[conn.room_id]
        self._changed(conn.room_id, announce=True)

    def _changed(self, room_id: str, *, announce: bool) -> None:
        if self._closed:
            return
        running = room_id in self._dirty
        self._dirty[room_id] = self._dirty.get(room_id, False) or announce
        if not running:
            task = asyncio.get_running_loop().create_task(self._report_while_dirty(room_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())

    async def _report_while_dirty(self, room_id: str) -> None:
        try:
            while room_id in self._dirty:
                announce = self._dirty.pop(room_id)
                try:
                    await self._report(room_id, announce=announce)
                except Exception:
                    log.warning("reporting the overlays of room %s failed", room_id, exc_info=True)
                    self._dirty[room_id] = self._dirty.get(room_id, False) or announce
                    await asyncio.sleep(1.0)
        finally:
            self._dirty.pop(room_id, None)

    async def _report(self, room_id: str, *, announce: bool) -> None:
        mine = list(self._local.get(room_id, {}).values())
        await self.engine.presence.report(
            room_id, node=self.node, overlays=mine, ttl_ms=self._ttl_ms
        )
        if not announce:
            return
        room = await self.engine.rooms.get(room_id)
        if room is None:
            return
        event = overlays_event(await self.engine.presence.overlays(room_id))
        await self.engine.broker.signal(
            room_id, {"kind": "user", "user": room.creator_id, "events": [event]}
        )

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.viewers_ttl_seconds / 3)
            for room_id in list(self._local):
                self._changed(room_id, announce=False)

    async def overlays(self, room_id: str) -> list[dict[str, Any]]:
        """The room's overlays on every node, oldest first."""
        return await self.engine.presence.overlays(room_id)

    async def close(self) -> None:
        """Stop; other nodes need not wait for this node's reports to expire."""
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(2.0):
                for room_id in list(self._local):
                    await self.engine.presence.report(
                        room_id, node=self.node, overlays=[], ttl_ms=1
                    )

"""The embedded engine's ``OverlayPresence``: in the process (one node, and
connections do not outlive it, so there is nothing to keep on disk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store.domain.presence import merge_reports
from store.ids import now_ms


class MemoryOverlayPresence:
    def __init__(self) -> None:
        self._reports: dict[str, dict[str, tuple[int, list[dict[str, Any]]]]] = {}

    async def report(
        self, room_id: str, *, node: str, overlays: Sequence[dict[str, Any]], ttl_ms: int
    ) -> None:
        room = self._reports.setdefault(room_id, {})
        if overlays:
            room[node] = (now_ms() + ttl_ms, list(overlays))
        else:
            room.pop(node, None)
            if not room:
                del self._reports[room_id]

    async def overlays(self, room_id: str) -> list[dict[str, Any]]:
        return merge_reports(self._reports.get(room_id, {}).values(), now=now_ms())

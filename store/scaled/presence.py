"""The scaled engine's ``OverlayPresence``: one Redis hash per room,
``live:{r:<room>}:ov`` node -> ``{"expires": ms, "overlays": [...]}``; expired
fields are skipped on read and removed by the next report of any node. One
room's keys share a slot, so this works on a Redis Cluster unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from store.domain.presence import merge_reports
from store.errors import Unavailable
from store.ids import now_ms
from store.scaled.client import AnyRedis
from store.scaled.keys import room_key


class RedisOverlayPresence:
    def __init__(self, redis: AnyRedis) -> None:
        """On a cluster, redis-py's ``RedisCluster``: every key is the room's slot,
        so the report's ``MULTI`` is one slot's."""
        self._redis = redis

    async def _reports(self, key: str) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        raw = await self._redis.hgetall(key)
        reports = {}
        for node, value in raw.items():
            parsed = orjson.loads(value)
            reports[node.decode() if isinstance(node, bytes) else node] = (
                int(parsed["expires"]),
                list(parsed["overlays"]),
            )
        return reports

    async def report(
        self, room_id: str, *, node: str, overlays: Sequence[dict[str, Any]], ttl_ms: int
    ) -> None:
        key = room_key(room_id, "ov")
        now = now_ms()
        try:
            expired = [n for n, (at, _) in (await self._reports(key)).items() if at <= now]
            async with self._redis.pipeline(transaction=True) as pipe:
                if expired:
                    pipe.hdel(key, *expired)
                if overlays:
                    value = orjson.dumps({"expires": now + ttl_ms, "overlays": list(overlays)})
                    pipe.hset(key, node, value)
                    pipe.pexpire(key, ttl_ms * 2)
                else:
                    pipe.hdel(key, node)
                await pipe.execute()
        except RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc

    async def overlays(self, room_id: str) -> list[dict[str, Any]]:
        try:
            reports = await self._reports(room_key(room_id, "ov"))
        except RedisError as exc:
            raise Unavailable(f"redis: {exc}") from exc
        return merge_reports(reports.values(), now=now_ms())

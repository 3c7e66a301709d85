"""The scaled engine's catalog: one Redis hash per kind of entry and a version key.

Nodes learn of a change by reading the version key (``store.catalogs`` polls
it): one GET per node per poll, and no change is missed when a node was
disconnected, which a pub/sub message could be.
"""

from __future__ import annotations

from collections.abc import Sequence

from store.domain.catalog_entries import KINDS
from store.scaled.client import CommandBatcher, load_script
from store.scaled.keys import CATALOG_VERSION, catalog_key

_LOAD = load_script("catalog_load")
_WRITE = load_script("catalog_write")
_KINDS = tuple(KINDS)
_KEYS = (CATALOG_VERSION, *(catalog_key(kind) for kind in _KINDS))


class RedisCatalog:
    """``store.catalogs.CatalogBackend`` on Redis (both scripts touch the system slot)."""

    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher

    async def version(self) -> int:
        value = await self._batcher.execute("GET", CATALOG_VERSION)
        return int(value) if value else 0

    async def load(self) -> tuple[int, dict[str, list[bytes]]]:
        reply = await self._batcher.evalsha(_LOAD, _KEYS, (), retry_on_disconnect=True)
        documents = {kind: list(pairs[1::2]) for kind, pairs in zip(_KINDS, reply[1:], strict=True)}
        return int(reply[0]), documents

    async def write(self, documents: Sequence[tuple[str, str, bytes]], *, based_on: int) -> int:
        args: list[str | bytes | int] = [based_on]
        for kind, entry_id, document in documents:
            args += [_KINDS.index(kind) + 2, entry_id, document]
        # not retried on a dropped connection: the caller's compare-and-set retries
        return int(await self._batcher.evalsha(_WRITE, _KEYS, args))

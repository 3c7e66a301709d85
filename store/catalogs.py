"""The catalog store both engines share: rules over a ``CatalogBackend``.

Every node keeps the latest catalog in memory (gifts are priced from it with no
I/O) and reads the stored version every ``poll_seconds``: one cheap read, and a
change made anywhere (another node, ``live catalog import``) is served within
that, whatever happened to a notification in between. A change made here is
served at once. Writes are compare-and-set on the version, so two admins never
overwrite each other's change unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from store.domain.catalog import Catalog
from store.domain.catalog_entries import KINDS, CatalogChanges, EntryError, entries_from_document
from store.errors import Conflict, NotFound
from store.tasks import stop_task

log = logging.getLogger("live.catalog")

WRITE_ATTEMPTS: Final = 5
"""Writes without an expected version retry this often when others write too."""


class CatalogBackend(Protocol):
    """Where an engine keeps the catalog: one JSON document per entry (by kind and
    id) and one version for the whole catalog."""

    async def version(self) -> int:
        """The stored version (0: nothing stored yet)."""
        ...

    async def load(self) -> tuple[int, dict[str, list[bytes]]]:
        """The version and every document by kind, read at that one version."""
        ...

    async def write(self, documents: Sequence[tuple[str, str, bytes]], *, based_on: int) -> int:
        """Store ``(kind, id, document)`` and increase the version by one, atomically,
        if the version is still ``based_on``: the new version, or 0 (nothing written)
        when another writer came first."""
        ...


def _kind(kind: str) -> Any:
    found = KINDS.get(kind)
    if found is None:
        raise EntryError("kind", f"must be one of {', '.join(KINDS)}")
    return found


def _encode(kind: str, entry: Any) -> bytes:
    return orjson.dumps(KINDS[kind].write(entry), option=orjson.OPT_SORT_KEYS)


class Catalogs:
    """The catalog of an engine: the version this node serves (``current``, read
    without I/O on every gift) and its changes, over the engine's
    ``CatalogBackend``. ``watch`` hears of each new version, whichever node made it.

    ``expected_version``: refuse with ``Conflict`` unless the catalog is still at
    that version (optimistic concurrency); ``None`` applies to the latest. A bad
    field is an ``EntryError`` (a ``BadRequest``) naming it."""

    def __init__(
        self, backend: CatalogBackend, *, defaults: Catalog, poll_seconds: float = 0.25
    ) -> None:
        self._backend = backend
        self._defaults = defaults
        self._current = defaults
        self._poll_seconds = poll_seconds
        self._listeners: list[Callable[[int], None]] = []
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None

    @property
    def current(self) -> Catalog:
        return self._current

    async def start(self) -> None:
        """Store the defaults in an empty store, read the catalog, start polling."""
        if await self._backend.version() == 0:
            documents = [
                (kind, entry_id, _encode(kind, entry))
                for kind in KINDS
                for entry_id, entry in self._defaults.entries(kind).items()
            ]
            await self._backend.write(documents, based_on=0)  # 0: another node seeded it
        else:
            await self._seed_missing_kinds()
        await self.refresh()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _seed_missing_kinds(self) -> None:
        """A store written before a kind existed (items) gets that kind's defaults
        once; a kind with any entry stored is the operator's."""
        version, documents = await self._backend.load()
        missing = [
            (kind, entry_id, _encode(kind, entry))
            for kind in KINDS
            if not documents.get(kind)
            for entry_id, entry in self._defaults.entries(kind).items()
        ]
        if version and missing:
            await self._backend.write(missing, based_on=version)  # 0: another node did

    async def close(self) -> None:
        await stop_task(self._poller)
        self._poller = None

    def watch(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(version)`` after each new version; returns the unwatch."""
        self._listeners.append(listener)

        def unwatch() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unwatch

    async def refresh(self) -> Catalog:
        """Read the stored version now (and the catalog if it changed)."""
        if await self._backend.version() != self._current.version:
            await self._reload()
        return self._current

    async def _reload(self) -> None:
        async with self._lock:
            version, documents = await self._backend.load()
            if version in (0, self._current.version):
                return  # unchanged, or the store lost its catalog: serve the last one
            by_kind = {
                name: [kind.read(orjson.loads(doc)) for doc in documents.get(name, [])]
                for name, kind in KINDS.items()
            }
            self._current = self._defaults.with_entries(
                gifts=by_kind["gift"],
                packages=by_kind["package"],
                items=by_kind["item"],
                version=version,
            )
        for listener in list(self._listeners):
            try:
                listener(version)
            except Exception:
                log.exception("a catalog listener failed")

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # a backend blip: serve the last version, try again
                if not failing:  # once per outage, not four times a second
                    log.warning(
                        "reading the catalog failed (serving version %d): %s",
                        self._current.version,
                        exc,
                    )
                failing = True
            else:
                if failing:
                    log.info("reading the catalog works again")
                failing = False

    def _entries(self, kind: str) -> dict[str, Any]:
        return self._current.entries(kind)

    async def _change(
        self,
        plan: Callable[[], list[tuple[str, str, bytes]]],
        expected_version: int | None,
    ) -> Catalog:
        """Write what ``plan`` derives from the current catalog, compare-and-set."""
        for _ in range(WRITE_ATTEMPTS):
            await self.refresh()
            based_on = self._current.version
            if expected_version is not None and expected_version != based_on:
                raise Conflict(
                    f"the catalog is at version {based_on}, not {expected_version}: "
                    "read it again and retry"
                )
            documents = plan()
            if not documents:
                return self._current
            if await self._backend.write(documents, based_on=based_on):
                await self._reload()
                return self._current
        raise Conflict("the catalog kept changing while this change was written; retry")

    async def create(
        self, kind: str, document: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Catalog:
        """A new entry (``Conflict`` if the id exists)."""
        reader = _kind(kind)
        entry = reader.read(document)

        def plan() -> list[tuple[str, str, bytes]]:
            if entry.id in self._entries(kind):
                raise Conflict(f"the {kind} {entry.id!r} already exists")
            return [(kind, entry.id, _encode(kind, entry))]

        return await self._change(plan, expected_version)

    async def update(
        self,
        kind: str,
        entry_id: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Catalog:
        """Change the fields given (``None`` removes an optional one); ``NotFound``
        if there is no such entry."""
        reader = _kind(kind)
        if changes.get("id", entry_id) != entry_id:
            raise EntryError("id", "cannot be changed (create a new entry instead)")

        def plan() -> list[tuple[str, str, bytes]]:
            existing = self._entries(kind).get(entry_id)
            if existing is None:
                raise NotFound(f"no {kind} {entry_id!r}")
            merged = {**reader.write(existing), **changes}
            entry = reader.read({k: v for k, v in merged.items() if v is not None})
            if entry == existing:
                return []
            return [(kind, entry_id, _encode(kind, entry))]

        return await self._change(plan, expected_version)

    async def retire(
        self, kind: str, entry_id: str, *, expected_version: int | None = None
    ) -> Catalog:
        return await self.update(
            kind, entry_id, {"retired": True}, expected_version=expected_version
        )

    async def import_entries(
        self, document: Mapping[str, Any], *, dry_run: bool = False
    ) -> CatalogChanges:
        """Add or replace every entry of a whole catalog document, validated first
        and applied as one change (entries it leaves out stay as they are)."""
        incoming = entries_from_document(document)  # all of it valid, or nothing
        outcome: dict[str, list[str]] = {"added": [], "changed": [], "unchanged": []}

        def plan() -> list[tuple[str, str, bytes]]:
            for names in outcome.values():
                names.clear()
            documents = []
            for kind, entries in incoming.items():
                existing = self._entries(kind)
                for entry_id, entry in entries.items():
                    before = existing.get(entry_id)
                    name = f"{kind}:{entry_id}"
                    if before == entry:
                        outcome["unchanged"].append(name)
                        continue
                    outcome["added" if before is None else "changed"].append(name)
                    documents.append((kind, entry_id, _encode(kind, entry)))
            return [] if dry_run else documents

        catalog = await self._change(plan, None)
        return CatalogChanges(
            added=tuple(outcome["added"]),
            changed=tuple(outcome["changed"]),
            unchanged=tuple(outcome["unchanged"]),
            version=catalog.version,
        )

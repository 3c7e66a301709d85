"""The embedded engine's catalog: documents and the version in the SQLite file.

Reads go through the reader threads, so ``live catalog import`` run against the
same file by another process is seen by the server at its next poll.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from store.embedded.database import SQLiteDatabase


class SQLiteCatalog:
    """``store.catalogs.CatalogBackend`` on the ``catalog_*`` tables."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def version(self) -> int:
        return await self._db.read(_version)

    async def load(self) -> tuple[int, dict[str, list[bytes]]]:
        def read(conn: sqlite3.Connection) -> tuple[int, dict[str, list[bytes]]]:
            # one statement: the version and the documents of one snapshot
            rows = conn.execute(
                "SELECT v.version, e.kind, e.document FROM catalog_version v "
                "LEFT JOIN catalog_entries e ON 1 ORDER BY e.kind, e.id"
            ).fetchall()
            documents: dict[str, list[bytes]] = {}
            for _, kind, document in rows:
                if kind is not None:
                    documents.setdefault(kind, []).append(document.encode())
            return (rows[0][0] if rows else 0), documents

        return await self._db.read(read)

    async def write(self, documents: Sequence[tuple[str, str, bytes]], *, based_on: int) -> int:
        def write(conn: sqlite3.Connection) -> int:
            if _version(conn) != based_on:
                return 0
            conn.executemany(
                "INSERT INTO catalog_entries (kind, id, document) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET document = excluded.document",
                [(kind, entry_id, document.decode()) for kind, entry_id, document in documents],
            )
            conn.execute(
                "INSERT INTO catalog_version (one, version) VALUES (1, ?) "
                "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                (based_on + 1,),
            )
            return based_on + 1

        return await self._db.write(write)


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT version FROM catalog_version WHERE one = 1").fetchone()
    return int(row[0]) if row else 0

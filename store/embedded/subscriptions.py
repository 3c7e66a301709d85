"""The embedded engine's ``Subscriptions``: subscriptions, their delivery queue
and integration apps in the SQLite file (tables in ``store.embedded.schema``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from store.domain import subscriptions as d
from store.embedded.database import SQLiteDatabase

_SELECT = f"SELECT {d.SUBSCRIPTION_COLUMNS} FROM subscriptions"


def _load(conn: sqlite3.Connection, subscription_id: str) -> d.Subscription | None:
    row = conn.execute(f"{_SELECT} WHERE id = ?", (subscription_id,)).fetchone()
    return None if row is None else d.subscription_from_row(row)


class SQLiteSubscriptions:
    """``Subscriptions`` over SQLite (one process: the lease still orders its
    own workers)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db

    async def create(self, subscription: d.Subscription) -> None:
        row = d.subscription_row(subscription)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO subscriptions ({d.SUBSCRIPTION_COLUMNS}, lease_owner, lease_until)"
                f" VALUES ({', '.join('?' * len(row))}, '', 0)",
                row,
            )

        await self.db.write(op)

    async def get(self, subscription_id: str) -> d.Subscription | None:
        return await self.db.read(lambda conn: _load(conn, subscription_id))

    async def owned(self, owner_id: str) -> list[d.Subscription]:
        def op(conn: sqlite3.Connection) -> list[d.Subscription]:
            rows = conn.execute(
                f"{_SELECT} WHERE owner_id = ? ORDER BY created_at, id", (owner_id,)
            ).fetchall()
            return [d.subscription_from_row(row) for row in rows]

        return await self.db.read(op)

    async def enabled(self) -> list[d.Subscription]:
        def op(conn: sqlite3.Connection) -> list[d.Subscription]:
            rows = conn.execute(f"{_SELECT} WHERE status = 'enabled'").fetchall()
            return [d.subscription_from_row(row) for row in rows]

        return await self.db.read(op)

    async def set_status(
        self, subscription_id: str, status: str, *, reason: str = ""
    ) -> d.Subscription | None:
        def op(conn: sqlite3.Connection) -> d.Subscription | None:
            if _load(conn, subscription_id) is None:
                return None
            if status == "enabled":
                conn.execute(
                    "UPDATE subscriptions SET status = 'enabled', failing_since = NULL,"
                    " next_attempt_at = 0, disabled_reason = '' WHERE id = ?",
                    (subscription_id,),
                )
            else:
                conn.execute(
                    "UPDATE subscriptions SET status = ?, disabled_reason = ?,"
                    " lease_owner = '', lease_until = 0 WHERE id = ?",
                    (status, reason, subscription_id),
                )
                if status == "disabled":
                    conn.execute(
                        "DELETE FROM subscription_queue WHERE subscription_id = ?",
                        (subscription_id,),
                    )
            return _load(conn, subscription_id)

        return await self.db.write(op)

    async def set_secret(self, subscription_id: str, secret: str) -> d.Subscription | None:
        def op(conn: sqlite3.Connection) -> d.Subscription | None:
            conn.execute(
                "UPDATE subscriptions SET secret = ? WHERE id = ?", (secret, subscription_id)
            )
            return _load(conn, subscription_id)

        return await self.db.write(op)

    async def delete(self, subscription_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM subscription_queue WHERE subscription_id = ?", (subscription_id,)
            )
            return (
                conn.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,)).rowcount
                > 0
            )

        return await self.db.write(op)

    async def enqueue(self, deliveries: Sequence[d.Delivery]) -> int:
        rows = [
            (
                d.subscription_id,
                d.message_id,
                d.source,
                d.type,
                d.body,
                d.created_at,
            )
            for d in deliveries
        ]

        def op(conn: sqlite3.Connection) -> int:
            queued = 0
            for row in rows:
                queued += conn.execute(
                    "INSERT OR IGNORE INTO subscription_queue"
                    " (subscription_id, message_id, source, type, body, created_at, attempts)"
                    " SELECT ?, ?, ?, ?, ?, ?, 0 WHERE EXISTS (SELECT 1 FROM subscriptions"
                    " WHERE id = ? AND status = 'enabled')",
                    (*row, row[0]),
                ).rowcount
            return queued

        return await self.db.write(op) if rows else 0

    async def pending(self, subscription_id: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM subscription_queue WHERE subscription_id = ?",
                (subscription_id,),
            ).fetchone()
            return int(row[0])

        return await self.db.read(op)

    async def claim(
        self, *, node: str, now: int, lease_ms: int, limit: int
    ) -> list[tuple[d.Subscription, d.Delivery]]:
        def due(conn: sqlite3.Connection) -> list[Any]:
            rows: list[Any] = conn.execute(
                f"SELECT {', '.join('s.' + c.strip() for c in d.SUBSCRIPTION_COLUMNS.split(','))}"
                " FROM subscriptions AS s WHERE s.status = 'enabled'"
                " AND s.next_attempt_at <= ? AND s.lease_until <= ?"
                " AND EXISTS (SELECT 1 FROM subscription_queue AS q"
                " WHERE q.subscription_id = s.id) ORDER BY s.next_attempt_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            return rows

        # polled often: a read finds nothing due without queueing behind the writer
        if not await self.db.read(due):
            return []

        def op(conn: sqlite3.Connection) -> list[tuple[d.Subscription, d.Delivery]]:
            rows = due(conn)
            claimed = []
            for row in rows:
                subscription = d.subscription_from_row(row)
                head = conn.execute(
                    f"SELECT {d.DELIVERY_COLUMNS} FROM subscription_queue"
                    " WHERE subscription_id = ? ORDER BY position LIMIT 1",
                    (subscription.id,),
                ).fetchone()
                conn.execute(
                    "UPDATE subscriptions SET lease_owner = ?, lease_until = ? WHERE id = ?",
                    (node, now + lease_ms, subscription.id),
                )
                claimed.append((subscription, d.delivery_from_row(head)))
            return claimed

        return await self.db.write(op)

    async def delivered(self, subscription_id: str, position: int, *, node: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            held = conn.execute(
                "UPDATE subscriptions SET lease_owner = '', lease_until = 0,"
                " failing_since = NULL, next_attempt_at = 0, last_error = ''"
                " WHERE id = ? AND lease_owner = ?",
                (subscription_id, node),
            ).rowcount
            if held:
                conn.execute(
                    "DELETE FROM subscription_queue WHERE subscription_id = ? AND position = ?",
                    (subscription_id, position),
                )

        await self.db.write(op)

    async def failed(
        self, subscription_id: str, position: int, *, node: str, now: int, retry_at: int, error: str
    ) -> None:
        note = error[: d.MAX_ERROR_CHARS]

        def op(conn: sqlite3.Connection) -> None:
            held = conn.execute(
                "UPDATE subscriptions SET lease_owner = '', lease_until = 0,"
                " failing_since = coalesce(failing_since, ?), next_attempt_at = ?,"
                " last_error = ? WHERE id = ? AND lease_owner = ?",
                (now, retry_at, note, subscription_id, node),
            ).rowcount
            if held:
                conn.execute(
                    "UPDATE subscription_queue SET attempts = attempts + 1"
                    " WHERE subscription_id = ? AND position = ?",
                    (subscription_id, position),
                )

        await self.db.write(op)

    async def add_app(self, app: d.App) -> None:
        row = (app.client_id, app.owner_id, app.name, app.secret_hash, app.created_at)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO subscription_apps ({d.APP_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row
            )

        await self.db.write(op)

    async def app(self, client_id: str) -> d.App | None:
        def op(conn: sqlite3.Connection) -> d.App | None:
            row = conn.execute(
                f"SELECT {d.APP_COLUMNS} FROM subscription_apps WHERE client_id = ?", (client_id,)
            ).fetchone()
            return None if row is None else d.app_from_row(row)

        return await self.db.read(op)

    async def apps(self, owner_id: str) -> list[d.App]:
        def op(conn: sqlite3.Connection) -> list[d.App]:
            rows = conn.execute(
                f"SELECT {d.APP_COLUMNS} FROM subscription_apps WHERE owner_id = ?"
                " ORDER BY created_at, client_id",
                (owner_id,),
            ).fetchall()
            return [d.app_from_row(row) for row in rows]

        return await self.db.read(op)

    async def delete_app(self, owner_id: str, client_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                "SELECT 1 FROM subscription_apps WHERE client_id = ? AND owner_id = ?",
                (client_id, owner_id),
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                "DELETE FROM subscription_queue WHERE subscription_id IN"
                " (SELECT id FROM subscriptions WHERE app_id = ?)",
                (client_id,),
            )
            conn.execute("DELETE FROM subscriptions WHERE app_id = ?", (client_id,))
            conn.execute("DELETE FROM subscription_apps WHERE client_id = ?", (client_id,))
            return True

        return await self.db.write(op)

"""The scaled engine's ``Subscriptions``: subscriptions, their delivery queue and
integration apps in PostgreSQL (``migrations/002_subscriptions.sql``).

Every node feeds the same room events into the queue; the unique
``(subscription_id, source)`` makes that one delivery. Claims lock the
subscriptions they lease (``FOR UPDATE SKIP LOCKED``), so two nodes never
lease the same one. Every transaction locks a subscription's row before its
queue rows (queueing holds a share lock on it), so deleting or disabling one
never deadlocks with a delivery, nor leaves queue rows behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from store.domain import subscriptions as d
from store.scaled.postgres import pg_connection

_SELECT = f"SELECT {d.SUBSCRIPTION_COLUMNS} FROM subscriptions"


DEADLOCK_RETRIES = 3
"""Queueing locks several subscriptions (shared) in the order of its deliveries;
should that ever cross another transaction's order, PostgreSQL aborts one and
it is run again."""


def _count(status: str) -> int:
    """The row count of a command status (``INSERT 0 3``, ``DELETE 1``)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresSubscriptions:
    """``Subscriptions`` over PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        async with pg_connection(self._pool) as conn:
            rows: list[Any] = await conn.fetch(query, *args)
            return rows

    async def create(self, subscription: d.Subscription) -> None:
        row = d.subscription_row(subscription)
        places = ", ".join(f"${n}" for n in range(1, len(row) + 1))
        async with pg_connection(self._pool) as conn:
            await conn.execute(
                f"INSERT INTO subscriptions ({d.SUBSCRIPTION_COLUMNS}) VALUES ({places})", *row
            )

    async def get(self, subscription_id: str) -> d.Subscription | None:
        rows = await self._fetch(f"{_SELECT} WHERE id = $1", subscription_id)
        return d.subscription_from_row(rows[0]) if rows else None

    async def owned(self, owner_id: str) -> list[d.Subscription]:
        rows = await self._fetch(f"{_SELECT} WHERE owner_id = $1 ORDER BY created_at, id", owner_id)
        return [d.subscription_from_row(row) for row in rows]

    async def enabled(self) -> list[d.Subscription]:
        rows = await self._fetch(f"{_SELECT} WHERE status = 'enabled'")
        return [d.subscription_from_row(row) for row in rows]

    async def set_status(
        self, subscription_id: str, status: str, *, reason: str = ""
    ) -> d.Subscription | None:
        async with pg_connection(self._pool) as conn, conn.transaction():
            if status == "enabled":
                rows = await conn.fetch(
                    "UPDATE subscriptions SET status = 'enabled', failing_since = NULL,"
                    " next_attempt_at = 0, disabled_reason = ''"
                    f" WHERE id = $1 RETURNING {d.SUBSCRIPTION_COLUMNS}",
                    subscription_id,
                )
            else:
                rows = await conn.fetch(
                    "UPDATE subscriptions SET status = $2, disabled_reason = $3,"
                    " lease_owner = '', lease_until = 0"
                    f" WHERE id = $1 RETURNING {d.SUBSCRIPTION_COLUMNS}",
                    subscription_id,
                    status,
                    reason,
                )
                if rows and status == "disabled":
                    await conn.execute(
                        "DELETE FROM subscription_queue WHERE subscription_id = $1",
                        subscription_id,
                    )
        return d.subscription_from_row(rows[0]) if rows else None

    async def set_secret(self, subscription_id: str, secret: str) -> d.Subscription | None:
        rows = await self._fetch(
            "UPDATE subscriptions SET secret = $2 WHERE id = $1"
            f" RETURNING {d.SUBSCRIPTION_COLUMNS}",
            subscription_id,
            secret,
        )
        return d.subscription_from_row(rows[0]) if rows else None

    async def delete(self, subscription_id: str) -> bool:
        async with pg_connection(self._pool) as conn, conn.transaction():
            # the subscription's row first: the lock order of every statement here
            status = await conn.execute("DELETE FROM subscriptions WHERE id = $1", subscription_id)
            await conn.execute(
                "DELETE FROM subscription_queue WHERE subscription_id = $1", subscription_id
            )
        return _count(status) > 0

    async def enqueue(self, deliveries: Sequence[d.Delivery]) -> int:
        if not deliveries:
            return 0
        for attempt in range(DEADLOCK_RETRIES):
            try:
                return await self._enqueue(deliveries)
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
        return 0  # not reached

    async def _enqueue(self, deliveries: Sequence[d.Delivery]) -> int:
        async with pg_connection(self._pool) as conn:
            status = await conn.execute(
                "INSERT INTO subscription_queue"
                " (subscription_id, message_id, source, type, body, created_at)"
                " SELECT d.sid, d.mid, d.src, d.kind, d.body, d.created"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
                " $6::bigint[]) WITH ORDINALITY AS d(sid, mid, src, kind, body, created, n)"
                " WHERE EXISTS (SELECT 1 FROM subscriptions AS s"
                " WHERE s.id = d.sid AND s.status = 'enabled' FOR SHARE)"
                " ORDER BY d.n ON CONFLICT (subscription_id, source) DO NOTHING",
                [item.subscription_id for item in deliveries],
                [item.message_id for item in deliveries],
                [item.source for item in deliveries],
                [item.type for item in deliveries],
                [item.body for item in deliveries],
                [item.created_at for item in deliveries],
            )
        return _count(status)

    async def pending(self, subscription_id: str) -> int:
        rows = await self._fetch(
            "SELECT count(*) FROM subscription_queue WHERE subscription_id = $1", subscription_id
        )
        return int(rows[0][0])

    async def claim(
        self, *, node: str, now: int, lease_ms: int, limit: int
    ) -> list[tuple[d.Subscription, d.Delivery]]:
        columns = ", ".join("s." + c.strip() for c in d.SUBSCRIPTION_COLUMNS.split(","))
        async with pg_connection(self._pool) as conn, conn.transaction():
            leased = await conn.fetch(
                "WITH due AS (SELECT s.id FROM subscriptions AS s WHERE s.status = 'enabled'"
                " AND s.next_attempt_at <= $1 AND s.lease_until <= $1"
                " AND EXISTS (SELECT 1 FROM subscription_queue AS q WHERE q.subscription_id = s.id)"
                " ORDER BY s.next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " UPDATE subscriptions AS s SET lease_owner = $3, lease_until = $1 + $4"
                f" FROM due WHERE s.id = due.id RETURNING {columns}",
                now,
                limit,
                node,
                lease_ms,
            )
            if not leased:
                return []
            subscriptions = {row[0]: d.subscription_from_row(row) for row in leased}
            heads = await conn.fetch(
                f"SELECT DISTINCT ON (subscription_id) {d.DELIVERY_COLUMNS} FROM subscription_queue"
                " WHERE subscription_id = ANY($1::text[]) ORDER BY subscription_id, position",
                list(subscriptions),
            )
        return [(subscriptions[row[0]], d.delivery_from_row(row)) for row in heads]

    async def _settle(self, lease: str, then: str, *args: Any) -> None:
        """Run ``lease`` (an UPDATE of subscription ``$1`` held by node ``$2``) and,
        only if the node held it, ``then`` (on queue position ``$2``)."""
        subscription_id, node, position = args[0], args[1], args[2]
        async with pg_connection(self._pool) as conn, conn.transaction():
            if _count(await conn.execute(lease, subscription_id, node, *args[3:])):
                await conn.execute(then, subscription_id, position)

    async def delivered(self, subscription_id: str, position: int, *, node: str) -> None:
        await self._settle(
            "UPDATE subscriptions SET lease_owner = '', lease_until = 0,"
            " failing_since = NULL, next_attempt_at = 0, last_error = ''"
            " WHERE id = $1 AND lease_owner = $2",
            "DELETE FROM subscription_queue WHERE subscription_id = $1 AND position = $2",
            subscription_id,
            node,
            position,
        )

    async def failed(
        self, subscription_id: str, position: int, *, node: str, now: int, retry_at: int, error: str
    ) -> None:
        await self._settle(
            "UPDATE subscriptions SET lease_owner = '', lease_until = 0,"
            " failing_since = coalesce(failing_since, $3), next_attempt_at = $4,"
            " last_error = $5 WHERE id = $1 AND lease_owner = $2",
            "UPDATE subscription_queue SET attempts = attempts + 1"
            " WHERE subscription_id = $1 AND position = $2",
            subscription_id,
            node,
            position,
            now,
            retry_at,
            error[: d.MAX_ERROR_CHARS],
        )

    async def add_app(self, app: d.App) -> None:
        async with pg_connection(self._pool) as conn:
            await conn.execute(
                f"INSERT INTO subscription_apps ({d.APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5)",
                app.client_id,
                app.owner_id,
                app.name,
                app.secret_hash,
                app.created_at,
            )

    async def app(self, client_id: str) -> d.App | None:
        rows = await self._fetch(
            f"SELECT {d.APP_COLUMNS} FROM subscription_apps WHERE client_id = $1", client_id
        )
        return d.app_from_row(rows[0]) if rows else None

    async def apps(self, owner_id: str) -> list[d.App]:
        rows = await self._fetch(
            f"SELECT {d.APP_COLUMNS} FROM subscription_apps WHERE owner_id = $1"
            " ORDER BY created_at, client_id",
            owner_id,
        )
        return [d.app_from_row(row) for row in rows]

    async def delete_app(self, owner_id: str, client_id: str) -> bool:
        async with pg_connection(self._pool) as conn, conn.transaction():
            status = await conn.execute(
                "DELETE FROM subscription_apps WHERE client_id = $1 AND owner_id = $2",
                client_id,
                owner_id,
            )
            if not _count(status):
                return False
            await conn.execute(
                "SELECT id FROM subscriptions WHERE app_id = $1 ORDER BY id FOR UPDATE", client_id
            )
            await conn.execute(
                "DELETE FROM subscription_queue WHERE subscription_id IN"
                " (SELECT id FROM subscriptions WHERE app_id = $1)",
                client_id,
            )
            await conn.execute("DELETE FROM subscriptions WHERE app_id = $1", client_id)
        return True

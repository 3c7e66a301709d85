"""The embedded engine's SQLite schema, and how a file is brought up to date.

Every table of the file is declared here: the ledger (transactions, postings,
hot balances, idempotency keys), the accounts and their money state, and the
rooms with their totals. ``migrate`` runs in the writer thread when the file is
opened, before any other operation.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from store.errors import StoreError

SCHEMA_VERSION: Final = 4
"""1: the ledger, accounts and rooms; 2: the catalog; 3: inventories of items
and payout accounts; 4: postings indexed by account for users' accounts only."""

USER_POSTING: Final = "account GLOB 'user:*'"
"""The postings that ``postings_user_account`` holds: those of users' accounts.
A query reaches them through the index only if its WHERE repeats this term
word for word (SQLite's rule for partial indexes)."""

# Postings carry a position ``n`` so they are clustered by transaction (the
# primary key) and keep their order; the (account, tx_id) index serves the
# per-user history and holds users' postings only: three of a gift's five go to
# the platform's accounts, which nothing looks up by account, and every commit
# rewrote their index pages. Corrections are new transactions: triggers reject
# any UPDATE or DELETE of the ledger.
LEDGER_SCHEMA: Final[tuple[str, ...]] = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS transactions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        meta TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS postings (
        tx_id TEXT NOT NULL REFERENCES transactions(id),
        n INTEGER NOT NULL,
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (tx_id, n)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS postings_user_account ON postings (account, tx_id)"
    f" WHERE {USER_POSTING}",
    """CREATE TABLE IF NOT EXISTS balances (
        account TEXT NOT NULL,
        asset TEXT NOT NULL,
        amount INTEGER NOT NULL,
        PRIMARY KEY (account, asset)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
)

ROOM_SCHEMA: Final[tuple[str, ...]] = (
    # open gift combos, so a combo open when the process dies still ends after a
    # restart (deadline: wall-clock ms; end_event: the final event's JSON)
    """CREATE TABLE IF NOT EXISTS open_combos (
        room_id TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        gift_id TEXT NOT NULL,
        combo_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        count INTEGER NOT NULL,
        coins INTEGER NOT NULL,
        diamonds INTEGER NOT NULL,
        deadline INTEGER NOT NULL,
        end_event TEXT NOT NULL,
        PRIMARY KEY (room_id, sender_id, gift_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS rooms (
        id TEXT PRIMARY KEY,
        creator TEXT NOT NULL,
        creator_adult INTEGER NOT NULL,
        title TEXT NOT NULL,
        live INTEGER NOT NULL,
        stream_id INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        overlay_key TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS room_gifters (
        room_id TEXT NOT NULL REFERENCES rooms(id),
        stream_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        user TEXT NOT NULL,
        coins INTEGER NOT NULL,
        PRIMARY KEY (room_id, stream_id, user_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS room_gifters_top
        ON room_gifters (room_id, stream_id, coins DESC, user_id)""",
    """CREATE TABLE IF NOT EXISTS stream_stats (
        room_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        gifts INTEGER NOT NULL DEFAULT 0,
        coins INTEGER NOT NULL DEFAULT 0,
        diamonds INTEGER NOT NULL DEFAULT 0,
        likes INTEGER NOT NULL DEFAULT 0,
        peak_viewers INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room_id, stream_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS room_goals (
        room_id TEXT PRIMARY KEY,
        goal_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        target INTEGER NOT NULL,
        title TEXT NOT NULL,
        progress INTEGER NOT NULL,
        reached INTEGER NOT NULL,
        set_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS creator_supporters (
        creator_id TEXT NOT NULL,
        period TEXT NOT NULL,
        user_id TEXT NOT NULL,
        user TEXT NOT NULL,
        coins INTEGER NOT NULL,
        PRIMARY KEY (creator_id, period, user_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS creator_supporters_top
        ON creator_supporters (creator_id, period, coins DESC, user_id)""",
    """CREATE TABLE IF NOT EXISTS room_restrictions (
        room_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        until INTEGER,
        by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (room_id, kind, user_id)
    ) WITHOUT ROWID""",
)

APPEND_ONLY_TRIGGERS: Final[tuple[str, ...]] = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()}
            BEFORE {action} ON {table}
            BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"""
    for table in ("transactions", "postings")
    for action in ("UPDATE", "DELETE")
)

ACCOUNT_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS accounts (
        user_id TEXT PRIMARY KEY,
        daily_cap INTEGER,
        monthly_cap INTEGER,
        tz TEXT NOT NULL DEFAULT 'UTC',
        purchases_off INTEGER NOT NULL DEFAULT 0,
        gifting_off INTEGER NOT NULL DEFAULT 0,
        pin TEXT NOT NULL DEFAULT '',
        purchases INTEGER NOT NULL DEFAULT 0,
        verified_at INTEGER,
        verified_by TEXT NOT NULL DEFAULT '',
        day TEXT NOT NULL DEFAULT '',
        day_spent INTEGER NOT NULL DEFAULT 0,
        month TEXT NOT NULL DEFAULT '',
        month_spent INTEGER NOT NULL DEFAULT 0,
        gift_tokens INTEGER,
        gift_at INTEGER
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS earnings_hours (
        user_id TEXT NOT NULL,
        hour INTEGER NOT NULL,
        diamonds INTEGER NOT NULL,
        PRIMARY KEY (user_id, hour)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS earnings_streams (
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        stream_id INTEGER NOT NULL,
        diamonds INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id, stream_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS withdrawals (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        diamonds INTEGER NOT NULL,
        status TEXT NOT NULL,
        method TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expected_at INTEGER NOT NULL,
        settled_at INTEGER,
        reference TEXT NOT NULL,
        reason TEXT NOT NULL,
        tx TEXT NOT NULL,
        settle_tx TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS withdrawals_user ON withdrawals (user_id, id)",
    """CREATE TABLE IF NOT EXISTS rate_buckets (
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        tokens INTEGER NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (user_id, action)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS claims (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at)",
)

# The catalog: one JSON document per entry (kind: gift, package...), and one
# version for the whole catalog, increased by every change.
CATALOG_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS catalog_entries (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS catalog_version (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        version INTEGER NOT NULL
    )""",
)

# Creators' event subscriptions: each with its queue of deliveries (in
# ``position`` order, one per source event) and a lease, and the integration
# apps that may manage a creator's subscriptions.
SUBSCRIPTION_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        types TEXT NOT NULL,
        callback TEXT NOT NULL,
        secret TEXT NOT NULL,
        status TEXT NOT NULL,
        app_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        failing_since INTEGER,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        disabled_reason TEXT NOT NULL,
        lease_owner TEXT NOT NULL,
        lease_until INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS subscriptions_owner ON subscriptions (owner_id, created_at)",
    """CREATE TABLE IF NOT EXISTS subscription_queue (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        subscription_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        UNIQUE (subscription_id, source)
    )""",
    """CREATE INDEX IF NOT EXISTS subscription_queue_head
        ON subscription_queue (subscription_id, position)""",
    """CREATE TABLE IF NOT EXISTS subscription_apps (
        client_id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# In-app items: what each user owns (one row per item, its expiry extended by
# each purchase) and what they have equipped (one item per kind).
ITEM_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS inventory (
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (user_id, item_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS equipped (
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        item_id TEXT NOT NULL,
        PRIMARY KEY (user_id, kind)
    ) WITHOUT ROWID""",
)

# Creators' accounts at payout providers, and what each provider was asked to pay.
PAYOUT_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS payout_accounts (
        user_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        account_id TEXT NOT NULL,
        payouts_enabled INTEGER NOT NULL DEFAULT 0,
        details_submitted INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, provider)
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS payout_accounts_owner"
    " ON payout_accounts (provider, account_id)",
    """CREATE TABLE IF NOT EXISTS payout_submissions (
        withdrawal_id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        document TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS payout_submissions_open"
    " ON payout_submissions (provider, state, updated_at)",
)

SCHEMA: Final[tuple[str, ...]] = (
    *LEDGER_SCHEMA,
    *ROOM_SCHEMA,
    *APPEND_ONLY_TRIGGERS,
    *ACCOUNT_SCHEMA,
    *CATALOG_SCHEMA,
    *SUBSCRIPTION_SCHEMA,
    *ITEM_SCHEMA,
    *PAYOUT_SCHEMA,
)
"""Every statement, in the order a new file runs them."""


def migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing; refuse (before touching anything) a newer file."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    version = None
    if known:
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"the database schema is version {version}, newer than this server's {SCHEMA_VERSION}"
        )
    if version is not None and version < 4:
        conn.execute("DROP INDEX IF EXISTS postings_account")  # replaced by postings_user_account
    for statement in SCHEMA:
        conn.execute(statement)
    if version is None or version < SCHEMA_VERSION:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

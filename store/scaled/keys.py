"""Every Redis key of the scaled engine, in one place.

A key is ``live:{<slot>}:<suffix>``. ``{...}`` is the Redis Cluster hash tag:
everything of one user, one room, one payment or the system shares a slot, so a
script touching one of them names keys of one slot. Keys are built by the slot
helpers below (``user_key(user_id, WALLET)``, ``room_key(room_id, ROOM)``...);
a client-chosen idempotency key is stored as a digest (``hashed``), so any
client key has a bounded size and no user-controlled suffix can look like
another kind of key.

User slot ``live:{u:<user>}:<suffix>``::

    w                  hash    coin, diamond, debt, withdrawing: hot balances of
                               user:<user>:coins, :diamonds, :debt, :withdrawing
                               (debt is never above zero)
    a                  hash    limits and account state: caps, tz, parental switches,
                               PIN hash, purchases, verification, spending of the day
                               and month, gift rate bucket, withdrawals of the day,
                               pending and paid diamonds
    eh                 hash    diamonds earned per hour (ms // 3_600_000)
    es                 hash    "<stream>|<room>" -> diamonds earned
    rl                 hash    rate-limit buckets ("<action>:t", ":at")
    g:<digest>         string  gift idempotency key: fingerprint (32 chars) + receipt
                               JSON; expires after the wallet's gift_key_ttl
    dk:<digest>        string  debt settlement idempotency key
    wk:<digest>        string  withdrawal idempotency key -> its id
    wd:<id>            hash    one withdrawal
    wds                zset    the user's withdrawal ids (by id)
    sup, sup:<day>     zset    a creator's supporters (all-time, per UTC day)
    supu               hash    supporter id -> public profile JSON

Room slot ``live:{r:<room>}:<suffix>``::

    room               hash    room state
    lb                 zset    current stream's gifters: user id -> coins
    lbu                hash    user id -> public profile JSON
    stats              hash    "<stream>:<total>" -> the stream's gifts, coins,
                               diamonds, likes, peak viewers
    goal               hash    the current goal
    seq                string  broker: last seq of the room
    hist               stream  broker: recent events, for resume
    ch                 channel broker: fan-out
    combo              hash    open combos (see room_combo.lua)
    combo:due          zset    open combo -> deadline (ms)
    vw                 hash    node -> "viewers|expires at (ms)"
    vw:last            string  the viewer count last published
    th:<name>          string  throttle lease (expires)
    bans, mutes        hash    user -> "until|by|created at"
    cr:<user>          string  comments in the user's current window
    ov                 hash    node -> overlays connected there (JSON, with expiry)

Other slots::

    live:{pay:<provider>:<payment>}       string  purchase idempotency key, never expires
    live:{pay:<provider>:<payment>}:rev   string  the reversal of that purchase
    live:{claim:<scope>}:<digest>         string  a one-time claim (webhook replays)
    live:{sys}:bal                        hash    "<asset>|<account>" -> hot balance of
                                                  the system accounts (world, platform:*)
    live:{sys}:outbox                     stream  ledger outbox, one entry per transaction
    live:{sys}:dead                       stream  outbox entries the worker could not file
    live:{sys}:wdx                        hash    withdrawal id -> user id
    live:{sys}:combos                     zset    room id -> when its first open combo
                                                  may close (ms): a node that dies
                                                  leaves its combos for others to end
    live:{sys}:cat:v                      string  the catalog's version
    live:{sys}:cat:<kind>                 hash    catalog entry id -> JSON document
                                                  (kind: gift, package)

On a Redis Cluster (``KeyLayout(cluster=True)``) the system balances, outbox
and dead letters are one of each per slot, ``live:{<tag of slot s>}:bal``
(``store.scaled.slots``): a script writes those of its owner's slot. A payment's
keys move next to the buyer's wallet, ``live:{u:<user>}:p:<digest>`` and
``:pr:<digest>``. A gift is three scripts there, one per slot (the sender's
debit, the creator's credit, the room's step), the last two made idempotent by
a marker keyed by the transaction id::

    live:{u:<creator>}:c:<tx>   string  the gift's credit was applied (expires)
    live:{r:<room>}:t:<tx>      string  the gift's room step was applied (expires)

The credit marker also marks an item's creator share and each creator's
clawback of a reversal (``store.scaled.credits``). Records found by their own
id name their owner in a key of their own (``store.scaled.owners``)::

    live:{pay:<provider>:<payment>}:u   string  the user the payment was credited to
    live:{wd:<id>}                      string  the user who owns withdrawal <id>

A single Redis keeps the strings above, and its gift stays one script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import orjson

from store.scaled.slots import PREFIX, slot_key, slot_of

# -- user slot suffixes ---------------------------------------------------------
WALLET: Final = "w"
ACCOUNT: Final = "a"
EARNINGS_HOURS: Final = "eh"
EARNINGS_STREAMS: Final = "es"
RATE_BUCKETS: Final = "rl"
GIFT_KEY: Final = "g"
DEBT_KEY: Final = "dk"
WITHDRAWAL_KEY: Final = "wk"
WITHDRAWALS: Final = "wds"
SUPPORTER_PROFILES: Final = "supu"
ITEM_KEY: Final = "ik"
INVENTORY: Final = "inv"
"""Hash: item id -> ``kind|acquired_at|expires_at`` (expires_at "" = permanent)."""
EQUIPPED: Final = "eq"
"""Hash: item kind -> the equipped item id."""

# -- room slot suffixes ---------------------------------------------------------
ROOM: Final = "room"
LEADERBOARD: Final = "lb"
LEADERBOARD_PROFILES: Final = "lbu"
STREAM_STATS: Final = "stats"
GOAL: Final = "goal"
SEQ: Final = "seq"
HISTORY: Final = "hist"
CHANNEL: Final = "ch"
COMBOS: Final = "combo"
COMBO_DUE: Final = "combo:due"
VIEWERS: Final = "vw"
VIEWERS_PUBLISHED: Final = "vw:last"


def user_key(user_id: str, suffix: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:{suffix}"


def room_key(room_id: str, suffix: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:{suffix}"


def system_key(suffix: str) -> str:
    return slot_key(None, suffix)


def digest(key: str) -> str:
    """A client-chosen key in bounded size (32 hex characters)."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def hashed(kind: str, key: str) -> str:
    """The suffix of a client-chosen key: ``<kind>:<digest>``."""
    return f"{kind}:{digest(key)}"


# -- the system slot ------------------------------------------------------------
SYSTEM_BALANCES: Final = system_key("bal")
OUTBOX: Final = system_key("outbox")
DEAD_LETTERS: Final = system_key("dead")
WITHDRAWAL_OWNERS: Final = system_key("wdx")
COMBO_ROOMS: Final = system_key("combos")
BOARD_LEASE: Final = "board"
"""The throttle lease of a room's leaderboard and goal announcements."""
CATALOG_VERSION: Final = system_key("cat:v")
PAYOUT_OWNERS: Final = system_key("po:own")
"""``<provider>|<account id>`` → the creator who linked that payout account."""
PAYOUT_SUBMISSIONS: Final = system_key("po:sub")
"""Withdrawal id → its payout provider submission (JSON)."""


def payout_open_key(provider: str) -> str:
    """The provider's submissions not yet done, scored by their last update."""
    return system_key(f"po:open:{provider}")


def catalog_key(kind: str) -> str:
    """The hash of one kind of catalog entry (``gift``, ``package``)."""
    return system_key(f"cat:{kind}")


def system_field(account: str, asset: str) -> str:
    """The field of ``SYSTEM_BALANCES`` holding a system account's hot balance."""
    return f"{asset}|{account}"


# -- keys with a parameter beside their slot ------------------------------------


def wallet_key(user_id: str) -> str:
    return user_key(user_id, WALLET)


WALLET_PATTERN: Final = user_key("*", WALLET)
SEQ_PATTERN: Final = room_key("*", SEQ)
_WALLET_HEAD, _WALLET_TAIL = wallet_key("\0").split("\0")


def user_of_wallet_key(key: str) -> str:
    """The user id inside a ``wallet_key`` (ids may contain any character)."""
    return key[len(_WALLET_HEAD) : -len(_WALLET_TAIL)]


def gift_key(user_id: str, key: str) -> str:
    return user_key(user_id, hashed(GIFT_KEY, key))


def withdrawal_record_key(user_id: str, withdrawal_id: str) -> str:
    return user_key(user_id, f"wd:{withdrawal_id}")


def withdrawal_owner_key(withdrawal_id: str) -> str:
    """Cluster: the user who owns withdrawal ``withdrawal_id`` (string, in a slot of
    its own; a single Redis keeps them all in ``WITHDRAWAL_OWNERS``)."""
    return f"{PREFIX}:{{wd:{withdrawal_id}}}"


def payout_account_key(user_id: str, provider: str) -> str:
    """The creator's account at a payout provider (hash)."""
    return user_key(user_id, f"po:{provider}")


def supporters_key(creator_id: str, period: str) -> str:
    """The creator's supporters: ``period`` ``all`` or a UTC day ``YYYY-MM-DD``."""
    return user_key(creator_id, "sup" if period == "all" else f"sup:{period}")


def throttle_key(room_id: str, name: str) -> str:
    return room_key(room_id, f"th:{name}")


def restrictions_key(room_id: str, kind: str) -> str:
    """``kind`` ``ban`` or ``mute``."""
    return room_key(room_id, f"{kind}s")


def chat_window_key(room_id: str, user_id: str) -> str:
    return room_key(room_id, f"cr:{user_id}")


def payment_key(provider: str, payment_id: str) -> str:
    return f"{PREFIX}:{{pay:{provider}:{payment_id}}}"


def reversal_key(provider: str, payment_id: str) -> str:
    return payment_key(provider, payment_id) + ":rev"


def payment_owner_key(provider: str, payment_id: str) -> str:
    """Cluster: the user a payment was credited to (its keys are in that user's slot)."""
    return payment_key(provider, payment_id) + ":u"


def claim_key(scope: str, key: str) -> str:
    return f"{PREFIX}:{{claim:{scope}}}:{digest(key)}"


def channel_name(room_id: str) -> str:
    """The room's pub/sub channel (not a key, but named like the room's keys)."""
    return room_key(room_id, CHANNEL)


_CHANNEL_HEAD, _CHANNEL_TAIL = (part.encode() for part in channel_name("\0").split("\0"))


def room_of_channel(channel: bytes) -> str:
    return channel[len(_CHANNEL_HEAD) : -len(_CHANNEL_TAIL)].decode()


def credit_marker_key(creator_id: str, tx_id: str) -> str:
    """Cluster: the gift ``tx_id`` was credited to its creator (``gift_credit.lua``)."""
    return user_key(creator_id, f"c:{tx_id}")


def room_marker_key(room_id: str, tx_id: str) -> str:
    """Cluster: the gift ``tx_id`` was booked in its room (``room_gift.lua``) and
    its event shown (``room_combo.lua``): two flags (``lua/lib_gift_marker.lua``)."""
    return room_key(room_id, f"t:{tx_id}")


# -- single Redis or cluster -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where the keys that have no single owner live: built once by the engine from
    its Redis URL and handed (``layout=``) to every part naming a system or
    payment key. ``cluster=False``: today's strings exactly (existing data);
    ``cluster=True``: per-slot system keys and payment keys in the buyer's slot,
    so every money script names keys of one slot."""

    cluster: bool = False

    def balances(self, owner_key: str) -> str:
        """The system balances hash a script writing ``owner_key`` updates (any full
        key of the owner's slot, e.g. ``wallet_key(user_id)``)."""
        return self._system(owner_key, "bal")

    def outbox(self, owner_key: str) -> str:
        """The ledger outbox stream in ``owner_key``'s slot."""
        return self._system(owner_key, "outbox")

    def dead_letters(self, owner_key: str) -> str:
        """The outbox entries the ledger worker could not file, in that slot."""
        return self._system(owner_key, "dead")

    def payment(self, provider: str, payment_id: str, user_id: str) -> str:
        """A purchase's idempotency key (never expires)."""
        if not self.cluster:
            return payment_key(provider, payment_id)
        return user_key(user_id, hashed("p", _payment_name(provider, payment_id)))

    def payment_owner(self, provider: str, payment_id: str) -> str | None:
        """Cluster: who a payment id was first credited to (``None`` on a single
        Redis, where the payment key itself is shared by every user). The payment
        key is in the buyer's slot there, so this one claim, in the payment's own
        slot, is what refuses the same payment id for another user."""
        return payment_owner_key(provider, payment_id) if self.cluster else None

    def reversal(self, provider: str, payment_id: str, user_id: str) -> str:
        """The idempotency key of that purchase's reversal."""
        if not self.cluster:
            return reversal_key(provider, payment_id)
        return user_key(user_id, hashed("pr", _payment_name(provider, payment_id)))

    def _system(self, owner_key: str, suffix: str) -> str:
        return slot_key(slot_of(owner_key) if self.cluster else None, suffix)


SINGLE: Final = KeyLayout()
"""The layout of a single Redis primary."""
CLUSTER: Final = KeyLayout(cluster=True)
"""The layout of a Redis Cluster."""


def _payment_name(provider: str, payment_id: str) -> str:
    """Provider and payment id, unambiguous whatever characters they hold."""
    return orjson.dumps([provider, payment_id]).decode()

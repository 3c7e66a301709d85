"""The scaled engine's wallet and rooms: one Lua script per operation in Redis.

Each operation is a single script, so it is atomic on the Redis primary: the
gift script checks everything (idempotency, room, ages, the sender's lock,
parental switch, rate and spending caps, funds) before its first write, then
moves the balances, appends the transaction (with its postings, as JSON) to the
ledger outbox stream, bumps the room's leaderboard and stores the receipt under
the idempotency key. The outbox is drained into PostgreSQL by the
ledger worker (``store.scaled.ledger``). Calls are pipelined by
``store.redis_scripts.CommandBatcher``. The semantics (check order, error
codes and messages) are exactly those of ``store.embedded.database``; the conformance suite
runs both engines.

Key layout (``{...}`` is the Redis Cluster hash tag: everything of one user, one
room, or the system shares a slot)::

    live:{u:<user>}:w                 hash    coin, diamond, debt, withdrawing: hot
                                              balances of user:<user>:coins, :diamonds,
                                              :debt, :withdrawing
    live:{u:<user>}:a                 hash    limits and account state (store.scaled.wallet_money)
    live:{u:<user>}:eh, :es           hash    diamonds earned per hour, per stream
    live:{u:<user>}:g:<digest>        string  gift idempotency key (scope gift:<user>):
                                              fingerprint (32 chars) + receipt JSON;
                                              expires after ``gift_key_ttl`` seconds
    live:{pay:<provider>:<payment>}   string  purchase idempotency key (scope
                                              payment:<provider>), never expires
    live:{r:<room>}:room              hash    room state
    live:{r:<room>}:lb                zset    current stream's gifters: user id -> coins
    live:{r:<room>}:lbu               hash    user id -> public profile JSON
    live:{r:<room>}:stats             hash    "<stream>:<total>" -> the stream's gifts,
                                              coins, diamonds, likes, peak viewers
    live:{r:<room>}:goal              hash    the current goal (see store.scaled.activity)
    live:{u:<creator>}:sup[:<day>]    zset    creator's supporters (all-time, per UTC day)
    live:{u:<creator>}:supu           hash    supporter id -> public profile JSON
    live:{r:<room>}:seq               string  broker: last seq of the room
    live:{r:<room>}:hist              stream  broker: recent events, for resume
    live:{r:<room>}:ch                channel broker: fan-out
    live:{sys}:bal                    hash    "<asset>|<account>" -> hot balance of
                                              the system accounts (world, platform:*)
    live:{sys}:outbox                 stream  ledger outbox, one entry per transaction
    live:{sys}:dead                   stream  outbox entries the worker could not file

The digest in a gift key is a hash of the client's key, so any client key has a
bounded size and no user-controlled suffix can look like another kind of key.
A gift touches the sender's, the room's, the creator's and the system's slots;
on one primary (or a cluster with one shard) that is one script. Splitting it
for a sharded cluster (debit plus outbox in the sender's slot, then an
idempotent credit in the creator's) keeps these keys; see docs/SCALING.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import orjson

from store.domain.accounts import MoneyPolicy, debt_account, purchase_receipt
from store.domain.models import (
    Balance,
    GiftReceipt,
    GiftRequest,
    LeaderEntry,
    Posting,
    Profile,
    PurchaseReceipt,
    PurchaseRequest,
    Room,
    coins_account,
    utc_day,
)
from store.domain.postings import gift_postings, split_gift
from store.domain.rules import HOUR_MS, local_periods
from store.errors import BadRequest, StoreError
from store.ids import new_id, new_secret, now_ms
from store.scaled.client import CommandBatcher, load_script, script_reply_error

PREFIX: Final = "live"
MAX_KEY_LENGTH: Final = 200
MAX_ID_LENGTH: Final = 200
DEFAULT_GIFT_KEY_TTL: Final = 7 * 24 * 3600
"""A client re-sends a gift's request id within a reconnect; a week is plenty and
keeps Redis memory bounded at any gift rate."""
_CREATOR_CACHE_SIZE: Final = 100_000

SYSTEM_BALANCES: Final = f"{PREFIX}:{{sys}}:bal"
OUTBOX: Final = f"{PREFIX}:{{sys}}:outbox"
DEAD_LETTERS: Final = f"{PREFIX}:{{sys}}:dead"
WALLET_PATTERN: Final = f"{PREFIX}:{{u:*}}:w"
_WALLET_HEAD: Final = f"{PREFIX}:{{u:"
_WALLET_TAIL: Final = "}:w"


def wallet_key(user_id: str) -> str:
    return f"{_WALLET_HEAD}{user_id}{_WALLET_TAIL}"


def user_of_wallet_key(key: str) -> str:
    """The user id inside a ``wallet_key`` (ids may contain any character)."""
    return key[len(_WALLET_HEAD) : -len(_WALLET_TAIL)]


def gift_key(user_id: str, key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{PREFIX}:{{u:{user_id}}}:g:{digest}"


def payment_key(provider: str, payment_id: str) -> str:
    return f"{PREFIX}:{{pay:{provider}:{payment_id}}}"


def room_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:room"


def leaderboard_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:lb"


def leaderboard_users_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:lbu"


def stream_stats_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:stats"


def goal_key(room_id: str) -> str:
    return f"{PREFIX}:{{r:{room_id}}}:goal"


def supporters_key(creator_id: str, period: str) -> str:
    """The creator's supporters: ``period`` ``all`` or a UTC day ``YYYY-MM-DD``."""
    tail = "" if period == "all" else f":{period}"
    return f"{PREFIX}:{{u:{creator_id}}}:sup{tail}"


def supporter_profiles_key(creator_id: str) -> str:
    return f"{PREFIX}:{{u:{creator_id}}}:supu"


DAILY_SUPPORTERS_TTL: Final = 3 * 86_400
"""A day's supporters are kept a little past the day (time zones, late readers)."""


def account_key(user_id: str) -> str:
    """A user's limits and account state (``store.scaled.wallet_money``)."""
    return f"{PREFIX}:{{u:{user_id}}}:a"


def earnings_hours_key(user_id: str) -> str:
    """Diamonds earned per hour (``ms // 3_600_000``): the hold period and per day."""
    return f"{PREFIX}:{{u:{user_id}}}:eh"


def earnings_streams_key(user_id: str) -> str:
    """Diamonds earned per stream: ``<stream id>|<room id>`` -> diamonds."""
    return f"{PREFIX}:{{u:{user_id}}}:es"


def system_field(account: str, asset: str) -> str:
    return f"{asset}|{account}"


_GIFT = load_script("gift")
_PURCHASE = load_script("purchase")
_GO_LIVE = load_script("go_live")
_END = load_script("end")
_LEADERBOARD = load_script("leaderboard")


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_ID_LENGTH} characters")


def _check_key(value: str, what: str) -> None:
    if not value or len(value) > MAX_KEY_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_KEY_LENGTH} characters")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise BadRequest("limit must be at least 1")


def _postings_json(postings: Sequence[Posting]) -> list[dict[str, Any]]:
    return [{"account": p.account, "asset": p.asset, "amount": p.amount} for p in postings]


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _check_reply(reply: Any) -> list[Any]:
    error = script_reply_error(reply)
    if error is not None:
        raise error
    if not isinstance(reply, list) or not reply:
        raise StoreError(f"unexpected script reply: {reply!r}")
    return reply


class RedisWallet:
    """``Wallet`` over Redis (see the module docstring for keys and semantics)."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        creator_share_percent: int = 50,
        gift_key_ttl: int = DEFAULT_GIFT_KEY_TTL,
        policy: MoneyPolicy | None = None,
    ) -> None:
        if not 0 <= creator_share_percent <= 100:
            raise ValueError("creator_share_percent must be within 0..100")
        if gift_key_ttl < 0:
            raise ValueError("gift_key_ttl must be >= 0 (0: never expire)")
        self._batcher = batcher
        self._share = creator_share_percent
        self._ttl = str(gift_key_ttl)
        self._policy = policy or MoneyPolicy()
        # A room's creator never changes once the room exists (another creator
        # gets Conflict), so the creator's wallet key can be put in KEYS from a
        # cache; the script verifies it and answers "S" if the cache is stale.
        self._creators: dict[str, str] = {}
        # Likewise a sender's time zone (for the day and month of spending caps):
        # most never set one (UTC); the script answers "T" when the guess is wrong.
        self._zones: dict[str, str] = {}

    async def purchase(self, request: PurchaseRequest) -> PurchaseReceipt:
        _check_id(request.user.id, "user id")
        _check_key(request.payment_id, "payment id")
        _check_id(request.provider, "payment provider")
        package = request.package
        credit = package.coins + package.bonus
        if package.coins < 0 or package.bonus < 0 or credit < 1:
            raise BadRequest("a coin package must credit at least one coin")
        if any(g.coins < 0 for g in request.promotions):
            raise BadRequest("a promotion cannot take coins away")
        user_id = request.user.id
        tx_id = new_id("tx")
        created_at = request.now if request.now is not None else now_ms()
        head = orjson.dumps({"id": tx_id, "kind": "purchase", "created_at": created_at})
        meta = orjson.dumps(
            {
                "package_id": package.id,
                "coins": package.coins,
                "bonus": package.bonus,
                "price_minor": package.price_minor,
                "currency": package.currency,
                "provider": request.provider,
                "payment_id": request.payment_id,
                "user_id": user_id,
            }
        )[1:-1]
        members = orjson.dumps(
            {
                "tx": tx_id,
                "package_id": package.id,
                "created_at": created_at,
                "user_id": user_id,
            }
        )[1:-1]
        grants: list[str | bytes | int] = [len(request.promotions)]
        for grant in request.promotions:
            grants += [orjson.dumps(grant.id), grant.coins, _flag(grant.first_purchase)]
        reply = _check_reply(
            await self._batcher.evalsha(
                _PURCHASE,
                (
                    payment_key(request.provider, request.payment_id),
                    wallet_key(user_id),
                    SYSTEM_BALANCES,
                    OUTBOX,
                    account_key(user_id),
                ),
                (
                    request.fingerprint(),
                    _flag(request.user.adult),
                    credit,
                    head[:-1] + b',"postings":[',
                    meta,
                    members,
                    _flag(request.enforce_limits),
                    orjson.dumps(coins_account(user_id)),
                    orjson.dumps(debt_account(user_id)),
                    *grants,
                ),
                retry_on_disconnect=True,
            )
        )
        return purchase_receipt(orjson.loads(reply[1]), replayed=reply[0] == b"R")

    async def send_gift(self, request: GiftRequest) -> GiftReceipt:
        """Debit the sender, credit the creator and the platform, bump the
        leaderboard: one script, checks first (order as in ``store.embedded.database``)."""
        sender = request.sender
        _check_id(sender.id, "sender id")
        _check_id(request.room_id, "room id")
        _check_key(request.key, "request id")
        if request.count < 1:
            raise BadRequest("count must be at least 1")
        if request.gift.coins < 1:
            raise BadRequest("a gift must cost at least one coin")
        room_id = request.room_id
        creator_id = self._creators.get(room_id)
        if creator_id is None:
            creator_id = await self._creator_of(room_id)
        tx_id = new_id("tx")
        created_at = request.now if request.now is not None else now_ms()
        tz = self._zones.get(sender.id, "UTC")
        for _ in range(4):
            reply = _check_reply(
                await self._batcher.evalsha(
                    _GIFT,
                    *self._gift_call(request, creator_id, tx_id, created_at, tz),
                    retry_on_disconnect=True,
                )
            )
            if reply[0] == b"S":
                creator_id = reply[1].decode()
                self._remember(room_id, creator_id)
            elif reply[0] == b"T":
                tz = reply[1].decode()
                self._remember_zone(sender.id, tz)
            else:
                return GiftReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
        raise StoreError("the room's creator or the sender's time zone kept changing")

    def _remember_zone(self, user_id: str, tz: str) -> None:
        if len(self._zones) >= _CREATOR_CACHE_SIZE:
            self._zones.clear()
        self._zones[user_id] = tz

    def _gift_call(
        self, request: GiftRequest, creator_id: str, tx_id: str, created_at: int, tz: str
    ) -> tuple[tuple[str, ...], tuple[str | bytes | int, ...]]:
        sender = request.sender
        room_id = request.room_id
        total = request.total_coins
        diamonds, platform = split_gift(total, self._share)
        supporter_of = creator_id or sender.id  # unknown room: the script stops first
        postings = gift_postings(
            sender_id=sender.id, creator_id=creator_id, total_coins=total, diamonds=diamonds
        )
        head = (
            orjson.dumps(
                {
                    "id": tx_id,
                    "kind": "gift",
                    "created_at": created_at,
                    "postings": _postings_json(postings),
                }
            )[:-1]
            + b',"meta":{"stream_id":'
        )
        tail = (
            b","
            + orjson.dumps(
                {
                    "room_id": room_id,
                    "gift_id": request.gift.id,
                    "count": request.count,
                    "sender_id": sender.id,
                    "creator_id": creator_id,
                    "key": request.key,
                }
            )[1:]
            + b"}"
        )
        members = orjson.dumps(
            {
                "tx": tx_id,
                "room_id": room_id,
                "creator_id": creator_id,
                "gift_id": request.gift.id,
                "count": request.count,
                "coins": total,
                "diamonds": diamonds,
                "created_at": created_at,
            }
        )[1:-1]
        keys = (
            gift_key(sender.id, request.key),
            wallet_key(sender.id),
            room_key(room_id),
            # unknown room: any key of the sender's slot; the script stops at NotFound
            wallet_key(creator_id) if creator_id else wallet_key(sender.id),
            leaderboard_key(room_id),
            leaderboard_users_key(room_id),
            SYSTEM_BALANCES,
            OUTBOX,
            # the room's activity totals, written in the same script
            stream_stats_key(room_id),
            goal_key(room_id),
            supporters_key(supporter_of, "all"),
            supporters_key(supporter_of, utc_day(created_at)),
            supporter_profiles_key(supporter_of),
            # the money rules: the sender's account, the creator's earnings
            account_key(sender.id),
            earnings_hours_key(supporter_of),
            earnings_streams_key(supporter_of),
        )
        policy = self._policy
        day, month = local_periods(created_at, tz)
        args = (
            request.fingerprint(),
            sender.id,
            _flag(sender.adult),
            creator_id,
            total,
            diamonds,
            platform,
            orjson.dumps(sender.public()),
            head,
            tail,
            members,
            self._ttl,
            request.count,
            DAILY_SUPPORTERS_TTL,
            created_at,
            tz,
            day,
            month,
            policy.daily_spend_cap,
            policy.monthly_spend_cap,
            policy.gift_rate_per_minute,
            policy.gift_burst,
            created_at // HOUR_MS,
            room_id,
        )
        return keys, args

    async def _creator_of(self, room_id: str) -> str:
        value = await self._batcher.execute("HGET", room_key(room_id), "creator_id")
        if value is None:
            return ""
        creator_id: str = value.decode()
        self._remember(room_id, creator_id)
        return creator_id

    def _remember(self, room_id: str, creator_id: str) -> None:
        if len(self._creators) >= _CREATOR_CACHE_SIZE:
            self._creators.clear()
        if creator_id:
            self._creators[room_id] = creator_id

    async def balance(self, user_id: str) -> Balance:
        """Coins, diamonds and debt; zero for a user never seen."""
        coins, diamonds, debt = await self._batcher.execute(
            "HMGET", wallet_key(user_id), "coin", "diamond", "debt"
        )
        return Balance(coins=int(coins or 0), diamonds=int(diamonds or 0), debt=-int(debt or 0))


def room_from_hash(room_id: str, values: Sequence[Any]) -> Room:
    """A ``Room`` from a flat ``HGETALL`` reply of the room hash."""
    fields = {values[i].decode(): values[i + 1].decode() for i in range(0, len(values) - 1, 2)}
    ended = fields.get("ended_at", "")
    return Room(
        id=room_id,
        creator=orjson.loads(fields["creator"]),
        title=fields["title"],
        live=fields["live"] == "1",
        stream_id=int(fields["stream_id"]),
        started_at=int(fields["started_at"]) if fields.get("started_at") else None,
        ended_at=int(ended) if ended else None,
        overlay_key=fields["overlay_key"],
        creator_adult=fields["creator_adult"] == "1",
    )


class RedisRooms:
    """``Rooms`` over Redis: room hash plus the current stream's leaderboard."""

    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher

    async def go_live(self, *, room_id: str, creator: Profile, title: str) -> Room:
        """New room: stream 1 with a fresh overlay key. Same creator, ended: the next
        stream (title and creator profile refreshed, leaderboard emptied). Same
        creator, live: only the title changes. Another creator: ``Conflict``."""
        _check_id(room_id, "room id")
        _check_id(creator.id, "creator id")
        reply = _check_reply(
            await self._batcher.evalsha(
                _GO_LIVE,
                (room_key(room_id), leaderboard_key(room_id), leaderboard_users_key(room_id)),
                (
                    creator.id,
                    orjson.dumps(creator.public()),
                    _flag(creator.adult),
                    title,
                    now_ms(),
                    new_secret(),
                ),
                # going live again while live only sets the title: safe to resend
                retry_on_disconnect=True,
            )
        )
        return room_from_hash(room_id, reply[1:])

    async def end(self, room_id: str, *, by: Profile) -> Room:
        """``NotFound``; ``Forbidden`` unless ``by`` is the creator or an admin; an
        ended room is returned unchanged."""
        _check_id(room_id, "room id")
        reply = _check_reply(
            await self._batcher.evalsha(
                _END,
                (room_key(room_id),),
                (by.id, _flag(by.is_admin), now_ms()),
                retry_on_disconnect=True,
            )
        )
        return room_from_hash(room_id, reply[1:])

    async def get(self, room_id: str) -> Room | None:
        values = await self._batcher.execute("HGETALL", room_key(room_id))
        if not values:
            return None
        return room_from_hash(room_id, values)

    async def leaderboard(self, room_id: str, *, limit: int = 10) -> list[LeaderEntry]:
        """The current stream's gifters, coins descending, ties by user id; ``[]`` for
        an unknown room."""
        _check_limit(limit)
        reply = await self._batcher.evalsha(
            _LEADERBOARD,
            (leaderboard_key(room_id), leaderboard_users_key(room_id)),
            (limit,),
            retry_on_disconnect=True,
        )
        rows = [
            (reply[i].decode(), int(float(reply[i + 1])), reply[i + 2])
            for i in range(0, len(reply), 3)
        ]
        rows.sort(key=lambda row: (-row[1], row[0]))
        return [
            LeaderEntry(user=orjson.loads(user), coins=coins) for _, coins, user in rows[:limit]
        ]

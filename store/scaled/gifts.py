"""Sending a gift on the scaled engine: one call of ``gift.lua``.

The script checks everything (idempotency, room, ages, the sender's lock,
parental switch, rate and spending caps, funds) before its first write, then
moves the balances, appends the transaction (with its postings, as JSON) to the
ledger outbox, bumps the room's leaderboard, stream totals, goal and the
creator's supporters and earnings, and stores the receipt under the
idempotency key. Check order and messages are those of the embedded engine.
"""

from __future__ import annotations

from typing import Final

import orjson

from store.domain.accounts import MoneyPolicy
from store.domain.models import GiftReceipt, GiftRequest, utc_day
from store.domain.postings import gift_postings, split_gift
from store.errors import StoreError
from store.ids import new_id, now_ms
from store.scaled import keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script
from store.scaled.codec import flag, members, postings_json, spending_args
from store.scaled.keys import (
    SINGLE,
    KeyLayout,
    gift_key,
    room_key,
    supporters_key,
    user_key,
    wallet_key,
)

_GIFT: Final = load_script("gift")
CACHE_SIZE: Final = 100_000
"""Room creators and sender time zones remembered (a full cache starts over)."""
DAILY_SUPPORTERS_TTL: Final = 3 * 86_400
"""A day's supporters are kept a little past the day (time zones, late readers)."""


class GiftSender:
    """Calls ``gift.lua`` with the keys it needs, guessed from two caches.

    A room's creator never changes once the room exists (another creator gets
    Conflict), so the creator's wallet key can be put in KEYS from a cache; the
    script verifies it and answers "S" if the cache is stale. Likewise a
    sender's time zone (for the day and month of spending caps): most never set
    one (UTC); the script answers "T" when the guess is wrong.
    """

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        share_percent: int,
        key_ttl: int,
        policy: MoneyPolicy,
        layout: KeyLayout = SINGLE,
    ) -> None:
        self._batcher = batcher
        self._layout = layout
        self._share = share_percent
        self._ttl = str(key_ttl)
        self._policy = policy
        self._creators: dict[str, str] = {}
        self._zones: dict[str, str] = {}

    async def send(self, request: GiftRequest) -> GiftReceipt:
        room_id, sender_id = request.room_id, request.sender.id
        creator_id = self._creators.get(room_id)
        if creator_id is None:
            creator_id = await self._creator_of(room_id)
        tx_id = new_id("tx")
        created_at = request.now if request.now is not None else now_ms()
        tz = self._zones.get(sender_id, "UTC")
        refusal = request.sale_refusal(created_at)
        for _ in range(4):
            reply = checked_reply(
                await self._batcher.evalsha(
                    _GIFT,
                    self._keys(request, creator_id, created_at),
                    (*self._args(request, creator_id, tx_id, created_at, tz), flag(bool(refusal))),
                    retry_on_disconnect=True,
                )
            )
            if reply[0] == b"S":
                creator_id = reply[1].decode()
                _remember(self._creators, room_id, creator_id)
            elif reply[0] == b"T":
                tz = reply[1].decode()
                _remember(self._zones, sender_id, tz)
            elif reply[0] == b"N" and refusal is not None:
                raise refusal
            else:
                return GiftReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
        raise StoreError("the room's creator or the sender's time zone kept changing")

    async def _creator_of(self, room_id: str) -> str:
        value = await self._batcher.execute("HGET", room_key(room_id, keys.ROOM), "creator_id")
        if value is None:
            return ""
        creator_id: str = value.decode()
        _remember(self._creators, room_id, creator_id)
        return creator_id

    def _keys(self, request: GiftRequest, creator_id: str, created_at: int) -> tuple[str, ...]:
        sender_id, room_id = request.sender.id, request.room_id
        supporter_of = creator_id or sender_id  # unknown room: the script stops first
        wallet = wallet_key(sender_id)
        return (
            gift_key(sender_id, request.key),
            wallet,
            room_key(room_id, keys.ROOM),
            # unknown room: any key of the sender's slot; the script stops at NotFound
            wallet_key(creator_id) if creator_id else wallet_key(sender_id),
            room_key(room_id, keys.LEADERBOARD),
            room_key(room_id, keys.LEADERBOARD_PROFILES),
            self._layout.balances(wallet),
            self._layout.outbox(wallet),
            # the room's activity totals, written in the same script
            room_key(room_id, keys.STREAM_STATS),
            room_key(room_id, keys.GOAL),
            supporters_key(supporter_of, "all"),
            supporters_key(supporter_of, utc_day(created_at)),
            user_key(supporter_of, keys.SUPPORTER_PROFILES),
            # the money rules: the sender's account, the creator's earnings
            user_key(sender_id, keys.ACCOUNT),
            user_key(supporter_of, keys.EARNINGS_HOURS),
            user_key(supporter_of, keys.EARNINGS_STREAMS),
        )

    def _args(
        self, request: GiftRequest, creator_id: str, tx_id: str, created_at: int, tz: str
    ) -> tuple[Arg, ...]:
        sender = request.sender
        room_id = request.room_id
        total = request.total_coins
        diamonds, platform = split_gift(total, self._share)
        postings = gift_postings(
            sender_id=sender.id, creator_id=creator_id, total_coins=total, diamonds=diamonds
        )
        head = (
            orjson.dumps(
                {
                    "id": tx_id,
                    "kind": "gift",
                    "created_at": created_at,
                    "postings": postings_json(postings),
                }
            )[:-1]
            + b',"meta":{"stream_id":'
        )
        tail = (
            b","
            + orjson.dumps(
                {
                    "room_id": room_id,
                    **request.meta(),
                    "sender_id": sender.id,
                    "creator_id": creator_id,
                    "key": request.key,
                }
            )[1:]
            + b"}"
        )
        receipt = members(
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
        )
        return (
            request.fingerprint(),
            sender.id,
            flag(sender.adult),
            creator_id,
            total,
            diamonds,
            platform,
            orjson.dumps(sender.public()),
            head,
            tail,
            receipt,
            self._ttl,
            request.count,
            DAILY_SUPPORTERS_TTL,
            created_at,
            *spending_args(self._policy, created_at, tz),
            room_id,
        )


def _remember(cache: dict[str, str], key: str, value: str) -> None:
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    if value:
        cache[key] = value

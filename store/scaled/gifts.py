"""Sending a gift on the scaled engine: one call of ``gift.lua`` on a single Redis.

The script checks everything (idempotency, room, ages, the sender's lock,
parental switch, rate and spending caps, funds) before its first write, then
moves the balances, appends the transaction (with its postings, as JSON) to the
ledger outbox, bumps the room's leaderboard, stream totals, goal and the
creator's supporters and earnings, and stores the receipt under the
idempotency key. Check order and messages are those of the embedded engine.

On a Redis Cluster the sender, the creator and the room are in different slots,
so the same gift is three single-slot scripts keyed by its transaction id
(docs/SCALING.md, "A cross-shard gift"): ``gift_debit.lua`` in the sender's slot
(every check, the debit, the whole transaction to that slot's outbox with a
``gift`` field describing the rest, the receipt), then ``gift_credit.lua`` in
the creator's slot and ``room_gift.lua`` in the room's, each applied once by a
marker. The node runs the last two at once after the debit, then publishes the
gift's event, which sets the SHOWN flag of the room-step marker; the settle group
of the outboxes (``store.scaled.outbox.SettleSweeper``) runs them again for every
entry, and publishes the event of a gift never shown (``GiftStep.late_hit``),
which finishes the gift of a node that died in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from protocol import events
from store.domain.accounts import MoneyPolicy
from store.domain.models import ComboHit, GiftReceipt, GiftRequest, ShownGift, utc_day
from store.domain.postings import gift_postings, split_gift
from store.domain.rules import HOUR_MS
from store.errors import StoreError
from store.ids import new_id, now_ms
from store.scaled import keys
from store.scaled.client import Arg, CommandBatcher, checked_reply, load_script, text
from store.scaled.codec import (
    combo_member,
    flag,
    gift_heads,
    members,
    postings_json,
    spending_args,
)
from store.scaled.keys import (
    SINGLE,
    KeyLayout,
    channel_name,
    credit_marker_key,
    gift_key,
    room_key,
    room_marker_key,
    supporters_key,
    throttle_key,
    user_key,
    wallet_key,
)

log = logging.getLogger(__name__)

_GIFT: Final = load_script("gift")
_GIFT_DEBIT: Final = load_script("gift_debit")
_GIFT_CREDIT: Final = load_script("gift_credit")
_ROOM_GIFT: Final = load_script("room_gift")
STEP_MARKER_TTL: Final = 86_400
"""How long a gift's credit and room-step markers are kept: far above the settle
group's lag (alert on that lag in minutes)."""
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
    one (UTC); the script answers "T" when the guess is wrong. On a cluster
    (``layout.cluster``) the room's facts are read for every gift instead, and
    the gift is the three scripts of the module docstring.
    """

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        share_percent: int,
        key_ttl: int,
        policy: MoneyPolicy,
        layout: KeyLayout = SINGLE,
        history: tuple[int, int] | None = None,
    ) -> None:
        self._batcher = batcher
        self._layout = layout
        self._history = history
        """The rooms' history size and TTL (s), as the broker keeps them: given, a
        gift's event can go out from its own script (``send_shown``)."""
        self._share = share_percent
        self._ttl = str(key_ttl)
        self._policy = policy
        self._creators: dict[str, str] = {}
        self._zones: dict[str, str] = {}

    async def send(self, request: GiftRequest) -> GiftReceipt:
        return (await self.send_shown(request)).receipt

    async def send_shown(
        self,
        request: GiftRequest,
        *,
        sender: Mapping[str, Any] | None = None,
        window_ms: int = 0,
        board: tuple[int, int] | None = None,
    ) -> ShownGift:
        """Send the gift; with ``sender`` (the sender as the room sees it) on a
        single Redis, also publish its event within its combo in the same script,
        and with ``board`` (interval ms, entries) the room's leaderboard and goal
        after it unless announced within the interval (``store.roles.GiftShower``)."""
        room_id, sender_id = request.room_id, request.sender.id
        split = self._layout.cluster
        creator_id = ""
        if not split:
            creator_id = self._creators.get(room_id) or await self._creator_of(room_id)
        tx_id = new_id("tx")
        created_at = request.now if request.now is not None else now_ms()
        tz = self._zones.get(sender_id, "UTC")
        refusal = request.sale_refusal(created_at)
        show: tuple[tuple[str, ...], tuple[Arg, ...]] = ((), ())
        if sender is not None and not split and self._history is not None:
            show = self._show(request, sender, tx_id, window_ms, board)
        for _ in range(4):
            step: GiftStep | None = None
            if split:
                step, raw = await self._debit(request, tx_id, created_at, tz, refused=bool(refusal))
            else:
                raw = await self._batcher.evalsha(
                    _GIFT,
                    (*self._keys(request, creator_id, created_at), *show[0]),
                    (
                        *self._args(request, creator_id, tx_id, created_at, tz),
                        flag(bool(refusal)),
                        *show[1],
                    ),
                    retry_on_disconnect=True,
                )
            reply = checked_reply(raw)
            if reply[0] == b"S":
                creator_id = reply[1].decode()
                _remember(self._creators, room_id, creator_id)
            elif reply[0] == b"T":
                tz = reply[1].decode()
                _remember(self._zones, sender_id, tz)
            elif reply[0] == b"N" and refusal is not None:
                raise refusal
            else:
                if step is not None and reply[0] == b"OK":
                    await self._finish(step)
                receipt = GiftReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
                return ShownGift(
                    receipt,
                    int(reply[2]) if len(reply) > 2 else None,
                    int(reply[3]) if len(reply) > 3 else None,
                )
        raise StoreError("the room's creator or the sender's time zone kept changing")

    def _show(
        self,
        request: GiftRequest,
        sender: Mapping[str, Any],
        tx_id: str,
        window_ms: int,
        board: tuple[int, int] | None,
    ) -> tuple[tuple[str, ...], tuple[Arg, ...]]:
        """``gift.lua``'s extra keys and arguments that publish the gift's event
        within its combo (as ``RedisRoomActivity.publish_gift`` would) and, with
        ``board``, the room's leaderboard and goal (as ``announce_board``)."""
        assert self._history is not None
        room_id, gift = request.room_id, request.gift
        diamonds, _ = split_gift(request.total_coins, self._share)
        event = events.gift(
            tx=tx_id,
            gift=gift.public(),
            sender=sender,
            count=request.count,
            combo={},
            diamonds=diamonds,
        )
        del event["combo"]  # the script adds it, with the combo's state
        head, final_head = gift_heads(event)
        size, ttl = self._history
        shown_keys: tuple[str, ...] = (
            room_key(room_id, keys.COMBOS),
            room_key(room_id, keys.COMBO_DUE),
            room_key(room_id, keys.SEQ),
            room_key(room_id, keys.HISTORY),
            keys.COMBO_ROOMS,
        )
        shown_args: tuple[Arg, ...] = (
            channel_name(room_id),
            size,
            ttl,
            tx_id,
            combo_member(request.sender.id, gift.id),
            window_ms if gift.streakable and window_ms > 0 else 0,
            head,
            final_head,
        )
        if board is None:
            return shown_keys, shown_args
        return (
            (*shown_keys, throttle_key(room_id, keys.BOARD_LEASE)),
            (*shown_args, *board),
        )

    async def _debit(
        self, request: GiftRequest, tx_id: str, created_at: int, tz: str, *, refused: bool
    ) -> tuple[GiftStep, Any]:
        """Cluster: the gift's first script (``gift_debit.lua``, the sender's slot),
        given the room's facts read just before; the step that finishes the gift
        once it committed, and the script's raw reply."""
        creator_id, live, adult, stream_id = await self._room_facts(request.room_id)
        step = self._step(request, creator_id, stream_id, tx_id, created_at)
        raw = await self._batcher.evalsha(
            _GIFT_DEBIT,
            self._debit_keys(request),
            (
                *self._args(request, creator_id, tx_id, created_at, tz),
                flag(refused),
                live,
                adult,
                stream_id,
                step.encode(),
            ),
            retry_on_disconnect=True,
        )
        return step, raw

    async def _room_facts(self, room_id: str) -> tuple[str, str, str, str]:
        """Cluster: the room's creator, live flag, creator's adulthood and stream,
        read now from the room's slot (the debit cannot read another slot). Read
        for every gift, so a gift after a stream ended (on any node) is refused;
        one racing the end within this read's round trip is accepted, and booked
        in the stream that just ended."""
        values = await self._batcher.execute(
            "HMGET",
            room_key(room_id, keys.ROOM),
            "creator_id",
            "live",
            "creator_adult",
            "stream_id",
        )
        creator, live, adult, stream = (text(v) if v is not None else "" for v in values)
        return creator, live, adult, stream

    async def _finish(self, step: GiftStep) -> None:
        """Cluster: the credit and the room step, right after the debit. If either
        fails the gift stays committed: the outbox's settle group finishes it."""
        try:
            await finish_gift(self._batcher, step)
        except StoreError as exc:
            log.warning("gift %s left to the settle group: %s", step.tx_id, exc.message)

    def _step(
        self, request: GiftRequest, creator_id: str, stream_id: str, tx_id: str, created_at: int
    ) -> GiftStep:
        total = request.total_coins
        diamonds, _ = split_gift(total, self._share)
        return GiftStep(
            tx_id=tx_id,
            creator_id=creator_id,
            room_id=request.room_id,
            sender_id=request.sender.id,
            profile=orjson.dumps(request.sender.public()).decode(),
            total=total,
            diamonds=diamonds,
            count=request.count,
            stream_id=stream_id,
            created_at=created_at,
            gift=orjson.dumps(request.gift.public()).decode(),
        )

    def _debit_keys(self, request: GiftRequest) -> tuple[str, ...]:
        sender_id = request.sender.id
        wallet = wallet_key(sender_id)
        return (
            gift_key(sender_id, request.key),
            wallet,
            user_key(sender_id, keys.ACCOUNT),
            self._layout.balances(wallet),
            self._layout.outbox(wallet),
        )

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


@dataclass(frozen=True, slots=True, kw_only=True)
class GiftStep:
    """What finishes a gift after its debit on a cluster (its credit and its room
    step), as the debit wrote it into the outbox entry's ``gift`` field."""

    tx_id: str
    creator_id: str
    room_id: str
    sender_id: str
    profile: str
    """The sender's public profile (JSON), for the leaderboard and supporters."""
    total: int
    diamonds: int
    count: int
    stream_id: str
    created_at: int
    gift: str = ""
    """The gift as events carry it (JSON), for its event if its node died before
    sending it; "" in entries written before it was kept (not shown then)."""

    def encode(self) -> bytes:
        return orjson.dumps(
            [
                self.tx_id,
                self.creator_id,
                self.room_id,
                self.sender_id,
                self.profile,
                self.total,
                self.diamonds,
                self.count,
                self.stream_id,
                self.created_at,
                self.gift,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> GiftStep:
        """The step of an outbox entry's ``gift`` field (``ValueError`` if malformed)."""
        try:
            tx, creator, room, sender, profile, total, diamonds, count, stream, at, *rest = (
                orjson.loads(raw)
            )
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed gift step: {exc}") from None
        gift = rest[0] if rest else ""
        step = cls(
            tx_id=tx,
            creator_id=creator,
            room_id=room,
            sender_id=sender,
            profile=profile,
            total=total,
            diamonds=diamonds,
            count=count,
            stream_id=stream,
            created_at=at,
            gift=gift,
        )
        texts = (step.tx_id, step.creator_id, step.room_id, step.sender_id, step.profile)
        numbers = (step.total, step.diamonds, step.count, step.created_at)
        if not all(isinstance(v, str) and v for v in texts) or not isinstance(stream, str):
            raise ValueError("malformed gift step: an id is missing")
        if not isinstance(gift, str) or len(rest) > 1:
            raise ValueError("malformed gift step: a bad gift")
        try:  # the late event's parts (``late_hit``)
            views = [orjson.loads(view) for view in (profile, gift) if view]
        except orjson.JSONDecodeError:
            views = []
        if len(views) != 1 + bool(gift) or not all(isinstance(v, dict) for v in views):
            raise ValueError("malformed gift step: the sender or the gift is not a JSON object")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
            raise ValueError("malformed gift step: a number is not an integer")
        return step

    def late_hit(self) -> ComboHit:
        """The gift's event as the settle group publishes it when its node died
        before doing so: the gift as it was sent, a combo of its own (ended at once),
        the sender as the gift's profile (without equipped looks)."""
        event = events.gift(
            tx=self.tx_id,
            gift=orjson.loads(self.gift),
            sender=orjson.loads(self.profile),
            count=self.count,
            combo={},
            diamonds=self.diamonds,
        )
        del event["combo"]  # the engine adds it
        return ComboHit(
            event=event,
            stream_id=int(self.stream_id or 0),
            sender_id=self.sender_id,
            gift_id=str(event["gift"].get("id", "")),
            streakable=False,
            count=self.count,
            coins=self.total,
            diamonds=self.diamonds,
        )


@dataclass(frozen=True, slots=True)
class Finished:
    """What ``finish_gift`` did and found."""

    credited: bool
    """The creator was credited by this call."""
    booked: bool
    """The room's totals and leaderboard were booked by this call."""
    shown: bool
    """The gift's event had gone out (its node's, or the settle group's)."""


async def finish_gift(
    batcher: CommandBatcher, step: GiftStep, *, marker_ttl: int = STEP_MARKER_TTL
) -> Finished:
    """Run a gift's credit (creator's slot) and room step (room's slot) at once;
    each is applied once whoever runs it how often."""
    creator, room = step.creator_id, step.room_id
    args: tuple[Arg, ...] = (
        marker_ttl,
        step.sender_id,
        step.profile,
        step.total,
        step.diamonds,
        step.count,
        step.stream_id,
        room,
        step.created_at // HOUR_MS,
        DAILY_SUPPORTERS_TTL,
    )
    credited, booked = await asyncio.gather(
        batcher.evalsha(
            _GIFT_CREDIT,
            (
                credit_marker_key(creator, step.tx_id),
                wallet_key(creator),
                supporters_key(creator, "all"),
                supporters_key(creator, utc_day(step.created_at)),
                user_key(creator, keys.SUPPORTER_PROFILES),
                user_key(creator, keys.EARNINGS_HOURS),
                user_key(creator, keys.EARNINGS_STREAMS),
            ),
            args,
            retry_on_disconnect=True,
        ),
        batcher.evalsha(
            _ROOM_GIFT,
            (
                room_marker_key(room, step.tx_id),
                room_key(room, keys.ROOM),
                room_key(room, keys.LEADERBOARD),
                room_key(room, keys.LEADERBOARD_PROFILES),
                room_key(room, keys.STREAM_STATS),
                room_key(room, keys.GOAL),
            ),
            args,
            retry_on_disconnect=True,
        ),
    )
    return Finished(credited=credited == 1, booked=booked[0] == 1, shown=booked[1] == 1)


def _remember(cache: dict[str, str], key: str, value: str) -> None:
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    if value:
        cache[key] = value

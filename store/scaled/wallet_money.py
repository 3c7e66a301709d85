"""The scaled engine's wallet: ``store.redis_wallet.RedisWallet`` (gifts,
purchases, balances) plus the money rules beyond them: limits, refunds and
debt, withdrawals, earnings, rate limits and webhook replay claims.

Every operation that moves money or checks a rule is one Lua script (see
``store/lua``): every check before its first write, every key in KEYS, the
ledger outbox entry appended in the same script. The semantics, check orders
and messages are those of ``store.base.Wallet`` and ``store.domain.rules``, shared
with the embedded engine (the conformance suite runs both).

Keys (besides those of ``store.scaled.wallet``)::

    live:{u:<user>}:a                 hash    limits and account state: caps, tz,
                                              parental switches, PIN hash, purchases,
                                              verification, spending of the day and
                                              month, gift rate bucket, withdrawals of
                                              the day, pending and paid diamonds
    live:{u:<user>}:eh                hash    diamonds earned per hour
    live:{u:<user>}:es                hash    "<stream>|<room>" -> diamonds earned
    live:{u:<user>}:rl                hash    rate-limit buckets ("<action>:t", ":at")
    live:{u:<user>}:dk:<digest>       string  debt settlement idempotency key
    live:{u:<user>}:wk:<digest>       string  withdrawal idempotency key -> its id
    live:{u:<user>}:wd:<id>           hash    one withdrawal
    live:{u:<user>}:wds               zset    the user's withdrawal ids (by id)
    live:{pay:<provider>:<id>}:rev    string  the reversal of a purchase
    live:{sys}:wdx                    hash    withdrawal id -> user id
    live:{claim:<scope>}:<digest>     string  a one-time claim (webhook replays)

The wallet hash ``live:{u:<user>}:w`` also holds ``debt``: the hot balance of
``user:<user>:debt`` (never above zero).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Final

import orjson

from store.domain.accounts import (
    PENDING,
    PLATFORM_WRITEOFF,
    REVERSAL_KINDS,
    SETTLED_PAID,
    SETTLEMENT_METHODS,
    WITHDRAWAL_OUTCOMES,
    Account,
    DebtReceipt,
    DebtSettlement,
    Earnings,
    LimitsRequest,
    MoneyPolicy,
    RefundReceipt,
    RefundRequest,
    StreamEarnings,
    UserLimits,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
    debt_account,
)
from store.domain.models import DIAMOND, WORLD, coins_account, diamonds_account, utc_day
from store.domain.postings import withdrawal_postings, withdrawal_settle_postings
from store.domain.rules import (
    MAX_CLAWBACK_GIFTS,
    PAYMENT_NOT_FOUND,
    WITHDRAWAL_NOT_FOUND,
    GiftSpend,
    check_limits,
    check_pin_format,
    first_held_hour,
    hash_pin,
    held_diamonds,
    pin_salt,
)
from store.errors import BadRequest, NotFound, StoreError
from store.ids import new_id, now_ms
from store.roles import Ledger
from store.scaled.client import CommandBatcher, load_script
from store.scaled.wallet import (
    OUTBOX,
    PREFIX,
    SYSTEM_BALANCES,
    RedisWallet,
    _check_id,
    _check_key,
    _check_limit,
    _check_reply,
    _flag,
    _postings_json,
    account_key,
    earnings_hours_key,
    earnings_streams_key,
    payment_key,
    wallet_key,
)

WITHDRAWAL_OWNERS: Final = f"{PREFIX}:{{sys}}:wdx"
MAX_TEXT: Final = 500
_HISTORY_PAGE: Final = 200

_REFUND = load_script("refund")
_SETTLE_DEBT = load_script("settle_debt")
_WITHDRAW = load_script("withdraw")
_SETTLE_WITHDRAWAL = load_script("settle_withdrawal")
_LIMITS = load_script("limits")
_RATE = load_script("rate")

_ACCOUNT_FIELDS: Final = (
    "daily_cap",
    "monthly_cap",
    "tz",
    "purchases_off",
    "gifting_off",
    "pin",
    "purchases",
    "verified_at",
    "verified_by",
    "day",
    "day_spent",
    "month",
    "month_spent",
)


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=16).hexdigest()


def reversal_key(provider: str, payment_id: str) -> str:
    return payment_key(provider, payment_id) + ":rev"


def settle_key(user_id: str, key: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:dk:{_digest(key)}"


def withdrawal_key(user_id: str, key: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:wk:{_digest(key)}"


def withdrawal_record_key(user_id: str, withdrawal_id: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:wd:{withdrawal_id}"


def withdrawals_key(user_id: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:wds"


def rate_key(user_id: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:rl"


def claim_key(scope: str, key: str) -> str:
    return f"{PREFIX}:{{claim:{scope}}}:{_digest(key)}"


def _now(value: int | None) -> int:
    return value if value is not None else now_ms()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_int(value: Any) -> int | None:
    text = _text(value) if value is not None else ""
    return int(text) if text else None


def _check_text(value: str, what: str) -> None:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{what} must be at most {MAX_TEXT} characters")


def _members(value: dict[str, Any]) -> bytes:
    """A JSON object's members without the braces."""
    return orjson.dumps(value)[1:-1]


def _head(tx_id: str, kind: str, created_at: int) -> bytes:
    """An outbox entry up to its postings array: ``{"id":…,…,"postings":[``."""
    return orjson.dumps({"id": tx_id, "kind": kind, "created_at": created_at})[:-1] + (
        b',"postings":['
    )


def withdrawal_from_hash(values: Sequence[Any], *, replayed: bool = False) -> Withdrawal:
    fields = {_text(values[i]): _text(values[i + 1]) for i in range(0, len(values) - 1, 2)}
    return Withdrawal(
        id=fields["id"],
        user_id=fields["user_id"],
        diamonds=int(fields["diamonds"]),
        status=fields["status"],
        method=fields["method"],
        created_at=int(fields["created_at"]),
        expected_at=int(fields["expected_at"]),
        settled_at=_opt_int(fields.get("settled_at")),
        reference=fields.get("reference", ""),
        reason=fields.get("reason", ""),
        tx=fields["tx"],
        settle_tx=fields.get("settle_tx", ""),
        replayed=replayed,
    )


class RedisMoneyWallet(RedisWallet):
    """The scaled engine's ``Wallet``: see ``store.base.Wallet``."""

    def __init__(
        self,
        batcher: CommandBatcher,
        *,
        ledger: Ledger,
        creator_share_percent: int = 50,
        policy: MoneyPolicy | None = None,
    ) -> None:
        super().__init__(batcher, creator_share_percent=creator_share_percent, policy=policy)
        self._ledger = ledger
        """Where a refund finds the gifts the refunded coins paid for."""

    # -- accounts -------------------------------------------------------------

    async def account(self, user_id: str) -> Account:
        _check_id(user_id, "user id")
        return (await self._account(user_id))[0]

    async def _account(self, user_id: str) -> tuple[Account, str]:
        values, balance = await asyncio.gather(
            self._batcher.execute("HMGET", account_key(user_id), *_ACCOUNT_FIELDS),
            self.balance(user_id),
        )
        texts = [_text(v) if v is not None else "" for v in values]
        raw = dict(zip(_ACCOUNT_FIELDS, texts, strict=True))
        account = Account(
            user_id=user_id,
            coins=balance.coins,
            diamonds=balance.diamonds,
            debt=balance.debt,
            limits=UserLimits(
                daily_cap=_opt_int(raw["daily_cap"]),
                monthly_cap=_opt_int(raw["monthly_cap"]),
                purchases_enabled=raw["purchases_off"] != "1",
                gifting_enabled=raw["gifting_off"] != "1",
                tz=raw["tz"] or "UTC",
            ),
            pin_set=bool(raw["pin"]),
            purchases=int(raw["purchases"] or 0),
            verified_at=_opt_int(raw["verified_at"]),
            verified_by=raw["verified_by"],
            spent_day=raw["day"],
            day_spent=int(raw["day_spent"] or 0),
            spent_month=raw["month"],
            month_spent=int(raw["month_spent"] or 0),
        )
        return account, raw["pin"]

    async def set_limits(self, request: LimitsRequest) -> Account:
        _check_id(request.user_id, "user id")
        limits = request.limits
        check_limits(
            limits,
            policy_daily=self._policy.daily_spend_cap,
            policy_monthly=self._policy.monthly_spend_cap,
        )
        if request.new_pin:
            check_pin_format(request.new_pin)
        stored_pin = await self._batcher.execute("HGET", account_key(request.user_id), "pin")
        stored = _text(stored_pin) if stored_pin is not None else ""
        # hashing is slow on purpose: never on the event loop
        candidate = ""
        if stored and request.pin is not None:
            candidate = await asyncio.to_thread(hash_pin, request.pin, pin_salt(stored))
        new_hash = ""
        if request.new_pin:
            new_hash = await asyncio.to_thread(hash_pin, request.new_pin)
        _check_reply(
            await self._batcher.evalsha(
                _LIMITS,
                (account_key(request.user_id),),
                (
                    "" if limits.daily_cap is None else limits.daily_cap,
                    "" if limits.monthly_cap is None else limits.monthly_cap,
                    _flag(limits.purchases_enabled),
                    _flag(limits.gifting_enabled),
                    limits.tz,
                    candidate,
                    _flag(request.pin is not None),
                    _flag(request.new_pin is not None),
                    new_hash,
                ),
                retry_on_disconnect=True,
            )
        )
        return await self.account(request.user_id)

    async def set_verified(self, user_id: str, *, verified: bool, by: str) -> Account:
        _check_id(user_id, "user id")
        at = str(now_ms()) if verified else ""
        await self._batcher.execute(
            "HSET", account_key(user_id), "verified_at", at, "verified_by", by
        )
        return await self.account(user_id)

    # -- refunds and debt -----------------------------------------------------

    async def refund(self, request: RefundRequest) -> RefundReceipt:
        _check_id(request.provider, "payment provider")
        _check_key(request.payment_id, "payment id")
        if request.kind not in REVERSAL_KINDS:
            raise BadRequest("kind must be refund or chargeback")
        _check_text(request.reason, "reason")
        raw = await self._batcher.execute("GET", payment_key(request.provider, request.payment_id))
        purchase = orjson.loads(raw[32:]) if raw is not None else {}
        user_id = purchase.get("user_id") or ""
        if not user_id:
            raise NotFound(PAYMENT_NOT_FOUND)
        tx_id, now = new_id("tx"), _now(request.now)
        for _ in range(3):
            gifts: list[GiftSpend] = []
            coins = await self._batcher.execute("HGET", wallet_key(user_id), "coin")
            if int(coins or 0) < int(purchase["coins"]):
                gifts = await self._gifts_after(user_id, purchase["tx"])
            reply = _check_reply(
                await self._batcher.evalsha(
                    _REFUND,
                    *self._refund_call(request, user_id, gifts, tx_id, now),
                    retry_on_disconnect=True,
                )
            )
            if reply[0] != b"S":
                return RefundReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")
            user_id = _text(reply[1])
        raise StoreError("the refunded purchase kept changing its user")

    def _refund_call(
        self,
        request: RefundRequest,
        user_id: str,
        gifts: list[GiftSpend],
        tx_id: str,
        now: int,
    ) -> tuple[tuple[str, ...], tuple[str | bytes | int, ...]]:
        creators: list[str] = []
        for gift in gifts:
            if gift.creator_id not in creators:
                creators.append(gift.creator_id)
        number = {creator: n for n, creator in enumerate(creators, start=1)}
        keys = (
            reversal_key(request.provider, request.payment_id),
            payment_key(request.provider, request.payment_id),
            wallet_key(user_id),
            SYSTEM_BALANCES,
            OUTBOX,
            *(wallet_key(creator) for creator in creators),
        )
        args: list[str | bytes | int] = [
            request.fingerprint(),
            user_id,
            _head(tx_id, request.kind, now),
            _members(
                {
                    "user_id": user_id,
                    "provider": request.provider,
                    "payment_id": request.payment_id,
                    "reason": request.reason,
                }
            ),
            _members(
                {
                    "tx": tx_id,
                    "kind": request.kind,
                    "user_id": user_id,
                    "provider": request.provider,
                    "payment_id": request.payment_id,
                    "created_at": now,
                }
            ),
            orjson.dumps(coins_account(user_id)),
            orjson.dumps(debt_account(user_id)),
            len(creators),
        ]
        for creator in creators:
            args += [orjson.dumps(creator), orjson.dumps(diamonds_account(creator))]
        args.append(len(gifts))
        for gift in gifts:
            args += [number[gift.creator_id], gift.coins, gift.diamonds]
        return keys, tuple(args)

    async def _gifts_after(self, user_id: str, after_tx: str) -> list[GiftSpend]:
        """The user's gifts newer than ``after_tx``, newest first (at most
        ``MAX_CLAWBACK_GIFTS``), from the ledger (outbox included)."""
        coins = coins_account(user_id)
        gifts: list[GiftSpend] = []
        before: str | None = None
        while len(gifts) < MAX_CLAWBACK_GIFTS:
            page = await self._ledger.transactions(user_id, before=before, limit=_HISTORY_PAGE)
            for record in page:
                if record.id <= after_tx or len(gifts) >= MAX_CLAWBACK_GIFTS:
                    return gifts
                spent = -sum(p.amount for p in record.postings if p.account == coins)
                creator = record.meta.get("creator_id")
                if record.kind != "gift" or spent <= 0 or not isinstance(creator, str):
                    continue
                diamonds = sum(
                    p.amount for p in record.postings if p.asset == DIAMOND and p.amount > 0
                )
                gifts.append(GiftSpend(record.id, creator, spent, diamonds))
            if len(page) < _HISTORY_PAGE:
                break
            before = page[-1].id
        return gifts

    async def settle_debt(self, request: DebtSettlement) -> DebtReceipt:
        _check_id(request.user_id, "user id")
        _check_key(request.key, "idempotency key")
        if request.method not in SETTLEMENT_METHODS:
            raise BadRequest("method must be paid or written_off")
        _check_text(request.note, "note")
        tx_id, now = new_id("tx"), _now(request.now)
        meta = orjson.dumps(
            {
                "user_id": request.user_id,
                "method": request.method,
                "by": request.by,
                "note": request.note,
                "key": request.key,
            }
        )
        members = _members(
            {
                "tx": tx_id,
                "user_id": request.user_id,
                "method": request.method,
                "created_at": now,
            }
        )
        reply = _check_reply(
            await self._batcher.evalsha(
                _SETTLE_DEBT,
                (
                    settle_key(request.user_id, request.key),
                    wallet_key(request.user_id),
                    SYSTEM_BALANCES,
                    OUTBOX,
                ),
                (
                    request.fingerprint(),
                    _head(tx_id, "debt_settlement", now),
                    meta,
                    WORLD if request.method == SETTLED_PAID else PLATFORM_WRITEOFF,
                    orjson.dumps(debt_account(request.user_id)),
                    members,
                ),
                retry_on_disconnect=True,
            )
        )
        return DebtReceipt(**orjson.loads(reply[1]), replayed=reply[0] == b"R")

    # -- withdrawals and earnings ---------------------------------------------

    async def reserve_withdrawal(self, request: WithdrawalRequest) -> Withdrawal:
        user_id = request.user_id
        _check_id(user_id, "user id")
        _check_key(request.key, "idempotency key")
        _check_id(request.method, "payout method")
        if request.diamonds < 1:
            raise BadRequest("diamonds must be at least 1")
        policy = self._policy
        withdrawal_id, tx_id, now = new_id("wd"), new_id("tx"), _now(request.now)
        withdrawal = Withdrawal(
            id=withdrawal_id,
            user_id=user_id,
            diamonds=request.diamonds,
            status=PENDING,
            method=request.method,
            created_at=now,
            expected_at=now + policy.payout_seconds * 1_000,
            settled_at=None,
            reference="",
            reason="",
            tx=tx_id,
            settle_tx="",
        )
        entry = orjson.dumps(
            {
                "id": tx_id,
                "kind": "withdrawal",
                "created_at": now,
                "postings": _postings_json(
                    withdrawal_postings(user_id=user_id, diamonds=request.diamonds)
                ),
                "meta": {
                    "withdrawal_id": withdrawal_id,
                    "user_id": user_id,
                    "diamonds": request.diamonds,
                    "method": request.method,
                },
            }
        )
        today = utc_day(now)
        fields: list[str | bytes | int] = []
        for name, value in (
            ("id", withdrawal_id),
            ("user_id", user_id),
            ("diamonds", request.diamonds),
            ("status", PENDING),
            ("method", request.method),
            ("created_at", now),
            ("expected_at", withdrawal.expected_at),
            ("settled_at", ""),
            ("reference", ""),
            ("reason", ""),
            ("tx", tx_id),
            ("settle_tx", ""),
            ("day", today),
        ):
            fields += [name, value]
        reply = _check_reply(
            await self._batcher.evalsha(
                _WITHDRAW,
                (
                    withdrawal_key(user_id, request.key),
                    wallet_key(user_id),
                    account_key(user_id),
                    earnings_hours_key(user_id),
                    withdrawal_record_key(user_id, withdrawal_id),
                    withdrawals_key(user_id),
                    OUTBOX,
                    WITHDRAWAL_OWNERS,
                ),
                (
                    request.fingerprint(),
                    withdrawal_id,
                    user_id,
                    request.diamonds,
                    policy.withdrawal_min,
                    policy.withdrawal_daily_max,
                    today,
                    policy.hold_seconds,
                    first_held_hour(now, policy.hold_seconds),
                    entry,
                    *fields,
                ),
                retry_on_disconnect=True,
            )
        )
        if reply[0] == b"OK":
            return withdrawal
        first = await self._batcher.execute(
            "HGETALL", withdrawal_record_key(user_id, _text(reply[1]))
        )
        return withdrawal_from_hash(first, replayed=True)

    async def settle_withdrawal(self, request: WithdrawalSettlement) -> Withdrawal:
        _check_key(request.withdrawal_id, "withdrawal id")
        if request.status not in WITHDRAWAL_OUTCOMES:
            raise BadRequest("status must be paid or failed")
        _check_text(request.reference, "reference")
        _check_text(request.reason, "reason")
        current = await self.withdrawal(request.withdrawal_id)
        if current is None:
            raise NotFound(WITHDRAWAL_NOT_FOUND)
        tx_id, now = new_id("tx"), _now(request.now)
        paid = request.status == SETTLED_PAID
        entry = orjson.dumps(
            {
                "id": tx_id,
                "kind": f"withdrawal_{request.status}",
                "created_at": now,
                "postings": _postings_json(
                    withdrawal_settle_postings(
                        user_id=current.user_id, diamonds=current.diamonds, paid=paid
                    )
                ),
                "meta": {
                    "withdrawal_id": current.id,
                    "user_id": current.user_id,
                    "diamonds": current.diamonds,
                    "reference": request.reference,
                    "reason": request.reason,
                },
            }
        )
        reply = _check_reply(
            await self._batcher.evalsha(
                _SETTLE_WITHDRAWAL,
                (
                    withdrawal_record_key(current.user_id, current.id),
                    wallet_key(current.user_id),
                    account_key(current.user_id),
                    SYSTEM_BALANCES,
                    OUTBOX,
                ),
                (
                    request.status,
                    current.diamonds,
                    now,
                    request.reference,
                    request.reason,
                    tx_id,
                    entry,
                ),
                retry_on_disconnect=True,
            )
        )
        if reply[0] == b"S":  # cannot happen: a withdrawal's amount never changes
            raise StoreError("the withdrawal changed while it was being settled")
        return withdrawal_from_hash(reply[1:], replayed=reply[0] == b"R")

    async def withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        owner = await self._batcher.execute("HGET", WITHDRAWAL_OWNERS, withdrawal_id)
        if owner is None:
            return None
        values = await self._batcher.execute(
            "HGETALL", withdrawal_record_key(_text(owner), withdrawal_id)
        )
        return withdrawal_from_hash(values) if values else None

    async def withdrawals(
        self, user_id: str, *, before: str | None = None, limit: int = 50
    ) -> list[Withdrawal]:
        _check_limit(limit)
        top = "(" + before if before is not None else "+"
        ids = await self._batcher.execute(
            "ZREVRANGEBYLEX", withdrawals_key(user_id), top, "-", "LIMIT", 0, limit
        )
        records = await asyncio.gather(
            *(
                self._batcher.execute("HGETALL", withdrawal_record_key(user_id, _text(i)))
                for i in ids
            )
        )
        return [withdrawal_from_hash(values) for values in records if values]

    async def earnings(self, user_id: str, *, now: int | None = None) -> Earnings:
        at = _now(now)
        (diamonds, pending), hours_raw, streams_raw, state = await asyncio.gather(
            self._batcher.execute("HMGET", wallet_key(user_id), "diamond", "withdrawing"),
            self._batcher.execute("HGETALL", earnings_hours_key(user_id)),
            self._batcher.execute("HGETALL", earnings_streams_key(user_id)),
            self._batcher.execute("HMGET", account_key(user_id), "wd_paid", "verified_at"),
        )
        balance = int(diamonds or 0)
        hours = sorted(
            (int(hours_raw[i]), int(hours_raw[i + 1])) for i in range(0, len(hours_raw), 2)
        )
        held, next_release = held_diamonds(
            hours, now_ms=at, hold_seconds=self._policy.hold_seconds, balance=balance
        )
        streams: list[StreamEarnings] = []
        for i in range(0, len(streams_raw), 2):
            stream, _, room = _text(streams_raw[i]).partition("|")
            streams.append(StreamEarnings(room, int(stream), int(streams_raw[i + 1])))
        streams.sort(key=lambda s: (s.room_id, -s.stream_id))
        paid, verified_at = state
        return Earnings(
            user_id=user_id,
            balance=balance,
            held=held,
            withdrawable=balance - held,
            pending=int(pending or 0),
            paid=int(paid or 0),
            lifetime=sum(d for _, d in hours),
            next_release_at=next_release,
            hours=tuple(hours),
            streams=tuple(streams),
            verified=bool(verified_at),
        )

    # -- rate limits and claims -----------------------------------------------

    async def rate_limit(
        self, user_id: str, action: str, *, per_hour: int, burst: int, now: int | None = None
    ) -> None:
        _check_id(user_id, "user id")
        _check_id(action, "action")
        if per_hour < 1 or burst < 1:
            raise BadRequest("per_hour and burst must be at least 1")
        _check_reply(
            await self._batcher.evalsha(
                _RATE, (rate_key(user_id),), (action, per_hour, burst, _now(now))
            )
        )

    async def claim_once(self, scope: str, key: str, *, ttl_seconds: int) -> bool:
        _check_id(scope, "scope")
        _check_key(key, "key")
        if ttl_seconds < 1:
            raise BadRequest("ttl_seconds must be at least 1")
        reply = await self._batcher.execute(
            "SET", claim_key(scope, key), "1", "NX", "EX", ttl_seconds, retry_on_disconnect=False
        )
        return reply is not None

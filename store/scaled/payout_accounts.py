"""Creators' payout accounts and their withdrawals' provider state on the scaled
engine, in Redis beside the rest of the account (``store.scaled.keys``: the
creator's account hash per provider, the owner of each provider account, the
submissions, and per provider those not yet done).

Writes are ordered so that a crash between two of them leaves nothing wrong: the
owner claim before the account, a submission in the open set before it is
stored, and out of it only after it is stored as done.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import orjson

from store.domain import refusals
from store.domain.payout_accounts import DONE, PayoutAccount, PayoutSubmission
from store.scaled.client import CommandBatcher, text
from store.scaled.keys import (
    PAYOUT_OWNERS,
    PAYOUT_SUBMISSIONS,
    payout_account_key,
    payout_open_key,
)

_FIELDS: Final = ("account_id", "payouts_enabled", "details_submitted", "created_at", "updated_at")


class RedisPayoutAccounts:
    """``store.roles.PayoutAccounts`` in Redis."""

    def __init__(self, batcher: CommandBatcher) -> None:
        self._batcher = batcher

    async def link(self, account: PayoutAccount) -> PayoutAccount:
        execute = self._batcher.execute
        field = f"{account.provider}|{account.account_id}"
        await execute("HSETNX", PAYOUT_OWNERS, field, account.user_id)
        owner = await execute("HGET", PAYOUT_OWNERS, field)
        if owner is None or text(owner) != account.user_id:
            if await self.owner(account.provider, account.account_id) is not None:
                raise refusals.PAYOUT_ACCOUNT_TAKEN()
            # its last owner moved to another account: the claim is free
            await execute("HSET", PAYOUT_OWNERS, field, account.user_id)
        key = payout_account_key(account.user_id, account.provider)
        await execute("HSETNX", key, "created_at", account.created_at)
        await execute(
            "HSET",
            key,
            "account_id",
            account.account_id,
            "payouts_enabled",
            int(account.payouts_enabled),
            "details_submitted",
            int(account.details_submitted),
            "updated_at",
            account.updated_at,
        )
        stored = await self.get(account.user_id, account.provider)
        assert stored is not None
        return stored

    async def get(self, user_id: str, provider: str) -> PayoutAccount | None:
        values: list[Any] = await self._batcher.execute(
            "HMGET", payout_account_key(user_id, provider), *_FIELDS
        )
        if values[0] is None:
            return None
        account_id, enabled, submitted, created_at, updated_at = (
            text(v) if v is not None else "" for v in values
        )
        return PayoutAccount(
            user_id=user_id,
            provider=provider,
            account_id=account_id,
            payouts_enabled=enabled == "1",
            details_submitted=submitted == "1",
            created_at=int(created_at or 0),
            updated_at=int(updated_at or 0),
        )

    async def owner(self, provider: str, account_id: str) -> PayoutAccount | None:
        owner = await self._batcher.execute("HGET", PAYOUT_OWNERS, f"{provider}|{account_id}")
        if owner is None:
            return None
        account = await self.get(text(owner), provider)
        return account if account is not None and account.account_id == account_id else None

    async def save_submission(self, submission: PayoutSubmission) -> None:
        execute = self._batcher.execute
        document = orjson.dumps(dataclasses.asdict(submission))
        open_key = payout_open_key(submission.provider)
        if submission.state != DONE:
            await execute("ZADD", open_key, submission.updated_at, submission.withdrawal_id)
        await execute("HSET", PAYOUT_SUBMISSIONS, submission.withdrawal_id, document)
        if submission.state == DONE:
            await execute("ZREM", open_key, submission.withdrawal_id)

    async def submission(self, withdrawal_id: str) -> PayoutSubmission | None:
        raw = await self._batcher.execute("HGET", PAYOUT_SUBMISSIONS, withdrawal_id)
        return PayoutSubmission(**orjson.loads(raw)) if raw is not None else None

    async def open_submissions(self, provider: str, *, limit: int) -> list[PayoutSubmission]:
        ids = await self._batcher.execute("ZRANGE", payout_open_key(provider), 0, limit - 1)
        found: list[PayoutSubmission] = []
        for withdrawal_id in ids:
            submission = await self.submission(text(withdrawal_id))
            if submission is None or submission.state == DONE:
                await self._batcher.execute("ZREM", payout_open_key(provider), withdrawal_id)
                continue
            found.append(submission)
        return found

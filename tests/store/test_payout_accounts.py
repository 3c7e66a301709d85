"""Conformance of the payout accounts store on every engine: a creator's linked
account, one creator per provider account, and the withdrawals' provider state
that polls walk through."""

from __future__ import annotations

import dataclasses

import pytest

from store.domain.payout_accounts import (
    DONE,
    SUBMITTED,
    SUBMITTING,
    PayoutAccount,
    PayoutSubmission,
)
from store.errors import Conflict
from store.roles import Engine, PayoutAccounts

PROVIDER = "stripe_connect"


def store_of(engine: Engine) -> PayoutAccounts:
    assert engine.payout_accounts is not None
    return engine.payout_accounts


def account(user_id: str, account_id: str, *, at: int = 1_000, **changes: bool) -> PayoutAccount:
    return PayoutAccount(
        user_id=user_id,
        provider=PROVIDER,
        account_id=account_id,
        created_at=at,
        updated_at=at,
        **changes,
    )


async def test_a_creator_links_one_account_per_provider(engine: Engine) -> None:
    store = store_of(engine)
    assert await store.get("carol", PROVIDER) is None
    assert await store.owner(PROVIDER, "acct_1") is None

    linked = await store.link(account("carol", "acct_1"))
    assert linked == account("carol", "acct_1")
    assert await store.get("carol", PROVIDER) == linked
    assert await store.get("carol", "paypal") is None
    assert await store.owner(PROVIDER, "acct_1") == linked

    # updates keep the creation time
    ready = await store.link(
        account("carol", "acct_1", at=2_000, payouts_enabled=True, details_submitted=True)
    )
    assert (ready.payouts_enabled, ready.details_submitted) == (True, True)
    assert (ready.created_at, ready.updated_at) == (1_000, 2_000)

    # another creator cannot take the same provider account
    with pytest.raises(Conflict):
        await store.link(account("dave", "acct_1"))
    assert await store.get("dave", PROVIDER) is None
    assert (await store.owner(PROVIDER, "acct_1")) == ready

    # a creator moving to a new account gives up the old one
    moved = await store.link(account("carol", "acct_2", at=3_000))
    assert moved.account_id == "acct_2"
    assert await store.owner(PROVIDER, "acct_2") == moved
    assert await store.owner(PROVIDER, "acct_1") is None
    assert (await store.link(account("dave", "acct_1"))).user_id == "dave"
    assert (await store.owner(PROVIDER, "acct_1")).user_id == "dave"  # type: ignore[union-attr]


async def test_submissions_are_open_until_done(engine: Engine) -> None:
    store = store_of(engine)
    first = PayoutSubmission(
        withdrawal_id="wd_1",
        user_id="carol",
        provider=PROVIDER,
        account_id="acct_1",
        amount_minor=100,
        currency="USD",
        created_at=10,
        updated_at=10,
    )
    second = dataclasses.replace(first, withdrawal_id="wd_2", updated_at=5)
    other = dataclasses.replace(first, withdrawal_id="wd_3", provider="paypal")
    for submission in (first, second, other):
        await store.save_submission(submission)
    assert await store.submission("wd_1") == first
    assert await store.submission("wd_none") is None
    assert [s.withdrawal_id for s in await store.open_submissions(PROVIDER, limit=10)] == [
        "wd_2",
        "wd_1",
    ]
    assert [s.withdrawal_id for s in await store.open_submissions(PROVIDER, limit=1)] == ["wd_2"]

    sent = dataclasses.replace(
        first, state=SUBMITTED, transfer_id="tr_1", payout_id="po_1", attempts=1, updated_at=20
    )
    await store.save_submission(sent)
    assert await store.submission("wd_1") == sent
    await store.save_submission(dataclasses.replace(second, state=DONE, updated_at=30))
    assert await store.open_submissions(PROVIDER, limit=10) == [sent]
    assert (await store.submission("wd_2")).state == DONE  # type: ignore[union-attr]
    assert [s.state for s in await store.open_submissions("paypal", limit=10)] == [SUBMITTING]

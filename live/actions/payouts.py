"""The creator's side of money: earnings, payout accounts, and withdrawing
diamonds as cash through a payout provider.

Two kinds of provider (``live.payouts``): the sandbox answers at once; a
connected provider (Stripe Connect) pays the creator's linked account and tells
the outcome later, by a signed webhook or when polled. Either way the
withdrawal is two-phase in the store: reserved (pending) first, then settled
exactly once, paid or failed (the diamonds return).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from live.errors import LiveError
from live.money_config import cash
from live.payments import PayoutProvider
from live.payouts import (
    ACCOUNT_UPDATED,
    PAYOUT_FAILED,
    PAYOUT_PAID,
    TRANSFER_REVERSED,
    AccountState,
    ConnectedPayoutProvider,
    OnboardingLink,
    PayoutEvent,
    PayoutRefused,
    PayoutUnavailable,
    connected_providers,
)
from live.settings import Settings
from store.domain import refusals
from store.domain.accounts import (
    FAILED,
    PAID,
    Earnings,
    Withdrawal,
    WithdrawalRequest,
    WithdrawalSettlement,
)
from store.domain.models import Profile
from store.domain.payout_accounts import (
    DONE,
    SUBMITTED,
    SUBMITTING,
    PayoutAccount,
    PayoutSubmission,
)
from store.errors import Conflict
from store.ids import now_ms
from store.roles import Engine, PayoutAccounts
from store.tasks import stop_task

log = logging.getLogger("live.money")

POLL_BATCH: Final = 100
"""Unsettled withdrawals asked about per provider per poll."""


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    event_id: str
    event_type: str
    withdrawal: Withdrawal | None = None
    account: PayoutAccount | None = None


@dataclass(kw_only=True)
class Payouts:
    """Earnings, payout accounts and withdrawals."""

    settings: Settings
    engine: Engine
    providers: dict[str, PayoutProvider]
    """The one-call payout providers enabled on this node (the sandbox), by name."""
    connected: dict[str, ConnectedPayoutProvider] | None = None
    """The payout providers paying creators' linked accounts, by name (``None``:
    those the settings enable)."""
    _poller: asyncio.Task[None] | None = field(default=None, init=False)
    _in_flight: set[str] = field(default_factory=set, init=False)
    """Withdrawals this node is submitting now: its poll leaves them alone."""

    def __post_init__(self) -> None:
        if self.connected is None:
            self.connected = connected_providers(self.settings)

    # -- earnings -------------------------------------------------------------------
    async def earnings(self, user_id: str, *, now: int) -> Earnings:
        return await self.engine.wallet.earnings(user_id, now=now)

    async def withdrawals(
        self, user_id: str, *, before: str | None, limit: int
    ) -> list[Withdrawal]:
        return await self.engine.wallet.withdrawals(user_id, before=before, limit=limit)

    # -- payout accounts --------------------------------------------------------------
    def _connected(self, provider: str) -> tuple[ConnectedPayoutProvider, PayoutAccounts]:
        found = (self.connected or {}).get(provider)
        if found is None:
            raise LiveError("bad_request", f"payout provider {provider!r} is not enabled")
        if self.engine.payout_accounts is None:
            raise LiveError("bad_request", "this engine keeps no payout accounts")
        return found, self.engine.payout_accounts

    async def link_account(
        self, *, user: Profile, provider: str
    ) -> tuple[PayoutAccount, OnboardingLink]:
        """The creator's account at ``provider`` (created on first use) and a fresh
        onboarding link to finish or update it at the provider."""
        if "creator" not in user.roles:
            raise LiveError("forbidden", "only creators can link a payout account")
        payout, store = self._connected(provider)
        account = await store.get(user.id, provider)
        if account is None:
            state = await payout.create_account(user=user)
            now = now_ms()
            account = await store.link(
                PayoutAccount(
                    user_id=user.id,
                    provider=provider,
                    account_id=state.account_id,
                    payouts_enabled=state.payouts_enabled,
                    details_submitted=state.details_submitted,
                    created_at=now,
                    updated_at=now,
                )
            )
        link = await payout.onboarding_link(account_id=account.account_id)
        return account, link

    async def account_status(self, *, user: Profile, provider: str) -> PayoutAccount:
        """The creator's account, refreshed from the provider."""
        payout, store = self._connected(provider)
        account = await store.get(user.id, provider)
        if account is None:
            raise refusals.NO_PAYOUT_ACCOUNT(provider)
        state = await payout.account_state(account.account_id)
        return await self._update_account(store, account, state)

    async def _update_account(
        self, store: PayoutAccounts, account: PayoutAccount, state: AccountState
    ) -> PayoutAccount:
        if (account.payouts_enabled, account.details_submitted) == (
            state.payouts_enabled,
            state.details_submitted,
        ):
            return account
        return await store.link(
            dataclasses.replace(
                account,
                payouts_enabled=state.payouts_enabled,
                details_submitted=state.details_submitted,
                updated_at=now_ms(),
            )
        )

    # -- withdrawing --------------------------------------------------------------------
    async def withdraw(
        self, *, user: Profile, diamonds: int, key: str, provider: str, destination: str
    ) -> Withdrawal:
        """Reserve the diamonds (pending), ask the provider to pay, record the outcome
        (paid, or failed and the diamonds return). A sandbox answering ``pending``
        leaves it to an admin (``POST /v1/admin/withdrawals/{id}``); a connected
        provider's outcome comes by webhook or poll."""
        if provider in (self.connected or {}):
            return await self._withdraw_connected(
                user=user, diamonds=diamonds, key=key, provider=provider
            )
        payout = self.providers.get(provider)
        if payout is None:
            raise LiveError("bad_request", f"payout provider {provider!r} is not enabled")
        reserved = await self._reserve(user=user, diamonds=diamonds, key=key, provider=provider)
        if reserved.replayed or reserved.status != "pending":
            return reserved  # a retried request: the first one paid (or is paying) it
        try:
            result = await payout.pay(reserved, destination=destination)
        except Exception:
            # the outcome is unknown: it stays pending for an admin to resolve
            log.exception("payout %s of withdrawal %s failed", provider, reserved.id)
            return reserved
        if result.status not in (PAID, FAILED):
            return reserved
        return await self.resolve(
            withdrawal_id=reserved.id,
            status=result.status,
            reference=result.reference,
            reason=result.reason,
        )

    async def _reserve(
        self, *, user: Profile, diamonds: int, key: str, provider: str
    ) -> Withdrawal:
        settings, wallet = self.settings, self.engine.wallet
        if settings.withdrawal_rate_per_hour:
            await wallet.rate_limit(
                user.id,
                "withdrawals",
                per_hour=settings.withdrawal_rate_per_hour,
                burst=settings.withdrawal_burst,
            )
        return await wallet.reserve_withdrawal(
            WithdrawalRequest(user_id=user.id, diamonds=diamonds, key=key, method=provider)
        )

    async def _withdraw_connected(
        self, *, user: Profile, diamonds: int, key: str, provider: str
    ) -> Withdrawal:
        payout, store = self._connected(provider)
        # refuse before anything is reserved, in the order a creator fixes them
        if not (await self.engine.wallet.account(user.id)).verified:
            raise refusals.NOT_VERIFIED()
        account = await store.get(user.id, provider)
        if account is None:
            raise refusals.NO_PAYOUT_ACCOUNT(provider)
        if not account.payouts_enabled:
            raise refusals.PAYOUTS_NOT_ENABLED(provider)
        amount = cash(self.settings, diamonds)
        if diamonds > 0 and amount["amount_minor"] < 1:
            raise LiveError("bad_request", "this withdrawal is worth less than one cent")
        reserved = await self._reserve(user=user, diamonds=diamonds, key=key, provider=provider)
        if reserved.replayed or reserved.status != "pending":
            return reserved
        now = now_ms()
        submission = PayoutSubmission(
            withdrawal_id=reserved.id,
            user_id=user.id,
            provider=provider,
            account_id=account.account_id,
            amount_minor=amount["amount_minor"],
            currency=amount["currency"],
            created_at=now,
            updated_at=now,
        )
        await store.save_submission(submission)
        return await self._submit(payout, store, submission, reserved, raise_unavailable=True)

    async def _submit(
        self,
        payout: ConnectedPayoutProvider,
        store: PayoutAccounts,
        submission: PayoutSubmission,
        reserved: Withdrawal | None,
        *,
        raise_unavailable: bool,
    ) -> Withdrawal:
        submission = dataclasses.replace(
            submission, attempts=submission.attempts + 1, updated_at=now_ms()
        )
        with self._submitting(submission.withdrawal_id):
            try:
                submitted = await payout.submit(submission)
            except PayoutRefused as refused:
                return await self._settle(
                    store, submission, status=FAILED, reference="", reason=refused.message
                )
            except PayoutUnavailable as unavailable:
                await store.save_submission(submission)
                log.warning(
                    "payout %s of withdrawal %s: %s",
                    payout.name,
                    submission.withdrawal_id,
                    unavailable.message,
                )
                if raise_unavailable:
                    raise LiveError(
                        "provider_unavailable",
                        f"the payout provider could not be reached: withdrawal "
                        f"{submission.withdrawal_id} stays pending with its diamonds reserved "
                        "and is submitted again automatically",
                    ) from None
                return reserved or await self._withdrawal(submission.withdrawal_id)
            current = await store.submission(submission.withdrawal_id)
            if current is not None and current.state == DONE:
                return await self._withdrawal(submission.withdrawal_id)  # a webhook settled it
            await store.save_submission(submitted)
            return reserved or await self._withdrawal(submission.withdrawal_id)

    @contextlib.contextmanager
    def _submitting(self, withdrawal_id: str) -> Iterator[None]:
        """Mark the withdrawal as being submitted by this node (its poll skips it)."""
        self._in_flight.add(withdrawal_id)
        try:
            yield
        finally:
            self._in_flight.discard(withdrawal_id)

    async def _withdrawal(self, withdrawal_id: str) -> Withdrawal:
        found = await self.engine.wallet.withdrawal(withdrawal_id)
        if found is None:
            raise refusals.WITHDRAWAL_NOT_FOUND()
        return found

    async def _settle(
        self,
        store: PayoutAccounts,
        submission: PayoutSubmission,
        *,
        status: str,
        reference: str,
        reason: str,
    ) -> Withdrawal:
        """Settle once; a withdrawal settled otherwise before (an admin, a payout
        failing after it was reported paid) is kept as it is, and logged."""
        try:
            withdrawal = await self.resolve(
                withdrawal_id=submission.withdrawal_id,
                status=status,
                reference=reference,
                reason=reason,
            )
        except Conflict:
            withdrawal = await self._withdrawal(submission.withdrawal_id)
            log.warning(
                "withdrawal %s is already %s; the provider now says %s (%s)",
                withdrawal.id,
                withdrawal.status,
                status,
                reason,
            )
        await store.save_submission(
            dataclasses.replace(
                submission, state=DONE, reason=reason or submission.reason, updated_at=now_ms()
            )
        )
        return withdrawal

    async def resolve(
        self, *, withdrawal_id: str, status: str, reference: str, reason: str
    ) -> Withdrawal:
        """Settle a pending withdrawal: ``paid`` or ``failed`` (the diamonds return)."""
        return await self.engine.wallet.settle_withdrawal(
            WithdrawalSettlement(
                withdrawal_id=withdrawal_id, status=status, reference=reference, reason=reason
            )
        )

    # -- outcomes: webhooks and polls -------------------------------------------------
    async def webhook(
        self, provider: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookOutcome:
        """Act on one signed provider event, once whatever the retries and order."""
        payout, store = self._connected(provider)
        event = payout.parse_webhook(headers=headers, body=body, now=time.time())
        if event.kind == ACCOUNT_UPDATED and event.account is not None:
            account = await store.owner(provider, event.account.account_id)
            if account is None:
                return WebhookOutcome(event.id, event.provider_type)
            account = await self._update_account(store, account, event.account)
            return WebhookOutcome(event.id, event.provider_type, account=account)
        if event.kind not in (PAYOUT_PAID, PAYOUT_FAILED, TRANSFER_REVERSED):
            return WebhookOutcome(event.id, event.provider_type)
        submission = await store.submission(event.withdrawal_id)
        if submission is None or submission.provider != provider:
            return WebhookOutcome(event.id, event.provider_type)
        withdrawal = await self._outcome(
            payout, store, submission, paid=event.kind == PAYOUT_PAID, event=event
        )
        return WebhookOutcome(event.id, event.provider_type, withdrawal=withdrawal)

    async def _outcome(
        self,
        payout: ConnectedPayoutProvider,
        store: PayoutAccounts,
        submission: PayoutSubmission,
        *,
        paid: bool,
        event: PayoutEvent,
    ) -> Withdrawal:
        if submission.state == DONE:
            return await self._withdrawal(submission.withdrawal_id)  # a duplicate
        if paid:
            return await self._settle(
                store, submission, status=PAID, reference=event.reference, reason=""
            )
        if event.kind == PAYOUT_FAILED:
            if submission.state == SUBMITTING:
                # the submitting call has not recorded the transfer yet: the
                # provider delivers the event again later
                raise PayoutUnavailable("this payout's transfer is not recorded yet")
            # the money is back in the creator's account: take it back first
            await payout.recover(submission)
        return await self._settle(
            store, submission, status=FAILED, reference=event.reference, reason=event.reason
        )

    async def poll(self) -> int:
        """Ask the connected providers about every unsettled withdrawal: submit again
        what may not have reached them, settle what ended. Returns how many settled."""
        settled = 0
        store = self.engine.payout_accounts
        if store is None:
            return 0
        for payout in (self.connected or {}).values():
            for submission in await store.open_submissions(payout.name, limit=POLL_BATCH):
                if submission.withdrawal_id in self._in_flight:
                    continue
                try:
                    settled += await self._poll_one(payout, store, submission)
                except PayoutUnavailable as exc:
                    log.warning("payout poll %s: %s", payout.name, exc.message)
                    break  # the provider is down: the next poll tries again
        return settled

    async def _poll_one(
        self, payout: ConnectedPayoutProvider, store: PayoutAccounts, submission: PayoutSubmission
    ) -> int:
        if submission.state == SUBMITTING:
            withdrawal = await self._submit(
                payout, store, submission, None, raise_unavailable=False
            )
            return int(withdrawal.status != "pending")
        if submission.state != SUBMITTED:
            return 0
        status = await payout.status(submission)
        if status.status == PAID:
            await self._settle(
                store, submission, status=PAID, reference=status.reference, reason=""
            )
            return 1
        if status.status == FAILED:
            await payout.recover(submission)
            await self._settle(
                store, submission, status=FAILED, reference=status.reference, reason=status.reason
            )
            return 1
        return 0

    def start(self) -> None:
        """Poll the connected providers every ``payout_poll_seconds`` (if any)."""
        if not self.connected or not self.settings.payout_poll_seconds or self._poller:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving (a command-line tool): nothing to poll for
        self._poller = loop.create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.payout_poll_seconds)
            try:
                await self.poll()
            except Exception:  # a poll must never stop the next one
                log.exception("payout poll failed")

    async def close(self) -> None:
        await stop_task(self._poller)
        self._poller = None
        for provider in (self.connected or {}).values():
            await provider.close()

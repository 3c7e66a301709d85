"""Each node's delivery loop.

It leases subscriptions whose first queued delivery is due
(``store.roles.Subscriptions.claim``), sends that delivery, and settles it:
accepted (2xx) drops it, anything else schedules a retry with exponential
backoff. One delivery per subscription at a time, so a subscription gets its
messages in order; many subscriptions at once (``subscription_concurrency``).
A subscription that has failed for ``subscription_disable_after_seconds`` is
disabled and its callback sent a ``revocation`` message (once, best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from live.settings import Settings
from live.subscriptions import SubscriptionError, sender, signing
from store.domain.subscriptions import Delivery, Subscription
from store.ids import new_id, new_secret, now_ms
from store.roles import Subscriptions

log = logging.getLogger("live.subscriptions")

POLL_SECONDS = 0.5
"""How often a node looks for due deliveries queued by other nodes or retries."""
RETRY_SECONDS = 1.0
"""After the store failed, the loop tries again this much later."""


async def cancel_all(tasks: list[asyncio.Task[Any] | None]) -> None:
    """Cancel the tasks and wait until each has stopped (its error, if any, dropped)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def backoff_ms(attempts: int, settings: Settings) -> int:
    """Milliseconds before the next attempt after ``attempts`` failed ones: the
    base doubled each time up to the maximum, plus up to 10% jitter."""
    base = settings.subscription_retry_base_seconds * 2 ** min(attempts - 1, 30)
    delay = min(settings.subscription_retry_max_seconds, base)
    return int(delay * 1000 * (1 + random.random() / 10))


class DeliveryWorker:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Subscriptions,
        policy: sender.SendPolicy,
        on_revoked: Callable[[Subscription], Awaitable[None]] | None = None,
    ) -> None:
        self.on_revoked = on_revoked
        """Told of each subscription this node disabled (to tell its creator)."""
        self.settings = settings
        self.store = store
        self.policy = policy
        self.node = new_secret(9)
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        timeout_ms = int(settings.subscription_timeout_seconds * 1000)
        self.lease_ms = 2 * timeout_ms + 5_000
        """Longer than an attempt can take (resolving and sending each have the timeout)."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Something was queued on this node: look now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        await cancel_all([self._loop, *self._inflight])

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a wake-up from here on is not missed
            free = self.settings.subscription_concurrency - len(self._inflight)
            claimed: list[tuple[Subscription, Delivery]] = []
            if free > 0:
                try:
                    claimed = await self.store.claim(
                        node=self.node, now=now_ms(), lease_ms=self.lease_ms, limit=free
                    )
                except Exception:
                    log.warning("claiming subscription deliveries failed", exc_info=True)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
            for subscription, item in claimed:
                task = asyncio.get_running_loop().create_task(self._deliver(subscription, item))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if free <= 0 or len(claimed) < free:  # all slots busy, or nothing more due
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._wake.wait()
            else:
                await asyncio.sleep(0)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("a subscription delivery failed", exc_info=task.exception())

    async def _deliver(self, subscription: Subscription, item: Delivery) -> None:
        body = item.body.encode()
        headers = signing.headers(
            secret=subscription.secret,
            message_id=item.message_id,
            timestamp=now_ms() // 1000,
            kind="notification",
            event_type=item.type,
            body=body,
        )
        try:
            await sender.post(subscription.callback, body=body, headers=headers, policy=self.policy)
        except SubscriptionError as exc:
            await self._failed(subscription, item, exc.message)
            return
        except asyncio.CancelledError:
            # stopping: give the lease back so the next node (or run) goes on at once
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    now = now_ms()
                    await self.store.failed(
                        subscription.id,
                        item.position,
                        node=self.node,
                        now=now,
                        retry_at=now,
                        error="the server stopped during the attempt",
                    )
            raise
        await self.store.delivered(subscription.id, item.position, node=self.node)

    async def _failed(self, subscription: Subscription, item: Delivery, error: str) -> None:
        now = now_ms()
        since = subscription.failing_since if subscription.failing_since is not None else now
        limit_ms = int(self.settings.subscription_disable_after_seconds * 1000)
        if now - since >= limit_ms:
            reason = f"deliveries failed for {(now - since) // 1000} seconds: {error}"
            disabled = await self.store.set_status(subscription.id, "disabled", reason=reason)
            log.warning("subscription %s disabled: %s", subscription.id, reason)
            if disabled is not None:
                await self.revoke(disabled, reason="failing")
                if self.on_revoked is not None:
                    await self.on_revoked(disabled)
            return
        retry_at = now + backoff_ms(item.attempts + 1, self.settings)
        await self.store.failed(
            subscription.id, item.position, node=self.node, now=now, retry_at=retry_at, error=error
        )

    async def revoke(self, subscription: Subscription, *, reason: str) -> None:
        """Tell the callback its subscription was revoked (one attempt, best effort)."""
        await self.send_once(
            subscription,
            kind="revocation",
            payload={"reason": reason, "subscription": subscription.public()},
        )

    async def send_once(
        self, subscription: Subscription, *, kind: str, payload: dict[str, Any]
    ) -> sender.Answer:
        """One signed message outside the queue (challenge, revocation): its answer,
        or ``SubscriptionError``."""
        message_id = new_id("msg")
        body = orjson.dumps({"id": message_id, "type": kind, **payload})
        headers = signing.headers(
            secret=subscription.secret,
            message_id=message_id,
            timestamp=now_ms() // 1000,
            kind=kind,
            event_type=kind,
            body=body,
        )
        try:
            return await sender.post(
                subscription.callback, body=body, headers=headers, policy=self.policy
            )
        except SubscriptionError as exc:
            if kind == "revocation":
                log.info("revocation of %s not delivered: %s", subscription.id, exc.message)
                return sender.Answer(0, b"")
            raise

"""The gift actions: the catalog, and sending a gift (over HTTP or WebSocket alike).

A gift is validated, committed by the engine's wallet once per idempotency key,
and announced to its room once: a gift sent over HTTP and one sent over
WebSocket are indistinguishable to the room and to the ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from live.actions.items import Looks
from live.actions.room_activity import RoomActivity
from live.errors import LiveError
from live.metrics import Metrics
from live.settings import Settings
from store.domain.models import Gift, GiftReceipt, GiftRequest, Profile
from store.roles import Engine


@dataclass(kw_only=True)
class Gifts:
    settings: Settings
    engine: Engine
    metrics: Metrics
    activity: RoomActivity
    """Announces committed gifts to their rooms."""
    looks: Looks | None = None
    """Adds the sender's equipped badge and name style to the gift event."""

    def catalog(self, region: str | None = None) -> list[Gift]:
        """The gifts on sale now (in ``region``, when given)."""
        return self.engine.catalog.gifts(region=region)

    def catalog_gift(self, gift_id: str, count: int) -> Gift:
        """The catalog's gift, with ``count`` in range; ``not_found``/``bad_request``."""
        gift = self.engine.catalog.gift(gift_id)
        if gift is None:
            raise LiveError("not_found", f"unknown gift {gift_id!r}")
        if not 1 <= count <= self.settings.max_gift_count:
            raise LiveError(
                "bad_request",
                f"count must be an integer from 1 to {self.settings.max_gift_count}",
            )
        return gift

    async def send(
        self,
        *,
        sender: Profile,
        room_id: str,
        gift_id: str,
        count: int,
        key: str,
        shown_coins: int | None = None,
    ) -> GiftReceipt:
        """Send at the catalog's price now; ``shown_coins`` (the unit price the client
        showed) must be that price (``price_changed``). A retired or out-of-window
        gift is ``not_found`` (regions only filter the list: users have no region)."""
        metrics = self.metrics
        # ``metrics.refusals`` and ``metrics.wallet_call`` written out: this runs per gift
        try:
            gift = self.catalog_gift(gift_id, count)
            request = GiftRequest(sender, room_id, gift, count, key, shown_coins=shown_coins)
            started = time.perf_counter()
            try:
                receipt = await self.engine.wallet.send_gift(request)
            except BaseException as exc:
                metrics.wallet_called("gift", started=started, error=exc)
                raise
            metrics.wallet_called("gift", started=started, error=None)
        except Exception as exc:
            metrics.count_refusal(exc, outcomes=metrics.gift_outcome, errors=metrics.gift_errors)
            raise
        if receipt.replayed:
            metrics.gift_outcome["replayed"].inc()
        else:
            metrics.gifts_committed.inc()
            metrics.gift_outcome["committed"].inc()
            metrics.coins.inc(receipt.coins)
            # the gift event, within its sender's combo; then the room's totals
            if self.looks is not None:
                sender = await self.looks.dress(sender)
            await self.activity.gift(gift=gift, sender=sender, receipt=receipt)
        return receipt

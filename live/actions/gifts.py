"""The gift actions: the catalog, and sending a gift (over HTTP or WebSocket alike).

A gift is validated, committed by the engine's wallet once per idempotency key,
and announced to its room once: a gift sent over HTTP and one sent over
WebSocket are indistinguishable to the room and to the ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

from live.actions.items import Looks
from live.actions.room_activity import TOP_GIFTERS, RoomActivity
from live.errors import LiveError
from live.metrics import Metrics
from live.settings import Settings
from store.domain.models import Gift, GiftReceipt, GiftRequest, Profile, ShownGift
from store.roles import Engine, GiftShower


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
        wallet = self.engine.wallet
        shower = self._shower
        shown: ShownGift | None = None
        # ``metrics.refusals`` and ``metrics.wallet_call`` written out: this runs per gift
        try:
            gift = self.catalog_gift(gift_id, count)
            request = GiftRequest(sender, room_id, gift, count, key, shown_coins=shown_coins)
            # with a shower, the event goes out with the commit: the sender as the room sees it
            seen = sender if shower is None else await self._dressed(sender)
            started = time.perf_counter()
            try:
                if shower is None:
                    receipt = await wallet.send_gift(request)
                else:
                    shown = await shower.send_gift_shown(
                        request,
                        sender=seen.public(),
                        window_ms=self.settings.combo_window_ms,
                        board_interval_ms=self.settings.leaderboard_interval_ms,
                        board_limit=TOP_GIFTERS,
                    )
                    receipt = shown.receipt
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
            if shown is not None and shown.combo_wait_ms is not None:
                # published by the wallet: time its combo, and the totals unless shown
                self.activity.gift_shown(
                    receipt.room_id,
                    wait_ms=shown.combo_wait_ms,
                    board_wait_ms=shown.board_wait_ms,
                )
            else:  # the gift event, within its sender's combo; then the room's totals
                if shower is None:
                    seen = await self._dressed(sender)
                await self.activity.gift(gift=gift, sender=seen, receipt=receipt)
        return receipt

    @cached_property
    def _shower(self) -> GiftShower | None:
        """The engine's wallet as a ``GiftShower`` (a protocol check is slow: once)."""
        wallet = self.engine.wallet
        return wallet if isinstance(wallet, GiftShower) else None

    async def _dressed(self, sender: Profile) -> Profile:
        """The sender with its equipped look, as the room's events show it."""
        return sender if self.looks is None else await self.looks.dress(sender)

"""Every action of the product on this node, in one place for the transports.

The HTTP handlers and the WebSocket endpoint reach the engine only through
these: a gift sent over HTTP and one sent over WebSocket take the same path.
"""

from __future__ import annotations

import logging

from live.actions.gifts import Gifts
from live.actions.items import Items, Looks
from live.actions.money import Money
from live.actions.overlays import Overlays
from live.actions.payouts import Payouts
from live.actions.room_activity import RoomActivity
from live.actions.rooms import Rooms
from live.metrics import Metrics
from live.payments import PaymentProvider, PayoutProvider
from live.realtime.hub import Connection, Hub
from live.settings import Settings
from live.subscriptions.service import Subscriptions
from protocol import events as ev
from store.roles import Engine

log = logging.getLogger("live.api")


class Actions:
    """The node's actions, by concern: ``gifts``, ``rooms`` (and the room
    activity behind them), ``money``, ``payouts``, ``items`` and
    ``subscriptions``; plus the node's health."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        hub: Hub,
        metrics: Metrics,
        payments: dict[str, PaymentProvider],
        payouts: dict[str, PayoutProvider],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.hub = hub
        self.metrics = metrics
        self.activity = RoomActivity(settings=settings, engine=engine, hub=hub)
        looks = Looks(engine=engine)
        """Equipped badges and name styles, added to senders' profiles."""
        self.items = Items(settings=settings, engine=engine, metrics=metrics, looks=looks)
        self.rooms = Rooms(settings=settings, engine=engine, activity=self.activity, looks=looks)
        self.gifts = Gifts(
            settings=settings, engine=engine, metrics=metrics, activity=self.activity, looks=looks
        )
        self.money = Money(settings=settings, engine=engine, payments=payments, metrics=metrics)
        self.payouts = Payouts(settings=settings, engine=engine, providers=payouts)
        self.payouts.start()
        self.subscriptions = Subscriptions(settings=settings, engine=engine)
        """Creators' event subscriptions (webhooks); started by the app."""
        self.rooms.notify = self.subscriptions.notify
        self.items.notify = self.subscriptions.notify
        self.overlays = Overlays(settings=settings, engine=engine)
        """Which overlays are connected to each room (presence)."""
        self.activity.on_overlay = self._overlay_changed
        # every connected client hears of a new catalog version, whichever node made it
        self._unwatch_catalog = engine.catalogs.watch(
            lambda version: hub.send_all([ev.catalog(version=version)])
        )

    def _overlay_changed(self, conn: Connection, attached: bool) -> None:
        if attached:
            self.overlays.joined(conn)
        else:
            self.overlays.left(conn)

    async def readiness(self) -> dict[str, object]:
        """``/readyz``'s answer: the engine and its checks; raises if a backend is
        not ready."""
        checks = await self.engine.ready()
        return {"status": "ok", "engine": self.engine.name, "checks": checks}

    async def metrics_text(self) -> bytes:
        """The Prometheus page: this node's metrics and the engine's values."""
        try:
            values = {**await self.engine.metric_values(), "backend_up": 1.0}
        except Exception:  # a scrape must not fail because a backend is down
            log.warning("engine values unavailable", exc_info=True)
            values = {"backend_up": 0.0}
        return self.metrics.render(values)

    async def close(self) -> None:
        self._unwatch_catalog()
        await self.subscriptions.close()
        await self.overlays.close()
        await self.items.close()
        await self.payouts.close()
        await self.activity.close()
        await self.money.close()

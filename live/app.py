"""The ASGI application: routes, lifespan (engine, hub and the node's actions),
JSON errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from live.actions.node import Actions
from live.collector import CollectorTuning
from live.errors import error_response
from live.http import (
    admin,
    catalog,
    catalog_admin,
    items,
    money,
    ops,
    pages,
    payouts,
    rooms,
    subscriptions,
)
from live.http.common import MAX_BODY_BYTES
from live.http.request_ids import RequestIds
from live.identity.service import Identity
from live.limits import APP_STATE_SETTINGS, ConnectionGuard, RequestLimits
from live.metrics import Metrics, multiprocess_dir
from live.payments import PayoutProvider, SandboxPayoutProvider
from live.payments.config import payment_providers
from live.realtime.endpoint import live_endpoint
from live.realtime.hub import Hub
from live.settings import Settings
from protocol import CloseCode
from store.engine import open_engine

log = logging.getLogger("live.app")

api_routes = [
    *catalog.routes,
    *money.routes,
    *payouts.routes,
    *rooms.routes,
    *admin.routes,
    *catalog_admin.routes,
    *items.routes,
    *ops.routes,
    *subscriptions.routes,
]
"""The JSON API under ``/v1``, and the operations endpoints."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    413: "too_large",
}


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = _HTTP_CODES.get(status, "internal")
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return error_response(code, str(detail), status=status)


LIVE_ROUTE: Final = "/v1/rooms/{room_id}/live"
_LIVE_PATH: Final = re.compile(r"/v1/rooms/([^/]+)/live")
"""``LIVE_ROUTE`` as Starlette matches it (a path parameter is one segment)."""


class LiveApp(Starlette):
    """The app, with the WebSocket endpoint taken off the general stack.

    Every viewer's handshake went through the middleware (which only looks at
    HTTP requests), the exception layers and the router's list of routes before
    reaching ``live_endpoint``: a tenth of the loop while a crowd arrives. A
    WebSocket scope for ``LIVE_ROUTE`` now goes straight to it, with the same
    scope (``app``, ``path_params``) the route would have given; anything else,
    including a WebSocket to another path, takes the usual way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not scope.get("root_path"):
            match = _LIVE_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["app"] = self
                scope["path_params"] = {"room_id": match[1]}
                await live_endpoint(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        metrics = Metrics(multiprocess_dir=multiprocess_dir())
        config = dataclasses.replace(settings.engine_config(), observer=metrics.store)
        engine = await open_engine(config, catalog=settings.catalog())
        lag_sampler = asyncio.get_running_loop().create_task(metrics.sample_loop_lag())
        hub = Hub(
            broker=engine.broker,
            metrics=metrics,
            tick_seconds=settings.tick_ms / 1000,
            send_buffer_bytes=settings.send_buffer_bytes,
            history_size=settings.history_size,
            history_seconds=settings.history_seconds,
        )
        payments = payment_providers(settings)
        payouts: dict[str, PayoutProvider] = {}
        if settings.sandbox_payouts:
            payouts["sandbox"] = SandboxPayoutProvider()
        actions = app.state.actions = Actions(
            settings=settings,
            engine=engine,
            hub=hub,
            metrics=metrics,
            payments=payments,
            payouts=payouts,
        )
        await actions.subscriptions.start()
        actions.activity.start_sweeping()  # after the feed: recovered combo ends reach it
        app.state.guard = ConnectionGuard.from_settings(settings)
        identity = app.state.identity = Identity.from_settings(settings)
        await identity.start()
        collector = CollectorTuning(
            young_threshold=settings.gc_young_threshold,
            young_seconds=settings.gc_young_seconds,
            freeze=settings.gc_freeze,
            observe=metrics.gc_paused,
        )
        collector.start()  # the last of start-up: what it built is frozen
        log.info("engine %s ready", engine.name)
        if settings.demo:
            from live.demo import seed_demo

            print(await seed_demo(actions), flush=True)
        try:
            # The settings also reach uvicorn's protocol instances (handshake timeout).
            yield {APP_STATE_SETTINGS: settings}
        finally:
            hub.close_all(CloseCode.RESTART, "server restarting")
            await actions.close()
            await identity.close()
            await engine.close()
            lag_sampler.cancel()
            collector.close()
            metrics.close()

    return LiveApp(
        routes=[
            *api_routes,
            WebSocketRoute(LIVE_ROUTE, live_endpoint),
            *pages.routes,
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=[
            Middleware(RequestIds),
            Middleware(RequestLimits, max_bytes=MAX_BODY_BYTES, timeout=settings.handshake_timeout),
        ],
    )


def app_from_env() -> Starlette:
    """Factory for worker processes: settings come from the environment."""
    return create_app(Settings.from_env())

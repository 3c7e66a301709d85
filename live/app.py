"""The ASGI application: routes, lifespan (engine and hub), JSON errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute

from live.api import MAX_BODY_BYTES
from live.api import routes as core_routes
from live.api_money import routes as money_routes
from live.api_rooms import routes as room_routes
from live.errors import error_response
from live.hub import Hub
from live.limits import APP_STATE_SETTINGS, ConnectionGuard, RequestLimits
from live.metrics import Metrics
from live.money import Payouts
from live.pages import routes as page_routes
from live.payments import PaymentProvider, SandboxPaymentProvider, SandboxPayoutProvider
from live.services import Services
from live.settings import Settings
from live.ws import live_endpoint
from protocol import CloseCode
from store.engine import open_engine

log = logging.getLogger("live.app")

api_routes = [*core_routes, *money_routes]
"""The JSON API under ``/v1``."""

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


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        engine = await open_engine(settings.engine_config(), catalog=settings.catalog())
        metrics = Metrics()
        hub = Hub(
            broker=engine.broker,
            metrics=metrics,
            tick_seconds=settings.tick_ms / 1000,
            send_buffer_bytes=settings.send_buffer_bytes,
        )
        payments: dict[str, PaymentProvider] = {}
        if settings.sandbox_payments:
            payments["sandbox"] = SandboxPaymentProvider()
        app.state.payouts = Payouts(
            providers={"sandbox": SandboxPayoutProvider()} if settings.sandbox_payouts else {}
        )
        app.state.services = Services(
            settings=settings, engine=engine, hub=hub, metrics=metrics, payments=payments
        )
        app.state.guard = ConnectionGuard.from_settings(settings)
        log.info("engine %s ready", engine.name)
        if settings.demo:
            from live.demo import seed_demo

            print(await seed_demo(app.state.services), flush=True)
        try:
            # The settings also reach uvicorn's protocol instances (handshake timeout).
            yield {APP_STATE_SETTINGS: settings}
        finally:
            hub.close_all(CloseCode.RESTART, "server restarting")
            await app.state.services.activity.close()
            await engine.close()

    return Starlette(
        routes=[
            *api_routes,
            *room_routes,
            WebSocketRoute("/v1/rooms/{room_id}/live", live_endpoint),
            *page_routes,
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        middleware=[
            Middleware(RequestLimits, max_bytes=MAX_BODY_BYTES, timeout=settings.handshake_timeout)
        ],
    )


def app_from_env() -> Starlette:
    """Factory for worker processes: settings come from the environment."""
    return create_app(Settings.from_env())

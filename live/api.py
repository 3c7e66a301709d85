"""The HTTP API under ``/v1`` (JSON). Every error is ``{"error": {code, message}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from live.auth import AuthError, bearer_token, verify_token
from live.errors import BANNED, LiveError, error_code, error_response
from live.json import json_response
from live.money import package_offers, purchase_public, transaction_public
from live.services import Services, check_key, check_room_id
from store.domain.models import Profile
from store.errors import StoreError, Unavailable

log = logging.getLogger("live.api")

MAX_BODY_BYTES = 16_384
Handler = Callable[[Request], Awaitable[Response]]


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def endpoint(handler: Handler) -> Handler:
    """Turn every error we raise on purpose into its JSON body; log the rest."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except (LiveError, StoreError, AuthError) as exc:
            code, message = error_code(exc)
            if isinstance(exc, Unavailable):
                return error_response("internal", "a backend is unavailable, retry", status=503)
            return error_response(code, message)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response("internal", "internal error")

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def user_of(request: Request) -> Profile:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise LiveError("unauthorized", "missing Authorization: Bearer token")
    settings = services_of(request).settings
    return verify_token(token, secret=settings.secret, leeway_seconds=settings.jwt_leeway_seconds)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise LiveError("too_large", f"request body over {MAX_BODY_BYTES} bytes")
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LiveError("bad_request", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise LiveError("bad_request", "body must be a JSON object")
    return body


def field_str(
    body: dict[str, Any], name: str, *, default: str | None = None, max_chars: int = 64
) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise LiveError("bad_request", f"{name} must be a string of 1-{max_chars} characters")
    return value


def field_int(body: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise LiveError("bad_request", f"{name} must be an integer")
    return value


# -- catalog -------------------------------------------------------------------------------
@endpoint
async def list_gifts(request: Request) -> Response:
    catalog = services_of(request).engine.catalog
    return json_response({"gifts": [g.public() for g in catalog.gifts()]})


@endpoint
async def list_packages(request: Request) -> Response:
    """The region's packages, each with its promotions now and the coins a buyer
    receives (``effective_coins``); with a token, first-purchase promotions count
    only when this user has not bought yet."""
    services = services_of(request)
    region = request.query_params.get("region", services.settings.default_region).upper()
    catalog = services.engine.catalog
    if region not in catalog.regions():
        raise LiveError("not_found", f"no coin packages for region {region!r}")
    first_purchase: bool | None = None
    if request.headers.get("authorization"):
        account = await services.engine.wallet.account(user_of(request).id)
        first_purchase = account.purchases == 0
    return json_response(
        {
            "region": region,
            "first_purchase": first_purchase,
            "packages": package_offers(services, region, first_purchase=bool(first_purchase)),
        }
    )


# -- wallet --------------------------------------------------------------------------------
@endpoint
async def my_wallet(request: Request) -> Response:
    user = user_of(request)
    balance = await services_of(request).engine.wallet.balance(user.id)
    return json_response(
        {
            "user_id": user.id,
            "coins": balance.coins,
            "diamonds": balance.diamonds,
            "debt": balance.debt,
            "locked": balance.debt > 0,
        }
    )


@endpoint
async def my_transactions(request: Request) -> Response:
    user = user_of(request)
    before = request.query_params.get("before") or None
    raw_limit = request.query_params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 200:
        raise LiveError("bad_request", "limit must be an integer from 1 to 200")
    limit = int(raw_limit)
    records = await services_of(request).engine.ledger.transactions(
        user.id, before=before, limit=limit
    )
    items = [transaction_public(r, user.id) for r in records]
    return json_response(
        {"transactions": items, "next": items[-1]["id"] if len(items) == limit else None}
    )


@endpoint
async def create_purchase(request: Request) -> Response:
    user = user_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    receipt = await services_of(request).purchase(
        user=user,
        package_id=field_str(body, "package"),
        key=key,
        provider=field_str(body, "provider", default="sandbox"),
        method=field_str(body, "payment_method", default="sandbox_card"),
        region=field_str(body, "region") if "region" in body else None,
    )
    return json_response(purchase_public(receipt), status=200 if receipt.replayed else 201)


# -- rooms ---------------------------------------------------------------------------------
@endpoint
async def create_room(request: Request) -> Response:
    """Go live: create the room (id defaults to the creator's user id) or start a
    new stream in it. The creator gets the overlay key in the response."""
    user = user_of(request)
    body = await json_body(request)
    room_id = check_room_id(field_str(body, "id", default=user.id))
    title = body.get("title", "")
    if not isinstance(title, str) or len(title) > 120:
        raise LiveError("bad_request", "title must be a string of at most 120 characters")
    room = await services_of(request).go_live(creator=user, room_id=room_id, title=title.strip())
    return json_response({**room.public(), "overlay_key": room.overlay_key}, status=201)


@endpoint
async def get_room(request: Request) -> Response:
    room_id = check_room_id(request.path_params["room_id"])
    return json_response(await services_of(request).room_state(room_id))


@endpoint
async def end_room(request: Request) -> Response:
    user = user_of(request)
    room_id = check_room_id(request.path_params["room_id"])
    room = await services_of(request).end_room(room_id=room_id, by=user)
    return json_response(room.public())


@endpoint
async def room_leaderboard(request: Request) -> Response:
    room_id = check_room_id(request.path_params["room_id"])
    services = services_of(request)
    if await services.engine.rooms.get(room_id) is None:
        raise LiveError("not_found", "room not found")
    top = await services.engine.rooms.leaderboard(room_id, limit=10)
    return json_response({"room_id": room_id, "top": [e.public() for e in top]})


@endpoint
async def send_gift(request: Request) -> Response:
    user = user_of(request)
    room_id = check_room_id(request.path_params["room_id"])
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    services = services_of(request)
    # A banned user's WebSockets are closed and refused, so only this path asks.
    if await services.engine.activity.is_banned(room_id, user.id):
        raise LiveError("forbidden", BANNED)
    receipt = await services.send_gift(
        sender=user,
        room_id=room_id,
        gift_id=field_str(body, "gift"),
        count=field_int(body, "count", default=1),
        key=key,
    )
    return json_response(
        {
            "tx": receipt.tx,
            "gift": receipt.gift_id,
            "count": receipt.count,
            "coins": receipt.coins,
            "diamonds": receipt.diamonds,
            "balance": {"coins": receipt.balance},
            "replayed": receipt.replayed,
        },
        status=200 if receipt.replayed else 201,
    )


# -- operations ----------------------------------------------------------------------------
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    services = services_of(request)
    try:
        checks = await services.engine.ready()
    except Exception as exc:
        return json_response({"status": "unavailable", "error": str(exc)}, status=503)
    return json_response({"status": "ok", "engine": services.engine.name, "checks": checks})


async def metrics(request: Request) -> Response:
    services = services_of(request)
    try:
        gauges = await services.engine.gauges()
    except Exception:  # a scrape must not fail because a backend is down
        log.warning("engine gauges unavailable", exc_info=True)
        gauges = {}
    return PlainTextResponse(
        services.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@endpoint
async def admin_audit(request: Request) -> Response:
    user = user_of(request)
    if not user.is_admin:
        raise LiveError("forbidden", "admins only")
    report = await services_of(request).engine.ledger.audit()
    return json_response(report.public(), status=200 if report.ok else 409)


routes = [
    Route("/v1/gifts", list_gifts, methods=["GET"]),
    Route("/v1/coin-packages", list_packages, methods=["GET"]),
    Route("/v1/me/wallet", my_wallet, methods=["GET"]),
    Route("/v1/me/transactions", my_transactions, methods=["GET"]),
    Route("/v1/purchases", create_purchase, methods=["POST"]),
    Route("/v1/rooms", create_room, methods=["POST"]),
    Route("/v1/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/v1/rooms/{room_id}/end", end_room, methods=["POST"]),
    Route("/v1/rooms/{room_id}/leaderboard", room_leaderboard, methods=["GET"]),
    Route("/v1/rooms/{room_id}/gifts", send_gift, methods=["POST"]),
    Route("/v1/admin/audit", admin_audit, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

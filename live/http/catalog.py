"""The catalog: gifts and the coin packages of a region."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.http.common import actions_of, endpoint, user_of
from live.json import json_response


@endpoint
async def list_gifts(request: Request) -> Response:
    gifts = actions_of(request).gifts.catalog()
    return json_response({"gifts": [g.public() for g in gifts]})


@endpoint
async def list_packages(request: Request) -> Response:
    """The region's packages, each with its promotions now and the coins a buyer
    receives (``effective_coins``); with a token, first-purchase promotions count
    only when this user has not bought yet."""
    actions = actions_of(request)
    region = request.query_params.get("region", actions.settings.default_region).upper()
    actions.money.check_region(region)
    buyer = user_of(request) if request.headers.get("authorization") else None
    return json_response(await actions.money.coin_packages(region, buyer))


routes = [
    Route("/v1/gifts", list_gifts, methods=["GET"]),
    Route("/v1/coin-packages", list_packages, methods=["GET"]),
]

"""The catalog: gifts and the coin packages of a region."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.errors import LiveError
from live.http.common import actions_of, endpoint, user_of
from live.json import json_response
from store.domain.catalog_entries import REGION


@endpoint
async def list_gifts(request: Request) -> Response:
    """The gifts on sale now (``?region=US``: those offered there), with the
    catalog's version (a ``catalog`` event announces the next one)."""
    actions = actions_of(request)
    raw_region = request.query_params.get("region")
    region = None
    if raw_region is not None:
        region = raw_region.upper()
        if not REGION.match(region):
            raise LiveError("bad_request", "region must be a two-letter code like US")
    gifts = actions.gifts.catalog(region)
    return json_response(
        {"gifts": [g.listing() for g in gifts], "version": actions.engine.catalog.version}
    )


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

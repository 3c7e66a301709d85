"""In-app items: the shop, buying one with coins, the user's items and what is equipped."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.checks import check_key, check_room_id
from live.errors import LiveError
from live.http.common import (
    actions_of,
    created,
    endpoint,
    field_str,
    json_body,
    shown_coins,
    user_of,
)
from live.json import json_response
from store.domain.items import Owned


@endpoint
async def list_items(request: Request) -> Response:
    """The items on sale, with the catalog's version."""
    actions = actions_of(request)
    return json_response(
        {
            "items": [i.public() for i in actions.items.shop()],
            "version": actions.engine.catalog.version,
        }
    )


@endpoint
async def buy_item(request: Request) -> Response:
    """Buy an item with coins, once per ``Idempotency-Key``; ``room`` (optional): the
    room the buyer is watching (its creator may earn a share); ``coins``
    (optional): the price the client showed (``price_changed`` if stale)."""
    user = user_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    room = _room(body.get("room"))
    receipt = await actions_of(request).items.buy(
        user=user,
        item_id=field_str(body, "item"),
        key=key,
        room_id=room,
        shown_coins=shown_coins(body),
    )
    return json_response(receipt.public(), status=created(receipt.replayed))


def _inventory(request: Request, owned: list[Owned]) -> Response:
    actions = actions_of(request)
    return json_response(
        {
            "items": actions.items.owned_public(owned),
            "equipped": {o.kind: o.item_id for o in owned if o.equipped},
        }
    )


@endpoint
async def my_items(request: Request) -> Response:
    """The user's items that have not expired (expired ones stop showing), and
    what is equipped per kind."""
    user = user_of(request)
    return _inventory(request, await actions_of(request).items.inventory(user.id))


@endpoint
async def equip(request: Request) -> Response:
    """Equip an owned item (``{"item": id}``) in its kind's slot; ``room``
    (optional): the creator's live room to show a creator effect in."""
    user = user_of(request)
    body = await json_body(request)
    owned = await actions_of(request).items.equip(
        user=user, item_id=field_str(body, "item"), room_id=_room(body.get("room"))
    )
    return _inventory(request, owned)


def _room(value: object) -> str | None:
    """The optional ``room`` of a request: a valid room id, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise LiveError("bad_request", "room must be a room id")
    return check_room_id(value)


@endpoint
async def unequip(request: Request) -> Response:
    """Empty a slot: ``badge``, ``name_style``, ``entrance_effect`` or ``creator_effect``."""
    user = user_of(request)
    kind = request.path_params["kind"]
    room = _room(request.query_params.get("room"))
    owned = await actions_of(request).items.unequip(user=user, kind=kind, room_id=room)
    return _inventory(request, owned)


routes = [
    Route("/v1/items", list_items, methods=["GET"]),
    Route("/v1/me/items", my_items, methods=["GET"]),
    Route("/v1/me/items", buy_item, methods=["POST"]),
    Route("/v1/me/equipped", equip, methods=["PUT"]),
    Route("/v1/me/equipped/{kind}", unequip, methods=["DELETE"]),
]

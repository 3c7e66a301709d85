"""The rooms: going live and ending, the room's state and leaderboard, gifts,
goals, moderation, overlays and a creator's supporters.

Creators (of their own room) and admins moderate; the room's state is read by
anyone.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.checks import check_key, check_room_id
from live.errors import BANNED, LiveError
from live.http.common import (
    actions_of,
    created,
    endpoint,
    field_int,
    field_str,
    json_body,
    query_count,
    room_id_of,
    room_of,
    shown_coins,
    user_of,
)
from live.json import json_response

USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
MAX_ROOM_TITLE = 120
MAX_GOAL_TITLE = 120
MAX_GOAL_TARGET = 1_000_000_000
MAX_MUTE_SECONDS = 30 * 86_400


def _user_id(value: object, what: str = "user") -> str:
    if not isinstance(value, str) or not USER_ID.match(value):
        raise LiveError("bad_request", f"{what} must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)")
    return value


# -- the stream ----------------------------------------------------------------------------
@endpoint
async def create_room(request: Request) -> Response:
    """Go live: create the room (id defaults to the creator's user id) or start a
    new stream in it. The creator gets the overlay key in the response."""
    user = user_of(request)
    body = await json_body(request)
    room_id = check_room_id(field_str(body, "id", default=user.id))
    title = body.get("title", "")
    if not isinstance(title, str) or len(title) > MAX_ROOM_TITLE:
        raise LiveError(
            "bad_request", f"title must be a string of at most {MAX_ROOM_TITLE} characters"
        )
    room = await actions_of(request).rooms.go_live(
        creator=user, room_id=room_id, title=title.strip()
    )
    return json_response({**room.public(), "overlay_key": room.overlay_key}, status=201)


@endpoint
async def get_room(request: Request) -> Response:
    return json_response(await actions_of(request).rooms.state(room_id_of(request)))


@endpoint
async def end_room(request: Request) -> Response:
    user, room_id = room_of(request)
    room = await actions_of(request).rooms.end(room_id=room_id, by=user)
    return json_response(room.public())


@endpoint
async def room_leaderboard(request: Request) -> Response:
    room_id = room_id_of(request)
    top = await actions_of(request).rooms.leaderboard(room_id)
    return json_response({"room_id": room_id, "top": [e.public() for e in top]})


@endpoint
async def send_gift(request: Request) -> Response:
    user, room_id = room_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    actions = actions_of(request)
    # A banned user's WebSockets are closed and refused, so only this path asks.
    if await actions.rooms.is_banned(room_id, user.id):
        raise LiveError("forbidden", BANNED)
    receipt = await actions.gifts.send(
        sender=user,
        room_id=room_id,
        gift_id=field_str(body, "gift"),
        count=field_int(body, "count", default=1),
        key=key,
        shown_coins=shown_coins(body),
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
        status=created(receipt.replayed),
    )


# -- goals ---------------------------------------------------------------------------------
@endpoint
async def put_goal(request: Request) -> Response:
    """Set the room's diamond goal for the current stream (progress starts at 0)."""
    user, room_id = room_of(request)
    body = await json_body(request)
    target = field_int(body, "target")
    if not 1 <= target <= MAX_GOAL_TARGET:
        raise LiveError("bad_request", f"target must be an integer from 1 to {MAX_GOAL_TARGET}")
    title = field_str(body, "title", max_chars=MAX_GOAL_TITLE).strip()
    if not title or not title.isprintable():
        raise LiveError("bad_request", "title must be printable text")
    goal = await actions_of(request).rooms.set_goal(
        room_id=room_id, by=user, target=target, title=title
    )
    return json_response({"room_id": room_id, "goal": goal.public()})


@endpoint
async def get_goal(request: Request) -> Response:
    room_id = room_id_of(request)
    goal = await actions_of(request).rooms.goal(room_id)
    return json_response({"room_id": room_id, "goal": goal.public() if goal else None})


# -- moderation ----------------------------------------------------------------------------
async def _restrict(request: Request, kind: str) -> Response:
    """Ban a user from the room (their connections close and they cannot rejoin,
    until lifted), or mute them (no comments, for ``seconds`` or until lifted)."""
    user, room_id = room_of(request)
    body = await json_body(request)
    target = _user_id(body.get("user"))
    seconds = body.get("seconds")
    if seconds is not None:
        if kind == "ban":
            raise LiveError("bad_request", "bans last until lifted; mutes take seconds")
        seconds = field_int(body, "seconds")
        if not 1 <= seconds <= MAX_MUTE_SECONDS:
            raise LiveError("bad_request", f"seconds must be from 1 to {MAX_MUTE_SECONDS}")
    restriction = await actions_of(request).rooms.restrict(
        room_id=room_id, by=user, user_id=target, kind=kind, seconds=seconds
    )
    return json_response(restriction.public(), status=201)


async def _lift(request: Request, kind: str) -> Response:
    user, room_id = room_of(request)
    target = _user_id(request.path_params["user_id"])
    lifted = await actions_of(request).rooms.lift(
        room_id=room_id, by=user, user_id=target, kind=kind
    )
    if not lifted:
        raise LiveError("not_found", f"no {kind} of {target} in this room")
    return Response(status_code=204)


async def _list(request: Request, kind: str) -> Response:
    user, room_id = room_of(request)
    found = await actions_of(request).rooms.restrictions(room_id=room_id, by=user, kind=kind)
    return json_response({kind + "s": [r.public() for r in found]})


def restriction_routes(kind: str) -> list[Route]:
    """``POST`` (add), ``GET`` (list) and ``DELETE`` (lift) of a room's bans or
    mutes (``kind``)."""

    async def add(request: Request) -> Response:
        return await _restrict(request, kind)

    async def listing(request: Request) -> Response:
        return await _list(request, kind)

    async def lift(request: Request) -> Response:
        return await _lift(request, kind)

    path = f"/v1/rooms/{{room_id}}/{kind}s"
    return [
        Route(path, endpoint(add), methods=["POST"]),
        Route(path, endpoint(listing), methods=["GET"]),
        Route(path + "/{user_id}", endpoint(lift), methods=["DELETE"]),
    ]


@endpoint
async def delete_chat(request: Request) -> Response:
    """Remove a comment: the room gets ``chat_deleted`` with its id and sender."""
    user, room_id = room_of(request)
    message_id = request.path_params["message_id"]
    if not MESSAGE_ID.match(message_id):
        raise LiveError("bad_request", "message id must be 1-64 printable ASCII characters")
    sender = _user_id(request.query_params.get("user"), "the user query parameter")
    await actions_of(request).rooms.delete_chat(
        room_id=room_id, by=user, message_id=message_id, user_id=sender
    )
    return Response(status_code=204)


# -- overlays ------------------------------------------------------------------------------
@endpoint
async def rotate_overlay_key(request: Request) -> Response:
    """A new overlay key; overlays connected with the old one are disconnected."""
    user, room_id = room_of(request)
    key = await actions_of(request).rooms.rotate_overlay_key(room_id=room_id, by=user)
    return json_response({"room_id": room_id, "overlay_key": key})


@endpoint
async def test_event(request: Request) -> Response:
    """A fake gift (``test: true``) for the room's overlays only: no money moves."""
    user, room_id = room_of(request)
    body = await json_body(request)
    actions = actions_of(request)
    count = field_int(body, "count", default=1)
    gift = actions.gifts.catalog_gift(field_str(body, "gift", default="rose"), count)
    event = await actions.rooms.test_event(room_id=room_id, by=user, gift=gift, count=count)
    return json_response({"room_id": room_id, "event": event}, status=202)


# -- supporters ----------------------------------------------------------------------------
@endpoint
async def supporters(request: Request) -> Response:
    """The creator's top supporters: ``period=day`` (today, UTC) or ``all``."""
    creator_id = _user_id(request.path_params["creator_id"], "creator id")
    period = request.query_params.get("period", "all")
    if period not in ("day", "all"):
        raise LiveError("bad_request", "period must be day or all")
    limit = query_count(request, "limit", default=10, most=100)
    top = await actions_of(request).rooms.supporters(creator_id, period=period, limit=limit)
    return json_response(
        {"creator_id": creator_id, "period": period, "top": [e.public() for e in top]}
    )


routes = [
    Route("/v1/rooms", create_room, methods=["POST"]),
    Route("/v1/rooms/{room_id}", get_room, methods=["GET"]),
    Route("/v1/rooms/{room_id}/end", end_room, methods=["POST"]),
    Route("/v1/rooms/{room_id}/leaderboard", room_leaderboard, methods=["GET"]),
    Route("/v1/rooms/{room_id}/gifts", send_gift, methods=["POST"]),
    Route("/v1/rooms/{room_id}/goal", put_goal, methods=["PUT"]),
    Route("/v1/rooms/{room_id}/goal", get_goal, methods=["GET"]),
    *restriction_routes("ban"),
    *restriction_routes("mute"),
    Route("/v1/rooms/{room_id}/chat/{message_id}", delete_chat, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/overlay-key", rotate_overlay_key, methods=["POST"]),
    Route("/v1/rooms/{room_id}/test-events", test_event, methods=["POST"]),
    Route("/v1/creators/{creator_id}/supporters", supporters, methods=["GET"]),
]

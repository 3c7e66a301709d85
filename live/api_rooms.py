"""HTTP endpoints of the room experience: goals, moderation, overlays, supporters.

Creators (of their own room) and admins moderate; everything else here is read
by anyone. Errors are the API's usual ``{"error": {code, message}}``.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.api import endpoint, field_int, field_str, json_body, services_of, user_of
from live.errors import LiveError
from live.json import json_response
from live.services import check_room_id

USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
MAX_GOAL_TITLE = 120
MAX_GOAL_TARGET = 1_000_000_000
MAX_MUTE_SECONDS = 30 * 86_400


def _user_id(value: object, what: str = "user") -> str:
    if not isinstance(value, str) or not USER_ID.match(value):
        raise LiveError("bad_request", f"{what} must be a user id (1-64 of A-Z a-z 0-9 _ . @ -)")
    return value


def _room_id(request: Request) -> str:
    return check_room_id(request.path_params["room_id"])


# -- goals ---------------------------------------------------------------------------------
@endpoint
async def put_goal(request: Request) -> Response:
    """Set the room's diamond goal for the current stream (progress starts at 0)."""
    user = user_of(request)
    room_id = _room_id(request)
    body = await json_body(request)
    target = field_int(body, "target")
    if not 1 <= target <= MAX_GOAL_TARGET:
        raise LiveError("bad_request", f"target must be an integer from 1 to {MAX_GOAL_TARGET}")
    title = field_str(body, "title", max_chars=MAX_GOAL_TITLE).strip()
    if not title or not title.isprintable():
        raise LiveError("bad_request", "title must be printable text")
    goal = await services_of(request).activity.set_goal(
        room_id=room_id, by=user, target=target, title=title
    )
    return json_response({"room_id": room_id, "goal": goal.public()})


@endpoint
async def get_goal(request: Request) -> Response:
    room_id = _room_id(request)
    services = services_of(request)
    if await services.engine.rooms.get(room_id) is None:
        raise LiveError("not_found", "room not found")
    goal = await services.engine.activity.goal(room_id)
    return json_response({"room_id": room_id, "goal": goal.public() if goal else None})


# -- moderation ----------------------------------------------------------------------------
async def _restrict(request: Request, kind: str) -> Response:
    user = user_of(request)
    room_id = _room_id(request)
    body = await json_body(request)
    target = _user_id(body.get("user"))
    seconds = body.get("seconds")
    if seconds is not None:
        if kind == "ban":
            raise LiveError("bad_request", "bans last until lifted; mutes take seconds")
        seconds = field_int(body, "seconds")
        if not 1 <= seconds <= MAX_MUTE_SECONDS:
            raise LiveError("bad_request", f"seconds must be from 1 to {MAX_MUTE_SECONDS}")
    restriction = await services_of(request).activity.restrict(
        room_id=room_id, by=user, user_id=target, kind=kind, seconds=seconds
    )
    return json_response(restriction.public(), status=201)


async def _lift(request: Request, kind: str) -> Response:
    user = user_of(request)
    room_id = _room_id(request)
    target = _user_id(request.path_params["user_id"])
    lifted = await services_of(request).activity.lift(
        room_id=room_id, by=user, user_id=target, kind=kind
    )
    if not lifted:
        raise LiveError("not_found", f"no {kind} of {target} in this room")
    return Response(status_code=204)


async def _list(request: Request, kind: str) -> Response:
    user = user_of(request)
    room_id = _room_id(request)
    services = services_of(request)
    await services.activity.moderated_room(room_id, user)
    found = await services.engine.activity.restrictions(room_id)
    return json_response({kind + "s": [r.public() for r in found if r.kind == kind]})


@endpoint
async def ban(request: Request) -> Response:
    """Ban a user from the room: their connections close and they cannot rejoin."""
    return await _restrict(request, "ban")


@endpoint
async def unban(request: Request) -> Response:
    return await _lift(request, "ban")


@endpoint
async def list_bans(request: Request) -> Response:
    return await _list(request, "ban")


@endpoint
async def mute(request: Request) -> Response:
    """Mute a user in the room (for ``seconds``, or until lifted): no comments."""
    return await _restrict(request, "mute")


@endpoint
async def unmute(request: Request) -> Response:
    return await _lift(request, "mute")


@endpoint
async def list_mutes(request: Request) -> Response:
    return await _list(request, "mute")


@endpoint
async def delete_chat(request: Request) -> Response:
    """Remove a comment: the room gets ``chat_deleted`` with its id and sender."""
    user = user_of(request)
    room_id = _room_id(request)
    message_id = request.path_params["message_id"]
    if not MESSAGE_ID.match(message_id):
        raise LiveError("bad_request", "message id must be 1-64 printable ASCII characters")
    sender = _user_id(request.query_params.get("user"), "the user query parameter")
    await services_of(request).activity.delete_chat(
        room_id=room_id, by=user, message_id=message_id, user_id=sender
    )
    return Response(status_code=204)


# -- overlays ------------------------------------------------------------------------------
@endpoint
async def rotate_overlay_key(request: Request) -> Response:
    """A new overlay key; overlays connected with the old one are disconnected."""
    user = user_of(request)
    room_id = _room_id(request)
    key = await services_of(request).activity.rotate_overlay_key(room_id=room_id, by=user)
    return json_response({"room_id": room_id, "overlay_key": key})


@endpoint
async def test_event(request: Request) -> Response:
    """A fake gift (``test: true``) for the room's overlays only: no money moves."""
    user = user_of(request)
    room_id = _room_id(request)
    body = await json_body(request)
    services = services_of(request)
    count = field_int(body, "count", default=1)
    gift = services.catalog_gift(field_str(body, "gift", default="rose"), count)
    event = await services.activity.test_event(room_id=room_id, by=user, gift=gift, count=count)
    return json_response({"room_id": room_id, "event": event}, status=202)


# -- supporters ----------------------------------------------------------------------------
@endpoint
async def supporters(request: Request) -> Response:
    """The creator's top supporters: ``period=day`` (today, UTC) or ``all``."""
    creator_id = _user_id(request.path_params["creator_id"], "creator id")
    period = request.query_params.get("period", "all")
    if period not in ("day", "all"):
        raise LiveError("bad_request", "period must be day or all")
    raw_limit = request.query_params.get("limit", "10")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise LiveError("bad_request", "limit must be an integer from 1 to 100")
    top = await services_of(request).engine.activity.supporters(
        creator_id, period=period, limit=int(raw_limit)
    )
    return json_response(
        {"creator_id": creator_id, "period": period, "top": [e.public() for e in top]}
    )


routes = [
    Route("/v1/rooms/{room_id}/goal", put_goal, methods=["PUT"]),
    Route("/v1/rooms/{room_id}/goal", get_goal, methods=["GET"]),
    Route("/v1/rooms/{room_id}/bans", ban, methods=["POST"]),
    Route("/v1/rooms/{room_id}/bans", list_bans, methods=["GET"]),
    Route("/v1/rooms/{room_id}/bans/{user_id}", unban, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/mutes", mute, methods=["POST"]),
    Route("/v1/rooms/{room_id}/mutes", list_mutes, methods=["GET"]),
    Route("/v1/rooms/{room_id}/mutes/{user_id}", unmute, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/chat/{message_id}", delete_chat, methods=["DELETE"]),
    Route("/v1/rooms/{room_id}/overlay-key", rotate_overlay_key, methods=["POST"]),
    Route("/v1/rooms/{room_id}/test-events", test_event, methods=["POST"]),
    Route("/v1/creators/{creator_id}/supporters", supporters, methods=["GET"]),
]

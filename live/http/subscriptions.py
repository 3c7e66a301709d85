"""Event subscriptions and integration apps over HTTP (``/v1/subscriptions``,
``/v1/apps``), and the room's overlay presence (``/v1/rooms/{room}/overlays``).

A creator calls these with their bearer token; an integration app with its
client credentials (``Authorization: Basic base64(client_id:client_secret)``),
acting for the creator who made it, on the subscriptions it made.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.errors import LiveError
from live.http.common import actions_of, endpoint, field_str, json_body, room_of, user_of
from live.json import json_response
from live.subscriptions.service import Caller

MAX_TYPES = 16


async def caller_of(request: Request) -> Caller:
    """The creator of the bearer token, or the app of the Basic credentials."""
    service = actions_of(request).subscriptions
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise LiveError("unauthorized", "malformed Basic credentials") from None
        client_id, sep, client_secret = decoded.partition(":")
        if not sep:
            raise LiveError("unauthorized", "malformed Basic credentials")
        return await service.app_caller(client_id, client_secret)
    return await service.caller(user_of(request))


def _optional_secret(body: dict[str, object]) -> str | None:
    """The signing secret the caller chose, if any (checked by the service)."""
    secret = body.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise LiveError("bad_request", "secret must be a string")
    return secret


def _subscription_id(request: Request) -> str:
    value = str(request.path_params["subscription_id"])
    if not 0 < len(value) <= 64:
        raise LiveError("not_found", "no such subscription")
    return value


@endpoint
async def create_subscription(request: Request) -> Response:
    """Subscribe a callback to a room's events: it must answer the challenge."""
    caller = await caller_of(request)
    body = await json_body(request)
    types = body.get("types")
    if (
        not isinstance(types, list)
        or not 0 < len(types) <= MAX_TYPES
        or not all(isinstance(t, str) for t in types)
    ):
        raise LiveError("bad_request", f"types must be a list of 1-{MAX_TYPES} event types")
    subscription, secret = await actions_of(request).subscriptions.create(
        caller,
        room_id=field_str(body, "room_id"),
        types=types,
        callback=field_str(body, "callback", max_chars=2_048),
        secret=_optional_secret(body),
    )
    return json_response(
        {"subscription": subscription.public(pending=0), "secret": secret}, status=201
    )


@endpoint
async def list_subscriptions(request: Request) -> Response:
    caller = await caller_of(request)
    found = await actions_of(request).subscriptions.owned(caller)
    return json_response({"subscriptions": found})


@endpoint
async def get_subscription(request: Request) -> Response:
    caller = await caller_of(request)
    view = await actions_of(request).subscriptions.view(caller, _subscription_id(request))
    return json_response({"subscription": view})


@endpoint
async def delete_subscription(request: Request) -> Response:
    caller = await caller_of(request)
    await actions_of(request).subscriptions.delete(caller, _subscription_id(request))
    return Response(status_code=204)


def _status_change(status: str, doc: str) -> Route:
    @endpoint
    async def change(request: Request) -> Response:
        caller = await caller_of(request)
        service = actions_of(request).subscriptions
        changed = await service.set_status(caller, _subscription_id(request), status)
        return json_response({"subscription": changed.public()})

    change.__doc__ = doc
    verb = "pause" if status == "paused" else "resume"
    return Route(f"/v1/subscriptions/{{subscription_id}}/{verb}", change, methods=["POST"])


@endpoint
async def rotate_secret(request: Request) -> Response:
    """A new signing secret (``{secret}`` to choose it), shown once; the old one
    stops at once."""
    caller = await caller_of(request)
    subscription_id = _subscription_id(request)
    body = await json_body(request)
    secret = await actions_of(request).subscriptions.rotate_secret(
        caller, subscription_id, secret=_optional_secret(body)
    )
    return json_response({"subscription_id": subscription_id, "secret": secret})


@endpoint
async def send_test(request: Request) -> Response:
    """Queue a sample event (``test: true``) for this subscription alone."""
    caller = await caller_of(request)
    body = await json_body(request)
    event_type = field_str(body, "type", default="gift")
    message_id = await actions_of(request).subscriptions.send_test(
        caller, _subscription_id(request), event_type
    )
    return json_response({"message_id": message_id}, status=202)


@endpoint
async def create_app(request: Request) -> Response:
    """Client credentials for an integration acting on this creator's subscriptions."""
    caller = await caller_of(request)
    body = await json_body(request)
    app, secret = await actions_of(request).subscriptions.add_app(
        caller, name=field_str(body, "name", max_chars=100)
    )
    return json_response({"app": app.public(), "client_secret": secret}, status=201)


@endpoint
async def list_apps(request: Request) -> Response:
    caller = await caller_of(request)
    apps = await actions_of(request).subscriptions.apps(caller)
    return json_response({"apps": [app.public() for app in apps]})


@endpoint
async def delete_app(request: Request) -> Response:
    """Revoke an app's credentials and delete the subscriptions it made."""
    caller = await caller_of(request)
    client_id = str(request.path_params["client_id"])
    await actions_of(request).subscriptions.delete_app(caller, client_id)
    return Response(status_code=204)


@endpoint
async def room_overlays(request: Request) -> Response:
    """The overlays connected to the room (every node), and since when."""
    user, room_id = room_of(request)
    actions = actions_of(request)
    await actions.rooms.moderated_room(room_id, user)
    overlays = await actions.overlays.overlays(room_id)
    return json_response({"room_id": room_id, "count": len(overlays), "overlays": overlays})


routes = [
    Route("/v1/rooms/{room_id}/overlays", room_overlays, methods=["GET"]),
    Route("/v1/subscriptions", create_subscription, methods=["POST"]),
    Route("/v1/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/v1/subscriptions/{subscription_id}", get_subscription, methods=["GET"]),
    Route("/v1/subscriptions/{subscription_id}", delete_subscription, methods=["DELETE"]),
    _status_change("paused", "Stop queueing and delivering until resumed."),
    _status_change("enabled", "Deliver again (a disabled subscription too), failures forgotten."),
    Route("/v1/subscriptions/{subscription_id}/secret", rotate_secret, methods=["POST"]),
    Route("/v1/subscriptions/{subscription_id}/test", send_test, methods=["POST"]),
    Route("/v1/apps", create_app, methods=["POST"]),
    Route("/v1/apps", list_apps, methods=["GET"]),
    Route("/v1/apps/{client_id}", delete_app, methods=["DELETE"]),
]

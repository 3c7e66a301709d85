"""What every handler of the HTTP API under ``/v1`` shares: the node's actions,
the caller's identity, the JSON body and its fields, query numbers, and one
error shape, ``{"error": {code, message}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from live.actions.node import Actions
from live.auth import AuthError, bearer_token
from live.checks import check_room_id
from live.errors import LiveError, error_code, error_response
from live.identity.service import Identity
from store.domain.models import Profile
from store.errors import StoreError, Unavailable

log = logging.getLogger("live.api")

MAX_BODY_BYTES = 16_384
MAX_TEXT_CHARS = 500
"""Free text an admin or a moderator attaches (a reason, a note, a reference)."""
Handler = Callable[[Request], Awaitable[Response]]


def actions_of(request: Request) -> Actions:
    actions: Actions = request.app.state.actions
    return actions


def endpoint(handler: Handler) -> Handler:
    """Turn every error we raise on purpose into its JSON body; log the rest."""

    async def wrapped(request: Request) -> Response:
        try:
            # A token signed with a key just rotated in waits for the JWKS here, so
            # the handlers' ``user_of`` stays synchronous.
            await identity_of(request).prepare(bearer_token(request.headers.get("authorization")))
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
    return identity_of(request).verify(token).profile


def identity_of(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


def admin_of(request: Request) -> Profile:
    """The caller, who must be an admin."""
    user = user_of(request)
    if not user.is_admin:
        raise LiveError("forbidden", "admins only")
    return user


def room_of(request: Request) -> tuple[Profile, str]:
    """The caller and the room of the path: what every room action starts with."""
    return user_of(request), room_id_of(request)


def room_id_of(request: Request) -> str:
    return check_room_id(request.path_params["room_id"])


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


def field_text(body: dict[str, Any], name: str) -> str:
    """Optional free text (empty by default) of at most ``MAX_TEXT_CHARS``."""
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        raise LiveError(
            "bad_request", f"{name} must be a string of at most {MAX_TEXT_CHARS} characters"
        )
    return value


def query_count(request: Request, name: str, *, default: int, most: int) -> int:
    """A query parameter counting from 1 to ``most`` (a page size, a number of days)."""
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise LiveError("bad_request", f"{name} must be an integer from 1 to {most}")
    return int(raw)


def created(replayed: bool) -> int:
    """201 for what a request created, 200 for the replay of one."""
    return 200 if replayed else 201


def shown_coins(body: dict[str, Any]) -> int | None:
    """The optional unit price the client showed (``price_changed`` if stale)."""
    if body.get("coins") is None:
        return None
    coins = field_int(body, "coins")
    if coins < 1:
        raise LiveError("bad_request", "coins must be a positive integer")
    return coins

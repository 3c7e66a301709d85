"""Access tokens: HS256 JWTs, verified with the pinned algorithm only.

A token is the only source of a user's identity: the sender of a gift or a chat
line is always taken from here, never from a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from store.domain.models import Profile

_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_KNOWN_ROLES = frozenset({"creator", "admin"})
_MAX_TOKEN_BYTES = 4_096


class AuthError(Exception):
    """The token is missing, malformed, forged or expired. Code ``unauthorized``."""

    code = "unauthorized"


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise AuthError("malformed token") from None


def _sign(secret: str, signing_input: bytes) -> bytes:
    return hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()


def issue_token(
    *,
    secret: str,
    user_id: str,
    username: str | None = None,
    display_name: str | None = None,
    avatar: str = "",
    adult: bool = False,
    roles: Iterable[str] = (),
    ttl_seconds: int = 86_400,
    now: float | None = None,
) -> str:
    """Mint an HS256 token (dev tooling and tests; production tokens come from the
    platform's identity service signed with the same secret)."""
    if not _USER_ID.match(user_id):
        raise ValueError("user id must be 1-64 characters of A-Z a-z 0-9 _ . @ -")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "name": username or user_id,
        "display_name": display_name or username or user_id,
        "avatar": avatar,
        "adult": adult,
        "roles": sorted(set(roles)),
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    header = _b64encode(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = _b64encode(orjson.dumps(claims))
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{_b64encode(_sign(secret, signing_input))}"


def verify_token(
    token: str, *, secret: str, leeway_seconds: int = 30, now: float | None = None
) -> Profile:
    """Return the token's profile or raise ``AuthError``. Only HS256 is accepted
    (``none`` and every other algorithm are rejected before any signature check)."""
    if not token or len(token) > _MAX_TOKEN_BYTES:
        raise AuthError("malformed token")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed token")
    header = _json_object(_b64decode(parts[0]))
    if header.get("alg") != "HS256" or header.get("crit") is not None:
        raise AuthError("unsupported token algorithm")
    expected = _sign(secret, f"{parts[0]}.{parts[1]}".encode())
    if not hmac.compare_digest(expected, _b64decode(parts[2])):
        raise AuthError("bad token signature")
    claims = _json_object(_b64decode(parts[1]))
    current = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError("token has no expiry")
    if current > exp + leeway_seconds:
        raise AuthError("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and current + leeway_seconds < nbf:
        raise AuthError("token not valid yet")
    return profile_from_claims(claims)


def profile_from_claims(claims: Mapping[str, Any]) -> Profile:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _USER_ID.match(sub):
        raise AuthError("token subject must be a user id")
    name = _short_str(claims.get("name"), default=sub, limit=64)
    display = _short_str(claims.get("display_name"), default=name, limit=64)
    avatar = _short_str(claims.get("avatar"), default="", limit=512)
    adult = claims.get("adult") is True
    raw_roles = claims.get("roles", [])
    roles = (
        frozenset(r for r in raw_roles if isinstance(r, str) and r in _KNOWN_ROLES)
        if isinstance(raw_roles, list)
        else frozenset()
    )
    return Profile(
        id=sub, username=name, display_name=display, avatar=avatar, adult=adult, roles=roles
    )


def _short_str(value: object, *, default: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        return default
    return value.strip()[:limit]


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AuthError("malformed token") from None
    if not isinstance(value, dict):
        raise AuthError("malformed token")
    return value


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()

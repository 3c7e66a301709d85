"""From a verified token's claims to a ``Profile``: which claim holds what.

Identity services name things differently (OIDC's ``preferred_username`` and
``picture``, Keycloak's ``realm_access.roles``, Auth0's namespaced claims), so
every claim the server reads is configurable; the defaults are this server's own
development tokens. Nothing here checks signatures or times: only verified
claims reach it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.domain.models import Profile

USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
"""What a user id may be: it names wallets, ledger accounts and keys everywhere."""
KNOWN_ROLES = frozenset({"creator", "admin"})
ADULT_AGE = 18
_BIRTHDATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class AuthError(Exception):
    """The token is missing, malformed, forged, expired or not for us. Code
    ``unauthorized``; the message says which check failed."""

    code = "unauthorized"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimMap:
    """The claim names (a claim name, or a dotted path into nested objects) that hold
    each part of a profile. ``birthdate`` (``YYYY-MM-DD``), when set and present in a
    token, decides adulthood; otherwise the boolean ``adult`` claim does."""

    user_id: str = "sub"
    username: str = "name"
    display_name: str = "display_name"
    avatar: str = "avatar"
    roles: str = "roles"
    adult: str = "adult"
    birthdate: str = ""

    def profile(self, claims: Mapping[str, Any], *, today: dt.date) -> Profile:
        """The profile the claims describe, or ``AuthError`` without a usable user id."""
        user_id = claim(claims, self.user_id)
        if not isinstance(user_id, str) or not USER_ID.match(user_id):
            raise AuthError(f"token claim {self.user_id!r} must be a user id")
        name = _short_str(claim(claims, self.username), default=user_id, limit=64)
        display = _short_str(claim(claims, self.display_name), default=name, limit=64)
        avatar = _short_str(claim(claims, self.avatar), default="", limit=512)
        return Profile(
            id=user_id,
            username=name,
            display_name=display,
            avatar=avatar,
            adult=self._adult(claims, today),
            roles=_roles(claim(claims, self.roles)),
        )

    def _adult(self, claims: Mapping[str, Any], today: dt.date) -> bool:
        if self.birthdate:
            born = claim(claims, self.birthdate)
            if born is not None:
                return age_on(born, today) >= ADULT_AGE
        return claim(claims, self.adult) is True


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``; failing that, the dotted path ``name`` into nested maps
    (so ``https://example.com/roles`` and ``realm_access.roles`` both work)."""
    if not name:
        return None
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def age_on(birthdate: object, today: dt.date) -> int:
    """Whole years from an OIDC ``birthdate`` to ``today``; -1 when unusable (a year
    of ``0000``, a partial or impossible date): nobody is an adult by default."""
    match = _BIRTHDATE.match(birthdate) if isinstance(birthdate, str) else None
    if match is None:
        return -1
    try:
        born = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return -1
    if born > today:
        return -1
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _roles(raw: object) -> frozenset[str]:
    """Known roles from a list of names or a space-separated string (scope style)."""
    names = raw.split() if isinstance(raw, str) else raw
    if not isinstance(names, list):
        return frozenset()
    return frozenset(r for r in names if isinstance(r, str) and r in KNOWN_ROLES)


def _short_str(value: object, *, default: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        return default
    return value.strip()[:limit]

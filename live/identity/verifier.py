"""Token verification: PyJWT checks the signature, the issuer and the audience; this
module decides which key may check which token, and the times.

Order of checks, cheapest and most hostile first: the size (before any parsing),
the header's ``alg`` against the configured list (``none`` is never in it), the
key (an HS token only ever meets the HMAC secret; an asymmetric one only a key of
its own family and curve), then the signature, ``iss`` and ``aud``, then ``exp``,
``nbf`` and ``iat`` with the leeway. The clock is injectable so that expiry is
tested without waiting, and the same clock decides live connections' expiry.
Everything is synchronous: a cached key verifies in microseconds.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from live.identity.claims import AuthError, ClaimMap
from live.identity.jwks import JwksKeys
from live.identity.keys import ALGORITHMS, VerificationKey, family_of
from store.domain.models import Profile

DEFAULT_MAX_BYTES = 8_192


class UnknownKey(AuthError):
    """The token names a ``kid`` the JWKS cache does not hold (yet)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """Who a valid token names, and until when (epoch seconds, without leeway)."""

    profile: Profile
    expires_at: float


class Verifier:
    """Verifies tokens against the configured algorithms, keys and claims."""

    def __init__(
        self,
        *,
        algorithms: Iterable[str] = ("HS256",),
        secret: str = "",
        public_keys: Sequence[VerificationKey] = (),
        jwks: JwksKeys | None = None,
        issuer: str = "",
        audience: Sequence[str] = (),
        leeway_seconds: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        claims: ClaimMap | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.algorithms = frozenset(algorithms)
        unknown = self.algorithms - ALGORITHMS
        if unknown or not self.algorithms:
            raise ValueError(f"unsupported token algorithms: {sorted(unknown) or 'none'}")
        self.secret = secret
        self.public_keys = tuple(public_keys)
        self.jwks = jwks
        self.issuer = issuer
        self.audience = tuple(audience)
        self.leeway = leeway_seconds
        self.max_bytes = max_bytes
        self.claims = claims or ClaimMap()
        self.clock = clock
        required = ["exp"] + (["iss"] if issuer else []) + (["aud"] if self.audience else [])
        self._options: Any = {
            "verify_signature": True,
            "verify_exp": False,  # times are checked below, on our clock
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": bool(issuer),
            "verify_aud": bool(self.audience),
            "require": required,
        }

    def verify(self, token: str, *, now: float | None = None) -> Verified:
        """The token's profile and expiry, or ``AuthError`` saying what failed."""
        if not token or len(token) > self.max_bytes:
            raise AuthError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError("unsupported token algorithm")
        if header.get("crit") is not None:
            raise AuthError("unsupported token header")
        claims = self._decode(token, alg, header.get("kid"))
        current = self.clock() if now is None else now
        expires_at = self._check_times(claims, current)
        today = dt.datetime.fromtimestamp(current, dt.UTC).date()
        return Verified(self.claims.profile(claims, today=today), expires_at)

    def _decode(self, token: str, alg: str, kid: object) -> dict[str, Any]:
        if kid is not None and not isinstance(kid, str):
            raise AuthError("malformed token")
        failure = AuthError("bad token signature")
        for key in self._keys_for(alg, kid):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    issuer=self.issuer or None,
                    audience=list(self.audience) or None,
                    options=self._options,
                )
                return claims
            except jwt.InvalidSignatureError:
                continue  # another key without a kid may still match
            except jwt.MissingRequiredClaimError as exc:
                failure = AuthError(f"token has no {exc.claim!r} claim")
            except jwt.InvalidIssuerError:
                failure = AuthError("token issuer is not accepted")
            except jwt.InvalidAudienceError:
                failure = AuthError("token audience is not accepted")
            except jwt.InvalidTokenError:
                failure = AuthError("malformed token")
            break
        raise failure

    def _keys_for(self, alg: str, kid: str | None) -> list[Any]:
        """The keys that may check a token of ``alg`` naming ``kid``: the secret for
        HMAC, else public keys of the right family (``UnknownKey`` if the JWKS
        lacks the ``kid`` and nothing else fits)."""
        if family_of(alg) == "oct":
            if not self.secret:
                raise AuthError("unsupported token algorithm")
            return [self.secret]
        candidates = [k for k in self.public_keys if kid is None or k.kid in (None, kid)]
        if self.jwks is not None:
            if kid is not None:
                found = self.jwks.by_kid(kid)
                candidates += [found] if found is not None else []
            else:
                candidates += self.jwks.keys
        usable = [k.key for k in candidates if k.usable_for(alg)]
        if usable:
            return usable
        if self.jwks is not None and (kid is None or self.jwks.by_kid(kid) is None):
            raise UnknownKey("unknown token signing key")
        raise AuthError("no key for this token's algorithm")

    def _check_times(self, claims: Mapping[str, Any], now: float) -> float:
        exp = _number(claims.get("exp"))
        if exp is None:
            raise AuthError("token has no expiry")
        if now > exp + self.leeway:
            raise AuthError("token expired")
        for name, problem in (("nbf", "not valid yet"), ("iat", "issued in the future")):
            if name in claims:
                start = _number(claims[name])
                if start is None:
                    raise AuthError("malformed token")
                if now + self.leeway < start:
                    raise AuthError(f"token {problem}")
        return exp

    def expired(self, expires_at: float, *, now: float | None = None) -> bool:
        """Whether a token that expires at ``expires_at`` is past it (with the leeway)."""
        return (self.clock() if now is None else now) > expires_at + self.leeway


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None

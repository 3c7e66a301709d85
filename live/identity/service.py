"""The node's identity: a ``Verifier`` built from the settings, and the JWKS
cache's life (fetched at start, refreshed on a schedule, closed at shutdown).

The WebSocket handshake and the ``auth`` command call ``authenticate``: a token
naming a ``kid`` the cache lacks waits for one (rate-limited, shared) JWKS fetch
and is checked again, so a rotation is picked up by the first token that uses
the new key. HTTP handlers verify synchronously; ``prepare`` runs that wait
before the handler when the request's token names an unknown ``kid``.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import jwt

from live.identity.claims import ClaimMap
from live.identity.jwks import JwksKeys, RefreshPolicy
from live.identity.keys import load_public_key_file
from live.identity.verifier import UnknownKey, Verified, Verifier
from live.settings import Settings

log = logging.getLogger("live.identity")


class Identity:
    """Verifies access tokens for this node; see the module docstring."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.jwks = verifier.jwks

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        jwks = (
            JwksKeys(
                url=settings.jwks_url,
                policy=RefreshPolicy(
                    every=settings.jwks_refresh_seconds,
                    min_interval=settings.jwks_min_refresh_seconds,
                    timeout=settings.jwks_timeout_seconds,
                ),
            )
            if settings.jwks_url
            else None
        )
        public_keys = (
            [load_public_key_file(Path(settings.jwt_public_key_file))]
            if settings.jwt_public_key_file
            else []
        )
        verifier = Verifier(
            algorithms=settings.token_algorithms(),
            secret=settings.secret,
            public_keys=public_keys,
            jwks=jwks,
            issuer=settings.jwt_issuer,
            audience=settings.token_audiences(),
            leeway_seconds=settings.jwt_leeway_seconds,
            max_bytes=settings.jwt_max_bytes,
            claims=ClaimMap(
                # each field from its setting: user_id from jwt_claim_user_id, and so on
                **{f.name: getattr(settings, f"jwt_claim_{f.name}") for f in fields(ClaimMap)}
            ),
        )
        return cls(verifier)

    def verify(self, token: str) -> Verified:
        """Verify with the keys at hand (no waiting). An unknown ``kid`` is refused
        and starts a (rate-limited) JWKS fetch for the next attempt."""
        try:
            return self.verifier.verify(token)
        except UnknownKey:
            if self.jwks is not None:
                self.jwks.request_refresh()
            raise

    async def authenticate(self, token: str) -> Verified:
        """Verify; on an unknown ``kid``, wait for the JWKS fetch the rate limit
        allows (if any) and verify once more."""
        try:
            return self.verifier.verify(token)
        except UnknownKey:
            if self.jwks is None:
                raise
            await self.jwks.refresh_for_unknown_kid()
            return self.verifier.verify(token)

    async def prepare(self, token: str | None) -> None:
        """Before a synchronous ``verify`` of ``token``: fetch the JWKS if the token
        names a ``kid`` the cache lacks (and the rate limit allows)."""
        if self.jwks is None or not token or len(token) > self.verifier.max_bytes:
            return
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return  # verify says why
        if isinstance(kid, str) and self.jwks.by_kid(kid) is None:
            await self.jwks.refresh_for_unknown_kid()

    def expired(self, expires_at: float) -> bool:
        return self.verifier.expired(expires_at)

    async def start(self) -> None:
        if self.jwks is not None:
            await self.jwks.start()

    async def close(self) -> None:
        if self.jwks is not None:
            await self.jwks.close()

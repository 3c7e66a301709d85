"""Minting tokens: HS256 development tokens with the server's secret, and RS256 /
ES256 / EdDSA tokens with a private key, to try the asymmetric path without an
identity service. Production tokens come from the platform's identity service."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from live.identity.claims import USER_ID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def load_private_key(pem: bytes) -> PrivateKey:
    """An unencrypted PEM private key (RSA, EC or Ed25519); ``ValueError`` otherwise."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("the private key must be RSA, EC or Ed25519")
    return key


def algorithm_for(key: PrivateKey) -> str:
    """The usual algorithm of a key: RS256, ES256/384/512 by curve, or EdDSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
    algorithm = by_curve.get(key.curve.name)
    if algorithm is None:
        raise ValueError(f"no JWT algorithm for the curve {key.curve.name}")
    return algorithm


def issue_token(
    *,
    secret: str = "",
    private_key: PrivateKey | None = None,
    algorithm: str | None = None,
    key_id: str | None = None,
    user_id: str,
    username: str | None = None,
    display_name: str | None = None,
    avatar: str = "",
    adult: bool = False,
    roles: Iterable[str] = (),
    ttl_seconds: float = 86_400,
    now: float | None = None,
    issuer: str = "",
    audience: str = "",
    extra: dict[str, Any] | None = None,
) -> str:
    """A token with this server's default claims: signed HS256 with ``secret``, or
    with ``private_key`` (``algorithm`` defaults to the key's usual one)."""
    if not USER_ID.match(user_id):
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
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    claims.update(extra or {})
    headers = {"kid": key_id} if key_id else None
    if private_key is not None:
        alg = algorithm or algorithm_for(private_key)
        return jwt.encode(claims, private_key, algorithm=alg, headers=headers)
    if not secret:
        raise ValueError("a secret or a private key is needed to sign a token")
    return jwt.encode(claims, secret, algorithm=algorithm or "HS256", headers=headers)

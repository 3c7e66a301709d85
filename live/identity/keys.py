"""Verification keys and which algorithm each may verify.

A key is kept with its family (``oct``, ``RSA``, ``EC`` with its curve, ``OKP``)
and, from a JWK, its ``alg``; ``usable_for`` is the one place that decides
whether a token's header algorithm may be checked with a key. That is what stops
algorithm confusion: an HS256 token is only ever checked against the configured
HMAC secret, never with a public key's bytes, and a JWKS ``oct`` (symmetric) key
or a private key is never loaded at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWKError

ALGORITHMS = frozenset(
    {
        "HS256",
        "HS384",
        "HS512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
"""Every algorithm that may be configured; ``none`` is never one of them."""

_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | (ed448.Ed448PublicKey)
)


def family_of(algorithm: str) -> str:
    """``oct``, ``RSA``, ``EC`` or ``OKP``: the key type an algorithm needs."""
    if algorithm.startswith("HS"):
        return "oct"
    if algorithm.startswith(("RS", "PS")):
        return "RSA"
    if algorithm.startswith("ES"):
        return "EC"
    return "OKP"


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key, the ``kid`` it is published under and the ``alg`` its JWK pins."""

    key: PublicKey
    kid: str | None = None
    alg: str | None = None

    @property
    def family(self) -> str:
        if isinstance(self.key, rsa.RSAPublicKey):
            return "RSA"
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return "EC"
        return "OKP"

    def usable_for(self, algorithm: str) -> bool:
        """Whether a token signed with ``algorithm`` may be checked with this key."""
        if self.alg is not None and self.alg != algorithm:
            return False
        if family_of(algorithm) != self.family:
            return False
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return _EC_CURVES.get(algorithm) == self.key.curve.name
        return True


def key_from_jwk(jwk: Any) -> VerificationKey | None:
    """The public signing key a JWK describes, or None for anything else (an
    encryption key, a symmetric or private key, an unknown type or algorithm)."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in {"RSA", "EC", "OKP"}:
        return None
    if jwk.get("use", "sig") != "sig" or "d" in jwk:
        return None
    alg = jwk.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        return None
    kid = jwk.get("kid")
    try:
        key = PyJWK(jwk).key
    except (PyJWKError, ValueError, TypeError, KeyError):
        return None
    public = _public(key)
    if public is None:
        return None
    return VerificationKey(public, kid if isinstance(kid, str) else None, alg)


def keys_from_jwks(document: bytes) -> list[VerificationKey]:
    """The usable keys of a JWKS document; ``ValueError`` if it is not one."""
    try:
        parsed = json.loads(document)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
        raise ValueError('not a JWKS document (no "keys" list)')
    return [key for key in map(key_from_jwk, parsed["keys"]) if key is not None]


def load_public_key_file(path: Path) -> VerificationKey:
    """A PEM public key (RSA, EC, Ed25519/Ed448) or a JWK file; ``ValueError`` if it
    holds anything else (a private key or a certificate chain is refused: give the
    public key)."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        key = key_from_jwk(json.loads(data))
        if key is None:
            raise ValueError(f"{path} is not a public signing JWK")
        return key
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{path} is not a PEM public key: {exc}") from None
    public = _public(loaded)
    if public is None:
        raise ValueError(f"{path} holds a key type tokens are not signed with")
    return VerificationKey(public)


def _public(key: object) -> PublicKey | None:
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    return None

"""A JWKS endpoint for tests: a real HTTP server on a free loopback port serving
the public keys of ``SigningKey``s, which the test swaps to rotate them, and
counting how often it is asked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from live.identity.minting import PrivateKey, issue_token

ISSUER = "https://id.example.test/"
AUDIENCE = "gifting-api"


class SigningKey:
    """A private key, its ``kid``, and its public JWK."""

    def __init__(self, kid: str, kind: str) -> None:
        self.kid = kid
        private: PrivateKey
        if kind == "RSA":
            private = rsa.generate_private_key(public_exponent=65_537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
            self.alg = "RS256"
        elif kind == "EC":
            private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
            self.alg = "ES256"
        else:
            private = ed25519.Ed25519PrivateKey.generate()
            jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
            self.alg = "EdDSA"
        self.private = private
        self.jwk: dict[str, Any] = {**jwk, "kid": kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def token(
        self, user: str = "ann", *, kid: str | None = None, ttl: float = 600, **claims: Any
    ) -> str:
        """A token of ``user`` by this key; ``claims`` override the defaults (``iss``,
        ``aud``) or add to them; ``now`` moves the issue time."""
        now = claims.pop("now", None)
        claims = {"iss": ISSUER, "aud": AUDIENCE, **claims}
        key_id = self.kid if kid is None else kid
        options = {"adult": True, "ttl_seconds": ttl, "now": now, "extra": claims}
        return issue_token(private_key=self.private, key_id=key_id, user_id=user, **options)


def raw_token(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    """A token with exactly this header (``alg`` is what it is really signed with)."""
    return jwt.encode(claims, key, algorithm=alg, headers=header)


def default_claims(user: str = "ann", *, ttl: float = 600) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl}


class JwksServer:
    """Serves ``{"keys": [...]}`` of the current keys at ``/jwks.json``."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.fetches = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.fetches += 1
                    body = json.dumps({"keys": [k.jwk for k in outer.keys]}).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def publish(self, *keys: SigningKey) -> None:
        """Serve these keys from now on (a rotation)."""
        with self._lock:
            self.keys = list(keys)


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer()
    server.publish(*keys)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()

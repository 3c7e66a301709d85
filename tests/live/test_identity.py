"""Token verification against a real JWKS endpoint, a public key file and a secret:
what is accepted, what is refused and why, rotation, and the fetch rate limit."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from live.identity.claims import AuthError, ClaimMap, age_on
from live.identity.jwks import JwksKeys, RefreshPolicy
from live.identity.keys import load_public_key_file
from live.identity.service import Identity
from live.identity.verifier import Verifier
from live.settings import Settings, SettingsError
from tests.live.jwks import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    default_claims,
    jwks_server,
    raw_token,
)

SECRET = "s" * 40


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RSA")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "EC")


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    with jwks_server(rsa_key, ec_key) as server:
        yield server


class Clock:
    """A monotonic clock the test moves (the JWKS rate limit's)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def identity_for(
    server: JwksServer, *, clock: Clock | None = None, **options: Any
) -> tuple[Identity, JwksKeys]:
    keys = JwksKeys(url=server.url, policy=RefreshPolicy(), clock=clock or Clock())
    settings: dict[str, Any] = {
        "algorithms": ("RS256", "ES256"),
        "issuer": ISSUER,
        "audience": (AUDIENCE,),
        **options,
    }
    return Identity(Verifier(jwks=keys, **settings)), keys


@contextlib.asynccontextmanager
async def started(server: JwksServer, **options: Any) -> AsyncIterator[tuple[Identity, JwksKeys]]:
    identity, keys = identity_for(server, **options)
    await identity.start()
    try:
        yield identity, keys
    finally:
        await identity.close()


async def test_rs256_and_es256_tokens_from_the_jwks(
    jwks: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    async with started(jwks) as (identity, _):
        for key in (rsa_key, ec_key):
            verified = await identity.authenticate(key.token("ann", ttl=600))
            assert verified.profile.id == "ann" and verified.profile.adult
            assert verified.expires_at > time.time() + 500
        assert jwks.fetches == 1


async def test_refused_tokens(jwks: JwksServer, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    async with started(jwks) as (identity, _):
        cases = {
            "token issuer is not accepted": rsa_key.token(iss="https://evil.test/"),
            "token audience is not accepted": rsa_key.token(aud="another-api"),
            "token expired": rsa_key.token(ttl=60, now=time.time() - 600),
            "token not valid yet": rsa_key.token(nbf=int(time.time()) + 600),
            "token issued in the future": rsa_key.token(now=time.time() + 600),
        }
        for message, token in cases.items():
            with pytest.raises(AuthError, match=message):
                await identity.authenticate(token)
        no_iss = raw_token(
            {"kid": rsa_key.kid},
            {"sub": "ann", "aud": AUDIENCE, "exp": 2e9},
            rsa_key.private,
            "RS256",
        )
        with pytest.raises(AuthError, match="'iss'"):
            await identity.authenticate(no_iss)


async def test_alg_none_and_key_confusion(jwks: JwksServer, rsa_key: SigningKey) -> None:
    """``none`` is never accepted; an HS256 token whose secret is the RSA public key
    (the classic confusion) fails even when HS256 is accepted with a secret."""
    async with started(jwks, algorithms=("RS256", "HS256"), secret=SECRET) as (identity, _):
        claims = default_claims(ttl=600)
        header = base64.urlsafe_b64encode(orjson.dumps({"alg": "none", "kid": rsa_key.kid}))
        payload = base64.urlsafe_b64encode(orjson.dumps(claims))
        unsigned = f"{header.decode().rstrip('=')}.{payload.decode().rstrip('=')}."
        with pytest.raises(AuthError, match="algorithm"):
            await identity.authenticate(unsigned)
        # Signed with the public key's PEM bytes as an HMAC secret: checked against
        # the configured secret only, never against the public key.
        confused = forged_hs256(claims, rsa_key.public_pem(), kid=rsa_key.kid)
        with pytest.raises(AuthError, match="signature"):
            await identity.authenticate(confused)
    async with started(jwks) as (rs_only, _):
        with pytest.raises(AuthError, match="algorithm"):
            await rs_only.authenticate(confused)


def forged_hs256(claims: dict[str, Any], secret: bytes, *, kid: str) -> str:
    """HS256 by hand: PyJWT refuses PEM bytes as an HMAC secret, an attacker doesn't."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(orjson.dumps({'alg': 'HS256', 'kid': kid}))}.{b64(orjson.dumps(claims))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def test_tampered_and_oversized(jwks: JwksServer, rsa_key: SigningKey) -> None:
    async with started(jwks) as (identity, _):
        header, payload, signature = rsa_key.token().split(".")
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["roles"] = ["admin"]
        forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
        with pytest.raises(AuthError, match="signature"):
            await identity.authenticate(f"{header}.{forged}.{signature}")
        huge = rsa_key.token(padding="x" * 9_000)
        with pytest.raises(AuthError, match="malformed"):
            await identity.authenticate(huge)
        for junk in ("", "a.b", "a.b.c.d", "!!!.###.$$$"):
            with pytest.raises(AuthError):
                await identity.authenticate(junk)


async def test_unknown_kids_cause_no_fetch_storm(jwks: JwksServer, rsa_key: SigningKey) -> None:
    clock = Clock()
    async with started(jwks, clock=clock) as (identity, keys):
        forged = [rsa_key.token(kid=f"forged-{i}") for i in range(200)]

        async def storm() -> None:
            results = await asyncio.gather(
                *(identity.authenticate(t) for t in forged), return_exceptions=True
            )
            assert all(isinstance(r, AuthError) and "unknown" in str(r) for r in results)

        await storm()
        assert jwks.fetches == 1  # the start's fetch was just now: rate limited
        clock.now += 31
        await storm()
        assert jwks.fetches == 2  # one fetch shared by 200 misses
        for token in forged[:20]:
            with pytest.raises(AuthError, match="unknown"):
                identity.verify(token)  # the synchronous path is limited the same way
        assert keys.fetches == 2
        await storm()
        assert jwks.fetches == 2


async def test_rotation_without_restart(jwks: JwksServer, rsa_key: SigningKey) -> None:
    clock = Clock()
    async with started(jwks, clock=clock) as (identity, keys):
        new_key = SigningKey("rsa-2", "RSA")
        jwks.publish(rsa_key, new_key)  # the service publishes the next key first
        clock.now += 31  # past the rate limit of the start's fetch
        assert (await identity.authenticate(new_key.token("bob"))).profile.id == "bob"
        jwks.publish(new_key)  # and retires the old one
        assert await keys.refresh()  # the scheduled refresh
        with pytest.raises(AuthError, match="unknown"):
            await identity.authenticate(rsa_key.token())
        assert (await identity.authenticate(new_key.token("bob"))).profile.id == "bob"


async def test_unreachable_jwks_keeps_known_keys(jwks: JwksServer, rsa_key: SigningKey) -> None:
    async with started(jwks) as (identity, keys):
        keys.url = keys.url.replace("/jwks.json", "/gone")
        assert await keys.refresh() is False
        assert keys.failures == 1
        assert (await identity.authenticate(rsa_key.token())).profile.id == "ann"


def test_public_key_file_eddsa_and_es256(tmp_path: Path) -> None:
    for kind in ("OKP", "EC"):
        key = SigningKey("k", kind)
        path = tmp_path / f"{kind}.pem"
        path.write_bytes(key.public_pem())
        verifier = Verifier(
            algorithms=("EdDSA", "ES256"),
            public_keys=[load_public_key_file(path)],
            issuer=ISSUER,
            audience=(AUDIENCE,),
        )
        assert verifier.verify(key.token("cid")).profile.id == "cid"
        other = SigningKey("k", kind)
        with pytest.raises(AuthError, match="signature"):
            verifier.verify(other.token("cid"))
    private = tmp_path / "private.pem"
    private.write_bytes(SigningKey("k", "EC").private_pem())
    with pytest.raises(ValueError):
        load_public_key_file(private)


def test_claim_mapping_oidc_style() -> None:
    mapping = ClaimMap(
        username="preferred_username",
        display_name="name",
        avatar="picture",
        roles="realm_access.roles",
        birthdate="birthdate",
    )
    today = time.gmtime()
    claims = {
        "sub": "f1c2",
        "preferred_username": "ann",
        "name": "Ann Example",
        "picture": "https://example.test/ann.png",
        "realm_access": {"roles": ["creator", "offline_access"]},
        "birthdate": f"{today.tm_year - 18:04d}-01-01",
        "adult": False,
    }
    profile = mapping.profile(claims, today=__import__("datetime").date.today())
    assert (profile.id, profile.username, profile.display_name) == ("f1c2", "ann", "Ann Example")
    assert profile.avatar.endswith("ann.png")
    assert profile.roles == frozenset({"creator"}) and profile.adult
    minor = {**claims, "birthdate": f"{today.tm_year - 10:04d}-01-01", "adult": True}
    assert not mapping.profile(minor, today=__import__("datetime").date.today()).adult
    namespaced = ClaimMap(roles="https://example.com/roles")
    got = namespaced.profile({"sub": "u", "https://example.com/roles": ["admin"]}, today=_today())
    assert got.roles == frozenset({"admin"})
    with pytest.raises(AuthError, match="user id"):
        ClaimMap().profile({"sub": "auth0|123"}, today=_today())


def _today() -> Any:
    import datetime

    return datetime.date(2026, 6, 1)


def test_age_from_birthdate() -> None:
    import datetime

    day = datetime.date(2026, 6, 1)
    assert age_on("2008-06-01", day) == 18
    assert age_on("2008-06-02", day) == 17
    for unusable in ("0000-01-01", "2008-02-30", "2008", 20080601, None, "2030-01-01"):
        assert age_on(unusable, day) == -1


def test_identity_settings(tmp_path: Path) -> None:
    assert Settings(secret=SECRET).token_algorithms() == ("HS256",)
    jwks = Settings(secret=SECRET, jwks_url="https://id.example.test/jwks.json")
    assert jwks.token_algorithms() == ("RS256", "ES256")
    bad = [
        {"jwt_algorithms": "none"},
        {"jwt_algorithms": "RS256"},  # no key source
        {"jwks_url": "ftp://x/jwks.json"},
        {"jwt_public_key_file": str(tmp_path / "missing.pem")},
        {"expired_token": "ignore"},
        {"jwt_max_bytes": 10},
        {"jwks_min_refresh_seconds": 0},
        {"env": "production", "secret": SECRET, "jwks_url": "http://id.example.test/jwks"},
    ]
    for values in bad:
        with pytest.raises(SettingsError):
            Settings(**values).validate()
    production = Settings(env="production", jwks_url="https://id.example.test/jwks.json")
    assert production.with_secret().secret == ""  # public keys only: no secret needed
    with pytest.raises(SettingsError, match="LIVE_SECRET"):
        Settings(env="production").with_secret()


def test_live_token_hs256_and_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from live.cli import main
    from live.identity.keys import VerificationKey

    monkeypatch.setenv("LIVE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIVE_JWT_ISSUER", ISSUER)
    assert main(["token", "ann", "--adult", "--creator"]) == 0
    dev = capsys.readouterr().out.strip()
    secret = (tmp_path / "dev-secret").read_text().strip()
    profile = Verifier(secret=secret, issuer=ISSUER).verify(dev).profile
    assert profile.adult and profile.roles == frozenset({"creator"})
    key = SigningKey("ec-cli", "EC")
    pem = tmp_path / "private.pem"
    pem.write_bytes(key.private_pem())
    assert main(["token", "bob", "--private-key", str(pem), "--kid", "ec-cli"]) == 0
    signed = capsys.readouterr().out.strip()
    public = VerificationKey(key.private.public_key(), "ec-cli")
    verifier = Verifier(algorithms=("ES256",), public_keys=[public], issuer=ISSUER)
    assert verifier.verify(signed).profile.id == "bob"
    with pytest.raises(AuthError, match="algorithm"):
        Verifier(secret=secret).verify(signed)


async def test_scheduled_refresh_picks_up_new_keys(jwks: JwksServer) -> None:
    keys = JwksKeys(url=jwks.url, policy=RefreshPolicy(every=0.05, min_interval=0.05))
    await keys.start()
    try:
        added = SigningKey("ec-2", "EC")
        jwks.publish(added)
        deadline = time.monotonic() + 5
        while keys.by_kid("ec-2") is None:  # no token asks: the schedule alone fetches
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert keys.by_kid("rsa-1") is None and jwks.fetches >= 2
    finally:
        await keys.close()

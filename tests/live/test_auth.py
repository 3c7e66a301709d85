"""Token verification: pinned algorithm, signature, expiry, claims."""

from __future__ import annotations

import base64

import orjson
import pytest

from live.auth import AuthError, bearer_token, issue_token, verify_token

SECRET = "s" * 40


def b64(data: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def test_round_trip_profile() -> None:
    token = issue_token(
        secret=SECRET,
        user_id="alice",
        username="al",
        display_name="Alice",
        adult=True,
        roles=["creator", "wizard"],
        now=1_000,
    )
    profile = verify_token(token, secret=SECRET, now=1_000)
    assert (profile.id, profile.username, profile.display_name) == ("alice", "al", "Alice")
    assert profile.adult and profile.roles == frozenset({"creator"})


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256", None])
def test_other_algorithms_rejected(alg: str | None) -> None:
    good = issue_token(secret=SECRET, user_id="alice", now=1_000)
    _, payload, sig = good.split(".")
    header = b64({"alg": alg, "typ": "JWT"} if alg else {"typ": "JWT"})
    with pytest.raises(AuthError):
        verify_token(f"{header}.{payload}.{sig}", secret=SECRET, now=1_000)
    with pytest.raises(AuthError):
        verify_token(f"{header}.{payload}.", secret=SECRET, now=1_000)


def test_wrong_secret_and_tampered_claims() -> None:
    token = issue_token(secret=SECRET, user_id="alice", now=1_000)
    with pytest.raises(AuthError, match="signature"):
        verify_token(token, secret="other" * 10, now=1_000)
    header, _, sig = token.split(".")
    forged = b64({"sub": "alice", "adult": True, "roles": ["admin"], "exp": 9_999_999_999})
    with pytest.raises(AuthError):
        verify_token(f"{header}.{forged}.{sig}", secret=SECRET, now=1_000)


def test_expiry_with_leeway() -> None:
    token = issue_token(secret=SECRET, user_id="alice", ttl_seconds=60, now=1_000)
    verify_token(token, secret=SECRET, leeway_seconds=30, now=1_080)
    with pytest.raises(AuthError, match="expired"):
        verify_token(token, secret=SECRET, leeway_seconds=30, now=1_091)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.###.$$$", "x" * 5000])
def test_malformed(token: str) -> None:
    with pytest.raises(AuthError):
        verify_token(token, secret=SECRET)


def test_subject_must_be_an_id() -> None:
    with pytest.raises(ValueError):
        issue_token(secret=SECRET, user_id="a b")


def test_bearer_header() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None

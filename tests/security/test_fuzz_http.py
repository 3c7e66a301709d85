"""Hostile bodies for every HTTP endpoint that takes one, against a real server.

The endpoints are read from the app's routes, so a new one is fuzzed without
touching this file. Whatever the body (random bytes, JSON of any shape, NaN and
huge numbers, deep nesting, bodies over the size limit, hostile idempotency
keys), the answer is a JSON error or a success, never a 5xx; the server keeps
answering and the room's watchers keep watching; and in the end every wallet
change is one the server acknowledged with a ``tx``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import Route

from live.app import create_app
from live.settings import Settings
from tests.security.arena import ERROR_CODES, FUZZ, Arena, open_arena

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
HTTP_ONLY_CODES = {"payment_declined", "provider_unavailable"}


def _endpoints() -> list[tuple[str, str]]:
    app = create_app(Settings(secret="s" * 40))
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Route):
            found.extend(
                (method, route.path) for method in sorted((route.methods or set()) & BODY_METHODS)
            )
    return found


ENDPOINTS = _endpoints()
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")


@pytest.fixture(scope="module")
async def arena(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    async with open_arena(
        tmp_path_factory.mktemp("fuzz-http") / "data", funded={"mallory": "us_1400"}
    ) as opened:
        yield opened


def test_there_are_endpoints_to_fuzz() -> None:
    assert ("POST", "/v1/purchases") in ENDPOINTS
    assert ("POST", "/v1/rooms/{room_id}/gifts") in ENDPOINTS


KEYS = [
    "package",
    "provider",
    "payment_method",
    "gift",
    "count",
    "id",
    "title",
    "target",
    "user",
    "user_id",
    "seconds",
    "reason",
    "amount",
    "type",
    "key",
    "currency",
    "region",
    "payment_id",
    "sender",
    "price",
    "coins",
    "balance",
    "text",
    "since",
    "limit",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # bigger: NASTY_TEXT
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
    st.sampled_from(
        [
            "rose",
            "galaxy",
            "us_70",
            "us_1400",
            "sandbox",
            "sandbox_decline",
            "carol",
            "mallory",
            "bob",
            "admin",
            "",
            " ",
            "\x00",
            "x" * 300,
        ]
    ),
    st.sampled_from([0, -1, 1, 99, 100, 2**31, 2**63 - 1, 2**63, -(2**63), 2**64 - 1]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
shaped = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)
NASTY_TEXT = [
    b'{"count": NaN}',
    b'{"count": Infinity}',
    b'{"count": 1e999}',
    b'{"target": -1e999}',
    b'{"count": 123456789012345678901234567890}',
    b'\xef\xbb\xbf{"package":"us_70"}',
    b'{"package":"us_70"} trailing',
    b'{"package":"\\ud800"}',
    b'{"gift":"rose","gift":"galaxy"}',
    b'{"package":"us_70\x00"}',
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"[" * 5000 + b"]" * 5000,
    b'{"title":"' + b"t" * 20_000 + b'"}',
    b"\xff\xfe\xfd",
    b"null",
    b"[]",
    b'"x"',
    b"",
]


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


# bodies valid for the money endpoints, plus junk and spoofing fields: these succeed
near_valid = st.fixed_dictionaries(
    {"package": st.sampled_from(["us_70", "us_350"]), "gift": st.just("rose")},
    optional={
        "count": st.integers(-2, 101) | scalars,
        "sender": st.sampled_from(["bob", {"id": "bob"}]),
        "user_id": st.just("bob"),
        "price": st.integers(-5, 5),
        "coins": st.integers(-(2**40), 2**40),
        "provider": st.sampled_from(["sandbox", "stripe", "", "sandbox\x00"]),
        "extra": json_values,
    },
)
bodies = st.one_of(
    near_valid.map(_json),
    st.binary(max_size=300),
    json_values.map(_json),
    shaped.map(_json),
    st.sampled_from(NASTY_TEXT),
)
keys = st.one_of(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
    ),
    # what an HTTP client can send at all (the parser refuses control bytes before us)
    st.sampled_from(["", "k y", "x" * 65, "setup-mallory", "a,b", "a\tb"]),
    st.none(),
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    money = [e for e in ENDPOINTS if e[1] in ("/v1/purchases", "/v1/rooms/{room_id}/gifts")]
    method, path = draw(st.sampled_from(ENDPOINTS + money * 3))  # money paths more often

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "room_id" and path.endswith("/end"):
            return draw(st.sampled_from(["mallory", "nobody", "x-1"]))  # the arena stays live
        return draw(
            st.sampled_from(["carol", "mallory", "bob", "sandbox", "x", "nobody", "a" * 65])
        )

    headers: dict[str, str] = {}
    content_type = draw(
        st.sampled_from(
            ["application/json", "text/plain", None, "application/x-www-form-urlencoded"]
        )
    )
    if content_type:
        headers["content-type"] = content_type
    key = draw(keys)
    if key is not None:
        headers["idempotency-key"] = key
    return {
        "method": method,
        "path": PARAM.sub(fill, path),
        "body": draw(bodies),
        "headers": headers,
        "as": draw(st.sampled_from(["mallory", "mallory", "carol", None, "garbage"])),
    }


@FUZZ
@given(request=requests())
async def test_fuzz_http_bodies(arena: Arena, request: dict[str, Any]) -> None:
    headers = dict(request["headers"])
    who = request["as"]
    if who == "garbage":
        headers["authorization"] = "Bearer eyJhbGciOiJub25lIn0.e30."
    elif who is not None:
        headers["authorization"] = f"Bearer {arena.server.token(who, creator=who == 'carol')}"
    response = await arena.http.request(
        request["method"], request["path"], content=request["body"], headers=headers
    )
    assert response.status_code < 500, (request, response.status_code, response.text[:300])
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"not JSON: {request} -> {response.status_code} {response.text[:200]!r}"
        ) from None
    if response.status_code >= 400:
        code = body["error"]["code"]
        assert code in ERROR_CODES | HTTP_ONLY_CODES and code != "internal", body
    elif isinstance(body, dict) and isinstance(body.get("tx"), str):
        arena.acks.append(body)
    await arena.check_unaffected()


async def test_only_acknowledged_requests_moved_money(arena: Arena) -> None:
    await arena.check_money({a["tx"] for a in arena.acks}, users=["mallory", "carol"])

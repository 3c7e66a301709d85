"""Hostile WebSocket frames against a real server, on both codecs.

The corpus in ``corpus/`` holds the nastiest frames found or built so far, one
file each, with what must happen in ``corpus/cases.json`` (a regression test per
file, against the sans-I/O reader and against the server). The hypothesis tests
then generate more of the same kinds: random bytes and text, truncated and
mutated MessagePack, deep nesting, huge declared lengths, extension types,
non-string keys, NaN and infinities, huge integers, invalid UTF-8, giant strings,
unknown and spoofing fields. After every attack the server answers, the watchers
are still there, and in the end every coin that moved was acknowledged.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Opcode

from protocol import JSON_CODEC, MSGPACK_CODEC, Close, CommandReader, Limits, Reject
from tests.protocol.wire import nested
from tests.security.arena import ERROR_CODES, FUZZ, Arena, Outcome, open_arena

CORPUS = Path(__file__).parent / "corpus"
CASES: dict[str, dict[str, str]] = json.loads((CORPUS / "cases.json").read_text())
CLOSES_FOR_BAD_INPUT = {1007, 1008, 1009, 4029}


@pytest.fixture(scope="module")
async def arena(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Arena]:
    async with open_arena(
        tmp_path_factory.mktemp("fuzz-ws") / "data",
        # mallory has coins, so her valid gifts go through; zed has none
        funded={"mallory": "us_1400", "zed": ""},
        # attacks open connections back to back; no per-account cap in the way
        env={"LIVE_MAX_CONNECTIONS_PER_USER": "0"},
    ) as opened:
        yield opened


# -- the corpus ------------------------------------------------------------------------------


def _frame(name: str) -> tuple[Opcode, bytes]:
    case = CASES[name]
    return (Opcode.TEXT if case["opcode"] == "text" else Opcode.BINARY), (
        CORPUS / name
    ).read_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_through_the_reader(name: str) -> None:
    case = CASES[name]
    if case["reader"] == "n/a":  # never reaches the reader: the WebSocket layer refuses it
        return
    codec = JSON_CODEC if name.startswith("json/") else MSGPACK_CODEC
    opcode, data = _frame(name)
    payload: bytes | str = data.decode() if opcode is Opcode.TEXT else data
    result = CommandReader(codec=codec, limits=Limits(), now=0.0).receive(payload, now=0.0)
    if isinstance(result, Close):
        assert case["reader"] == f"close {int(result.code)}", case["why"]
    elif isinstance(result, Reject):
        assert case["reader"] == f"reject {result.error['code']}", case["why"]
    else:
        assert case["reader"] == f"command {type(result).__name__}", case["why"]


@pytest.mark.parametrize("name", sorted(CASES))
async def test_corpus_against_the_server(arena: Arena, name: str) -> None:
    case = CASES[name]
    codec = name.split("/", 1)[0]
    outcome = await arena.attack("zed", codec, [_frame(name)])
    kind, expected = case["server"].split()
    if kind == "close":
        assert not outcome.open and outcome.close_code == int(expected), (case, outcome)
    else:
        assert outcome.open and outcome.errors() == [expected], (case, outcome)
    assert all(code in ERROR_CODES and code != "internal" for code in outcome.errors())
    await arena.check_unaffected()


# -- generated attacks -----------------------------------------------------------------------

TYPES = ["send_gift", "like", "chat", "ping", "SEND_GIFT", "send_gift\x00", "", "withdraw"]
GIFTS = ["rose", "galaxy", "Rose", "rose ", "", "../x", "rose\x00"]
FIELDS = ["type", "id", "gift", "count", "text", "sender", "user", "price", "coins", "since"]
NASTY_JSON = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e-999",
    "-0",
    "0.0",
    "1.0",
    "99999999999999999999999999999",
    "-9223372036854775809",
    "18446744073709551616",
    "9223372036854775807",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    '"1"',
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    "01",
    "+1",
    ".5",
    "0x10",
    "1_000",
    '"' + "x" * 200 + '"',
]
HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xc9\xff\xff\xff\xff\x01",
    b"\xda\xff\xff",
    b"\xdc\xff\xff",
    b"\xde\xff\xff",
    b"\xc5\xff\xff",
    b"\xc8\xff\xff\x01",
]
EXT_MARKERS = [b"\xd4", b"\xd5", b"\xd6", b"\xd7", b"\xd8", b"\xc7\x03", b"\xd6\xff", b"\xc1"]

ids = st.one_of(
    st.text(min_size=1, max_size=12).map(lambda t: "f-" + t),
    st.sampled_from(["", " ", "\x00", "x" * 65, "sentinel-7f3b"]),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.none(),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=20),
    st.sampled_from([2**63, -(2**63), 2**64 - 1, 0, -1, 99, 100, 1, math.nan, math.inf]),
)
values = nested(scalars, width=3, key_chars=6, leaves=8)
commands = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "id": ids},
    optional={
        "gift": st.sampled_from(GIFTS) | scalars,
        "count": st.integers(-3, 120) | scalars,
        "text": st.text(max_size=160) | scalars,
        "sender": st.sampled_from([{"id": "bob"}, "bob", None]),
        "price": st.integers(-10, 10),
        "extra": values,
    },
)


def _json_bytes(obj: dict[str, Any]) -> bytes | None:
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None  # bytes or NaN have no JSON form: the literal strategies cover those


def _msgpack_bytes(obj: dict[str, Any]) -> bytes:
    try:
        return bytes(msgpack.packb(obj, use_bin_type=True))
    except (OverflowError, TypeError, ValueError):
        return b""  # an integer past 64 bits: no MessagePack form (packb never gives b"")


json_frames = st.one_of(
    commands.map(_json_bytes).filter(lambda b: b is not None).map(lambda b: (Opcode.TEXT, b)),
    st.builds(
        lambda t, field, literal: (
            Opcode.TEXT,
            f'{{"type":"{t}","id":"f-lit","gift":"rose","{field}":{literal}}}'.encode(),
        ),
        st.sampled_from(["send_gift", "like", "chat"]),
        st.sampled_from(FIELDS),
        st.sampled_from(NASTY_JSON),
    ),
    st.binary(max_size=200).map(lambda b: (Opcode.BINARY, b)),
    st.binary(max_size=200).map(lambda b: (Opcode.TEXT, b)),  # often invalid UTF-8
    st.text(max_size=200).map(lambda t: (Opcode.TEXT, t.encode("utf-8", "surrogatepass"))),
    st.integers(1000, 40_000).map(lambda n: (Opcode.TEXT, b"[" * n + b"]" * n)),
    st.integers(60_000, 70_000).map(
        lambda n: (Opcode.TEXT, b'{"type":"chat","id":"f-big","text":"' + b"x" * n + b'"}')
    ),
)
packed = commands.map(_msgpack_bytes).filter(bool)
msgpack_frames = st.one_of(
    packed.map(lambda b: (Opcode.BINARY, b)),
    st.tuples(packed, st.integers(1, 30)).map(
        lambda pair: (Opcode.BINARY, pair[0][: max(0, len(pair[0]) - pair[1])])
    ),
    st.tuples(packed, st.integers(0, 200), st.integers(0, 255)).map(
        lambda t: (Opcode.BINARY, t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :])
    ),
    st.tuples(st.sampled_from(HUGE_HEADERS), st.binary(max_size=16)).map(
        lambda t: (Opcode.BINARY, b"\x81\xa4type" + t[0] + t[1])
    ),
    st.tuples(st.sampled_from(EXT_MARKERS), st.binary(max_size=16)).map(
        lambda t: (Opcode.BINARY, b"\x83\xa4type\xa4like\xa2id\xa1e\xa5count" + t[0] + t[1])
    ),
    st.binary(max_size=200).map(lambda b: (Opcode.BINARY, b)),
    st.integers(1000, 20_000).map(lambda n: (Opcode.BINARY, b"\x91" * n + b"\xc0")),
    st.text(max_size=100).map(lambda t: (Opcode.TEXT, t.encode())),
)


async def _attack_and_check(arena: Arena, codec: str, frames: list[tuple[Opcode, bytes]]) -> None:
    outcome = await arena.attack("mallory", codec, frames)
    _record(arena, outcome)
    assert outcome.open or outcome.close_code in CLOSES_FOR_BAD_INPUT, outcome
    for reply in outcome.replies:
        if reply["type"] == "error":
            assert reply["code"] in ERROR_CODES and reply["code"] != "internal", reply
    await arena.check_unaffected()


def _record(arena: Arena, outcome: Outcome) -> None:
    arena.acks.extend(r for r in outcome.replies if r.get("type") == "ack" and "tx" in r)


@FUZZ
@given(frames=st.lists(json_frames, min_size=1, max_size=3))
async def test_fuzz_json_frames(arena: Arena, frames: list[tuple[Opcode, bytes]]) -> None:
    await _attack_and_check(arena, "json", frames)


@FUZZ
@given(frames=st.lists(msgpack_frames, min_size=1, max_size=3))
async def test_fuzz_msgpack_frames(arena: Arena, frames: list[tuple[Opcode, bytes]]) -> None:
    await _attack_and_check(arena, "msgpack", frames)


async def test_only_acknowledged_gifts_moved_money(arena: Arena) -> None:
    acks = arena.acks
    charged = [a for a in acks if not a.get("replayed")]
    mallory = await arena.apis["mallory"].balance()
    expected = charged[-1]["balance"]["coins"] if charged else arena.start_balances["mallory"]
    assert mallory == expected
    assert await arena.apis["zed"].balance() == 0
    await arena.check_money({a["tx"] for a in acks}, users=["mallory", "zed"])
    # The sender of every gift is the token's user, whatever the command said.
    txs = {a["tx"] for a in acks}
    for watcher in arena.watchers:
        for event in watcher.of_type("gift"):
            if event["tx"] in txs:
                assert event["sender"]["id"] == "mallory"

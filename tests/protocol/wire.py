"""What the protocol tests share: the default limits, a parametrization over both
codecs, and the bytes a client of a codec puts in a frame."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import strategies as st

from protocol import JSON_CODEC, MSGPACK_CODEC, Codec, Limits

LIMITS = Limits()
CODEC_PARAMS = pytest.mark.parametrize(
    "codec", [JSON_CODEC, MSGPACK_CODEC], ids=["json", "msgpack"]
)


def wire(codec: Codec, obj: Any) -> bytes | str:
    """What a client of this codec puts in a frame."""
    if codec is JSON_CODEC:
        return orjson.dumps(obj).decode()
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def nested(
    scalars: st.SearchStrategy[Any], *, width: int, key_chars: int, leaves: int
) -> st.SearchStrategy[Any]:
    """Decoded-frame-like values: ``scalars`` in lists and string-keyed maps of up to
    ``width`` items, nested, with at most ``leaves`` scalars in all."""
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=width)
            | st.dictionaries(st.text(max_size=key_chars), inner, max_size=width)
        ),
        max_leaves=leaves,
    )

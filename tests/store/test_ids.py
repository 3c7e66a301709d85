"""Ids: the characters ``new_id`` writes are the time and random parts in base 32,
most significant digit first, and ``id_ms`` reads the time part back."""

from __future__ import annotations

import random

from store.ids import _ALPHABET, _id_chars, id_ms, new_id


def digits(value: int, length: int) -> str:
    """``value``'s ``length`` low base-32 digits, one division per digit."""
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def test_the_characters_are_the_base_32_digits_of_time_and_random_part() -> None:
    picks = random.Random(7)
    cases = [(0, 0), ((1 << 50) - 1, (1 << 80) - 1), (1_796_610_428_933, 1)]
    cases += [(picks.getrandbits(50), picks.getrandbits(80)) for _ in range(5_000)]
    for ms, rand in cases:
        assert _id_chars(ms, rand) == digits(ms, 10) + digits(rand, 16)


def test_an_id_reads_back_its_milliseconds_and_sorts_after_the_one_before() -> None:
    before = new_id("tx")
    after = new_id("tx")
    assert after > before
    prefix, _, chars = after.partition("_")
    assert prefix == "tx"
    assert len(chars) == 26
    assert set(chars) <= set(_ALPHABET)
    assert id_ms(after) >= id_ms(before) > 1_700_000_000_000

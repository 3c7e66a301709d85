"""The money rules: the gift split and the postings every backend writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.domain.models import (
    COIN,
    DIAMOND,
    PLATFORM_EXCHANGE,
    PLATFORM_REVENUE,
    WORLD,
    Posting,
)
from store.domain.postings import gift_postings, is_balanced, purchase_postings, split_gift


@pytest.mark.parametrize(
    ("coins", "share", "expected"),
    [
        (0, 50, (0, 0)),
        (1, 50, (1, 0)),  # a single Rose still earns one diamond
        (3, 50, (2, 1)),
        (100, 50, (50, 50)),
        (99, 70, (70, 29)),  # 69.3 rounds up
        (5, 0, (0, 5)),
        (5, 100, (5, 0)),
        (44_999, 50, (22_500, 22_499)),
    ],
)
def test_split_gift(coins: int, share: int, expected: tuple[int, int]) -> None:
    assert split_gift(coins, share) == expected


@pytest.mark.parametrize(("coins", "share"), [(-1, 50), (10, -1), (10, 101)])
def test_split_gift_rejects_bad_input(coins: int, share: int) -> None:
    with pytest.raises(ValueError):
        split_gift(coins, share)


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=100))
def test_split_gift_conserves_and_favours_the_creator(coins: int, share: int) -> None:
    diamonds, platform = split_gift(coins, share)
    assert diamonds + platform == coins
    assert 0 <= diamonds <= coins
    assert diamonds * 100 >= coins * share  # never below the exact share
    assert (diamonds - 1) * 100 < coins * share or diamonds == 0  # by less than one


def test_gift_postings() -> None:
    postings = gift_postings(sender_id="a", creator_id="b", total_coins=3, diamonds=2)
    assert postings == (
        Posting("user:a:coins", COIN, -3),
        Posting(PLATFORM_REVENUE, COIN, 1),
        Posting(PLATFORM_EXCHANGE, COIN, 2),
        Posting(PLATFORM_EXCHANGE, DIAMOND, -2),
        Posting("user:b:diamonds", DIAMOND, 2),
    )
    assert is_balanced(postings)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=100))
def test_gift_postings_always_balance(coins: int, share: int) -> None:
    diamonds, _ = split_gift(coins, share)
    postings = gift_postings(sender_id="a", creator_id="b", total_coins=coins, diamonds=diamonds)
    assert is_balanced(postings)


def test_purchase_postings() -> None:
    postings = purchase_postings(user_id="a", coins=707)
    assert postings == (Posting(WORLD, COIN, -707), Posting("user:a:coins", COIN, 707))
    assert is_balanced(postings)


def test_is_balanced_is_per_asset() -> None:
    assert is_balanced([])
    assert not is_balanced([Posting("x", COIN, 1)])
    # one coin against one diamond sums to zero but is not balanced
    assert not is_balanced([Posting("x", COIN, 1), Posting("y", DIAMOND, -1)])

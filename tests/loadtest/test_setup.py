"""The load tester's money check: the wallets against the acks."""

from __future__ import annotations

import pytest

from loadtest.setup import money_matches


def test_exactly_the_acked_gifts_match() -> None:
    assert money_matches(spent=100, diamonds=50, coins_acked=100, diamonds_acked=50)


@pytest.mark.parametrize(
    ("spent", "diamonds"),
    [(99, 50), (101, 50), (100, 49), (100, 51)],
)
def test_any_difference_without_unanswered_gifts_is_a_mismatch(spent: int, diamonds: int) -> None:
    assert not money_matches(spent=spent, diamonds=diamonds, coins_acked=100, diamonds_acked=50)


@pytest.mark.parametrize(("spent", "diamonds"), [(100, 50), (110, 55), (120, 60)])
def test_unanswered_gifts_may_or_may_not_have_committed(spent: int, diamonds: int) -> None:
    assert money_matches(
        spent=spent,
        diamonds=diamonds,
        coins_acked=100,
        diamonds_acked=50,
        coins_unanswered=20,
        diamonds_unanswered=10,
    )


@pytest.mark.parametrize(("spent", "diamonds"), [(121, 60), (120, 61), (99, 50), (100, 49)])
def test_more_than_the_unanswered_gifts_or_less_than_the_acks_is_a_mismatch(
    spent: int, diamonds: int
) -> None:
    assert not money_matches(
        spent=spent,
        diamonds=diamonds,
        coins_acked=100,
        diamonds_acked=50,
        coins_unanswered=20,
        diamonds_unanswered=10,
    )


def test_more_diamonds_than_coins_is_a_mismatch() -> None:
    assert not money_matches(spent=30, diamonds=40, coins_acked=30, diamonds_acked=40)

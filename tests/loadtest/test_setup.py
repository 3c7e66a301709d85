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


@pytest.mark.parametrize(
    ("spent", "diamonds", "matches"),
    [
        # each unanswered gift may or may not have committed
        (100, 50, True),
        (110, 55, True),
        (120, 60, True),
        # more than the unanswered gifts, or less than the acks
        (121, 60, False),
        (120, 61, False),
        (99, 50, False),
        (100, 49, False),
    ],
)
def test_unanswered_gifts_widen_the_match_by_their_coins_and_diamonds(
    spent: int, diamonds: int, matches: bool
) -> None:
    assert (
        money_matches(
            spent=spent,
            diamonds=diamonds,
            coins_acked=100,
            diamonds_acked=50,
            coins_unanswered=20,
            diamonds_unanswered=10,
        )
        is matches
    )


def test_more_diamonds_than_coins_is_a_mismatch() -> None:
    assert not money_matches(spent=30, diamonds=40, coins_acked=30, diamonds_acked=40)

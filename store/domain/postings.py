"""The money rules as pure functions, shared by every backend.

A gift of ``C`` coins gives the creator ``D = ceil(C * share / 100)`` diamonds
(rounding in the creator's favour, so a single 1-coin Rose still earns one
diamond at a 50% share) and the platform ``C - D`` coins. Coins and diamonds
are different assets, so the conversion passes through ``platform:exchange``,
which keeps every transaction balanced per asset.
"""

from __future__ import annotations

from store.domain.accounts import PLATFORM_PROMOTIONS, debt_account, withdrawing_account
from store.domain.models import (
    COIN,
    DIAMOND,
    PAYOUT,
    PLATFORM_EXCHANGE,
    PLATFORM_REVENUE,
    WORLD,
    Posting,
    coins_account,
    diamonds_account,
)


def split_gift(total_coins: int, share_percent: int) -> tuple[int, int]:
    """Return ``(creator_diamonds, platform_coins)`` for a gift worth ``total_coins``."""
    if total_coins < 0 or not 0 <= share_percent <= 100:
        raise ValueError("coins must be >= 0 and share within 0..100")
    diamonds = -(-total_coins * share_percent // 100)
    return diamonds, total_coins - diamonds


def gift_postings(
    *, sender_id: str, creator_id: str, total_coins: int, diamonds: int
) -> tuple[Posting, ...]:
    platform = total_coins - diamonds
    return (
        Posting(coins_account(sender_id), COIN, -total_coins),
        Posting(PLATFORM_REVENUE, COIN, platform),
        Posting(PLATFORM_EXCHANGE, COIN, diamonds),
        Posting(PLATFORM_EXCHANGE, DIAMOND, -diamonds),
        Posting(diamonds_account(creator_id), DIAMOND, diamonds),
    )


def purchase_postings(*, user_id: str, coins: int) -> tuple[Posting, ...]:
    return (
        Posting(WORLD, COIN, -coins),
        Posting(coins_account(user_id), COIN, coins),
    )


def is_balanced(postings: tuple[Posting, ...] | list[Posting]) -> bool:
    totals: dict[str, int] = {}
    for p in postings:
        totals[p.asset] = totals.get(p.asset, 0) + p.amount
    return all(v == 0 for v in totals.values())


def refund_postings(
    *,
    user_id: str,
    paid: int,
    bonus: int,
    taken: int,
    debt_change: int,
    clawbacks: list[tuple[str, int]],
) -> tuple[Posting, ...]:
    """A reversal of a purchase that credited ``paid`` coins from ``world`` and
    ``bonus`` from promotions: ``taken`` coins come back from the balance, the
    rest changes the debt account by ``debt_change`` (negative: more debt),
    together with the diamonds clawed back from each creator (which came from
    coins, so they go back through ``platform:exchange``). Zero postings are left
    out; the order is the same on every engine."""
    postings = [Posting(WORLD, COIN, paid)]
    if bonus:
        postings.append(Posting(PLATFORM_PROMOTIONS, COIN, bonus))
    if taken:
        postings.append(Posting(coins_account(user_id), COIN, -taken))
    if debt_change:
        postings.append(Posting(debt_account(user_id), COIN, debt_change))
    clawed = 0
    for creator_id, diamonds in clawbacks:
        postings.append(Posting(diamonds_account(creator_id), DIAMOND, -diamonds))
        clawed += diamonds
    if clawed:
        postings.append(Posting(PLATFORM_EXCHANGE, DIAMOND, clawed))
        postings.append(Posting(PLATFORM_EXCHANGE, COIN, -clawed))
    return tuple(postings)


def settlement_postings(*, user_id: str, source: str, coins: int) -> tuple[Posting, ...]:
    """Settle ``coins`` of debt from ``source`` (``world``: paid; ``platform:writeoff``)."""
    return (Posting(source, COIN, -coins), Posting(debt_account(user_id), COIN, coins))


def withdrawal_postings(*, user_id: str, diamonds: int) -> tuple[Posting, ...]:
    """Reserve: the creator's diamonds move to ``user:<id>:withdrawing``."""
    return (
        Posting(diamonds_account(user_id), DIAMOND, -diamonds),
        Posting(withdrawing_account(user_id), DIAMOND, diamonds),
    )


def withdrawal_settle_postings(*, user_id: str, diamonds: int, paid: bool) -> tuple[Posting, ...]:
    """Paid: reserved diamonds to ``payout`` (money out). Failed: back to the creator."""
    target = PAYOUT if paid else diamonds_account(user_id)
    return (
        Posting(withdrawing_account(user_id), DIAMOND, -diamonds),
        Posting(target, DIAMOND, diamonds),
    )

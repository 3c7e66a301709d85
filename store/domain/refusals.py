"""Every refusal of a money or room rule: one reason, one error code, one message.

Both engines refuse through these. Python code calls a refusal with its
numbers (``INSUFFICIENT_FUNDS(cost, coins)``) and raises what it returns; the
Redis Lua scripts return ``{'E', reason, number, ...}`` and the scaled engine
turns that reply into the same error here (``refusal_error``), so the text a
client reads is written once, whatever the engine.

A reason is a stable internal name (it travels between Lua and Python); the
error's ``code`` is the public wire code (``store.errors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from store import errors


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule's refusal. ``template`` takes the numbers positionally (``{0}``...)."""

    reason: str
    error: type[errors.StoreError]
    template: str

    def __call__(self, *values: int | float | str) -> errors.StoreError:
        return self.error(self.template.format(*values))

    @property
    def code(self) -> str:
        return self.error.code


# Idempotency
KEY_REUSED: Final = Refusal(
    "key_reused", errors.Conflict, "this idempotency key was already used for a different request"
)

# Rooms
ROOM_NOT_FOUND: Final = Refusal("room_not_found", errors.NotFound, "room not found")
ROOM_NOT_LIVE: Final = Refusal("room_not_live", errors.RoomNotLive, "the room is not live")
ROOM_TAKEN: Final = Refusal("room_taken", errors.Conflict, "this room belongs to another creator")
NOT_ROOM_OWNER: Final = Refusal(
    "not_room_owner", errors.Forbidden, "only the creator or an admin can end this stream"
)
BANNED: Final = Refusal("banned", errors.Forbidden, "you are banned from this room")
MUTED: Final = Refusal("muted", errors.Forbidden, "you are muted in this room")
CHAT_RATE: Final = Refusal(
    "chat_rate", errors.RateLimited, "too many comments: at most {0} every {1:g} seconds"
)
"""``{0}`` comments per window, ``{1}`` the window in seconds."""

# Buying coins
MINOR_BUYER: Final = Refusal("minor_buyer", errors.Forbidden, "only adults can buy coins")
PURCHASES_OFF: Final = Refusal(
    "purchases_off",
    errors.Forbidden,
    "buying coins is turned off for this account (parental controls)",
)
LOCKED: Final = Refusal(
    "locked",
    errors.Forbidden,
    "your account is locked until its chargeback debt of {0} coins is settled",
)

# Gifts
MINOR_SENDER: Final = Refusal("minor_sender", errors.Forbidden, "only adults can send gifts")
SELF_GIFT: Final = Refusal("self_gift", errors.Forbidden, "you cannot gift yourself")
MINOR_CREATOR: Final = Refusal(
    "minor_creator", errors.Forbidden, "this creator cannot receive gifts"
)
GIFTING_OFF: Final = Refusal(
    "gifting_off", errors.Forbidden, "gifting is turned off for this account (parental controls)"
)
INSUFFICIENT_FUNDS: Final = Refusal(
    "insufficient_funds", errors.InsufficientFunds, "this gift costs {0} coins, you have {1}"
)
DAILY_CAP: Final = Refusal(
    "daily_cap",
    errors.LimitExceeded,
    "this gift would pass your daily spending cap of {0} coins ({1} spent today)",
)
MONTHLY_CAP: Final = Refusal(
    "monthly_cap",
    errors.LimitExceeded,
    "this gift would pass your monthly spending cap of {0} coins ({1} spent this month)",
)
TOO_MANY: Final = Refusal("too_many", errors.RateLimited, "too many {0}: try again in {1} s")
"""``{0}`` names the action (``gifts``, ``purchases``...), ``{1}`` whole seconds to wait."""

# The catalog: a gift retired or outside its availability window; a stale price
GIFT_NOT_OFFERED: Final = Refusal("gift_not_offered", errors.NotFound, "{0!r} is not offered now")
PRICE_CHANGED: Final = Refusal(
    "price_changed", errors.PriceChanged, "{0!r} now costs {1} coins, not {2}; nothing was charged"
)

# In-app items (the same money rules as gifts, in words about items)
ITEM_NOT_OFFERED: Final = Refusal("item_not_offered", errors.NotFound, "{0!r} is not sold now")
MINOR_ITEM_BUYER: Final = Refusal(
    "minor_item_buyer", errors.Forbidden, "only adults can spend coins on items"
)
ITEMS_OFF: Final = Refusal(
    "items_off",
    errors.Forbidden,
    "spending coins is turned off for this account (parental controls)",
)
ITEM_FUNDS: Final = Refusal(
    "item_funds", errors.InsufficientFunds, "this item costs {0} coins, you have {1}"
)
ITEM_DAILY_CAP: Final = Refusal(
    "item_daily_cap",
    errors.LimitExceeded,
    "this item would pass your daily spending cap of {0} coins ({1} spent today)",
)
ITEM_MONTHLY_CAP: Final = Refusal(
    "item_monthly_cap",
    errors.LimitExceeded,
    "this item would pass your monthly spending cap of {0} coins ({1} spent this month)",
)
ITEM_OWNED: Final = Refusal(
    "item_owned", errors.Conflict, "you already own {0!r} for good; nothing was charged"
)
ITEM_NOT_OWNED: Final = Refusal(
    "item_not_owned", errors.NotFound, "you don't own {0!r} (or it has expired)"
)

# Refunds and debt
PAYMENT_NOT_FOUND: Final = Refusal(
    "payment_not_found", errors.NotFound, "no credited purchase with this payment id"
)
NO_DEBT: Final = Refusal("no_debt", errors.BadRequest, "this account has no debt to settle")

# Limits and parental controls
PIN_NEEDED: Final = Refusal("pin_needed", errors.Forbidden, "this change needs the account's PIN")
WRONG_PIN: Final = Refusal("wrong_pin", errors.Forbidden, "wrong PIN")

# Withdrawals
NOT_VERIFIED: Final = Refusal(
    "not_verified", errors.Forbidden, "only verified creators can withdraw"
)
BELOW_MINIMUM: Final = Refusal(
    "below_minimum", errors.BadRequest, "the smallest withdrawal is {0} diamonds"
)
DAILY_MAXIMUM: Final = Refusal(
    "daily_maximum",
    errors.LimitExceeded,
    "this withdrawal would pass the daily maximum of {0} diamonds ({1} withdrawn today)",
)
NOT_WITHDRAWABLE: Final = Refusal(
    "not_withdrawable",
    errors.InsufficientFunds,
    "{0} diamonds are withdrawable now ({1} still held)",
)
WITHDRAWAL_NOT_FOUND: Final = Refusal(
    "withdrawal_not_found", errors.NotFound, "withdrawal not found"
)
ALREADY_SETTLED: Final = Refusal(
    "already_settled", errors.Conflict, "this withdrawal is already {0}"
)

# Payout accounts
PAYOUT_ACCOUNT_TAKEN: Final = Refusal(
    "payout_account_taken", errors.Conflict, "this payout account is linked to another creator"
)
NO_PAYOUT_ACCOUNT: Final = Refusal(
    "no_payout_account",
    errors.Forbidden,
    "link a {0} payout account first (POST /v1/me/payout-account)",
)
PAYOUTS_NOT_ENABLED: Final = Refusal(
    "payouts_not_enabled",
    errors.Forbidden,
    "your {0} payout account cannot receive payouts yet: finish its onboarding",
)

REFUSALS: Final[dict[str, Refusal]] = {
    refusal.reason: refusal
    for refusal in (
        KEY_REUSED,
        ROOM_NOT_FOUND,
        ROOM_NOT_LIVE,
        ROOM_TAKEN,
        NOT_ROOM_OWNER,
        BANNED,
        MUTED,
        CHAT_RATE,
        MINOR_BUYER,
        PURCHASES_OFF,
        LOCKED,
        MINOR_SENDER,
        SELF_GIFT,
        MINOR_CREATOR,
        GIFTING_OFF,
        GIFT_NOT_OFFERED,
        PRICE_CHANGED,
        INSUFFICIENT_FUNDS,
        DAILY_CAP,
        MONTHLY_CAP,
        TOO_MANY,
        ITEM_NOT_OFFERED,
        MINOR_ITEM_BUYER,
        ITEMS_OFF,
        ITEM_FUNDS,
        ITEM_DAILY_CAP,
        ITEM_MONTHLY_CAP,
        ITEM_OWNED,
        ITEM_NOT_OWNED,
        PAYMENT_NOT_FOUND,
        NO_DEBT,
        PIN_NEEDED,
        WRONG_PIN,
        NOT_VERIFIED,
        BELOW_MINIMUM,
        DAILY_MAXIMUM,
        NOT_WITHDRAWABLE,
        WITHDRAWAL_NOT_FOUND,
        ALREADY_SETTLED,
        PAYOUT_ACCOUNT_TAKEN,
        NO_PAYOUT_ACCOUNT,
        PAYOUTS_NOT_ENABLED,
    )
}


def wait_seconds(wait_ms: int) -> int:
    """Whole seconds to tell a rate-limited caller (rounded up)."""
    return (wait_ms + 999) // 1000


def refusal_error(reason: str, values: Sequence[int | str]) -> errors.StoreError:
    """The error for a refusal reported by name (a Lua script's ``{'E', reason, ...}``)."""
    refusal = REFUSALS.get(reason)
    if refusal is None:
        return errors.StoreError(f"unknown refusal {reason!r}")
    return refusal(*values)

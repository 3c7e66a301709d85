"""Request checks that don't depend on the engine.

A wallet or rooms call runs these once, before either engine is reached, so a
malformed request gets the same ``BadRequest`` with the same words on both
engines and never costs a database round trip.
"""

from __future__ import annotations

from typing import Final

from store.errors import BadRequest

MAX_ID_LENGTH: Final = 200
"""User, room, gift and transaction ids."""
MAX_KEY_LENGTH: Final = 200
"""Idempotency keys and payment ids."""
MAX_TEXT: Final = 500
"""Free text kept with a transaction (reasons, notes)."""


def check_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_ID_LENGTH} characters")


def check_key(value: str, what: str) -> None:
    if not value or len(value) > MAX_KEY_LENGTH:
        raise BadRequest(f"{what} must be 1..{MAX_KEY_LENGTH} characters")


def check_limit(limit: int) -> None:
    if limit < 1:
        raise BadRequest("limit must be at least 1")


def check_text(value: str, what: str) -> None:
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{what} must be at most {MAX_TEXT} characters")


def check_positive(value: int, message: str) -> None:
    """``BadRequest(message)`` unless ``value`` is at least 1."""
    if value < 1:
        raise BadRequest(message)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise BadRequest(f"{what} must be {' or '.join(choices)}")

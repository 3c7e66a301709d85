"""Credit steps on a Redis Cluster: the creator's side of an item purchase (its
share, with the creator's earnings) or of a reversal (each creator's clawback, a
negative amount), run on the creator's slot after the transaction committed on
the buyer's slot with its whole entry in that slot's outbox (``credit.lua``).

Each step is keyed by the transaction id (``credit_marker_key``): running it
again changes nothing, so the caller runs it right after the commit and the
settle sweeper runs it again from the outbox entry (``entry_credits``) for a
node that died in between. A single Redis has none of this: its scripts write
the creator's wallet themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from store.domain.accounts import REVERSAL_KINDS
from store.domain.models import diamonds_account
from store.domain.rules import HOUR_MS
from store.scaled import keys
from store.scaled.client import CommandBatcher, checked_reply, load_script
from store.scaled.gifts import STEP_MARKER_TTL
from store.scaled.keys import credit_marker_key, user_key, wallet_key

_CREDIT: Final = load_script("credit")


@dataclass(frozen=True, slots=True)
class Credit:
    """One creator's side of transaction ``tx``."""

    tx: str
    creator_id: str
    diamonds: int
    """Negative: clawed back."""
    earnings: tuple[int, str] | None = None
    """The hour and ``<stream>|<room>`` the diamonds count as earned in (item shares)."""


def clawbacks(tx: str, claws: Iterable[dict[str, Any]]) -> list[Credit]:
    """A reversal's credit steps from its clawbacks (``creator_id``, ``diamonds``:
    as the refund script replies them and the outbox entry's meta keeps them)."""
    return [Credit(tx, str(c["creator_id"]), -int(c["diamonds"])) for c in claws]


def item_share(
    tx: str, creator_id: str, diamonds: int, *, created_at: int, stream_id: int | str, room_id: str
) -> Credit:
    """An item purchase's creator share, earned in the hour of ``created_at`` and
    in the ``<stream>|<room>`` field a gift's earnings use too (``lib_gift_steps.lua``)."""
    return Credit(tx, creator_id, diamonds, (created_at // HOUR_MS, f"{stream_id}|{room_id}"))


async def apply(batcher: CommandBatcher, credits: list[Credit]) -> None:
    """Run the steps (each at most once per transaction, whatever the retries)."""
    await asyncio.gather(*(_apply(batcher, credit) for credit in credits if credit.diamonds))


async def _apply(batcher: CommandBatcher, credit: Credit) -> None:
    creator = credit.creator_id
    call_keys = [credit_marker_key(creator, credit.tx), wallet_key(creator)]
    args: list[str | int] = [credit.diamonds, STEP_MARKER_TTL]
    if credit.earnings is not None:
        hour, stream = credit.earnings
        call_keys += [
            user_key(creator, keys.EARNINGS_HOURS),
            user_key(creator, keys.EARNINGS_STREAMS),
        ]
        args += [hour, stream]
    checked_reply(await batcher.evalsha(_CREDIT, call_keys, args, retry_on_disconnect=True))


def stream_credits(fields: dict[bytes, bytes]) -> list[Credit]:
    """The credit steps of an outbox stream entry (its fields); none for an entry
    that cannot be decoded (the ledger worker dead-letters it)."""
    try:
        entry = orjson.loads(fields[b"tx"])
        return entry_credits(entry) if isinstance(entry, dict) else []
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return []


def entry_credits(entry: dict[str, Any]) -> list[Credit]:
    """The credit steps of an outbox entry (decoded JSON) of an item purchase or a
    reversal; none for other kinds."""
    tx, kind, meta = str(entry["id"]), entry["kind"], entry.get("meta") or {}
    if kind in REVERSAL_KINDS:
        return clawbacks(tx, meta.get("clawbacks") or ())
    if kind == "item" and meta.get("creator_id"):
        creator = str(meta["creator_id"])
        diamonds = sum(
            int(p["amount"])
            for p in entry["postings"]
            if p["asset"] == "diamond" and p["account"] == diamonds_account(creator)
        )
        share = item_share(
            tx,
            creator,
            diamonds,
            created_at=int(entry["created_at"]),
            stream_id=meta.get("stream_id", 0),
            room_id=meta.get("room_id") or "",
        )
        return [share]
    return []

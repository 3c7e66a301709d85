"""Hash slots of a Redis Cluster, and keys that belong to a slot rather than to an owner.

A key's slot is the CRC16 of its hash tag (the ``{...}`` part) modulo 16,384.
On a cluster, what one script touches must share a slot, so the system balances,
the ledger outbox and its dead letters are kept once per slot: a money script
writes the ones of its owner's slot (``live:{<tag of slot s>}:bal``...). The
tag of slot *s* is a short string whose CRC16 lands in *s*, taken from a table
computed once per process (``slot_tag``). The table's rule never changes: it
names stored keys.

On a single Redis there is one system slot, ``live:{sys}:...`` (``slot_key(None,
...)``), as before clusters existed.
"""

from __future__ import annotations

import asyncio
from binascii import crc_hqx
from functools import cache
from typing import TYPE_CHECKING, Final

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

if TYPE_CHECKING:
    from store.scaled.client import CommandBatcher

PREFIX: Final = "live"
"""What every key of the engine starts with."""
SLOTS: Final = REDIS_CLUSTER_HASH_SLOTS

_TAG_HEAD: Final = "s:"
_TAG_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_TAG_LENGTH: Final = 4


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    return key_slot(key.encode() if isinstance(key, str) else key)


def slot_tag(slot: int) -> str:
    """A hash tag of ``slot``: ``s:`` and four base-36 digits whose CRC16 is ``slot``."""
    return _tags()[slot]


def slot_key(slot: int | None, suffix: str) -> str:
    """The key ``suffix`` of ``slot`` (``None``: the single Redis' ``{sys}``)."""
    tag = "sys" if slot is None else slot_tag(slot)
    return f"{PREFIX}:{{{tag}}}:{suffix}"


@cache
def _tags() -> tuple[str, ...]:
    """For each slot, the first ``s:dddd`` (base-36 digits, in lexical order) that
    hashes to it. CRC16 (XMODEM: no initial value, no final XOR) is linear, so the
    CRC of a fixed-length tag is the XOR of one table entry per position: the
    whole table takes milliseconds."""
    base = crc_hqx(_TAG_HEAD.encode() + bytes(_TAG_LENGTH), 0)
    by_position = [
        [
            crc_hqx(bytes(len(_TAG_HEAD) + i) + digit.encode() + bytes(_TAG_LENGTH - 1 - i), 0)
            for digit in _TAG_DIGITS
        ]
        for i in range(_TAG_LENGTH)
    ]
    tags: list[str | None] = [None] * SLOTS
    left = SLOTS
    digits = _TAG_DIGITS
    first, second, third, fourth = by_position
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            ab = base ^ a ^ b
            for k, c in enumerate(third):
                abc = ab ^ c
                for m, d in enumerate(fourth):
                    slot = (abc ^ d) % SLOTS
                    if tags[slot] is None:
                        tags[slot] = f"{_TAG_HEAD}{digits[i]}{digits[j]}{digits[k]}{digits[m]}"
                        left -= 1
                        if not left:
                            return tuple(tag for tag in tags if tag is not None)
    raise RuntimeError("the slot tag table does not cover every slot")  # pragma: no cover


async def existing_slot_keys(batcher: CommandBatcher, suffix: str) -> list[str]:
    """Every slot's ``suffix`` key that exists (``bal``, ``outbox``, ``dead``), for
    the workers that visit them all. On a cluster: one ``EXISTS`` per slot,
    which the batcher sends to the primary serving each slot, one pipeline per
    primary (split at its batch size), never a ``SCAN`` of every key. On a single
    Redis: just the ``{sys}`` key, whether it exists yet or not."""
    if batcher.cluster is None:
        return [slot_key(None, suffix)]
    names = [slot_key(slot, suffix) for slot in range(SLOTS)]
    found = await asyncio.gather(*(batcher.execute("EXISTS", name) for name in names))
    return [name for name, exists in zip(names, found, strict=True) if exists]

"""Identifiers that sort by creation time (cursor pagination relies on it)."""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
"""Every two characters of ``_ALPHABET``: 10 bits per lookup."""
_MASK = (1 << 10) - 1


def _id_chars(ms: int, rand: int) -> str:
    """``ms`` in 10 characters of ``_ALPHABET`` and ``rand`` in 16, most significant
    first: two characters per lookup instead of one division per character (a busy
    gift path makes an id per gift)."""
    p, m = _PAIRS, _MASK
    return (
        p[ms >> 40 & m] + p[ms >> 30 & m] + p[ms >> 20 & m] + p[ms >> 10 & m] + p[ms & m]
        + p[rand >> 70 & m] + p[rand >> 60 & m] + p[rand >> 50 & m] + p[rand >> 40 & m]
        + p[rand >> 30 & m] + p[rand >> 20 & m] + p[rand >> 10 & m] + p[rand & m]
    )  # fmt: skip


_lock = threading.Lock()
_last = (0, 0)


_RANDOM_BATCH = 10 * 256
_random = b""
_random_at = 0


def _random10() -> bytes:
    """10 bytes from the OS's random source, fetched 256 ids' worth at a time (one
    system call per id was a visible part of a busy gift path). Under ``_lock``."""
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(_RANDOM_BATCH), 0
    _random_at += 10
    return _random[_random_at - 10 : _random_at]


def _forget_random() -> None:
    """A forked child must not hand out its parent's unused random bytes."""
    global _random, _random_at
    _random, _random_at = b"", 0


os.register_at_fork(after_in_child=_forget_random)


def new_id(prefix: str) -> str:
    """``<prefix>_`` + 10 chars of milliseconds + 16 random chars (ULID-like, lowercase).

    Monotonic within a process: an id made in the same millisecond as the one
    before (or after the clock stepped back) takes that one's time and its random
    part plus one, so a user's history lists two quick operations in their order."""
    global _last
    ms = time.time_ns() // 1_000_000
    with _lock:
        last_ms, last_rand = _last
        if ms <= last_ms and last_rand + 1 < 1 << 80:
            ms, rand = last_ms, last_rand + 1
        else:
            rand = int.from_bytes(_random10(), "big") >> 1  # room to count up
        _last = (ms, rand)
    return f"{prefix}_{_id_chars(ms, rand)}"


def id_ms(identifier: str) -> int:
    """The milliseconds ``new_id`` took for ``identifier`` (its time part)."""
    value = 0
    for char in identifier.rpartition("_")[2][:10]:
        value = value * 32 + _ALPHABET.index(char)
    return value


def new_secret(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def now_ms() -> int:
    return time.time_ns() // 1_000_000

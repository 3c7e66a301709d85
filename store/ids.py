"""Identifiers that sort by creation time (cursor pagination relies on it)."""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_lock = threading.Lock()
_last = (0, 0)


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
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to count up
        _last = (ms, rand)
    return f"{prefix}_{_base32(ms, 10)}{_base32(rand, 16)}"


def new_secret(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def now_ms() -> int:
    return time.time_ns() // 1_000_000

"""Checks of the identifiers a client sends, over HTTP and WebSocket alike."""

from __future__ import annotations

import re

from live.errors import LiveError

ROOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")


def check_room_id(room_id: str) -> str:
    if not ROOM_ID.match(room_id):
        raise LiveError("bad_request", "room id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return room_id


def check_key(key: str | None, *, what: str = "Idempotency-Key") -> str:
    if key is None or not IDEMPOTENCY_KEY.match(key):
        raise LiveError("bad_request", f"{what} must be 1-64 printable ASCII characters")
    return key

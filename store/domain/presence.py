"""Overlay presence reports: one node's list of a room's overlays, with an expiry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def merge_reports(
    reports: Iterable[tuple[int, list[dict[str, Any]]]], *, now: int
) -> list[dict[str, Any]]:
    """Every unexpired report's overlays, oldest connection first
    (``reports``: ``(expires_at, overlays)``)."""
    found = [o for expires, overlays in reports if expires > now for o in overlays]
    return sorted(found, key=lambda o: (o.get("connected_at", 0), o.get("id", "")))

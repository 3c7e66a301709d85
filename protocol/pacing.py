"""Alert pacing for one connection: one alert at a time, biggest gift first.

A connection that asks for pacing (``pace=1``) gets each finished gift (a
``gift`` event with ``combo.end`` true: a single gift, or a streak's final
event) as an ``alert`` event of its own, one at a time: the next goes out when
the client sends ``alert_done`` for the one on screen, or when it has been on
screen for the timeout. While one plays, the others wait in a backlog and the
most valuable goes next (ties: oldest first). A backlog over its cap folds its
smallest gifts into one ``summary`` alert (how many, how many coins, who),
which plays once no single gift waits, so a burst never floods the stream.

Pure: time comes in as ``now`` (seconds, any monotonic clock) and the caller
sends what ``next_alert`` returns and wakes the pacer at ``deadline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.events import Event

__all__ = ["AlertPacer", "alert_value", "is_alert"]

SUMMARY_SENDERS = 10
"""Senders a summary names; the rest are counted in ``more_senders``."""


def is_alert(event: Mapping[str, Any]) -> bool:
    """A gift the viewer finished giving: a single gift, or a streak's last event."""
    if event.get("type") != "gift":
        return False
    combo = event.get("combo")
    return isinstance(combo, Mapping) and combo.get("end") is True


def alert_value(event: Mapping[str, Any]) -> int:
    """Coins the alert is worth: the whole streak's, when the event says it."""
    detail = event.get("overlay")
    if isinstance(detail, Mapping):
        combo_coins = detail.get("combo", {}).get("coins")
        if isinstance(combo_coins, int):
            return combo_coins
    gift = event.get("gift") or {}
    combo = event.get("combo") or {}
    coins = gift.get("coins", 0) if isinstance(gift, Mapping) else 0
    count = combo.get("count", 0) if isinstance(combo, Mapping) else 0
    return coins * count if isinstance(coins, int) and isinstance(count, int) else 0


@dataclass(slots=True)
class _Pending:
    coins: int
    order: int
    gift: Event | None = None
    """The gift event; None for a summary."""
    gifts: int = 0
    senders: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    more_senders: int = 0

    def fold(self, other: _Pending) -> None:
        """Add ``other`` (a gift or a summary) into this summary."""
        self.coins += other.coins
        if other.gift is None:
            self.gifts += other.gifts
            self.more_senders += other.more_senders
            people = list(other.senders.values())
        else:
            self.gifts += 1
            sender = other.gift.get("sender")
            people = [sender] if isinstance(sender, Mapping) else []
        for person in people:
            key = str(person.get("id"))
            if key in self.senders:
                continue
            if len(self.senders) < SUMMARY_SENDERS:
                self.senders[key] = person
            else:
                self.more_senders += 1


class AlertPacer:
    """The alert queue of one connection (see the module docstring)."""

    __slots__ = ("_backlog", "_deadline", "_issued", "_order", "_pending", "_playing", "_timeout")

    def __init__(self, *, backlog: int = 50, timeout_seconds: float = 20.0) -> None:
        if backlog < 2:
            raise ValueError("backlog must be at least 2 (a gift and a summary)")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        self._backlog = backlog
        self._timeout = timeout_seconds
        self._pending: list[_Pending] = []
        self._order = 0
        self._issued = 0
        self._playing: str | None = None
        self._deadline: float | None = None

    @property
    def playing(self) -> str | None:
        """The id of the alert on screen, if any."""
        return self._playing

    @property
    def deadline(self) -> float | None:
        """When the alert on screen times out (None: nothing on screen)."""
        return self._deadline

    def __len__(self) -> int:
        """Alerts waiting (not counting the one on screen)."""
        return len(self._pending)

    def offer(self, events: list[Event]) -> None:
        """Queue the alerts among room events as the connection receives them."""
        for event in events:
            if is_alert(event):
                self._order += 1
                self._pending.append(_Pending(alert_value(event), self._order, gift=event))
        if len(self._pending) > self._backlog:
            self._fold()

    def _fold(self) -> None:
        """Merge the smallest gifts (and any earlier summary) into one summary, so
        the backlog is back at its cap."""
        summaries = [p for p in self._pending if p.gift is None]
        gifts = sorted((p for p in self._pending if p.gift is not None), key=_rank, reverse=True)
        keep = self._backlog - 1
        folded = gifts[keep:] + summaries
        summary = _Pending(0, min(p.order for p in folded))
        for item in folded:
            summary.fold(item)
        self._pending = [*gifts[:keep], summary]

    def next_alert(self, now: float) -> Event | None:
        """The alert to send now, if nothing is on screen (or what is timed out)."""
        if self._deadline is not None and now >= self._deadline:
            self._playing = self._deadline = None
        if self._playing is not None or not self._pending:
            return None
        best = max(self._pending, key=_rank)
        self._pending.remove(best)
        self._issued += 1
        self._playing = f"a{self._issued}"
        self._deadline = now + self._timeout
        return _alert_event(self._playing, best)

    def done(self, alert_id: str) -> bool:
        """The client finished showing ``alert_id``; False if that isn't the one on
        screen (already timed out, or never sent): nothing changes then."""
        if alert_id != self._playing:
            return False
        self._playing = self._deadline = None
        return True


def _rank(item: _Pending) -> tuple[bool, int, int]:
    """Gifts before the summary (its gifts were the smallest), most coins first,
    then oldest first."""
    return (item.gift is not None, item.coins, -item.order)


def _alert_event(alert_id: str, item: _Pending) -> Event:
    if item.gift is not None:
        return {
            "type": "alert",
            "id": alert_id,
            "kind": "gift",
            "coins": item.coins,
            "gift": item.gift,
        }
    return {
        "type": "alert",
        "id": alert_id,
        "kind": "summary",
        "coins": item.coins,
        "gifts": item.gifts,
        "senders": list(item.senders.values()),
        "more_senders": item.more_senders,
    }

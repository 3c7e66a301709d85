"""Process metrics in the Prometheus text format, without a client library.

Counters are plain integers bumped on the hot path (no locks: one event loop).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

GAUGE_HELP = {
    "outbox_lag": "Ledger entries in the Redis outbox not yet committed to PostgreSQL.",
}


class Metrics:
    def __init__(self) -> None:
        self.connections = 0
        """Open WebSocket connections (viewers, overlays, gifters)."""
        self.connections_total = 0
        self.rooms = 0
        """Rooms with at least one local connection."""
        self.events_in = 0
        """Commands received from clients."""
        self.events_out = 0
        """Room events delivered to connections (one per event per connection)."""
        self.frames_out = 0
        self.bytes_out = 0
        self.gifts_committed = 0
        self.gift_errors: defaultdict[str, int] = defaultdict(int)
        self.closes: defaultdict[int, int] = defaultdict(int)
        self.slow_closes = 0
        self.refused: defaultdict[str, int] = defaultdict(int)
        """WebSocket handshakes refused by an admission limit, by reason."""
        self.broker_resets = 0

    def render(self, engine_gauges: dict[str, float] | None = None) -> str:
        """The Prometheus text page: each family's help, type and samples."""

        def one(value: float) -> list[tuple[str, float]]:
            return [("", value)]

        def by(label: str, counts: Mapping[Any, int]) -> list[tuple[str, float]]:
            return [(f'{{{label}="{key}"}}', n) for key, n in sorted(counts.items())]

        # (name, help, samples): a name ending in _total is a counter, else a gauge
        families = [
            ("connections", "Open WebSocket connections.", one(self.connections)),
            ("connections_total", "WebSocket connections accepted.", one(self.connections_total)),
            ("rooms", "Rooms with local connections.", one(self.rooms)),
            ("events_in_total", "Commands received.", one(self.events_in)),
            ("events_out_total", "Room events delivered to connections.", one(self.events_out)),
            ("frames_out_total", "WebSocket frames sent.", one(self.frames_out)),
            ("bytes_out_total", "Payload bytes sent.", one(self.bytes_out)),
            ("gifts_committed_total", "Gifts committed by the wallet.", one(self.gifts_committed)),
            (
                "gift_errors_total",
                "Gift commands refused, by error code.",
                by("code", self.gift_errors),
            ),
            (
                "closes_total",
                "Connections closed by the server, by close code.",
                by("code", self.closes),
            ),
            (
                "slow_closes_total",
                "Viewers closed for not keeping up (4008).",
                one(self.slow_closes),
            ),
            (
                "handshakes_refused_total",
                "WebSocket handshakes refused: origin, ip, user or room (full).",
                by("reason", self.refused),
            ),
            (
                "broker_resets_total",
                "Broker reconnects seen by room channels.",
                one(self.broker_resets),
            ),
        ]
        lines: list[str] = []
        for name, help_text, samples in families:
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP live_{name} {help_text}", f"# TYPE live_{name} {kind}"]
            lines += [f"live_{name}{labels} {value:g}" for labels, value in samples]
        for name, value in sorted((engine_gauges or {}).items()):
            help_text = GAUGE_HELP.get(name, name.replace("_", " ") + ".")
            lines += [f"# HELP live_{name} {help_text}", f"# TYPE live_{name} gauge"]
            lines.append(f"live_{name} {value:g}")
        return "\n".join(lines) + "\n"

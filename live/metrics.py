"""Process metrics in the Prometheus text format, without a client library.

Counters are plain integers bumped on the hot path (no locks: one event loop).
"""

from __future__ import annotations

from collections import defaultdict

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
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP live_{name} {help_text}")
            lines.append(f"# TYPE live_{name} {kind}")
            for labels, value in samples:
                lines.append(f"live_{name}{labels} {value:g}")

        metric("connections", "gauge", "Open WebSocket connections.", [("", self.connections)])
        metric(
            "connections_total",
            "counter",
            "WebSocket connections accepted.",
            [("", self.connections_total)],
        )
        metric("rooms", "gauge", "Rooms with local connections.", [("", self.rooms)])
        metric("events_in_total", "counter", "Commands received.", [("", self.events_in)])
        metric(
            "events_out_total",
            "counter",
            "Room events delivered to connections.",
            [("", self.events_out)],
        )
        metric("frames_out_total", "counter", "WebSocket frames sent.", [("", self.frames_out)])
        metric("bytes_out_total", "counter", "Payload bytes sent.", [("", self.bytes_out)])
        metric(
            "gifts_committed_total",
            "counter",
            "Gifts committed by the wallet.",
            [("", self.gifts_committed)],
        )
        metric(
            "gift_errors_total",
            "counter",
            "Gift commands refused, by error code.",
            [(f'{{code="{code}"}}', n) for code, n in sorted(self.gift_errors.items())],
        )
        metric(
            "closes_total",
            "counter",
            "Connections closed by the server, by close code.",
            [(f'{{code="{code}"}}', n) for code, n in sorted(self.closes.items())],
        )
        metric(
            "slow_closes_total",
            "counter",
            "Viewers closed for not keeping up (4008).",
            [("", self.slow_closes)],
        )
        metric(
            "handshakes_refused_total",
            "counter",
            "WebSocket handshakes refused: origin, ip, user or room (full).",
            [(f'{{reason="{reason}"}}', n) for reason, n in sorted(self.refused.items())],
        )
        metric(
            "broker_resets_total",
            "counter",
            "Broker reconnects seen by room channels.",
            [("", self.broker_resets)],
        )
        for name, value in sorted((engine_gauges or {}).items()):
            metric(name, "gauge", GAUGE_HELP.get(name, name.replace("_", " ") + "."), [("", value)])
        return "\n".join(lines) + "\n"

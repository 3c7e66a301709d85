"""The final report: a table for the terminal, JSON, and a PNG plot.

The plot needs matplotlib (``pip install 'live-gifting[loadtest]'``); without
it the JSON and the table are still written and the plot is skipped with a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson


def fmt(value: Any) -> str:
    """Numbers for people: thousands separators, short decimals, '-' for nothing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.1f}"
        return f"{value:.3f}"
    return str(value)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """A plain-text table; the first column is left-aligned, the rest right-aligned."""
    body = [[fmt(cell) for cell in row] for row in rows]
    if headers:
        body.insert(0, list(headers))
    if not body:
        return ""
    widths = [max(len(row[i]) if i < len(row) else 0 for row in body) for i in range(len(body[0]))]
    lines = []
    for n, row in enumerate(body):
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0 and headers:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _latency(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("count"):
        return "-"
    return (
        f"p50 {fmt(summary['p50'])}  p95 {fmt(summary['p95'])}  p99 {fmt(summary['p99'])}  "
        f"max {fmt(summary['max'])} ms  (n={fmt(summary['count'])})"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {fmt(v)}" for k, v in counts.items()) if counts else "none"


def _server_per_gift(cost: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """An acked gift's server CPU by thread and its storage writes, when measured."""
    if not cost:
        return []
    rows: list[tuple[str, Any]] = [
        (
            "server CPU per acked gift: event loop, other threads",
            f"{fmt(cost['loop_cpu_us'])} us, {fmt(cost['other_cpu_us'])} us",
        )
    ]
    if cost.get("written_bytes") is not None:
        rows.append(
            ("server storage writes per acked gift", f"{fmt(cost['written_bytes'] / 1024)} KiB")
        )
    return rows


def _server_writer(writer: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """How full the embedded engine's group commit was, when its counters were read."""
    if not writer:
        return []
    return [
        (
            "server SQLite writer: commits/s, operations per commit, time in commits",
            f"{fmt(writer['commits_per_s'])}/s, {writer['operations_per_commit']:.2f}, "
            f"{fmt(writer['in_commits_percent'])}%",
        )
    ]


def summary_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The report as (what, figure) rows."""
    c = report["connections"]
    t = report["throughput"]
    lat = report["latency"]
    rows: list[tuple[str, Any]] = [
        ("scenario", f"{report['scenario']} {report.get('label') or ''}".strip()),
        ("target", report["target"]),
        ("connections opened / asked", f"{fmt(c['opened'])} / {fmt(c['asked'])}"),
        ("connect time, handshakes/s", f"{fmt(c['seconds'])} s, {fmt(c['handshakes_per_s'])}/s"),
        ("handshake latency", _latency(c["handshake_ms"])),
        ("measured for", f"{fmt(report['measured_seconds'])} s"),
        (
            "CPU busy: generator, server",
            f"{fmt(report['cpu']['generator_percent'])}%, {fmt(report['cpu']['server_percent'])}%"
            " of one core",
        ),
        (
            "gifts sent / acked per s",
            f"{fmt(t['gifts_sent_per_s'])} / {fmt(t['gifts_acked_per_s'])}",
        ),
        ("gifts acked per server-CPU-second", t.get("gifts_per_server_cpu_s")),
        *_server_per_gift(report.get("server_per_gift")),
        *_server_writer(report.get("server_writer")),
        ("gift-event deliveries/s", t["gift_deliveries_per_s"]),
        ("room events delivered/s", t["events_per_s"]),
        ("frames delivered/s", t["frames_per_s"]),
        ("bytes received/s", t["bytes_per_s"]),
        ("gift-to-screen latency", _latency(lat["gift_to_screen_ms"])),
        ("ack latency", _latency(lat["ack_ms"])),
        ("errors by code", _counts(report["errors"])),
        ("closes by code", _counts(report["closes"])),
        ("timeouts", _counts(report["timeouts"])),
    ]
    r = report["resume"]
    rows.append(
        (
            "reconnects, resumed, snapshots, gaps",
            f"{fmt(r['reconnects'])}, {fmt(r['resumed'])}, {fmt(r['snapshots'])}, {fmt(r['gaps'])}",
        )
    )
    if r.get("caught_up"):
        rows.append(
            (
                "gifts caught up on resume (not timed)",
                f"{fmt(r['caught_up'])} receipts by probes of gifts sent while they were away",
            )
        )
    server = report.get("server") or {}
    if server:
        rows.append(
            (
                "server RSS before / idle / end",
                f"{fmt(server['rss_before_kib'])} / {fmt(server['rss_idle_kib'])} / "
                f"{fmt(server['rss_end_kib'])} KiB",
            )
        )
        rows.append(("server RSS per connection", f"{fmt(server['rss_per_connection_kib'])} KiB"))
    storm = report.get("storm")
    if storm:
        rows.append(
            (
                "storm: reconnected and resumed",
                f"{fmt(storm['viewers'] - storm['failed'])} of {fmt(storm['viewers'])} in "
                f"{fmt(storm['seconds'])} s (resumed {fmt(storm['resumed'])}, "
                f"snapshots {fmt(storm['snapshots'])}, gaps {fmt(storm['gaps'])})",
            )
        )
    sweep = report.get("sweep")
    if sweep:
        rows.append(
            (
                f"capacity at {'ack ' if sweep.get('bound_on') == 'ack' else ''}p99 <= "
                f"{fmt(sweep['p99_bound_ms'])} ms",
                f"{fmt(sweep['capacity_gift_deliveries_per_s'])} gift deliveries/s "
                f"({fmt(sweep['capacity_gift_rate'])} gifts/s; stopped: {sweep['stopped']})",
            )
        )
        if "peak_gift_deliveries_per_s" in sweep:
            rows.append(
                (
                    "peak throughput, any latency",
                    f"{fmt(sweep['peak_gift_deliveries_per_s'])} gift deliveries/s "
                    f"({fmt(sweep['peak_gift_rate'])} gifts/s, p99 {fmt(sweep['peak_p99_ms'])} ms)",
                )
            )
    money = report.get("money")
    if money:
        rows.append(
            (
                "money",
                f"{'OK' if money['ok'] else 'MISMATCH'}: spent {fmt(money['coins_spent_wallets'])}"
                f" (acked {fmt(money['coins_spent_acked'])}, unanswered "
                f"{fmt(money.get('coins_unanswered', 0))}) = diamonds "
                f"{fmt(money['diamonds_credited'])} (expected {fmt(money['diamonds_expected'])})"
                f" + platform {fmt(money['platform_share'])}; audit "
                f"{'ok' if money['audit_ok'] else 'FAILED'}",
            )
        )
    return rows


def render(report: dict[str, Any]) -> str:
    text = table(summary_rows(report), headers=("measure", "figure"))
    sweep = report.get("sweep")
    if sweep and sweep["steps"]:
        text += "\n\n" + table(
            (
                (
                    s["gift_rate"],
                    s["gift_deliveries_per_s"],
                    s["frames_per_s"],
                    s["gift_to_screen_ms"]["p50"],
                    s["gift_to_screen_ms"]["p99"],
                    s.get("ack_ms", {}).get("p99"),
                    s.get("gifts_per_server_cpu_s"),
                    (s.get("server_writer") or {}).get("operations_per_commit"),
                    s["closes"],
                    s["cpu"]["server_percent"],
                    s["cpu"]["generator_percent"],
                    "ok" if s["within_bound"] else "over",
                )
                for s in sweep["steps"]
            ),
            headers=(
                "gifts/s",
                "deliveries/s",
                "frames/s",
                "p50 ms",
                "p99 ms",
                "ack p99 ms",
                "gifts/cpu-s",
                "ops/commit",
                "closes",
                "server cpu%",
                "gen cpu%",
                "bound",
            ),
        )
    return text


def write(report: dict[str, Any], out_dir: Path, *, name: str = "report") -> list[Path]:
    """``name``.json, ``name``.txt and (with matplotlib) ``name``.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / f"{name}.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    written.append(path)
    path = out_dir / f"{name}.txt"
    path.write_text(render(report) + "\n")
    written.append(path)
    png = plot(report, out_dir / f"{name}.png")
    if png is not None:
        written.append(png)
    return written


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """Latency over time (p50/p99 gift-to-screen) above throughput over time."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    timeline = report.get("timeline") or []
    t = [s["t"] for s in timeline]

    def series(key: str, field: str) -> list[float]:
        return [float("nan") if s[key][field] is None else s[key][field] for s in timeline]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    title = f"{report['scenario']} {report.get('label') or ''} against {report['target']}"
    fig.suptitle(title.strip())
    top.plot(t, series("gift_to_screen_ms", "p50"), label="gift-to-screen p50")
    top.plot(t, series("gift_to_screen_ms", "p99"), label="gift-to-screen p99")
    top.plot(t, series("ack_ms", "p99"), label="ack p99", linestyle="--")
    top.set_ylabel("ms")
    top.set_yscale("log")
    top.legend(loc="upper left")
    top.grid(True, alpha=0.3)
    bottom.plot(t, [s["gift_deliveries_per_s"] for s in timeline], label="gift deliveries/s")
    bottom.plot(t, [s["frames_per_s"] for s in timeline], label="frames/s")
    bottom.set_ylabel("per second")
    bottom.set_xlabel("seconds")
    right = bottom.twinx()
    right.plot(
        t, [s["gifts_acked_per_s"] for s in timeline], color="tab:red", label="gifts acked/s"
    )
    right.set_ylabel("gifts/s")
    lines = bottom.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    bottom.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    bottom.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

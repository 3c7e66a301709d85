"""The final report: table, numbers for people, JSON and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadtest.bench import _split
from loadtest.report import fmt, render, summary_rows, table, write
from loadtest.stats import Histogram


def sample_report(**extra: Any) -> dict[str, Any]:
    latency = Histogram.of([1000.0, 2000.0, 50_000.0]).summary_ms()
    report: dict[str, Any] = {
        "scenario": "crowd",
        "label": "",
        "target": "http://127.0.0.1:8000",
        "connections": {
            "asked": 12,
            "opened": 12,
            "failed": 0,
            "seconds": 0.5,
            "handshakes_per_s": 24.0,
            "handshake_ms": latency,
            "connect_errors": {},
        },
        "measured_seconds": 10.0,
        "cpu": {"generator_percent": 55.0, "server_percent": 97.5},
        "throughput": {
            "gift_deliveries_per_s": 1200.0,
            "events_per_s": 1300.0,
            "frames_per_s": 400.0,
            "bytes_per_s": 123456.0,
            "gifts_sent_per_s": 100.0,
            "gifts_acked_per_s": 100.0,
        },
        "latency": {"gift_to_screen_ms": latency, "ack_ms": Histogram().summary_ms()},
        "errors": {"rate_limited": 2},
        "timeouts": {},
        "closes": {"4008": 1},
        "resume": {"reconnects": 1, "resumed": 1, "snapshots": 0, "gaps": 0},
        "server": {
            "pid": 1,
            "rss_before_kib": 1000,
            "rss_idle_kib": 1240,
            "rss_end_kib": 1300,
            "rss_per_connection_kib": 20.0,
        },
        "money": {
            "ok": True,
            "coins_spent_wallets": 1000,
            "coins_spent_acked": 1000,
            "diamonds_credited": 500,
            "diamonds_expected": 500,
            "platform_share": 500,
            "audit_ok": True,
            "audit_transactions": 1010,
        },
        "timeline": [
            {
                "t": float(t),
                "connections": 12,
                "gift_deliveries_per_s": 1200.0,
                "events_per_s": 1300.0,
                "frames_per_s": 400.0,
                "gifts_acked_per_s": 100.0,
                "gift_to_screen_ms": latency,
                "ack_ms": Histogram().summary_ms(),
            }
            for t in range(1, 6)
        ],
    }
    report.update(extra)
    return report


def test_numbers_for_people() -> None:
    assert fmt(None) == "-"
    assert fmt(True) == "yes"
    assert fmt(1234567) == "1,234,567"
    assert fmt(1234.56) == "1,235"
    assert fmt(12.345) == "12.3"
    assert fmt(0.01234) == "0.012"
    assert fmt(0.0) == "0"
    assert fmt("x") == "x"


def test_table_aligns_columns() -> None:
    text = table([("a", 1), ("longer name", 12345)], headers=("what", "n"))
    lines = text.splitlines()
    assert lines[0].startswith("what")
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].startswith("a ")
    assert lines[3].endswith("12,345")
    assert len({len(line) for line in lines[2:]}) == 1  # right-aligned numbers line up
    assert table([]) == ""


def test_summary_says_what_happened() -> None:
    rows = dict(summary_rows(sample_report()))
    assert rows["connections opened / asked"] == "12 / 12"
    assert rows["gift-event deliveries/s"] == 1200.0
    assert "p99" in rows["gift-to-screen latency"]
    assert rows["ack latency"] == "-"
    assert rows["errors by code"] == "rate_limited: 2"
    assert rows["closes by code"] == "4008: 1"
    assert rows["server RSS per connection"] == "20.0 KiB"
    assert rows["CPU busy: generator, server"] == "55.0%, 97.5% of one core"
    assert rows["money"].startswith("OK: spent 1,000")
    assert "audit ok" in rows["money"]


STEP: dict[str, Any] = {
    "gift_rate": 10.0,
    "gift_deliveries_per_s": 50_000.0,
    "frames_per_s": 20_000.0,
    "gift_to_screen_ms": {"p50": 3.0, "p99": 40.0},
    "closes": 0,
    "cpu": {"generator_percent": 50.0, "server_percent": 90.0},
    "within_bound": True,
}
"""One sweep step as the runner reports it (older reports have no ``ack_ms``)."""


WRITER = {
    "commits_per_s": 266.5,
    "operations_per_commit": 4.75,
    "in_commits_percent": 93.2,
    "retries": 0,
}
"""The SQLite writer over a span, as the runner reports it (embedded engine)."""


def test_sweep_and_storm_get_their_own_lines() -> None:
    step = STEP
    report = sample_report(
        sweep={
            "p99_bound_ms": 250.0,
            "steps": [
                step,
                {**step, "gift_rate": 15.0, "within_bound": False, "server_writer": WRITER},
            ],
            "stopped": "p99 over the bound",
            "capacity_gift_deliveries_per_s": 50_000.0,
            "capacity_gift_rate": 10.0,
        },
        storm={
            "viewers": 100,
            "failed": 0,
            "seconds": 1.5,
            "resumed": 100,
            "snapshots": 0,
            "gaps": 0,
        },
    )
    text = render(report)
    assert "capacity at p99 <= 250 ms" in text
    assert "50,000 gift deliveries/s" in text
    assert "100 of 100 in 1.5 s" in text
    assert "over" in text.splitlines()[-1]
    assert "ops/commit" in text
    assert "4.8" in text.splitlines()[-1] and "4.8" not in text.splitlines()[-2]
    assert "caught up" not in text  # no probe caught up on anything
    caught = dict(summary_rows({**report, "resume": {**report["resume"], "caught_up": 7}}))
    assert caught["gifts caught up on resume (not timed)"].startswith("7 receipts")


def test_a_sweep_bounded_on_acks_says_so_with_the_cost_per_gift() -> None:
    step = {
        **STEP,
        "gift_rate": 500.0,
        "gift_to_screen_ms": {"p50": None, "p99": None},
        "ack_ms": {"p50": 4.0, "p99": 31.5},
        "gifts_per_server_cpu_s": 4_321.0,
    }
    report = sample_report(
        sweep={
            "p99_bound_ms": 50.0,
            "bound_on": "ack",
            "steps": [step],
            "stopped": "reached the maximum rate",
            "capacity_gift_deliveries_per_s": 0.0,
            "capacity_gift_rate": 500.0,
        }
    )
    text = render(report)
    assert "capacity at ack p99 <= 50.0 ms" in text
    last = text.splitlines()[-1].split()
    assert last[:1] == ["500"] and "31.5" in last and "4,321" in last


def test_write_json_text_and_plot(tmp_path: Path) -> None:
    paths = write(sample_report(), tmp_path, name="crowd")
    names = {p.name for p in paths}
    assert {"crowd.json", "crowd.txt", "crowd.png"} <= names
    assert orjson.loads((tmp_path / "crowd.json").read_bytes())["scenario"] == "crowd"
    assert "gift-to-screen latency" in (tmp_path / "crowd.txt").read_text()
    assert (tmp_path / "crowd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_server_cost_per_gift_is_shown_by_thread_and_storage_when_measured() -> None:
    cost = {"loop_cpu_us": 183.4, "other_cpu_us": 158.0, "written_bytes": 25_800}
    rows = dict(summary_rows({**sample_report(), "server_per_gift": cost}))
    assert rows["server CPU per acked gift: event loop, other threads"] == "183 us, 158 us"
    assert rows["server storage writes per acked gift"] == "25.2 KiB"
    unread = dict(
        summary_rows({**sample_report(), "server_per_gift": {**cost, "written_bytes": None}})
    )
    assert "server storage writes per acked gift" not in unread
    remote = dict(summary_rows({**sample_report(), "server_per_gift": None}))
    assert not any(k.startswith("server CPU per acked gift") for k in remote)


def test_the_commit_rows_note_carries_the_split() -> None:
    cost = {"loop_cpu_us": 183.4, "other_cpu_us": 158.0, "written_bytes": 25_800}
    assert _split({"server_per_gift": cost}) == (
        " (event loops 183 us, other threads 158 us; 25.2 KiB written to storage)"
    )
    assert _split({"server_per_gift": cost, "server_writer": WRITER}) == (
        " (event loops 183 us, other threads 158 us; 25.2 KiB written to storage;"
        " 4.75 operations per SQLite commit)"
    )
    assert _split({"server_per_gift": None}) == ""


def test_the_writer_row_shows_how_full_the_commits_were_when_read() -> None:
    row = "server SQLite writer: commits/s, operations per commit, time in commits"
    assert dict(summary_rows({**sample_report(), "server_writer": WRITER}))[row] == (
        "266/s, 4.75, 93.2%"
    )
    assert row not in dict(summary_rows({**sample_report(), "server_writer": None}))
    assert row not in dict(summary_rows(sample_report()))

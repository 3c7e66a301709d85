"""A short run of each scenario against a real server: it completes and its counts
add up. Small numbers, never timing: these run on every CI run."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.__main__ import main
from loadtest.processes import process_tree
from loadtest.runner import Options, Run, cpu_seconds, rss_kib, server_usage
from loadtest.servers import LocalServers
from tests.live.server import SECRET, LiveServer

SMALL_SWEEP: dict[str, Any] = {
    "scenario": "sweep",
    "gifters": 4,
    "start_rate": 4,
    "factor": 2,
    "step_seconds": 1.0,
    "p99_bound_ms": 60_000,  # 60 s of latency at 4 gifts/s: always within
}


def run(server_url: str, **kw: Any) -> dict[str, Any]:
    base = Options(
        url=server_url,
        secret=SECRET,
        warmup=0.3,
        duration=1.0,
        probe_every=3,
        report_interval=0.5,
    )
    for key, value in kw.items():
        setattr(base, key, value)
    return Run(base, out=io.StringIO()).execute()


def assert_clean(report: dict[str, Any]) -> None:
    assert report["connections"]["opened"] == report["connections"]["asked"]
    assert report["connections"]["failed"] == 0
    assert report["errors"] == {}
    assert report["closes"] == {}
    assert report["timeouts"] == {}
    assert report["resume"]["gaps"] == 0


def test_crowd_every_viewer_sees_every_gift_and_the_money_adds_up(live: LiveServer) -> None:
    report = run(live.url, viewers=12, rooms=1, gifters=3, gift_rate=6, like_rate=6, chat_rate=3)
    assert_clean(report)
    totals = report["totals"]
    assert totals["gifts_acked"] == totals["gifts_sent"] > 0
    assert totals["likes_acked"] > 0 and totals["chats_acked"] > 0
    # One room: every connection (12 viewers and 3 gifters) receives every gift.
    assert totals["gift_events"] == totals["gifts_acked"] * 15
    assert totals["room_events"] > totals["gift_events"]  # likes and chat lines too
    assert report["latency"]["gift_to_screen_ms"]["count"] > 0
    money = report["money"]
    assert money["ok"], money
    assert money["coins_spent_acked"] == totals["gifts_acked"]  # roses cost one coin
    assert money["coins_spent_wallets"] == money["diamonds_credited"] + money["platform_share"]
    assert len(report["timeline"]) >= 2


def test_whale_big_combos_are_charged_in_full(live: LiveServer) -> None:
    report = run(
        live.url,
        scenario="whale",
        viewers=5,
        rooms=2,
        gifters=2,
        gift_rate=3,
        gift="confetti",
        count=99,
    )
    assert_clean(report)
    acked = report["totals"]["gifts_acked"]
    assert acked > 0
    money = report["money"]
    assert money["ok"], money
    assert money["coins_spent_wallets"] == acked * 99 * 100
    assert money["diamonds_credited"] == acked * 99 * 50
    assert money["platform_share"] == acked * 99 * 50


def test_storm_every_viewer_comes_back_resumed(live: LiveServer) -> None:
    report = run(
        live.url,
        scenario="storm",
        viewers=30,
        rooms=2,
        gifters=2,
        gift_rate=4,
        duration=0.0,
        storm_settle=1.0,
    )
    storm = report["storm"]
    assert storm["viewers"] == 30
    assert storm["failed"] == 0
    assert storm["resumed"] == 30 and storm["snapshots"] == 0
    assert storm["gaps"] == 0
    assert report["connections"]["opened"] == 32
    assert report["money"]["ok"]


def test_sweep_steps_up_to_the_maximum_rate(live: LiveServer) -> None:
    report = run(live.url, **SMALL_SWEEP, viewers=10, rooms=1, max_rate=16)
    sweep = report["sweep"]
    rates = [s["gift_rate"] for s in sweep["steps"]]
    assert rates == [4, 8, 16][: len(rates)]
    assert sweep["steps"][0]["within_bound"]  # 60 s of latency and 4 gifts/s: always
    assert sweep["capacity_gift_deliveries_per_s"] > 0
    if sweep["stopped"] == "reached the maximum rate":
        assert len(rates) == 3 and all(s["within_bound"] for s in sweep["steps"])
    else:  # a busy machine may not keep up with the higher steps
        assert not sweep["steps"][-1]["within_bound"]
    assert report["money"]["ok"]


def test_the_baseline_speaks_enough_protocol_for_the_same_crowd() -> None:
    servers = LocalServers()
    try:
        url, proc = servers.start_baseline()
        report = run(
            url, viewers=8, rooms=1, gifters=2, gift_rate=4, money=False, server_pid=proc.pid
        )
    finally:
        servers.close()
    assert_clean(report)
    totals = report["totals"]
    assert totals["gifts_acked"] > 0
    assert totals["gift_events"] == totals["gifts_acked"] * 10
    assert report["money"] is None
    assert report["server"]["rss_idle_kib"] > 0


def test_the_command_line_writes_the_report(
    live: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "crowd",
            "--url",
            live.url,
            "--secret",
            SECRET,
            "--viewers",
            "4",
            "--gifters",
            "1",
            "--gift-rate",
            "2",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "gift-to-screen latency" in out and "money" in out
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.png").exists()


def test_the_command_line_refuses_what_would_hit_the_rate_limit() -> None:
    assert main(["crowd", "--secret", "x", "--gifters", "1", "--gift-rate", "50"]) == 2
    assert main(["crowd", "--gifters", "1", "--gift-rate", "1", "--secret", ""]) == 2


def test_the_command_line_runs_chaos_as_a_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", "--help"])
    assert exited.value.code == 0
    assert "python -m loadtest chaos" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["chaos", "--duration", "soon"])
    assert refused.value.code == 2


def test_a_sweep_bounded_on_acks_reports_gifts_per_server_cpu_second(live: LiveServer) -> None:
    assert live.proc is not None
    report = run(
        live.url,
        **SMALL_SWEEP,
        viewers=0,
        rooms=4,
        max_rate=8,
        bound_on="ack",
        server_pid=live.proc.pid,
    )
    sweep = report["sweep"]
    assert sweep["bound_on"] == "ack"
    first = sweep["steps"][0]
    assert first["within_bound"] and first["ack_ms"]["p99"] is not None
    # Nobody watches: a bound on the screen latency could not be met, the ack one is.
    assert first["gift_to_screen_ms"]["p99"] is None
    assert sweep["capacity_gift_rate"] >= 4
    per_cpu = report["throughput"]["gifts_per_server_cpu_s"]
    assert per_cpu is not None and per_cpu > 0
    # the embedded engine commits gifts: its writer thread's share and the file's writes
    cost = report["server_per_gift"]
    assert cost["loop_cpu_us"] > 0 and cost["other_cpu_us"] > 0
    assert cost["written_bytes"] > 0
    # ... and its writer's group commits, read from the metrics page
    writer = report["server_writer"]
    assert writer["commits_per_s"] > 0 and writer["operations_per_commit"] >= 1
    assert first["server_writer"]["commits_per_s"] > 0
    assert report["money"]["ok"]


def test_server_cpu_counts_the_child_processes() -> None:
    """``live serve --workers`` does its work in children: their CPU time counts."""
    busy_child = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import time\\nend = time.process_time() + 0.6\\n"
        "while time.process_time() < end: pass\\nprint(1, flush=True)\\ntime.sleep(30)'], "
        "stdout=subprocess.PIPE); "
        "child.stdout.readline(); print('busy', flush=True); time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", busy_child], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == b"busy"
        tree = process_tree(parent.pid)
        assert len(tree) == 2
        # the parent itself only started the child: the busy half second is the child's
        whole = cpu_seconds(parent.pid)
        assert whole is not None and whole >= 0.5
        assert rss_kib(parent.pid) is not None
    finally:
        for pid in reversed(process_tree(parent.pid)):
            os.kill(pid, signal.SIGKILL)
        parent.wait()


def test_server_usage_tells_the_main_thread_from_the_others_and_counts_writes(
    tmp_path: Path,
) -> None:
    """The per-gift split of the report: the event loop's thread apart from the
    rest (the embedded engine's SQLite writer), and what reached the disk."""
    busy_thread = (
        "import os, sys, threading, time\n"
        "def spin():\n"
        "    end = time.thread_time() + 0.6\n"
        "    while time.thread_time() < end: pass\n"
        "worker = threading.Thread(target=spin)\n"
        "worker.start(); worker.join()\n"
        "with open(sys.argv[1], 'wb') as fh:\n"
        "    fh.write(os.urandom(2 << 20)); fh.flush(); os.fsync(fh.fileno())\n"
        "print('done', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", busy_thread, str(tmp_path / "written")], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"done"
        usage = server_usage(proc.pid)
        assert usage is not None
        assert usage.cpu - usage.loop_cpu >= 0.5  # the spinning thread's
        assert usage.loop_cpu < usage.cpu - 0.5  # not the main thread's
        assert usage.written is not None and usage.written >= 2 << 20
        span = usage - usage
        assert (span.cpu, span.loop_cpu, span.written) == (0, 0, 0)
    finally:
        proc.kill()
        proc.wait()
    assert server_usage(proc.pid) is None  # gone: nothing to read

"""The SQLite writer's counters as a run reads them: from a page's text, and from a
real server's ``/metrics`` behind a token."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.processes import free_port
from loadtest.runner import Options, Run
from loadtest.writer_counters import (
    WriterCounters,
    parse_writer_counters,
    scrape_writer_counters,
)
from tests.live.server import Api, LiveServer

TOKEN = "writer-counters-bearer-0123456789"

PAGE = """\
# HELP live_sqlite_commits_total Group commits.
# TYPE live_sqlite_commits_total counter
live_sqlite_commits_total 240.0
# HELP live_sqlite_operations_total Operations committed.
# TYPE live_sqlite_operations_total counter
live_sqlite_operations_total 282.0
# HELP live_sqlite_commit_seconds_total Seconds in commits.
# TYPE live_sqlite_commit_seconds_total counter
live_sqlite_commit_seconds_total 0.26
# HELP live_sqlite_retries_total Retries.
# TYPE live_sqlite_retries_total counter
live_sqlite_retries_total 1.0
# HELP live_connections Open connections.
# TYPE live_connections gauge
live_connections 12.0
"""


def test_a_page_gives_the_counters_and_a_span_its_figures() -> None:
    before = WriterCounters(commits=40, operations=42, commit_seconds=0.06, retries=1)
    now = parse_writer_counters(PAGE)
    assert now == WriterCounters(commits=240, operations=282, commit_seconds=0.26, retries=1)
    assert (now - before).over(2.0) == {
        "commits_per_s": 100.0,
        "operations_per_commit": 1.2,
        "in_commits_percent": 10.0,
        "retries": 0,
    }
    # a span without commits (or of no length) has no figures to give
    assert (now - now).over(2.0) is None
    assert (now - before).over(0.0) is None


def test_a_page_without_all_the_counters_gives_none() -> None:
    """The Redis engine has no SQLite writer: its page lacks the counters."""
    without_retries = "\n".join(line for line in PAGE.splitlines() if "retries" not in line)
    assert parse_writer_counters(without_retries) is None
    assert parse_writer_counters("") is None


def test_nothing_listening_gives_none() -> None:
    assert scrape_writer_counters(f"http://127.0.0.1:{free_port()}", timeout=2.0) is None


def test_a_page_cut_short_gives_none() -> None:
    """A server that promises a page and closes part-way (a crash mid-scrape)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + PAGE[:100].encode())

    server = threading.Thread(target=answer_once, daemon=True)
    server.start()
    try:
        port = listener.getsockname()[1]
        assert scrape_writer_counters(f"http://127.0.0.1:{port}", timeout=5.0) is None
    finally:
        server.join(timeout=5)
        listener.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An embedded-engine server whose metrics page needs a bearer token."""
    data: Path = tmp_path_factory.mktemp("writer") / "data"
    server = LiveServer(data_dir=data, env={"LIVE_METRICS_TOKEN": TOKEN})
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


def test_a_real_server_counts_the_commits_a_purchase_makes(guarded: LiveServer) -> None:
    assert scrape_writer_counters(guarded.url) is None  # no token: refused
    assert scrape_writer_counters(guarded.url, token="not-the-token") is None
    before = scrape_writer_counters(guarded.url, token=TOKEN)
    assert before is not None

    async def buy() -> None:
        api = Api(guarded, guarded.token("writer-buyer"))
        try:
            assert (await api.buy("us_70", key="writer-1")).status_code == 201
        finally:
            await api.aclose()

    asyncio.run(buy())
    after = scrape_writer_counters(guarded.url, token=TOKEN)
    assert after is not None
    span = after - before
    assert span.commits >= 1 and span.operations >= span.commits
    assert span.commit_seconds > 0


def test_a_run_stops_asking_once_the_page_gave_nothing(guarded: LiveServer) -> None:
    """A page that refuses (or never answers) is asked once per run, not per step."""
    refused = Run(Options(url=guarded.url, money=False), out=io.StringIO())
    assert refused.writer_mark() is None
    refused.o.metrics_token = TOKEN  # even with the token now, it asks no more
    assert refused.writer_mark() is None
    allowed = Run(Options(url=guarded.url, money=False, metrics_token=TOKEN), out=io.StringIO())
    assert allowed.writer_mark() is not None
    assert allowed.writer_mark() is not None

"""The embedded engine's SQLite writer, read from the server's ``/metrics`` page.

A run reads the writer's counters when a measured span starts and when it ends,
so a report can say how full the group commit was at the rate it offered: a
gift that shares its commit with others shares the commit's fixed cost (the
WAL frames and the ``fsync``). A server without them (the Redis engine), a page
behind a token the run does not have, or a server that does not answer in time
gives ``None``, and the report leaves the rows out.
"""

from __future__ import annotations

import http.client
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT_SECONDS = 5.0

_NAMES = {
    "live_sqlite_commits": "commits",
    "live_sqlite_operations": "operations",
    "live_sqlite_commit_seconds": "commit_seconds",
    "live_sqlite_retries": "retries",
}
"""The counters' family names (as the parser gives them, without ``_total``)."""


@dataclass(frozen=True, slots=True)
class WriterCounters:
    """The writer's counters so far; subtract two to get a span's."""

    commits: float
    operations: float
    commit_seconds: float
    """Time from each group's ``BEGIN`` to the end of its ``COMMIT``."""
    retries: float

    def __sub__(self, before: WriterCounters) -> WriterCounters:
        return WriterCounters(
            self.commits - before.commits,
            self.operations - before.operations,
            self.commit_seconds - before.commit_seconds,
            self.retries - before.retries,
        )

    def over(self, seconds: float) -> dict[str, Any] | None:
        """A span's figures: commits per second, operations per commit, the share
        of the span the writer spent in commits (percent) and the retries.
        ``None`` for an empty span."""
        if seconds <= 0 or self.commits <= 0:
            return None
        return {
            "commits_per_s": round(self.commits / seconds, 1),
            "operations_per_commit": round(self.operations / self.commits, 2),
            "in_commits_percent": round(self.commit_seconds / seconds * 100, 1),
            "retries": int(self.retries),
        }


def parse_writer_counters(page: str) -> WriterCounters | None:
    """The writer's counters from a metrics page, ``None`` if it has not all of them."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(page):
        field = _NAMES.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                found[field] = found.get(field, 0.0) + sample.value
    if len(found) != len(_NAMES):
        return None
    return WriterCounters(**found)


def scrape_writer_counters(
    base_url: str, *, token: str = "", timeout: float = SCRAPE_TIMEOUT_SECONDS
) -> WriterCounters | None:
    """The server's writer counters now, or ``None`` (see the module's docstring)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            page = response.read().decode()
    except (OSError, http.client.HTTPException, UnicodeDecodeError):
        return None  # URLError is an OSError; a body cut short is an HTTPException
    try:
        return parse_writer_counters(page)
    except ValueError:
        return None

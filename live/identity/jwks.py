"""The identity service's published keys (a JWKS URL), cached and kept fresh.

Verification reads the cache synchronously (a dict lookup; handshakes come in
storms and must not wait on the network). The document is fetched at start, on
a schedule (``RefreshPolicy.every``), and when a token names a ``kid`` the cache
lacks, which is how a rotation is picked up without a restart. Fetches are
single-flight (concurrent misses share one) and a miss triggers one at most once
per ``RefreshPolicy.min_interval``: a flood of tokens with forged ``kid``s costs the
identity service one request per interval, not one per token. A failed fetch
keeps the keys already known.

The fetch is a plain ``urllib`` request in a worker thread: it runs a few times an
hour, needs no connection pool, and keeps an HTTP client out of the server's
runtime dependencies. It is bounded in time (``timeout``) and size
(``MAX_DOCUMENT_BYTES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from live.identity.keys import VerificationKey, keys_from_jwks

log = logging.getLogger("live.identity")

MAX_DOCUMENT_BYTES = 1_048_576
"""A JWKS larger than this is refused (a few keys take a few kilobytes)."""


def download(url: str, *, timeout: float) -> bytes:
    """GET ``url`` (blocking; run it in a thread); ``OSError``/``ValueError`` on failure."""
    request = urllib.request.Request(
        url, headers={"accept": "application/jwk-set+json, application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"JWKS document over {MAX_DOCUMENT_BYTES} bytes")
    return body


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """When the JWKS is fetched: every ``every`` seconds, on an unknown ``kid`` at
    most once per ``min_interval``, each fetch given ``timeout`` seconds."""

    every: float = 300.0
    min_interval: float = 30.0
    timeout: float = 5.0


class JwksKeys:
    """The keys of one JWKS URL, refreshed in the background and on unknown ``kid``s."""

    def __init__(
        self, *, url: str, policy: RefreshPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.url = url
        self.policy = policy
        self._clock = clock
        self._by_kid: dict[str, VerificationKey] = {}
        self._keys: tuple[VerificationKey, ...] = ()
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._schedule: asyncio.Task[None] | None = None
        self.fetches = 0
        """Fetches started so far (what the rate limit bounds)."""
        self.failures = 0

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return self._keys

    def by_kid(self, kid: str) -> VerificationKey | None:
        return self._by_kid.get(kid)

    def may_refresh(self) -> bool:
        """Whether an unknown ``kid`` may trigger a fetch now (the rate limit)."""
        if self._inflight is not None:
            return True  # joining the fetch in flight costs nothing
        last = self._last_attempt
        return last is None or self._clock() - last >= self.policy.min_interval

    async def refresh_for_unknown_kid(self) -> None:
        """Fetch again if the rate limit allows, else return at once."""
        if self.may_refresh():
            await self.refresh()

    def request_refresh(self) -> None:
        """``refresh_for_unknown_kid`` without waiting (from synchronous code)."""
        if self.may_refresh() and self._inflight is None:
            self._start()

    async def refresh(self) -> bool:
        """Fetch now (or join the fetch in flight); whether the keys were updated."""
        task = self._inflight if self._inflight is not None else self._start()
        return await asyncio.shield(task)

    def _start(self) -> asyncio.Task[bool]:
        self._last_attempt = self._clock()
        self.fetches += 1
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._fetched)
        return task

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> bool:
        try:
            document = await asyncio.to_thread(download, self.url, timeout=self.policy.timeout)
            keys = keys_from_jwks(document)
        except (OSError, ValueError) as exc:
            self.failures += 1
            kept = len(self._keys)
            log.warning("JWKS fetch from %s failed (keeping %d keys): %s", self.url, kept, exc)
            return False
        self.install(keys)
        return True

    def install(self, keys: list[VerificationKey]) -> None:
        """Replace the key set (every key of a rotation at once)."""
        self._keys = tuple(keys)
        self._by_kid = {key.kid: key for key in keys if key.kid is not None}
        log.info("JWKS from %s: %d keys (%s)", self.url, len(keys), ", ".join(self._by_kid))

    async def start(self) -> None:
        """Fetch once (a failure is logged, tokens wait for the next try), then keep
        refreshing on the schedule."""
        await self.refresh()
        self._schedule = asyncio.get_running_loop().create_task(self._refresh_on_schedule())

    async def _refresh_on_schedule(self) -> None:
        while True:
            # After a failure, try again at the rate limit's pace rather than wait an age.
            policy = self.policy
            pause = policy.every if not self._failed_last() else policy.min_interval
            await asyncio.sleep(pause)
            await self.refresh()

    def _failed_last(self) -> bool:
        return not self._keys

    async def close(self) -> None:
        for task in (self._schedule, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

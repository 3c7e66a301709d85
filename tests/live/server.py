"""A real ``live serve`` process on a free port, and clients that talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from live.auth import issue_token
from loadtest.processes import ChildProcess, HttpProcess, free_port, live_command, live_env

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def sample_value(page: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with (at least) these labels on a ``/metrics``
    page, read with the client library's own parser; None when it is absent."""
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


class LiveServer:
    """``python -m live serve`` in a subprocess, restartable on the same data dir."""

    def __init__(
        self,
        *,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ledger: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.server = HttpProcess(
            "server", live_command("serve"), ready_url=self.url + "/readyz", log=self.log_path
        )
        self.ledger_worker = (
            ChildProcess("ledger worker", live_command("ledger"), log=self.log_path)
            if ledger
            else None
        )
        """A ``live ledger`` worker beside the server (scaled engine)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The server process while it runs."""
        return self.server.popen

    def env(self) -> dict[str, str]:
        extra = {"LIVE_TICK_MS": "10", **self.extra_env}
        return live_env(secret=SECRET, data_dir=self.data_dir, port=self.port, extra=extra)

    async def start(self, *, timeout: float = 20.0) -> None:
        """Start the server (and the ledger worker), or only what is not running: a
        second server on the same port would fail while the first one answers."""
        for process in (self.ledger_worker, self.server):
            if process is not None:
                process.env = self.env()
                await process.start(timeout=timeout)

    async def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the server, wait for its exit code, then stop the ledger worker."""
        code = await self.server.signal(sig, timeout=timeout)
        if self.ledger_worker is not None:
            await self.ledger_worker.stop(timeout=timeout)
        return code or 0

    async def kill(self) -> None:
        await self.stop(sig=signal.SIGKILL)

    @property
    def scaled(self) -> bool:
        return "LIVE_REDIS_URL" in self.extra_env

    async def audit(self, *, timeout: float = 20.0) -> dict[str, Any]:
        """``GET /v1/admin/audit`` until it passes (the scaled engine's ledger worker
        may still be draining) or ``timeout``; returns the last report."""
        api = Api(self, self.token("auditor", admin=True))
        deadline = time.monotonic() + timeout
        try:
            while True:
                report: dict[str, Any] = (await api.get("/v1/admin/audit")).json()
                if report.get("ok") or time.monotonic() > deadline:
                    return report
                await asyncio.sleep(0.1)
        finally:
            await api.aclose()

    def token(
        self,
        user: str,
        *,
        adult: bool = True,
        creator: bool = False,
        admin: bool = False,
        name: str | None = None,
        **extra: Any,
    ) -> str:
        roles = [r for r, on in (("creator", creator), ("admin", admin)) if on]
        return issue_token(
            secret=SECRET,
            user_id=user,
            username=name or user,
            display_name=extra.get("display_name") or (name or user).title(),
            avatar=extra.get("avatar", f"https://example.test/{user}.png"),
            adult=adult,
            roles=roles,
        )


class Api:
    """A thin HTTP client for one user."""

    def __init__(self, server: LiveServer, token: str | None) -> None:
        self.server = server
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10.0)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
        headers = {"idempotency-key": key} if key else {}
        return await self.client.post(path, json=body, headers=headers)

    async def buy(self, package: str, *, key: str) -> httpx.Response:
        return await self.post("/v1/purchases", {"package": package}, key=key)

    async def balance(self) -> int:
        response = await self.get("/v1/me/wallet")
        response.raise_for_status()
        coins: int = response.json()["coins"]
        return coins


class Client:
    """A WebSocket client that keeps every event it receives, in order."""

    def __init__(self, ws: ClientConnection, *, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.events: list[dict[str, Any]] = []
        self.frames = 0
        self._new = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.closed_code: int | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        server: LiveServer,
        room: str,
        *,
        token: str | None = None,
        msgpack_codec: bool = False,
        query: str = "",
    ) -> AsyncIterator[Client]:
        url = f"{server.ws_url}/v1/rooms/{room}/live"
        params = []
        if token:
            params.append(f"access_token={token}")
        if query:
            params.append(query)
        if params:
            url += "?" + "&".join(params)
        sub = "gift.v1.msgpack" if msgpack_codec else "gift.v1.json"
        async with connect(
            url,
            subprotocols=[sub],
            max_size=2**24,  # type: ignore[list-item]
            open_timeout=10,
        ) as ws:
            client = cls(ws, binary=msgpack_codec)
            try:
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client._reader

    async def _read(self) -> None:
        try:
            await self._consume()
        except ConnectionClosed:
            pass
        finally:
            self.closed_code = self.ws.close_code
            async with self._new:
                self._new.notify_all()

    async def _consume(self) -> None:
        async for message in self.ws:
            if self.binary:
                if not isinstance(message, bytes):
                    raise AssertionError("msgpack session got a text frame")
                batch = msgpack.unpackb(message, raw=False)
            else:
                if not isinstance(message, str):
                    raise AssertionError("json session got a binary frame")
                batch = orjson.loads(message)
            if not isinstance(batch, list) or not batch:
                raise AssertionError(f"frame is not a non-empty array: {batch!r}")
            async with self._new:
                self.frames += 1
                self.events.extend(batch)
                self._new.notify_all()

    async def send(self, command: dict[str, Any]) -> None:
        if self.binary:
            await self.ws.send(msgpack.packb(command, use_bin_type=True))
        else:
            await self.ws.send(orjson.dumps(command).decode())

    async def wait_for(self, predicate: Any, *, timeout: float = 10.0) -> dict[str, Any]:
        """The first event (from the start) matching ``predicate``."""

        async def find() -> dict[str, Any]:
            async with self._new:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    if self._reader.done():
                        raise AssertionError(
                            f"connection closed ({self.closed_code}) "
                            f"before a matching event; got {self.events}"
                        )
                    await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def reply(self, command_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: e.get("type") in ("ack", "error") and e.get("id") == command_id,
            timeout=timeout,
        )

    async def command(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.send(command)
        return await self.reply(command["id"])

    async def closed(self, *, timeout: float = 10.0) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.ws.close_code

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

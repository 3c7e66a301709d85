"""A webhook receiver on a free loopback port: what an integration runs.

It answers challenges, records each message it accepted (in arrival order,
with what ``signed_with`` needs to check its signature), and can fail on purpose
(``fail`` notifications answer 500 first) or answer with a redirect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from live.subscriptions import signing


@dataclass
class Message:
    headers: dict[str, str]
    body: bytes
    at: float
    """``time.monotonic()`` when it arrived."""

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def kind(self) -> str:
        return self.headers[signing.TYPE_HEADER.lower()]

    def signed_with(self, secret: str) -> bool:
        h = self.headers
        return signing.verify(
            secret,
            h[signing.ID_HEADER.lower()],
            h[signing.TIMESTAMP_HEADER.lower()],
            self.body,
            h[signing.SIGNATURE_HEADER.lower()],
        )


@dataclass
class Receiver:
    port: int = 0
    fail: int = 0
    """Answer this many more notifications with 500."""
    answer_challenge: bool = True
    redirect: bool = False
    accepted: list[Message] = field(default_factory=list)
    attempts: list[Message] = field(default_factory=list)
    """Every notification that arrived, failed on purpose or not."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def notifications(self) -> list[dict[str, Any]]:
        return [m.json for m in self.accepted if m.kind == "notification"]

    async def wait_for(self, predicate: Any, *, timeout: float = 15.0) -> None:
        """Until ``predicate(self)`` holds (checked at every message)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {}
            for line in lines:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, answer = self._answer(Message(headers, body, time.monotonic()))
            reason = {200: "OK", 302: "Found", 500: "Error"}[status]
            extra = "Location: http://127.0.0.1:1/elsewhere\r\n" if status == 302 else ""
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(answer)}\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._changed.set()

    def _answer(self, message: Message) -> tuple[int, bytes]:
        if self.redirect:
            return 302, b""
        if message.kind == "challenge":
            if not self.answer_challenge:
                return 200, b"no"
            self.accepted.append(message)
            return 200, message.json["challenge"].encode()
        if message.kind == "notification":
            self.attempts.append(message)
            if self.fail > 0:
                self.fail -= 1
                return 500, b""
        self.accepted.append(message)
        return 200, b""


@contextlib.asynccontextmanager
async def receiving(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()

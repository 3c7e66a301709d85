"""A recording stub of a provider's HTTP API on a free loopback port.

A test starts one, points the provider's client library at ``stub.url`` and
scripts JSON answers per method and path; every request is recorded (method,
path, query, headers, form or JSON body) so the test asserts what was sent:
amounts, currencies, idempotency keys, metadata. Nothing here knows a provider.

    async with PayoutStub() as stub:
        stub.on("POST", "/v1/transfers", {"id": "tr_1", "object": "transfer"})
        stub.on("GET", "/v1/payouts/po_1", lambda request: (200, {...}))
        ...
        [call] = stub.calls("POST", "/v1/transfers")
        assert call.form["amount"] == "100"

``stub.on`` with several answers gives them in turn (the last one repeats); an
answer is a JSON body (status 200), a ``(status, body)`` pair, or a function of
the ``Recorded`` request returning either. ``stub.unreachable = True`` makes
the stub drop every connection without answering (a provider that is down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import orjson

Answer = Any
"""A JSON body, a ``(status, body)`` pair, or a function of the request giving one."""

_MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    """A form-encoded body, flattened (``metadata[withdrawal_id]`` as one key)."""

    def json(self) -> Any:
        return orjson.loads(self.body)


class PayoutStub:
    """The stub server; an async context manager that starts and stops it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.unreachable = False
        self._routes: dict[tuple[str, str], list[Answer]] = {}
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer ``method path`` with ``answers`` in turn, the last one repeating."""
        self._routes[(method.upper(), path)] = list(answers)

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method.upper(), path)]

    async def wait_for(
        self, method: str, path: str, *, count: int = 1, timeout: float = 10.0
    ) -> list[Recorded]:
        """The first ``count`` calls of ``method path``, once they arrived."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.calls(method, path)) >= count), timeout
            )
        return self.calls(method, path)[:count]

    def _answer(self, request: Recorded) -> tuple[int, Any]:
        answers = self._routes.get((request.method, request.path))
        if not answers:
            return 404, {"error": {"type": "invalid_request_error", "message": "no such route"}}
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, tuple):
            status, body = answer
            return int(status), body
        return 200, answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not reader.at_eof():
                request = await _read_request(reader)
                if request is None:
                    break
                if self.unreachable:
                    break
                self.requests.append(request)
                async with self._changed:
                    self._changed.notify_all()
                status, body = self._answer(request)
                payload = orjson.dumps(body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\nrequest-id: req_{len(self.requests)}"
                    "\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0") or 0), _MAX_BODY)
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    form: dict[str, str] = {}
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return Recorded(
        method=method.upper(),
        path=url.path,
        query=dict(parse_qsl(url.query, keep_blank_values=True)),
        headers=headers,
        body=body,
        form=form,
    )


Responder = Callable[[Recorded], Answer]

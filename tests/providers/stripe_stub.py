"""A small HTTP server standing in for a payment provider's API (Stripe's, or any
other JSON-over-HTTP one) on a free loopback port, started by the test.

It records every request (method, path, headers, form or JSON body) so a test can
assert what the server sent: amounts, currencies, idempotency keys, metadata. It
answers from scripts, per method and path, and behaves like Stripe where every
client relies on it: a request repeated with the same ``Idempotency-Key`` gets the
first answer again (``Idempotent-Replayed: true``), the same key with other
parameters gets a 400 ``idempotency_error``. An unscripted path gets a 404 in
Stripe's error shape.

    async with ProviderStub() as stub:
        stub.script("POST", "/v1/payment_intents", lambda req: (200, {...}))
        ...  # point the client library at stub.url
        [call] = stub.calls("POST", "/v1/payment_intents")
        assert call.form["amount"] == "999"
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

Reply = tuple[int, Any]
"""``(status, JSON body)``."""
Handler = Callable[["StubRequest"], Reply]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


@dataclass(frozen=True, slots=True)
class StubRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    """A form-encoded body, flat as sent (``metadata[user_id]``)."""
    json: Any = None
    """A JSON body."""

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def nested(self, prefix: str) -> dict[str, str]:
        """The form fields under ``prefix[…]`` (``nested("metadata")``)."""
        pattern = re.compile(rf"^{re.escape(prefix)}\[([^\]]+)\]$")
        return {m[1]: v for k, v in self.form.items() if (m := pattern.match(k))}


def stripe_error(status: int, kind: str, message: str) -> Reply:
    """A reply in Stripe's error shape."""
    return status, {"error": {"type": kind, "message": message}}


class ProviderStub:
    """See the module docstring."""

    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        self._scripts: dict[tuple[str, str], Handler] = {}
        self._replies: dict[tuple[str, str, str], tuple[bytes, Reply]] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, method: str, path: str, handler: Handler | Reply) -> None:
        """Answer ``method path`` with ``handler(request)`` (or a fixed reply)."""
        self._scripts[(method.upper(), path)] = (
            handler if callable(handler) else (lambda _req, reply=handler: reply)
        )

    def calls(self, method: str, path: str) -> list[StubRequest]:
        """The requests to ``method path``, in order, retries included."""
        return [r for r in self.requests if (r.method, r.path) == (method.upper(), path)]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> ProviderStub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- HTTP/1.1, keep-alive --------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _version = line.split(" ", 2)
                headers = {}
                for raw in lines:
                    if raw:
                        name, _, value = raw.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload, extra = self._answer(method, target, headers, body)
                data = orjson.dumps(payload)
                response = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
                    f"request-id: req_stub_{len(self.requests)}\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                    + "\r\n"
                )
                writer.write(response.encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        request = StubRequest(
            method=method.upper(),
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers=headers,
            body=body,
            form=(
                dict(parse_qsl(body.decode(), keep_blank_values=True))
                if "form-urlencoded" in headers.get("content-type", "")
                else {}
            ),
            json=orjson.loads(body) if "json" in headers.get("content-type", "") else None,
        )
        self.requests.append(request)
        key = request.idempotency_key
        remembered = self._replies.get((request.method, request.path, key)) if key else None
        if remembered is not None:
            first_body, reply = remembered
            if first_body != body:
                status, payload = stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.",
                )
                return status, payload, {}
            return reply[0], reply[1], {"idempotent-replayed": "true"}
        handler = self._scripts.get((request.method, request.path))
        if handler is None:
            status, payload = stripe_error(404, "invalid_request_error", "Unrecognized request URL")
        else:
            status, payload = handler(request)
        if key and status < 500:  # Stripe keeps the first non-5xx answer
            self._replies[(request.method, request.path, key)] = (body, (status, payload))
        return status, payload, {}


@contextlib.asynccontextmanager
async def provider_stub() -> AsyncIterator[ProviderStub]:
    async with ProviderStub() as stub:
        yield stub

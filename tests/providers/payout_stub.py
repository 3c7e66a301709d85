"""The provider API stub of ``tests.providers.stripe_stub`` with what payout tests
add: a provider that is down, and waiting for a call the server makes by itself.

    async with PayoutStub() as stub:
        stub.unreachable = True   # every request: the connection drops, no answer
        ...
        [transfer] = await stub.wait_for("POST", "/v1/transfers")
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.providers.stripe_stub import ProviderStub, StubRequest


class PayoutStub(ProviderStub):
    def __init__(self) -> None:
        super().__init__()
        self.unreachable = False
        """Drop every request's connection without answering (and without recording)."""
        self._arrived = asyncio.Event()

    def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if self.unreachable:
            raise ConnectionResetError("the stub is unreachable")
        answer = super()._answer(method, target, headers, body)
        self._arrived.set()
        return answer

    async def wait_for(
        self, method: str, path: str, *, count: int = 1, timeout: float = 10.0
    ) -> list[StubRequest]:
        """The first ``count`` calls of ``method path``, once they have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.calls(method, path)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.calls(method, path)[:count]

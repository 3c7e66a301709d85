"""A live room to throw hostile input at: one server, a creator's room, watchers who
must not notice anything, and the invariants checked after every attack.

The watchers are a JSON and a MessagePack guest; after an attack they must still
be connected, and the server must still answer. At the end, every wallet change
must be explained by a request the server acknowledged, and the audit must pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import orjson
from hypothesis import HealthCheck, settings
from websockets.frames import Opcode

from protocol import ErrorCode
from tests.live.server import Api, Client, LiveServer
from tests.security.rawws import RawClient

ERROR_CODES = frozenset(code.value for code in ErrorCode)
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Hypothesis settings of the attacks on the arena: the same examples every run."""
SENTINEL = "sentinel-7f3a"


@dataclass
class Outcome:
    """What one connection saw after its attack frames and a sentinel ``ping``."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    open: bool = False
    """The sentinel was acknowledged: the connection survived."""

    def errors(self) -> list[str]:
        return [r["code"] for r in self.replies if r.get("type") == "error"]


@dataclass
class Arena:
    server: LiveServer
    http: httpx.AsyncClient
    watchers: tuple[Client, ...]
    apis: dict[str, Api]
    start_balances: dict[str, int]
    setup_txs: set[str] = field(default_factory=set)
    acks: list[dict[str, Any]] = field(default_factory=list)
    """Every ``ack`` with a ``tx`` the attackers received (money that moved)."""

    async def attack(
        self,
        user: str | None,
        codec: str,
        frames: list[tuple[Opcode, bytes]],
        *,
        timeout: float = 10.0,
    ) -> Outcome:
        """Connect as ``user`` (a guest if None), send ``frames`` as they are, then a
        ``ping`` sentinel, and read until its ack or the close."""
        url = f"{self.server.ws_url}/v1/rooms/carol/live"
        if user is not None:
            url += f"?access_token={self.server.token(user)}"
        client = await RawClient.connect(url, subprotocol=f"gift.v1.{codec}")
        try:
            outcome = Outcome()
            while not client.data_frames() and not client.eof:
                await client.read_some(timeout)
            for opcode, payload in frames:
                client.send_frame(opcode, payload)
            sentinel = {"type": "ping", "id": SENTINEL}
            if codec == "msgpack":
                client.send_frame(Opcode.BINARY, msgpack.packb(sentinel))
            else:
                client.send_frame(Opcode.TEXT, orjson.dumps(sentinel))
            seen = 1  # the welcome
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                data = client.data_frames()
                for frame in data[seen:]:
                    batch = (
                        msgpack.unpackb(frame.data)
                        if codec == "msgpack"
                        else orjson.loads(frame.data)
                    )
                    for event in batch:
                        if event.get("type") in ("ack", "error"):
                            if event.get("id") == SENTINEL and event["type"] == "ack":
                                outcome.open = True
                            else:
                                outcome.replies.append(event)
                seen = len(data)
                if outcome.open or client.eof:
                    break
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, "the server neither answered nor closed the connection"
                await client.read_some(left)
            outcome.close_code = client.close_code
            return outcome
        finally:
            client.close()

    async def check_unaffected(self) -> None:
        """The server answers and the watchers are still connected."""
        response = await self.http.get("/healthz")
        assert response.status_code == 200
        for watcher in self.watchers:
            assert watcher.closed_code is None, f"a watcher was closed ({watcher.closed_code})"

    async def check_money(self, acknowledged: set[str], *, users: list[str]) -> None:
        """Every transaction of ``users`` is one the server acknowledged, the
        bystander's wallet is untouched and the ledger audit passes."""
        for user in users:
            listed = (await self.apis[user].get("/v1/me/transactions?limit=200")).json()
            for tx in listed["transactions"]:
                if tx["kind"] == "purchase" and tx["id"] in self.setup_txs:
                    continue
                assert tx["id"] in acknowledged, f"{user}: unexplained transaction {tx}"
        assert await self.apis["bob"].balance() == self.start_balances["bob"]
        report = await self.server.audit()
        assert report["ok"] is True, report


@contextlib.asynccontextmanager
async def welcomed_in_both_codecs(
    server: LiveServer, room: str
) -> AsyncIterator[tuple[Client, Client]]:
    """A JSON and a MessagePack guest in ``room``, each past its welcome."""
    async with (
        Client.open(server, room) as json_client,
        Client.open(server, room, msgpack_codec=True) as msgpack_client,
    ):
        for client in (json_client, msgpack_client):
            await client.wait_for(lambda e: e["type"] == "welcome")
        yield json_client, msgpack_client


@contextlib.asynccontextmanager
async def open_arena(
    data_dir: Path, *, funded: dict[str, str], env: dict[str, str] | None = None
) -> AsyncIterator[Arena]:
    """``funded``: user -> coin package bought before the attacks (bob, the
    bystander, is always funded and never attacks)."""
    server = LiveServer(data_dir=data_dir, env=env)
    await server.start()
    apis: dict[str, Api] = {}
    http = httpx.AsyncClient(base_url=server.url, timeout=10)
    try:
        apis["carol"] = Api(server, server.token("carol", creator=True))
        response = await apis["carol"].post("/v1/rooms", {"id": "carol", "title": "arena"})
        assert response.status_code == 201, response.text
        setup_txs: set[str] = set()
        balances: dict[str, int] = {}
        for user, package in {"bob": "us_350", **funded}.items():
            apis[user] = Api(server, server.token(user))
            if package:
                bought = await apis[user].buy(package, key=f"setup-{user}")
                assert bought.status_code == 201, bought.text
                setup_txs.add(bought.json()["tx"])
            balances[user] = await apis[user].balance()
        async with welcomed_in_both_codecs(server, "carol") as watchers:
            arena = Arena(server, http, watchers, apis, balances, setup_txs)
            yield arena
            # A gift after all of it reaches both watchers, in order.
            reply = await apis["bob"].post("/v1/rooms/carol/gifts", {"gift": "rose"}, key="last")
            assert reply.status_code == 201, reply.text
            tx = reply.json()["tx"]
            arena.start_balances["bob"] -= 1
            for watcher in watchers:
                await watcher.wait_for(lambda e: e.get("tx") == tx)
                seqs = [e["seq"] for e in watcher.events if "seq" in e and e["type"] != "welcome"]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a watcher missed events"
    finally:
        for api in apis.values():
            await api.aclose()
        await http.aclose()
        await server.stop()

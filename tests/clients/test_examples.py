"""The gift-alert bots in the docs' examples print a real server's gifts: the
Python one (``examples/gift_alert_bot.py``) and the Node one
(``clients/js/examples/gift-alerts.mjs``)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from tests.live.launch import running
from tests.live.server import Api, LiveServer

ROOT = Path(__file__).resolve().parents[2]


async def _bot_prints_a_gift(server: LiveServer, command: list[str], cwd: Path) -> None:
    creator = Api(server, server.token("carol", creator=True))
    alice = Api(server, server.token("alice", display_name="Alice Liddell"))
    assert (await creator.post("/v1/rooms", {"title": "bots"})).status_code == 201
    assert (await alice.buy("us_700", key="buy-1")).status_code == 201
    bot = await asyncio.create_subprocess_exec(
        *command, server.url, "carol", cwd=cwd, stdout=asyncio.subprocess.PIPE
    )
    assert bot.stdout is not None
    try:
        first = await asyncio.wait_for(bot.stdout.readline(), 20)
        assert first.startswith(b"watching bots")
        response = await alice.post("/v1/rooms/carol/gifts", {"gift": "rose", "count": 3}, key="g1")
        assert response.status_code == 201
        line = await asyncio.wait_for(bot.stdout.readline(), 20)
        assert line.decode().strip() == "Alice Liddell sent Rose x3 (combo x3)"
    finally:
        bot.terminate()
        await bot.wait()
        await creator.aclose()
        await alice.aclose()


async def test_the_python_bot_prints_gifts(tmp_path: Path) -> None:
    server = LiveServer(data_dir=tmp_path / "data")
    async with running(server):
        command = [sys.executable, "-u", str(ROOT / "examples" / "gift_alert_bot.py")]
        await _bot_prints_a_gift(server, command, ROOT)


async def test_the_node_bot_prints_gifts(tmp_path: Path) -> None:
    node = shutil.which("node")
    if not node or not (ROOT / "clients" / "js" / "node_modules").is_dir():
        pytest.fail("needs node and `npm ci` in clients/js (make test does both)")
    server = LiveServer(data_dir=tmp_path / "data")
    async with running(server):
        package = ROOT / "clients" / "js"
        await _bot_prints_a_gift(server, [node, "examples/gift-alerts.mjs"], package)

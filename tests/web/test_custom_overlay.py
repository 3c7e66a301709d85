"""The custom overlay example (``clients/js/examples/overlay.html``) in Chromium:
served from another origin than the server's, it loads the client library,
connects with the overlay key and shows the creator's test alert."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from loadtest.processes import HttpProcess, free_port
from tests.live.launch import running
from tests.live.server import Api, LiveServer

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"


@pytest.fixture
async def pages_origin(tmp_path: Path) -> AsyncIterator[str]:
    """The package's folder over HTTP, as the example's comment says to serve it."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    pages = HttpProcess(
        "pages",
        [*command, "--directory", str(PACKAGE)],
        ready_url=f"{origin}/package.json",
        log=tmp_path / "pages.log",
    )
    await pages.start()
    try:
        yield origin
    finally:
        await pages.stop()


async def test_the_custom_overlay_shows_a_test_alert(
    tmp_path: Path, browser: Browser, pages_origin: str
) -> None:
    server = LiveServer(data_dir=tmp_path / "data", env={"LIVE_ALLOWED_ORIGINS": pages_origin})
    async with running(server):
        creator = Api(server, server.token("carol", creator=True))
        key = (await creator.post("/v1/rooms", {"title": "custom"})).json()["overlay_key"]
        page = await browser.new_page()
        try:
            url = f"{pages_origin}/examples/overlay.html?server={server.url}&room=carol&key={key}"
            await page.goto(url)
            await expect(page.locator("#status")).to_have_text("live", timeout=10_000)
            sent = await creator.post("/v1/rooms/carol/test-events", {"gift": "rose"})
            assert sent.status_code == 202
            alert = page.locator("#alerts li").first
            await expect(alert).to_have_text("Test Viewer sent Rose \u00d71", timeout=10_000)
        finally:
            await page.close()
            await creator.aclose()

"""Browser fixtures: headless Chromium (the system's, never a downloaded one)
driven by Playwright, and a place for the screenshots the tests save.

The browser is found as ``LIVE_TEST_CHROMIUM`` or ``chromium`` on the PATH;
``.ci/install-services`` installs it. Screenshots go to ``LIVE_TEST_ARTIFACTS``
(default ``artifacts/`` in the checkout).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    found = os.environ.get("LIVE_TEST_CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no chromium on the PATH: run .ci/install-services (or set LIVE_TEST_CHROMIUM)")
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(__file__).resolve().parents[2]
    path = Path(os.environ.get("LIVE_TEST_ARTIFACTS") or root / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path

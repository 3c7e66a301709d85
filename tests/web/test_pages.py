"""The overlay and watch pages in a real browser, against a real server.

Each test drives headless Chromium through the pages the way a creator (OBS
browser source) and viewers would, and checks what they show against the API.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.live.server import Api, LiveServer
from tests.web.proxy import TcpProxy

ROOM = "stage"
WAIT_MS = 20_000
X = "\N{MULTIPLICATION SIGN}"
"""The sign before a combo's count on the pages."""
PAGE_ERRORS: dict[Page, list[str]] = {}
"""Uncaught script errors per page: every test ends with none."""


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # A short combo window keeps the streak tests quick; viewers per user unlimited.
    srv = LiveServer(data_dir=tmp_path / "data", env={"LIVE_COMBO_WINDOW_MS": "1500"})
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _token(server: LiveServer, user: str, **kw: Any) -> str:
    return server.token(user, display_name=user.title(), avatar="", **kw)


async def _go_live(server: LiveServer) -> str:
    creator = Api(server, _token(server, "carol", creator=True))
    try:
        response = await creator.post("/v1/rooms", {"id": ROOM, "title": "Carol live"})
        assert response.status_code in (200, 201), response.text
        key: str = response.json()["overlay_key"]
        goal = await creator.client.put(
            f"/v1/rooms/{ROOM}/goal", json={"target": 2_000, "title": "New lights"}
        )
        assert goal.status_code == 200, goal.text
        return key
    finally:
        await creator.aclose()


async def _page(browser: Browser, url: str, *, width: int = 1400, height: int = 860) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    errors = PAGE_ERRORS.setdefault(page, [])
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return page


async def _watch(browser: Browser, base: str, token: str) -> Page:
    page = await _page(browser, f"{base}/watch/{ROOM}?token={token}")
    await expect(page.locator("#status")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    await expect(page.locator("#me")).to_be_visible(timeout=WAIT_MS)
    return page


async def _overlay(browser: Browser, base: str, key: str, *, duration: int = 60) -> Page:
    page = await _page(
        browser,
        f"{base}/overlay/{ROOM}?key={key}&widgets=alerts,goal,top,events"
        f"&duration={duration}&big_duration={duration}&lanes=4&events=20",
        width=1920,
        height=1080,
    )
    await expect(page.locator("body")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    return page


async def _page_seqs(page: Page, name: str) -> list[int]:
    seqs: list[int] = await page.evaluate(f"window.{name}.seqs")
    return seqs


async def test_gifts_reach_overlay_and_both_watch_pages(
    live: LiveServer, browser: Browser, artifacts: Path
) -> None:
    key = await _go_live(live)
    overlay = await _overlay(browser, live.url, key)
    alice = await _watch(browser, live.url, _token(live, "alice"))
    bob = await _watch(browser, live.url, _token(live, "bob"))
    alice_api = Api(live, _token(live, "alice"))
    try:
        # Unfunded: the page says so and opens the shop instead of sending.
        await expect(alice.locator("#balance")).to_have_text("0", timeout=WAIT_MS)
        await alice.click("button.gift[data-gift=rose]")
        await expect(alice.locator(".toast")).to_contain_text("Not enough coins")
        await expect(alice.locator("#shop")).to_be_visible()

        # Buy coins with the sandbox provider, through the page.
        await alice.click("#packages button.buy[data-package=us_1400]")
        await expect(alice.locator("#shop")).to_be_hidden(timeout=WAIT_MS)
        bought = await alice_api.balance()
        assert bought == 1_428
        await expect(alice.locator("#balance")).to_have_text("1,428")

        # A Rose streak, then a Galaxy.
        for _ in range(5):
            await alice.click("button.gift[data-gift=rose]")
        await alice.click("button.gift[data-gift=galaxy]")

        rose = overlay.locator("#alerts .gift-alert[data-gift=rose]")
        await expect(rose).to_have_count(1, timeout=WAIT_MS)
        await expect(rose.locator(".name")).to_have_text("Alice")
        await expect(rose).to_have_class(re.compile(r"\bended\b"), timeout=WAIT_MS)
        await expect(rose.locator(".gift-count")).to_have_text(f"{X}5")
        galaxy = overlay.locator("#alerts .gift-alert[data-gift=galaxy]")
        await expect(galaxy).to_have_count(1)
        await expect(galaxy).to_have_class(re.compile(r"\bbig\b.*\bended\b"))
        await expect(galaxy.locator(".name")).to_have_text("Alice")
        await expect(overlay.locator("#events li.gift")).to_have_count(2)
        await expect(overlay.locator("#top li")).to_have_count(1, timeout=WAIT_MS)
        await expect(overlay.locator("#top li .name")).to_have_text("Alice")
        goal = (await alice_api.get(f"/v1/rooms/{ROOM}/goal")).json()["goal"]
        assert goal["progress"] >= 500
        await expect(overlay.locator("#goal")).to_have_attribute(
            "data-progress", str(goal["progress"]), timeout=WAIT_MS
        )

        # Bob's page shows both, with the final count of the streak.
        await expect(bob.locator("#chat li.gift-line")).to_have_count(2, timeout=WAIT_MS)
        # (the Galaxy isn't streakable: its alert ends at once, before the streak's)
        lines = await bob.locator("#chat li.gift-line").all_inner_texts()
        assert sorted(lines) == [f"Alice sent Galaxy {X}1", f"Alice sent Rose {X}5"]
        await expect(bob.locator("#leaderboard li .coins")).to_have_text("1,005", timeout=WAIT_MS)

        # The balance on the page is the wallet's.
        spent = bought - 5 - 1_000
        assert await alice_api.balance() == spent
        await expect(alice.locator("#balance")).to_have_text(f"{spent:,}")

        # Likes and chat reach the other page.
        await alice.click("#like")
        await alice.click("#like")
        await expect(bob.locator("#like-count")).to_have_text("2", timeout=WAIT_MS)
        await alice.fill("#chat-input", "hi <b>bob</b>")
        await alice.press("#chat-input", "Enter")
        comment = bob.locator("#chat li.comment")
        await expect(comment).to_have_text("Alice hi <b>bob</b>", timeout=WAIT_MS)  # text, not HTML

        # No event twice on any page.
        for page in (alice, bob):
            seqs = await _page_seqs(page, "liveWatch.state")
            assert seqs == sorted(set(seqs))

        await overlay.screenshot(path=str(artifacts / "overlay.png"), omit_background=True)
        await alice.screenshot(path=str(artifacts / "watch.png"))
        for page in (overlay, alice, bob):
            assert PAGE_ERRORS.pop(page) == []
    finally:
        await alice_api.aclose()
        for page in (overlay, alice, bob):
            await page.close()


async def test_pages_resume_after_a_drop_without_duplicates(
    live: LiveServer, browser: Browser
) -> None:
    key = await _go_live(live)
    proxy = TcpProxy(upstream_port=live.port)
    await proxy.start()
    alice_api = Api(live, _token(live, "alice"))
    overlay = await _overlay(browser, proxy.url, key, duration=1)
    bob = await _watch(browser, proxy.url, _token(live, "bob"))
    try:
        assert (await alice_api.buy("us_7000", key="fund")).status_code == 201
        gifts = ["confetti", "sunglasses", "galaxy", "confetti", "sunglasses"]

        async def send(index: int) -> None:
            body = {"gift": gifts[index]}
            response = await alice_api.post(f"/v1/rooms/{ROOM}/gifts", body, key=f"g{index}")
            assert response.status_code in (200, 201), response.text

        await send(0)
        await expect(bob.locator("#chat li.gift-line")).to_have_count(1, timeout=WAIT_MS)
        await expect(overlay.locator("#events li.gift")).to_have_count(1, timeout=WAIT_MS)

        # The network drops; gifts go on while the pages are offline.
        proxy.refusing = True
        proxy.drop()
        await expect(bob.locator("#status")).not_to_have_attribute(
            "data-status", "live", timeout=WAIT_MS
        )
        for index in range(1, 4):
            await send(index)
        proxy.refusing = False

        # Both pages come back by themselves, resume, and show each gift once.
        await expect(bob.locator("#chat li.gift-line")).to_have_count(4, timeout=WAIT_MS)
        await expect(overlay.locator("#events li.gift")).to_have_count(4, timeout=WAIT_MS)
        await send(4)
        await expect(bob.locator("#chat li.gift-line")).to_have_count(5, timeout=WAIT_MS)
        await expect(overlay.locator("#events li.gift")).to_have_count(5, timeout=WAIT_MS)
        await asyncio.sleep(0)  # nothing else is pending: the counts are final

        watch_seqs = await _page_seqs(bob, "liveWatch.state")
        assert watch_seqs == list(range(watch_seqs[0], watch_seqs[0] + len(watch_seqs)))
        assert await bob.evaluate("window.liveWatch.connection.connections") >= 2
        assert await overlay.evaluate("window.liveOverlay.connection.connections") >= 2
        lines = await bob.locator("#chat li.gift-line").all_inner_texts()
        assert [line.split(" sent ")[1] for line in lines] == [
            f"Confetti {X}1",
            f"Sunglasses {X}1",
            f"Galaxy {X}1",
            f"Confetti {X}1",
            f"Sunglasses {X}1",
        ]
        recent = await overlay.locator("#events li.gift").all_inner_texts()
        assert len(recent) == 5
        assert [text.split(" sent ")[1] for text in reversed(recent)] == [
            line.split(" sent ")[1] for line in lines
        ]
        for page in (overlay, bob):
            assert PAGE_ERRORS.pop(page) == []
    finally:
        await alice_api.aclose()
        await overlay.close()
        await bob.close()
        await proxy.close()


async def test_watch_page_states_errors_and_the_end_of_the_stream(
    live: LiveServer, browser: Browser
) -> None:
    await _go_live(live)
    # A bad token: the page says so and falls back to watching as a guest.
    page = await _page(browser, f"{live.url}/watch/{ROOM}?token=not-a-token")
    await expect(page.locator(".toast").first).to_contain_text("sign in", timeout=WAIT_MS)
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    assert "token" not in page.url  # the token never stays in the address bar

    # A minor may not gift: the server's `forbidden` is shown.
    teen = await _watch(browser, live.url, _token(live, "tim", adult=False))
    await teen.evaluate("window.liveWatch.state.coins = 100")  # skip the client-side check
    await teen.click("button.gift[data-gift=rose]")
    await expect(teen.locator(".toast")).to_contain_text("not allowed", timeout=WAIT_MS)

    creator = Api(live, _token(live, "carol", creator=True))
    try:
        assert (await creator.post(f"/v1/rooms/{ROOM}/end")).status_code == 200
    finally:
        await creator.aclose()
    await expect(teen.locator("#ended")).to_be_visible(timeout=WAIT_MS)
    await expect(teen.locator("#live-badge")).to_have_text("OFFLINE")
    await expect(teen.locator("#status")).to_have_attribute("data-status", "closed")
    await expect(teen.locator("button.gift[data-gift=rose]")).to_be_disabled()
    for each in (page, teen):
        await each.close()


async def test_demo_links_show_a_gift_on_the_overlay(tmp_path: Path, browser: Browser) -> None:
    """What the README promises a new user: `live serve --demo` prints a watch link
    and an overlay link, and a gift sent from the one appears on the other."""
    demo = LiveServer(data_dir=tmp_path / "data", env={"LIVE_DEMO": "1"})
    await demo.start()
    try:
        printed = demo.log_path.read_text()
        watch_url = re.search(r"watch page\s+: (\S+)", printed)
        overlay_url = re.search(r"overlay \(OBS\)\s+: (\S+)", printed)
        assert watch_url and overlay_url, printed
        assert watch_url[1].startswith(f"{demo.url}/watch/demo?token=")
        overlay = await _page(browser, overlay_url[1], width=1920, height=1080)
        watch = await _page(browser, watch_url[1])
        await expect(watch.locator("#me-name")).to_have_text("Alice", timeout=WAIT_MS)
        await expect(watch.locator("#balance")).not_to_have_text("0", timeout=WAIT_MS)
        await watch.click("button.gift[data-gift=doughnut]")
        alert = overlay.locator("#alerts .gift-alert[data-gift=doughnut]")
        await expect(alert.locator(".name")).to_have_text("Alice", timeout=WAIT_MS)
        await expect(alert.locator("img").first).to_have_attribute(
            "src", "/static/gifts/doughnut.svg"
        )
        for page in (overlay, watch):
            assert PAGE_ERRORS.pop(page) == []
            await page.close()
    finally:
        await demo.stop()


async def test_overlay_shows_the_creators_test_alerts_unless_told_not_to(
    live: LiveServer, browser: Browser
) -> None:
    key = await _go_live(live)
    shown = await _overlay(browser, live.url, key)
    hidden = await _overlay(browser, live.url, key + "&test=0")
    creator = Api(live, _token(live, "carol", creator=True))
    try:
        response = await creator.post(f"/v1/rooms/{ROOM}/test-events", {"gift": "lion"})
        assert response.status_code == 202, response.text
        alert = shown.locator("#alerts .gift-alert.test[data-gift=lion]")
        await expect(alert.locator(".name")).to_have_text("Test Viewer", timeout=WAIT_MS)
        await expect(alert).to_have_class(re.compile(r"\bbig\b"))  # 29,999 coins
        # The same event reached the other overlay, which keeps it off screen.
        response = await creator.post(f"/v1/rooms/{ROOM}/test-events", {"gift": "rose"})
        await expect(shown.locator("#alerts .gift-alert.test")).to_have_count(2, timeout=WAIT_MS)
        await hidden.wait_for_function("window.liveOverlay.skippedTests === 2")
        assert await hidden.locator("#alerts .gift-alert").count() == 0
    finally:
        await creator.aclose()
        for page in (shown, hidden):
            assert PAGE_ERRORS.pop(page) == []
            await page.close()


async def test_watch_page_follows_catalog_changes_and_refuses_a_stale_price(
    live: LiveServer, browser: Browser
) -> None:
    await _go_live(live)
    alice = Api(live, _token(live, "alice"))
    admin = Api(live, _token(live, "root", admin=True))
    try:
        assert (await alice.buy("us_70", key="p1")).status_code == 201
        page = await _watch(browser, live.url, _token(live, "alice"))
        price = page.locator("button.gift[data-gift=rose] .gift-price")
        await expect(price).to_have_text("1", timeout=WAIT_MS)
        changed = await admin.client.patch("/v1/admin/catalog/gifts/rose", json={"coins": 3})
        assert changed.status_code == 200, changed.text
        # the catalog event makes the page show the new price, with no reload
        await expect(price).to_have_text("3", timeout=WAIT_MS)

        # a page still showing the old price: the server refuses, nothing is charged
        await page.evaluate("window.liveWatch.state.gifts.find((g) => g.id === 'rose').coins = 1")
        await page.click("button.gift[data-gift=rose]")
        await expect(page.locator(".toast").last).to_contain_text(
            "price just changed", timeout=WAIT_MS
        )
        assert await alice.balance() == 70
        await expect(price).to_have_text("3", timeout=WAIT_MS)  # shown again, right
        assert PAGE_ERRORS[page] == []
        await page.close()
    finally:
        await alice.aclose()
        await admin.aclose()

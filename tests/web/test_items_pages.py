"""In-app items in a real browser, against a real server: a viewer buys and
equips items in the watch page's shop; another viewer and the overlay see the
badge, the name colour and the entrance effect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.live.server import Api, LiveServer
from tests.web.test_pages import PAGE_ERRORS, ROOM, WAIT_MS, _go_live, _page, _token, _watch


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path / "data", env={"LIVE_JOIN_INTERVAL_MS": "100"})
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def test_buy_equip_and_others_see_the_badge(
    live: LiveServer, browser: Browser, artifacts: Path
) -> None:
    key = await _go_live(live)
    overlay = await _page(
        browser,
        f"{live.url}/overlay/{ROOM}?key={key}&widgets=alerts,events&duration=60",
        width=1920,
        height=1080,
    )
    await expect(overlay.locator("body")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    alice_api = Api(live, _token(live, "alice"))
    try:
        assert (await alice_api.buy("us_1400", key="p1")).status_code == 201  # 1428 coins
        alice = await _watch(browser, live.url, _token(live, "alice"))
        bob = await _watch(browser, live.url, _token(live, "bob"))

        # the shop: prices, buying (the balance follows), owning, equipping
        await alice.click("#items-open")
        shop = alice.locator("#item-shop")
        await expect(shop).to_be_visible()
        star = shop.locator("li.item[data-item=badge_star]")
        await expect(star.locator(".item-price")).to_have_text("99", timeout=WAIT_MS)
        await expect(shop.locator(".item-balance")).to_have_text("1428 coins")
        await star.locator("button.buy-item").click()
        await expect(star.locator(".item-owned")).to_contain_text("Owned until", timeout=WAIT_MS)
        await expect(alice.locator("#balance")).to_have_text("1,329")
        assert await alice_api.balance() == 1_329
        await star.locator("button.equip").click()
        await expect(star).to_have_class("item owned equipped", timeout=WAIT_MS)
        gold = shop.locator("li.item[data-item=name_gold]")
        await gold.locator("button.buy-item").click()
        await gold.locator("button.equip").click()
        await expect(gold).to_have_class("item owned equipped", timeout=WAIT_MS)
        comet = shop.locator("li.item[data-item=entrance_comet]")
        await comet.locator("button.buy-item").click()
        await comet.locator("button.equip").click()
        await expect(comet).to_have_class("item owned equipped", timeout=WAIT_MS)
        mine = (await alice_api.get("/v1/me/items")).json()["equipped"]
        assert mine == {
            "badge": "badge_star",
            "name_style": "name_gold",
            "entrance_effect": "entrance_comet",
        }

        # alice comes back: bob's page and the overlay play her entrance effect
        await alice.close()
        alice = await _watch(browser, live.url, _token(live, "alice"))
        entrance = bob.locator("#stage-alerts .entrance[data-user=alice]")
        await expect(entrance).to_have_count(1, timeout=WAIT_MS)
        await expect(entrance.locator("img.item-badge")).to_have_attribute(
            "src", "/static/items/badge_star.svg"
        )
        await expect(overlay.locator("#entrances .entrance[data-user=alice]")).to_have_count(
            1, timeout=WAIT_MS
        )

        # her chat line and gift alert carry the badge and the golden name, for bob
        await alice.fill("#chat-input", "hello with a badge")
        await alice.press("#chat-input", "Enter")
        line = bob.locator("#chat li.comment", has_text="hello with a badge")
        await expect(line).to_have_count(1, timeout=WAIT_MS)
        await expect(line.locator("img.item-badge")).to_have_count(1)
        await expect(line.locator("b.styled-name")).to_have_css("color", "rgb(230, 180, 34)")
        await alice.click("button.gift[data-gift=rose]")
        alert = bob.locator("#stage-alerts .gift-alert[data-sender=alice]")
        await expect(alert.locator("img.item-badge")).to_have_count(1, timeout=WAIT_MS)
        overlay_alert = overlay.locator("#alerts .gift-alert[data-sender=alice]")
        await expect(overlay_alert.locator("img.item-badge")).to_have_count(1, timeout=WAIT_MS)
        await bob.screenshot(path=str(artifacts / "items-watch.png"))
        for page in (alice, bob, overlay):
            assert PAGE_ERRORS.get(page, []) == []
    finally:
        await alice_api.aclose()


async def test_the_creators_effect_shows_over_the_video_and_on_the_overlay(
    live: LiveServer, browser: Browser, artifacts: Path
) -> None:
    key = await _go_live(live)
    overlay_url = f"{live.url}/overlay/{ROOM}?key={key}&widgets=alerts"
    overlay = await _page(browser, overlay_url, width=1920, height=1080)
    plain = await _page(browser, f"{overlay_url}&stream_effect=0", width=1920, height=1080)
    for page in (overlay, plain):
        await expect(page.locator("body")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    carol_token = _token(live, "carol", creator=True)
    carol_api = Api(live, carol_token)
    try:
        assert (await carol_api.buy("us_1400", key="p1")).status_code == 201
        bob = await _watch(browser, live.url, _token(live, "bob"))
        layer = bob.locator("#stage #stream-effect")
        await expect(layer).to_be_hidden()

        # the creator buys and equips the filter from the shop on their room's page
        carol = await _watch(browser, live.url, carol_token)
        await carol.click("#items-open")
        sparkles = carol.locator("#item-shop li.item[data-item=effect_sparkles]")
        await sparkles.locator("button.buy-item").click()
        await sparkles.locator("button.equip").click()
        await expect(sparkles).to_have_class("item owned equipped", timeout=WAIT_MS)

        art = "/static/items/effect_sparkles.svg"
        await expect(layer).to_be_visible(timeout=WAIT_MS)
        await expect(layer.locator("img.stream-effect-art")).to_have_attribute("src", art)
        shown = overlay.locator("#canvas #stream-effect.full")
        await expect(shown).to_be_visible(timeout=WAIT_MS)
        await expect(shown).to_have_attribute("data-effect", "effect_sparkles")
        await expect(plain.locator("#stream-effect")).to_have_attribute(
            "data-effect", "effect_sparkles", timeout=WAIT_MS
        )
        await expect(plain.locator("#stream-effect")).to_be_hidden()
        # a viewer arriving now gets it from the welcome
        late = await _watch(browser, live.url, _token(live, "dave"))
        await expect(late.locator("#stream-effect img")).to_have_attribute("src", art)
        await bob.screenshot(path=str(artifacts / "stream-effect-watch.png"))

        await sparkles.locator("button.unequip").click()
        await expect(layer).to_be_hidden(timeout=WAIT_MS)
        await expect(shown).to_be_hidden(timeout=WAIT_MS)
        for page in (carol, bob, late, overlay, plain):
            assert PAGE_ERRORS.get(page, []) == []
    finally:
        await carol_api.aclose()

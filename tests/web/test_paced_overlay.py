"""The overlay page with ``pace=1`` in a real browser: a gift burst plays one alert
at a time, biggest first, each acknowledged when its time on screen is over."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, expect

from tests.live.server import Api, LiveServer
from tests.web.test_pages import PAGE_ERRORS, ROOM, WAIT_MS, _go_live, _page, _token, live

__all__ = ["live"]  # the server fixture

WATCH = """() => {
  const root = document.getElementById("alerts");
  window.pacedLog = { order: [], most: 0 };
  new MutationObserver(() => {
    const showing = root.querySelectorAll(".gift-alert:not(.leave)");
    window.pacedLog.most = Math.max(window.pacedLog.most, showing.length);
    for (const node of showing) {
      const name = node.dataset.gift || "summary";
      if (!window.pacedLog.order.includes(node.dataset.alert)) {
        window.pacedLog.order.push(node.dataset.alert, name);
      }
    }
  }).observe(root, { childList: true, subtree: true, attributes: true });
}"""


async def test_a_paced_overlay_plays_a_burst_one_at_a_time(
    live: LiveServer, browser: Browser
) -> None:
    key = await _go_live(live)
    page = await _page(
        browser,
        f"{live.url}/overlay/{ROOM}?key={key}&widgets=alerts,events&pace=1"
        "&duration=1&big_duration=1&lanes=4",
        width=1920,
        height=1080,
    )
    await expect(page.locator("body")).to_have_attribute("data-status", "live", timeout=WAIT_MS)
    await page.evaluate(WATCH)
    alice = Api(live, _token(live, "alice"))
    try:
        assert (await alice.buy("us_7000", key="fund")).status_code == 201

        async def send(n: int, gift: str) -> None:
            response = await alice.post(f"/v1/rooms/{ROOM}/gifts", {"gift": gift}, key=f"g{n}")
            assert response.status_code in (200, 201), response.text

        await send(0, "galaxy")
        await expect(page.locator("#alerts .gift-alert[data-gift=galaxy]")).to_have_count(
            1, timeout=WAIT_MS
        )
        await send(1, "confetti")
        await send(2, "sunglasses")
        await expect(page.locator("#events li.gift")).to_have_count(3, timeout=WAIT_MS)
        await expect(page.locator("#alerts .gift-alert[data-gift=confetti]")).to_have_count(
            1, timeout=WAIT_MS
        )
        log: dict[str, Any] = await page.evaluate("window.pacedLog")
        assert log["order"][1::2] == ["galaxy", "sunglasses", "confetti"]
        assert log["most"] == 1  # never two alerts on screen, though lanes=4
        assert PAGE_ERRORS.pop(page) == []
    finally:
        await alice.aclose()
        await page.close()

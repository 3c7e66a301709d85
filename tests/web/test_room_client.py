"""The JavaScript client library (``clients/js``, served as ``/static/client/``) in
the browser, as the pages load it, with a
scripted WebSocket in place of the network: frames in, callbacks and URLs out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.live.launch import running
from tests.live.server import LiveServer

# A WebSocket stand-in: records the URLs opened and the frames sent; the test
# delivers frames and closes with `window.fake.receive(...)` / `.close(code)`.
FAKE_SOCKET = """
window.fake = { sockets: [], sent: [] };
window.WebSocket = class {
  static OPEN = 1;
  constructor(url, protocols) {
    this.url = String(url); this.protocols = protocols; this.readyState = 1;
    window.fake.sockets.push(this);
  }
  send(data) { window.fake.sent.push(JSON.parse(data)); }
  close(code = 1000) { this.readyState = 3; setTimeout(() => this.onclose({ code, reason: "" })); }
};
window.fake.last = () => window.fake.sockets[window.fake.sockets.length - 1];
window.fake.receive = (events) => window.fake.last().onmessage({ data: JSON.stringify(events) });
window.fake.drop = (code) => {
  const ws = window.fake.last(); ws.readyState = 3; ws.onclose({ code, reason: "" });
};
"""

START = """async ({ persistent }) => {
  const { LiveRoom } = await import("/static/client/index.js");
  window.seen = []; window.statuses = []; window.welcomes = [];
  window.room = new LiveRoom({
    roomId: "r1", token: "t0k", persistent,
    onEvent: (e) => window.seen.push(e.seq ?? e.type),
    onWelcome: (w, info) => window.welcomes.push(info),
    onStatus: (s, d) => window.statuses.push([s, d && d.code]),
  });
  window.room.open();
}"""


def _welcome(seq: int, *, resumed: bool = False) -> dict[str, Any]:
    return {
        "type": "welcome",
        "seq": seq,
        "resumed": resumed,
        "room": {"id": "r1", "live": True},
        "viewers": 1,
        "leaderboard": [],
        "goal": None,
    }


def _event(seq: int) -> dict[str, Any]:
    return {"type": "like", "seq": seq, "ts": 1}


@pytest.fixture(scope="module")
async def static_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path_factory.mktemp("client") / "data")
    async with running(srv):
        yield srv


@pytest.fixture
async def page(static_server: LiveServer, browser: Browser) -> AsyncIterator[Page]:
    page = await browser.new_page()
    await page.add_init_script(FAKE_SOCKET)
    await page.goto(f"{static_server.url}/static/css/common.css")  # any page of the origin
    try:
        yield page
    finally:
        await page.close()


async def _urls(page: Page) -> list[str]:
    urls: list[str] = await page.evaluate("window.fake.sockets.map((s) => s.url)")
    return urls


async def test_events_once_each_and_a_gap_resumes_from_the_last_seq(
    page: Page, static_server: LiveServer
) -> None:
    await page.evaluate(START, {"persistent": False})
    url = (await _urls(page))[0]
    assert url == f"ws://127.0.0.1:{static_server.port}/v1/rooms/r1/live?access_token=t0k"
    assert await page.evaluate("window.fake.last().protocols") == ["gift.v1.json"]
    await page.evaluate(
        "([w, a, b]) => window.fake.receive([w, a, b])",
        [
            _welcome(5),
            _event(6),
            _event(7),
        ],
    )
    await page.evaluate("(events) => window.fake.receive(events)", [_event(7), _event(6)])
    assert await page.evaluate("window.seen") == [6, 7]  # repeats are dropped

    await page.evaluate("(events) => window.fake.receive(events)", [_event(9)])  # 8 is missing
    await page.wait_for_function("window.fake.sockets.length === 2")
    assert (await _urls(page))[1].endswith("access_token=t0k&since=7")
    await page.evaluate(
        "(events) => window.fake.receive(events)",
        [_welcome(7, resumed=True), _event(8), _event(9)],
    )
    assert await page.evaluate("window.seen") == [6, 7, 8, 9]
    assert await page.evaluate("window.welcomes") == [
        {"resumed": False, "first": True, "snapshot": False},
        {"resumed": True, "first": False, "snapshot": False},
    ]


async def test_gifts_are_resent_with_their_id_after_a_drop(page: Page) -> None:
    await page.evaluate(START, {"persistent": False})
    await page.evaluate("(w) => window.fake.receive([w])", _welcome(1))
    await page.evaluate(
        """() => {
      window.gift = window.room.send("send_gift", { gift: "rose", count: 2 });
      window.chat = window.room.send("chat", { text: "hi" }).catch((e) => e.code);
    }"""
    )
    sent = await page.evaluate("window.fake.sent")
    assert [c["type"] for c in sent] == ["send_gift", "chat"]
    gift_id = sent[0]["id"]

    await page.evaluate("window.fake.drop(1006)")
    assert await page.evaluate("window.chat") == "connection_lost"  # not safe to resend
    await page.wait_for_function("window.fake.sockets.length === 2", timeout=5_000)
    await page.evaluate("(w) => window.fake.receive([w])", _welcome(1, resumed=True))
    resent = (await page.evaluate("window.fake.sent"))[2:]
    assert resent == [{"type": "send_gift", "id": gift_id, "gift": "rose", "count": 2}]
    ack = {"type": "ack", "id": gift_id, "tx": "tx1", "balance": {"coins": 3}, "replayed": True}
    await page.evaluate("(a) => window.fake.receive([a])", ack)
    assert (await page.evaluate("window.gift"))["tx"] == "tx1"


@pytest.mark.parametrize(
    ("code", "again"),
    [
        (1000, False),
        (1001, True),
        (1006, True),
        (1008, False),
        (1011, True),
        (1012, True),
        (1013, True),
        (4004, False),
        (4008, True),
        (4010, False),
        (4029, False),
    ],
)
async def test_close_codes_decide_whether_to_come_back(page: Page, code: int, again: bool) -> None:
    await page.evaluate(START, {"persistent": False})
    await page.evaluate("(w) => window.fake.receive([w])", _welcome(3))
    await page.evaluate(f"window.fake.drop({code})")
    if again:
        await page.wait_for_function("window.fake.sockets.length === 2", timeout=5_000)
        assert (await _urls(page))[1].endswith("since=3")
    else:
        # "closed" is final: no retry is scheduled after it
        assert await page.evaluate("window.statuses.at(-1)") == ["closed", code]
        assert len(await _urls(page)) == 1


async def test_after_the_stream_ended_commands_fail_at_once(page: Page) -> None:
    await page.evaluate(START, {"persistent": False})
    await page.evaluate("(w) => window.fake.receive([w])", _welcome(3))
    await page.evaluate("window.fake.drop(4010)")
    code = await page.evaluate(
        "window.room.send('send_gift', { gift: 'rose' }).then(() => 'sent', (e) => e.code)"
    )
    assert code == "room_not_live"
    assert await page.evaluate("window.fake.sent") == []


async def test_an_overlay_stays_for_the_next_stream(page: Page) -> None:
    await page.evaluate(START, {"persistent": True})
    await page.evaluate("(w) => window.fake.receive([w])", _welcome(3))
    await page.evaluate("window.fake.drop(4010)")
    assert await page.evaluate("window.statuses.at(-1)") == ["reconnecting", 4010]

"""The hosted pages and their files over plain HTTP (the browser tests are in tests/web)."""

from __future__ import annotations

import re
import xml.dom.minidom
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import live.http.pages
from protocol import CloseCode, ErrorCode
from store.domain.catalog import DEFAULT_GIFTS
from tests.live.server import LiveServer


@pytest.fixture(scope="module")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    srv = LiveServer(data_dir=tmp_path_factory.mktemp("pages") / "data")
    await srv.start()
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10.0) as client:
            yield client
    finally:
        await srv.stop()


@pytest.mark.parametrize("page", ["overlay", "watch"])
async def test_pages_are_served_with_a_strict_policy(http: httpx.AsyncClient, page: str) -> None:
    response = await http.get(f"/{page}/dance-night_2?key=secret")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "dance-night_2" not in response.text  # the page reads its room from its address
    assert f'src="/static/js/{page}.js"' in response.text


@pytest.mark.parametrize(
    "path", ["/watch/a%20b", "/watch/" + "r" * 65, "/overlay/a.b", "/watch/<script>"]
)
async def test_pages_of_invalid_room_ids_are_not_found(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404
    assert "<" not in response.text


async def test_every_catalog_gift_has_its_art(http: httpx.AsyncClient) -> None:
    gifts = (await http.get("/v1/gifts")).json()["gifts"]
    assert {g["id"] for g in gifts} == {g.id for g in DEFAULT_GIFTS}
    for gift in gifts:
        response = await http.get(gift["image"])
        assert response.status_code == 200, gift["image"]
        assert response.headers["content-type"] == "image/svg+xml"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) < 4_096
        svg = xml.dom.minidom.parseString(response.content).documentElement
        assert svg.tagName == "svg" and svg.getAttribute("viewBox") == "0 0 128 128"
        assert not svg.getElementsByTagName("script")
        assert b'href="http' not in response.content
        css = (await http.get("/static/css/gift-animations.css")).text
        assert f".anim-{gift['animation']}" in css


async def test_static_files_stay_in_their_folder(http: httpx.AsyncClient) -> None:
    for path in (
        "/static/../pages.py",
        "/static/%2e%2e/pages.py",
        "/static/js/nope.js",
        "/static/client/%2e%2e/package.json",
    ):
        assert (await http.get(path)).status_code == 404
    library = await http.get("/static/client/index.js")  # the client library, for the pages
    assert library.status_code == 200
    assert "javascript" in library.headers["content-type"]
    assert "export class LiveRoom" in library.text


def test_pages_know_every_error_and_close_code() -> None:
    """The pages and their client (the JavaScript library) follow the protocol's
    tables: a message for every error code, and a reconnect exactly for the close
    codes that call for one."""
    static = Path(live.http.pages.STATIC_DIR)
    common = (static / "js" / "common.js").read_text()
    messages = re.search(r"ERROR_MESSAGES = \{(.*?)\n\};", common, re.S)
    assert messages is not None
    known = set(re.findall(r"^\s+(\w+):", messages[1], re.M))
    http_only = {"payment_declined", "provider_unavailable"}
    assert {str(code) for code in ErrorCode} | http_only <= known
    room = (Path(live.http.pages.CLIENT_DIR) / "index.js").read_text()
    codes = re.search(r"RECONNECT_CODES = new Set\(\[([\d, ]+)\]\)", room)
    assert codes is not None
    reconnect = {int(c) for c in codes[1].split(",")}
    # 1006 is never sent by a server: the browser reports a dropped network with it.
    assert reconnect - {1006} == {int(c) for c in CloseCode if c.reconnect}

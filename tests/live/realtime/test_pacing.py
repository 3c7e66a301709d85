"""Alert pacing over real sockets: an overlay with ``pace=1`` gets a gift burst as
one alert at a time, biggest first, the overflow as a summary, and the next alert
after ``alert_done`` or the timeout; room events keep flowing as before."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.live.launch import running
from tests.live.server import Api, Client, LiveServer

TIMEOUT = 3.0


@contextlib.asynccontextmanager
async def paced_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    server = LiveServer(
        data_dir=tmp_path / "data",
        env={
            "LIVE_OVERLAY_ALERT_BACKLOG": "3",
            "LIVE_OVERLAY_ALERT_TIMEOUT_SECONDS": str(TIMEOUT),
        },
    )
    async with running(server):
        yield server


def alerts(client: Client) -> list[dict[str, Any]]:
    return client.of_type("alert")


async def next_alert(client: Client, seen: int) -> dict[str, Any]:
    """The alert after the first ``seen`` ones."""
    await client.wait_for(lambda e: e["type"] == "alert" and len(alerts(client)) > seen)
    return alerts(client)[seen]


async def test_a_gift_burst_is_paced_for_the_overlay_that_asks(tmp_path: Path) -> None:
    async with paced_server(tmp_path) as server:
        creator = Api(server, server.token("carol", creator=True))
        room = (await creator.post("/v1/rooms", {"title": "paced"})).json()
        ann = Api(server, server.token("ann"))
        assert (await ann.buy("us_7000", key="buy-1")).status_code == 201
        key = room["overlay_key"]
        async with (
            Client.open(server, "carol", query=f"overlay_key={key}&pace=1") as paced,
            Client.open(server, "carol", query=f"overlay_key={key}") as plain,
            Client.open(server, "carol", token=server.token("ann")) as sender,
        ):
            for client in (paced, plain, sender):
                await client.wait_for(lambda e: e["type"] == "welcome")

            async def give(n: int, gift: str, count: int = 1) -> None:
                command = {"type": "send_gift", "id": f"g{n}", "gift": gift, "count": count}
                assert (await sender.command(command))["type"] == "ack"

            await give(0, "galaxy")  # 1000: on screen at once
            first = await next_alert(paced, 0)
            assert first["kind"] == "gift" and first["gift"]["gift"]["id"] == "galaxy"
            assert first["coins"] == 1_000 and "seq" not in first
            assert first["gift"]["overlay"]["combo"]["coins"] == 1_000
            # a burst while it plays: 100, 199, 300, 398, 200 coins; the backlog holds 3
            burst = [("confetti", 1), ("sunglasses", 1), ("confetti", 3), ("sunglasses", 2)]
            burst.append(("confetti", 2))
            for n, (gift, count) in enumerate(burst, start=1):
                await give(n, gift, count)
            await paced.wait_for(lambda _: len(paced.of_type("gift")) == 6)
            # room events are not held back, and keep their seq without gaps
            seqs = [e["seq"] for e in paced.events if "seq" in e and e["type"] != "welcome"]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert len(alerts(paced)) == 1  # one at a time

            shown = [first]
            while len(shown) < 4:
                reply = await paced.command(
                    {"type": "alert_done", "id": f"d{len(shown)}", "alert": shown[-1]["id"]}
                )
                assert reply["type"] == "ack"
                shown.append(await next_alert(paced, len(shown)))
            assert [(a["kind"], a["coins"]) for a in shown] == [
                ("gift", 1_000),
                ("gift", 398),
                ("gift", 300),
                ("summary", 499),
            ]
            summary = shown[-1]
            assert summary["gifts"] == 3 and summary["more_senders"] == 0
            assert [s["id"] for s in summary["senders"]] == ["ann"]
            assert len({a["id"] for a in shown}) == 4

            # never acknowledged: the next alert goes out after the timeout
            reply = await paced.command({"type": "alert_done", "id": "d4", "alert": summary["id"]})
            assert reply["type"] == "ack"
            await give(9, "confetti")
            late = await next_alert(paced, 4)
            started = time.monotonic()
            assert late["kind"] == "gift" and late["coins"] == 100
            await give(10, "sunglasses")
            after = await next_alert(paced, 5)
            waited = time.monotonic() - started
            assert after["coins"] == 199 and TIMEOUT - 0.2 <= waited <= TIMEOUT + 3, waited
            # a late ack for the alert that timed out changes nothing
            stale = await paced.command({"type": "alert_done", "id": "d9", "alert": late["id"]})
            assert stale["type"] == "ack"

            # the overlay that didn't ask sees every gift and no alert
            await plain.wait_for(lambda _: len(plain.of_type("gift")) == 8)
            assert alerts(plain) == [] and alerts(sender) == []
            reply = await plain.command({"type": "alert_done", "id": "x", "alert": "a1"})
            assert reply["type"] == "error" and reply["code"] == "bad_request"
        await ann.aclose()
        await creator.aclose()


async def test_pace_must_be_0_or_1(tmp_path: Path) -> None:
    async with paced_server(tmp_path) as server:
        creator = Api(server, server.token("carol", creator=True))
        assert (await creator.post("/v1/rooms", {"title": "paced"})).status_code == 201
        await creator.aclose()
        async with Client.open(server, "carol", query="pace=yes") as client:
            assert await client.closed() == 1008
            (error,) = client.of_type("error")
            assert error["code"] == "bad_request" and "pace" in error["message"]

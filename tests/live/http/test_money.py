"""The money rules end to end over HTTP and the WebSocket, against a real server
on every engine: promotions, signed payment webhooks, refunds with debt and
clawbacks, parental controls and caps, rate limits, earnings and withdrawals,
and the per-user history. Each test ends with a clean audit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from live.payments import (
    PAYMENT_CHARGEBACK,
    PAYMENT_REFUNDED,
    PAYMENT_SUCCEEDED,
    sandbox_event,
    sign,
)
from store.domain.catalog import Catalog
from store.domain.models import Profile
from tests.live.launch import on_engine
from tests.live.server import Api, Client, LiveServer
from tests.services import Services

WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
MONEY_ENV = {
    "LIVE_HOLD_SECONDS": "0",
    "LIVE_WITHDRAWAL_MIN_DIAMONDS": "10",
    "LIVE_WITHDRAWAL_DAILY_MAX_DIAMONDS": "1000",
    "LIVE_PAYMENT_WEBHOOK_SECRETS": f"sandbox={WEBHOOK_SECRET}",
    "LIVE_FIRST_PURCHASE_BONUS_PERCENT": "10",
    "LIVE_PROMOTIONS": orjson.dumps(
        [{"id": "spring", "percent": 20, "regions": ["US"], "packages": ["us_700"]}]
    ).decode(),
    "LIVE_PURCHASE_RATE_PER_HOUR": "1",
    "LIVE_PURCHASE_BURST": "20",
    "LIVE_PIN_ATTEMPTS_PER_HOUR": "2",
}


@pytest.fixture
async def server(engine_services: Services | None, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", MONEY_ENV) as srv:
        yield srv


@pytest.fixture
async def apis(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    async with money_apis(server) as made:
        yield made


@contextlib.asynccontextmanager
async def money_apis(
    server: LiveServer, *, anonymous: str = "guest"
) -> AsyncIterator[dict[str, Api]]:
    """Carol (a creator, with her room), Alice, an admin and an unsigned caller
    named ``anonymous``."""
    made = {
        "carol": Api(server, server.token("carol", creator=True)),
        "alice": Api(server, server.token("alice")),
        "admin": Api(server, server.token("root", admin=True)),
        anonymous: Api(server, None),
    }
    try:
        response = await made["carol"].post("/v1/rooms", {"id": "carol", "title": "live"})
        assert response.status_code == 201, response.text
        yield made
    finally:
        for api in made.values():
            await api.aclose()


async def assert_audit(server: LiveServer) -> None:
    report = await server.audit()
    assert report["ok"], report


def error(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --------------------------------------------------------------------------- #
# buying coins
# --------------------------------------------------------------------------- #


async def test_packages_show_promotions_and_what_a_buyer_gets(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    listed = (await apis["guest"].get("/v1/coin-packages?region=US")).json()
    assert listed["first_purchase"] is None
    offer = {p["id"]: p for p in listed["packages"]}["us_700"]
    assert [p["id"] for p in offer["promotions"]] == ["first_purchase", "spring"]
    assert offer["effective_coins"] == 707 + 140  # a guest: no first-purchase bonus counted
    mine = (await apis["alice"].get("/v1/coin-packages?region=US")).json()
    assert mine["first_purchase"] is True
    offer = {p["id"]: p for p in mine["packages"]}["us_700"]
    assert (offer["promotion_coins"], offer["effective_coins"]) == (210, 917)
    gb = (await apis["alice"].get("/v1/coin-packages?region=GB")).json()
    assert {p["id"]: p for p in gb["packages"]}["gb_700"]["effective_coins"] == 707 + 70
    india = (await apis["guest"].get("/v1/coin-packages?region=IN")).json()
    assert "in_17500" not in {p["id"] for p in india["packages"]}

    alice = apis["alice"]
    wrong = await alice.post("/v1/purchases", {"package": "us_700", "region": "GB"}, key="k0")
    assert (wrong.status_code, error(wrong)) == (400, "bad_request")
    bought = await alice.post("/v1/purchases", {"package": "us_700", "region": "us"}, key="k1")
    assert bought.status_code == 201, bought.text
    body = bought.json()
    assert (body["coins"], body["bonus"], body["balance"]) == (917, 210, {"coins": 917})
    assert body["promotions"] == ["first_purchase", "spring"]
    again = (await alice.buy("us_700", key="k2")).json()
    assert (again["coins"], again["bonus"]) == (847, 140)  # the first-purchase bonus once
    mine = (await alice.get("/v1/coin-packages?region=US")).json()
    assert mine["first_purchase"] is False
    history = (await alice.get("/v1/me/transactions")).json()["transactions"]
    assert [(t["kind"], t["coins"], t["bonus"]) for t in history] == [
        ("purchase", 847, 140),
        ("purchase", 917, 210),
    ]
    assert history[0]["counterparty"] == {"type": "provider", "id": "sandbox"}
    await assert_audit(server)


async def test_purchases_are_rate_limited(server: LiveServer, apis: dict[str, Api]) -> None:
    alice = apis["alice"]
    codes = [(await alice.buy("us_70", key=f"r{n}")).status_code for n in range(22)]
    assert codes[:20] == [201] * 20
    assert codes[20:] == [429, 429]
    limited = await alice.buy("us_70", key="r99")
    assert error(limited) == "rate_limited" and "try again in" in limited.json()["error"]["message"]
    await assert_audit(server)


# --------------------------------------------------------------------------- #
# webhooks
# --------------------------------------------------------------------------- #


def package(package_id: str) -> Any:
    found = Catalog().package(package_id)
    assert found is not None
    return found


def alice_paid(payment_id: str, event_id: str, package_id: str) -> bytes:
    """The provider's delivery of alice's payment for a package."""
    alice = Profile(id="alice", username="alice", adult=True)
    return sandbox_event(
        PAYMENT_SUCCEEDED,
        payment_id=payment_id,
        event_id=event_id,
        package=package(package_id),
        user=alice,
    )


async def deliver(
    api: Api,
    body: bytes,
    *,
    timestamp: int | None = None,
    header: str | None = None,
    provider: str = "sandbox",
) -> Any:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {"content-type": "application/json"}
    signature = header if header is not None else sign(WEBHOOK_SECRET, body, stamp)
    if signature:
        headers["live-signature"] = signature
    return await api.client.post(f"/v1/webhooks/payments/{provider}", content=body, headers=headers)


async def test_webhook_credits_once_whatever_the_order_and_retries(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    guest, alice = apis["guest"], apis["alice"]
    paid = alice_paid("pay-1", "evt-1", "us_350")
    refunded = sandbox_event(PAYMENT_REFUNDED, payment_id="pay-1", event_id="evt-2")

    # the refund arrives first: not credited yet, so the provider will deliver it again
    early = await deliver(guest, refunded)
    assert (early.status_code, error(early)) == (404, "not_found")
    # Each delivery is signed at its own second (one clock reading for all: a second
    # boundary crossed between deliveries must not make two signatures equal).
    now = int(time.time())
    first = await deliver(guest, paid, timestamp=now - 1)
    assert first.status_code == 200, first.text
    assert first.json()["purchase"]["coins"] == 350 + 35  # the first-purchase bonus
    for n in range(3):  # retries, each signed anew
        retry = await deliver(guest, paid, timestamp=now - 2 - n)
        assert retry.status_code == 200 and retry.json()["purchase"]["replayed"] is True
    assert await alice.balance() == 385

    reversed_ = await deliver(guest, refunded, timestamp=now - 5)
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["reversal"]["taken"] == 385
    chargeback = sandbox_event(PAYMENT_CHARGEBACK, payment_id="pay-1", event_id="evt-3")
    late = await deliver(guest, chargeback)
    assert late.json()["reversal"]["replayed"] is True  # one reversal per payment
    assert await alice.balance() == 0
    other = await deliver(
        guest, sandbox_event("payment.updated", payment_id="pay-1", event_id="e4")
    )
    assert other.json()["ignored"] is True
    await assert_audit(server)


async def test_webhook_forgeries_and_replays_are_refused(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    guest, alice = apis["guest"], apis["alice"]
    body = alice_paid("pay-9", "evt-9", "us_70")
    now = int(time.time())
    refused = {
        "unsigned": await deliver(guest, body, header=""),
        "malformed": await deliver(guest, body, header="v1=abc"),
        "wrong secret": await deliver(
            guest, body, header=sign("another-secret-0123456789", body, now)
        ),
        "tampered": await deliver(
            guest, body.replace(b'"us_70"', b'"us_7000"'), header=sign(WEBHOOK_SECRET, body, now)
        ),
        "stale": await deliver(guest, body, timestamp=now - 3_600),
        "from the future": await deliver(guest, body, timestamp=now + 3_600),
    }
    for what, response in refused.items():
        assert (response.status_code, error(response)) == (401, "unauthorized"), what
    unknown = await deliver(guest, body, provider="acme")
    assert unknown.status_code == 404
    bad_price = alice_paid("pay-8", "evt-8", "us_70").replace(
        b'"amount_minor":109', b'"amount_minor":1'
    )
    assert error(await deliver(guest, bad_price)) == "bad_request"
    assert await alice.balance() == 0

    header = sign(WEBHOOK_SECRET, body, now)
    accepted = await deliver(guest, body, header=header)
    assert accepted.status_code == 200, accepted.text
    replayed = await deliver(guest, body, header=header)  # the same signed delivery again
    assert (replayed.status_code, replayed.json()["error"]["message"]) == (
        401,
        "replayed delivery",
    )
    assert await alice.balance() == 77
    await assert_audit(server)


# --------------------------------------------------------------------------- #
# refunds, debt, locks
# --------------------------------------------------------------------------- #


async def test_chargeback_locks_the_account_and_claws_back(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    alice, carol, admin = apis["alice"], apis["carol"], apis["admin"]
    bought = (await alice.buy("us_350", key="b1")).json()  # 385 coins with the bonus
    payment_id = (await alice.get("/v1/me/transactions")).json()["transactions"][0]["meta"][
        "payment_id"
    ]
    async with Client.open(server, "carol", token=server.token("alice")) as ws:
        ack = await ws.command({"type": "send_gift", "id": "g1", "gift": "confetti", "count": 3})
        assert ack["type"] == "ack" and ack["balance"] == {"coins": bought["coins"] - 300}
        assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 150

        forbidden = await alice.post(
            "/v1/admin/refunds", {"payment_id": payment_id, "kind": "chargeback"}
        )
        assert forbidden.status_code == 403
        refund = await admin.post(
            "/v1/admin/refunds",
            {"payment_id": payment_id, "kind": "chargeback", "reason": "disputed"},
        )
        assert refund.status_code == 201, refund.text
        reversal = refund.json()
        assert (reversal["taken"], reversal["debt"], reversal["clawed_back"]) == (85, 300, 150)
        assert reversal["debt_after"] == 150
        again = await admin.post("/v1/admin/refunds", {"payment_id": payment_id})
        assert again.status_code == 200 and again.json()["replayed"] is True

        wallet = (await alice.get("/v1/me/wallet")).json()
        assert (wallet["coins"], wallet["debt"], wallet["locked"]) == (0, 150, True)
        assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 0
        locked = await ws.command({"type": "send_gift", "id": "g2", "gift": "rose"})
        assert (locked["type"], locked["code"]) == ("error", "forbidden")
        assert "locked" in locked["message"]
        # buying stays open: the coins pay the debt first
        owed = await alice.buy("us_70", key="b2")
        assert owed.status_code == 201, owed.text
        assert (owed.json()["debt_paid"], owed.json()["balance"]) == (70, {"coins": 0})
        # still locked by the rest: an item is refused exactly like the gift
        still = await ws.command({"type": "send_gift", "id": "g3", "gift": "rose"})
        item = await alice.post("/v1/me/items", {"item": "badge_star", "room": "carol"}, key="i1")
        assert item.status_code == 403, item.text
        assert item.json()["error"] == {"code": still["code"], "message": still["message"]}

    history = (await alice.get("/v1/me/transactions")).json()["transactions"]
    assert [(t["kind"], t["coins"], t["debt"]) for t in history] == [
        ("purchase", 0, -70),
        ("chargeback", -85, 150),
        ("gift", -300, 0),
        ("purchase", 385, 0),
    ]
    assert history[2]["direction"] == "sent" and history[2]["room_id"] == "carol"
    assert history[2]["counterparty"] == {"type": "user", "id": "carol"}
    creator = (await carol.get("/v1/me/transactions")).json()["transactions"]
    assert [(t["kind"], t["diamonds"]) for t in creator] == [("chargeback", -150), ("gift", 150)]
    assert creator[0]["counterparty"] == {"type": "user", "id": "alice"}
    assert creator[1]["direction"] == "received"

    settle = await admin.post(
        "/v1/admin/users/alice/settle-debt", {"method": "written_off"}, key="s1"
    )
    assert settle.status_code == 201 and settle.json()["coins"] == 80
    assert (await alice.get("/v1/me/wallet")).json()["locked"] is False
    unlocked = await alice.buy("us_350", key="b3")
    assert unlocked.status_code == 201
    item = await alice.post("/v1/me/items", {"item": "badge_star"}, key="i1")
    assert item.status_code == 201, item.text  # the refused key was not burnt
    assert item.json()["balance"]["coins"] == unlocked.json()["balance"]["coins"] - 99
    missing = await admin.post("/v1/admin/refunds", {"payment_id": "nope"})
    assert missing.status_code == 404
    await assert_audit(server)


# --------------------------------------------------------------------------- #
# parental controls and caps
# --------------------------------------------------------------------------- #


async def test_parental_controls_over_http_and_the_websocket(
    server: LiveServer, apis: dict[str, Api]
) -> None:
    alice = apis["alice"]
    await alice.buy("us_700", key="b1")
    start = (await alice.get("/v1/me/limits")).json()
    assert (start["daily_cap"], start["effective_daily_cap"], start["pin_set"]) == (
        None,
        5_000_000,
        False,
    )
    bad = [
        {"daily_cap": "10"},
        {"tz": "Nowhere/Town"},
        {"daily_cap": 10**10},
        {"new_pin": "12"},
        {"color": "red"},
    ]
    for body in bad:
        response = await alice.client.put("/v1/me/limits", json=body)
        assert (response.status_code, error(response)) == (400, "bad_request"), body

    put = await alice.client.put(
        "/v1/me/limits", json={"daily_cap": 150, "tz": "Europe/Paris", "new_pin": "2468"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["effective_daily_cap"] == 150 and put.json()["pin_set"] is True

    async with Client.open(server, "carol", token=server.token("alice")) as ws:
        ok = await ws.command({"type": "send_gift", "id": "g1", "gift": "confetti"})
        assert ok["type"] == "ack"
        capped = await ws.command({"type": "send_gift", "id": "g2", "gift": "confetti"})
        assert (capped["type"], capped["code"]) == ("error", "limit_exceeded")
        assert capped["message"] == (
            "this gift would pass your daily spending cap of 150 coins (100 spent today)"
        )
        over_http = await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key="g3")
        assert (over_http.status_code, error(over_http)) == (422, "limit_exceeded")
        assert (await alice.get("/v1/me/limits")).json()["spent_today"] == 100

        # gifting and purchases off need no PIN; turning them on again does
        off = {"gifting_enabled": False, "purchases_enabled": False}
        assert (await alice.client.put("/v1/me/limits", json=off)).status_code == 200
        refused = await ws.command({"type": "send_gift", "id": "g4", "gift": "rose"})
        assert (refused["code"], refused["message"]) == (
            "forbidden",
            "gifting is turned off for this account (parental controls)",
        )
        assert error(await alice.buy("us_70", key="b2")) == "forbidden"
        on = {"gifting_enabled": True, "purchases_enabled": True}
        needs = await alice.client.put("/v1/me/limits", json=on)
        assert (needs.status_code, error(needs)) == (403, "forbidden")
        wrong = await alice.client.put("/v1/me/limits", json={**on, "pin": "1111"})
        assert wrong.json()["error"]["message"] == "wrong PIN"
        right = await alice.client.put("/v1/me/limits", json={**on, "pin": "2468"})
        assert right.status_code == 200
        # two PIN attempts an hour (LIVE_PIN_ATTEMPTS_PER_HOUR here), right or wrong
        guess = await alice.client.put("/v1/me/limits", json={**on, "pin": "2468"})
        assert (guess.status_code, error(guess)) == (429, "rate_limited")
        again = await ws.command({"type": "send_gift", "id": "g5", "gift": "rose"})
        assert again["type"] == "ack"
    await assert_audit(server)


# --------------------------------------------------------------------------- #
# earnings and withdrawals
# --------------------------------------------------------------------------- #


async def test_earnings_and_withdrawals(server: LiveServer, apis: dict[str, Api]) -> None:
    alice, carol, admin = apis["alice"], apis["carol"], apis["admin"]
    await alice.buy("us_1400", key="b1")
    for n, gift in enumerate(["confetti", "confetti", "galaxy"]):
        sent = await alice.post("/v1/rooms/carol/gifts", {"gift": gift}, key=f"g{n}")
        assert sent.status_code == 201, sent.text
    earnings = (await carol.get("/v1/me/earnings?tz=America/New_York")).json()
    assert (earnings["diamonds"], earnings["held"], earnings["withdrawable"]) == (600, 0, 600)
    assert earnings["lifetime"] == 600 and earnings["verified"] is False
    assert earnings["cash"]["diamonds"] == {
        "currency": "USD",
        "amount": "3.00",
        "amount_minor": 300,
    }
    assert earnings["by_stream"] == [{"room_id": "carol", "stream_id": 1, "diamonds": 600}]
    assert sum(d["diamonds"] for d in earnings["by_day"]) == 600
    assert error(await carol.get("/v1/me/earnings?tz=Mars/Base")) == "bad_request"

    not_yet = await carol.post("/v1/withdrawals", {"diamonds": 100}, key="w0")
    assert (not_yet.status_code, error(not_yet)) == (403, "forbidden")
    verify = await admin.post("/v1/admin/creators/carol/verification", {"verified": True})
    assert verify.status_code == 200 and verify.json()["verified"] is True
    assert (await carol.post("/v1/admin/creators/carol/verification", {})).status_code == 403
    small = await carol.post("/v1/withdrawals", {"diamonds": 5}, key="w1")
    assert (small.status_code, error(small)) == (400, "bad_request")
    too_much = await carol.post("/v1/withdrawals", {"diamonds": 700}, key="w2")
    assert (too_much.status_code, error(too_much)) == (402, "insufficient_funds")

    paid = await carol.post("/v1/withdrawals", {"diamonds": 200}, key="w3")
    assert paid.status_code == 201, paid.text
    assert (paid.json()["status"], paid.json()["cash"]["amount"]) == ("paid", "1.00")
    assert paid.json()["reference"].startswith("sbx_po_")
    replay = await carol.post("/v1/withdrawals", {"diamonds": 200}, key="w3")
    assert replay.status_code == 200 and replay.json()["id"] == paid.json()["id"]
    failed = await carol.post(
        "/v1/withdrawals", {"diamonds": 100, "destination": "sandbox_fail"}, key="w4"
    )
    assert failed.json()["status"] == "failed" and failed.json()["reason"]
    held = await carol.post(
        "/v1/withdrawals", {"diamonds": 100, "destination": "sandbox_hold"}, key="w5"
    )
    assert held.json()["status"] == "pending"
    assert held.json()["expected_at"] == held.json()["created_at"] + 3 * 86_400_000
    assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 300
    resolve = f"/v1/admin/withdrawals/{held.json()['id']}"
    done = await admin.post(resolve, {"status": "paid", "reference": "bank-1"})
    assert done.status_code == 200 and done.json()["status"] == "paid"
    assert (await admin.post(resolve, {"status": "paid"})).json()["replayed"] is True
    assert error(await admin.post(resolve, {"status": "failed"})) == "conflict"
    assert (
        await admin.post("/v1/admin/withdrawals/wd_none", {"status": "paid"})
    ).status_code == 404

    listed = (await carol.get("/v1/withdrawals")).json()["withdrawals"]
    assert [w["status"] for w in listed] == ["paid", "failed", "paid"]
    page = (await carol.get("/v1/withdrawals?limit=1")).json()
    assert len(page["withdrawals"]) == 1 and page["next"] == listed[0]["id"]
    after = (await carol.get("/v1/me/earnings")).json()
    assert (after["diamonds"], after["withdrawn"], after["pending_withdrawal"]) == (300, 300, 0)
    kinds = [t["kind"] for t in (await carol.get("/v1/me/transactions")).json()["transactions"]]
    # (ids made within one millisecond are not ordered among themselves)
    assert sorted(kinds[:6]) == sorted(
        ["withdrawal"] * 3 + ["withdrawal_paid"] * 2 + ["withdrawal_failed"]
    )
    await assert_audit(server)

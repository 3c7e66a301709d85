"""Creator payouts through Stripe Connect, end to end against a real server on
every engine, without the internet: the server's Stripe calls go to a recording
stub on a loopback port (``tests.providers.payout_stub``, Stripe-like idempotent
replays included) and the webhooks are signed here with Stripe's own scheme
(``Stripe-Signature: t=…,v1=…``).

Covered: linking an account (onboarding link) and who may withdraw; a withdrawal
paid by webhook, exactly once whatever the duplicates and the order; a payout
failing (its transfer reversed, the diamonds back); settling by status poll; the
provider unreachable or refusing; forged, stale and malformed webhooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe

from tests.live.http.test_money import assert_audit, money_apis
from tests.live.launch import on_engine
from tests.live.server import Api, LiveServer
from tests.providers.payout_stub import PayoutStub
from tests.providers.stripe_stub import StubRequest, stripe_error
from tests.services import Services

WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789"
SECRET_KEY = "sk_test_0123456789abcdef0123456789"
WEBHOOK = "/v1/webhooks/payouts/stripe_connect"
ACCOUNT = "acct_1Carol"


class FakeStripe:
    """The Stripe answers the tests script on the stub: one connected account
    whose readiness and payouts' statuses the test sets."""

    def __init__(self, stub: PayoutStub) -> None:
        self.stub = stub
        self.payouts_enabled = False
        self.payout_status: dict[str, str] = {}
        """payout id -> status answered to a retrieve (default ``pending``)."""
        stub.script("POST", "/v1/accounts", lambda r: (200, self.account()))
        stub.script("GET", f"/v1/accounts/{ACCOUNT}", lambda r: (200, self.account()))
        link = {
            "object": "account_link",
            "url": f"https://connect.stripe.com/setup/e/{ACCOUNT}/x1",
            "created": 1_767_225_600,
            "expires_at": 1_767_225_900,
        }
        stub.script("POST", "/v1/account_links", (200, link))
        stub.script("POST", "/v1/transfers", lambda r: (200, self.transfer(r)))
        stub.script("POST", "/v1/payouts", lambda r: (200, self.payout(r)))

    def account(self) -> dict[str, Any]:
        enabled = self.payouts_enabled
        return {
            "id": ACCOUNT,
            "object": "account",
            "type": "express",
            "payouts_enabled": enabled,
            "details_submitted": enabled,
        }

    def transfer(self, request: StubRequest) -> dict[str, Any]:
        withdrawal = request.form["metadata[withdrawal_id]"]
        self.stub.script(
            "POST", f"/v1/transfers/tr_{withdrawal}/reversals", lambda r: (200, self.reversal(r))
        )
        return {
            "id": f"tr_{withdrawal}",
            "object": "transfer",
            "amount": int(request.form["amount"]),
            "currency": request.form["currency"],
            "destination": request.form["destination"],
            "metadata": {"withdrawal_id": withdrawal},
        }

    def payout(self, request: StubRequest) -> dict[str, Any]:
        withdrawal = request.form["metadata[withdrawal_id]"]
        payout_id = f"po_{withdrawal}"
        self.stub.script(
            "GET", f"/v1/payouts/{payout_id}", lambda r: (200, self.retrieved(payout_id))
        )
        return self.payout_object(payout_id, withdrawal, "pending")

    def retrieved(self, payout_id: str) -> dict[str, Any]:
        status = self.payout_status.get(payout_id, "pending")
        return self.payout_object(payout_id, payout_id.removeprefix("po_"), status)

    @staticmethod
    def payout_object(payout_id: str, withdrawal: str, status: str) -> dict[str, Any]:
        failed = status == "failed"
        return {
            "id": payout_id,
            "object": "payout",
            "amount": 100,
            "currency": "usd",
            "status": status,
            "failure_code": "account_closed" if failed else None,
            "failure_message": "The bank account has been closed." if failed else None,
            "metadata": {"withdrawal_id": withdrawal},
        }

    @staticmethod
    def reversal(request: StubRequest) -> dict[str, Any]:
        return {"id": "trr_1", "object": "transfer_reversal", "amount": 100}


def event(kind: str, obj: dict[str, Any], *, event_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": event_id or f"evt_{kind}_{obj['id']}",
            "object": "event",
            "type": kind,
            "livemode": False,  # a test key's events
            "account": ACCOUNT,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    )


async def deliver(
    api: Api, body: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None
) -> Any:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, int(time.time()) if at is None else at
    )
    return await api.client.post(WEBHOOK, content=body, headers={"stripe-signature": header})


@pytest.fixture
async def stub() -> AsyncIterator[PayoutStub]:
    async with PayoutStub() as started:
        yield started


@pytest.fixture
async def server(
    engine_services: Services | None, tmp_path: Path, stub: PayoutStub
) -> AsyncIterator[LiveServer]:
    env = {
        "LIVE_HOLD_SECONDS": "0",
        "LIVE_WITHDRAWAL_MIN_DIAMONDS": "10",
        "LIVE_STRIPE_CONNECT_PAYOUTS": "true",
        "LIVE_STRIPE_CONNECT_SECRET_KEY": SECRET_KEY,
        "LIVE_STRIPE_CONNECT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LIVE_STRIPE_CONNECT_RETURN_URL": "https://app.example/payouts/done",
        "LIVE_STRIPE_CONNECT_REFRESH_URL": "https://app.example/payouts/again",
        "LIVE_STRIPE_API_BASE": stub.url,
        "LIVE_PAYOUT_POLL_SECONDS": "0.2",
    }
    async with on_engine(engine_services, tmp_path / "data", env) as srv:
        yield srv


@pytest.fixture
async def apis(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    async with money_apis(server, anonymous="stripe") as made:
        assert (await made["alice"].buy("us_1400", key="b1")).status_code == 201
        for n, gift in enumerate(["galaxy", "confetti", "confetti"]):  # 600 diamonds for carol
            sent = await made["alice"].post("/v1/rooms/carol/gifts", {"gift": gift}, key=f"g{n}")
            assert sent.status_code == 201, sent.text
        yield made


def error(response: Any) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


async def diamonds(api: Api) -> int:
    value: int = (await api.get("/v1/me/wallet")).json()["diamonds"]
    return value


async def withdraw(api: Api, amount: int, key: str) -> Any:
    return await api.post(
        "/v1/withdrawals", {"diamonds": amount, "provider": "stripe_connect"}, key=key
    )


@pytest.fixture
async def ready(apis: dict[str, Api], stub: PayoutStub) -> FakeStripe:
    """Carol verified, with a linked account that can receive payouts."""
    fake = FakeStripe(stub)
    verify = await apis["admin"].post("/v1/admin/creators/carol/verification", {"verified": True})
    assert verify.status_code == 200
    assert (await apis["carol"].post("/v1/me/payout-account", {})).status_code == 200
    fake.payouts_enabled = True
    status = await apis["carol"].get("/v1/me/payout-account")
    assert status.json()["account"]["payouts_enabled"] is True
    return fake


async def withdrawal_of(api: Api, withdrawal_id: str) -> dict[str, Any]:
    for item in (await api.get("/v1/withdrawals")).json()["withdrawals"]:
        if item["id"] == withdrawal_id:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no withdrawal {withdrawal_id}")


async def settled(api: Api, withdrawal_id: str, *, timeout: float = 15.0) -> dict[str, Any]:
    """The withdrawal once it left ``pending`` (the server's poll settles it)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await withdrawal_of(api, withdrawal_id)
        if found["status"] != "pending" or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- #


async def test_linking_an_account_and_who_may_withdraw(
    server: LiveServer, apis: dict[str, Api], stub: PayoutStub
) -> None:
    fake = FakeStripe(stub)
    carol, alice, admin = apis["carol"], apis["alice"], apis["admin"]

    unverified = await withdraw(carol, 200, "w1")
    assert error(unverified) == (403, "forbidden", "only verified creators can withdraw")
    assert (await admin.post("/v1/admin/creators/carol/verification", {})).status_code == 200
    unlinked = await withdraw(carol, 200, "w2")
    assert error(unlinked) == (
        403,
        "forbidden",
        "link a stripe_connect payout account first (POST /v1/me/payout-account)",
    )
    assert error(await carol.get("/v1/me/payout-account"))[:2] == (403, "forbidden")
    assert error(await alice.post("/v1/me/payout-account", {}))[:2] == (403, "forbidden")
    assert error(await carol.post("/v1/me/payout-account", {"provider": "paypal"}))[:2] == (
        400,
        "bad_request",
    )

    linked = await carol.post("/v1/me/payout-account", {})
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert body["account"]["account_id"] == ACCOUNT
    assert body["account"]["payouts_enabled"] is False
    assert body["onboarding"]["url"].startswith("https://connect.stripe.com/setup/")
    [created] = stub.calls("POST", "/v1/accounts")
    assert created.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert created.headers["idempotency-key"] == "live-account-carol"
    assert created.form["type"] == "express"
    assert created.form["metadata[user_id]"] == "carol"
    assert created.form["capabilities[transfers][requested]"] == "true"
    assert created.form["settings[payouts][schedule][interval]"] == "manual"
    [link] = stub.calls("POST", "/v1/account_links")
    assert link.form == {
        "account": ACCOUNT,
        "refresh_url": "https://app.example/payouts/again",
        "return_url": "https://app.example/payouts/done",
        "type": "account_onboarding",
    }
    # a second link continues the same account
    again = await carol.post("/v1/me/payout-account", {})
    assert again.json()["account"]["account_id"] == ACCOUNT
    assert len(stub.calls("POST", "/v1/accounts")) == 1

    not_ready = await withdraw(carol, 200, "w3")
    assert error(not_ready) == (
        403,
        "forbidden",
        "your stripe_connect payout account cannot receive payouts yet: finish its onboarding",
    )
    # Stripe tells us when onboarding is done
    fake.payouts_enabled = True
    updated = await deliver(apis["stripe"], event("account.updated", fake.account()))
    assert updated.status_code == 200, updated.text
    assert updated.json()["account"]["payouts_enabled"] is True
    status = await carol.get("/v1/me/payout-account")
    assert status.json()["account"]["payouts_enabled"] is True

    # nothing was reserved by the refusals, and no money was asked of Stripe
    assert await diamonds(carol) == 600
    assert (await carol.get("/v1/withdrawals")).json()["withdrawals"] == []
    assert stub.calls("POST", "/v1/transfers") == []
    await assert_audit(server)


async def test_a_withdrawal_is_paid_once_by_webhook(
    server: LiveServer, apis: dict[str, Api], stub: PayoutStub, ready: FakeStripe
) -> None:
    fake, carol = ready, apis["carol"]

    created = await withdraw(carol, 200, "w1")
    assert created.status_code == 201, created.text
    withdrawal = created.json()
    wid = withdrawal["id"]
    assert withdrawal["status"] == "pending"
    assert await diamonds(carol) == 400
    [transfer] = stub.calls("POST", "/v1/transfers")
    assert transfer.headers["idempotency-key"] == f"{wid}-transfer"
    assert transfer.form == {
        "amount": "100",  # 200 diamonds at 0.005 USD
        "currency": "usd",
        "destination": ACCOUNT,
        "transfer_group": wid,
        "metadata[withdrawal_id]": wid,
        "metadata[user_id]": "carol",
    }
    [payout] = stub.calls("POST", "/v1/payouts")
    assert payout.headers["idempotency-key"] == f"{wid}-payout"
    assert payout.headers["stripe-account"] == ACCOUNT
    assert (payout.form["amount"], payout.form["currency"]) == ("100", "usd")
    # a retried request reserves nothing more and asks Stripe for nothing more
    retried = await withdraw(carol, 200, "w1")
    assert retried.status_code == 200 and retried.json()["id"] == wid
    assert len(stub.calls("POST", "/v1/transfers")) == 1

    paid_event = event("payout.paid", fake.payout_object(f"po_{wid}", wid, "paid"))
    paid = await deliver(apis["stripe"], paid_event)
    assert paid.status_code == 200, paid.text
    assert paid.json()["withdrawal"]["status"] == "paid"
    assert paid.json()["withdrawal"]["reference"] == f"po_{wid}"
    for _ in range(2):  # Stripe retries, and may send the same event again
        again = await deliver(apis["stripe"], paid_event)
        assert again.status_code == 200 and again.json()["withdrawal"]["status"] == "paid"
    # a failure arriving after the payout was reported paid changes nothing
    late = await deliver(
        apis["stripe"], event("payout.failed", fake.payout_object(f"po_{wid}", wid, "failed"))
    )
    assert late.status_code == 200 and late.json()["withdrawal"]["status"] == "paid"
    assert stub.calls("POST", f"/v1/transfers/tr_{wid}/reversals") == []
    # events for withdrawals this server does not know are acknowledged and ignored
    stranger = await deliver(
        apis["stripe"], event("payout.paid", fake.payout_object("po_x", "wd_unknown", "paid"))
    )
    assert stranger.status_code == 200 and stranger.json()["ignored"] is True

    earnings = (await carol.get("/v1/me/earnings")).json()
    assert (earnings["diamonds"], earnings["withdrawn"], earnings["pending_withdrawal"]) == (
        400,
        200,
        0,
    )
    kinds = [t["kind"] for t in (await carol.get("/v1/me/transactions")).json()["transactions"]]
    assert kinds.count("withdrawal_paid") == 1 and "withdrawal_failed" not in kinds
    await assert_audit(server)


async def test_a_failed_payout_returns_the_diamonds(
    server: LiveServer, apis: dict[str, Api], stub: PayoutStub, ready: FakeStripe
) -> None:
    fake, carol = ready, apis["carol"]

    wid = (await withdraw(carol, 200, "w1")).json()["id"]
    assert await diamonds(carol) == 400
    failed_event = event("payout.failed", fake.payout_object(f"po_{wid}", wid, "failed"))
    failed = await deliver(apis["stripe"], failed_event)
    assert failed.status_code == 200, failed.text
    assert failed.json()["withdrawal"]["status"] == "failed"
    assert failed.json()["withdrawal"]["reason"] == "The bank account has been closed."
    [reversal] = stub.calls("POST", f"/v1/transfers/tr_{wid}/reversals")
    assert reversal.headers["idempotency-key"] == f"{wid}-reversal"
    assert await diamonds(carol) == 600
    assert (await deliver(apis["stripe"], failed_event)).json()["withdrawal"]["status"] == "failed"
    assert len(stub.calls("POST", f"/v1/transfers/tr_{wid}/reversals")) == 1
    assert await diamonds(carol) == 600

    # a transfer reversed from Stripe's side fails the withdrawal too
    second = (await withdraw(carol, 300, "w2")).json()["id"]
    reversed_event = event(
        "transfer.reversed",
        {"id": f"tr_{second}", "object": "transfer", "metadata": {"withdrawal_id": second}},
    )
    reversed_reply = await deliver(apis["stripe"], reversed_event)
    assert reversed_reply.json()["withdrawal"]["status"] == "failed"
    assert await diamonds(carol) == 600

    # Stripe refusing the transfer (say, the platform balance is short): failed at once
    stub.script(
        "POST",
        "/v1/transfers",
        stripe_error(400, "invalid_request_error", "Insufficient funds in Stripe account."),
    )
    refused = await withdraw(carol, 100, "w3")
    assert refused.status_code == 201, refused.text
    assert refused.json()["status"] == "failed"
    assert "Insufficient funds" in refused.json()["reason"]
    assert await diamonds(carol) == 600
    await assert_audit(server)


async def test_a_status_poll_settles_what_no_webhook_told(
    server: LiveServer, apis: dict[str, Api], stub: PayoutStub, ready: FakeStripe
) -> None:
    fake, carol = ready, apis["carol"]

    paid = (await withdraw(carol, 200, "w1")).json()["id"]
    failed = (await withdraw(carol, 100, "w2")).json()["id"]
    await stub.wait_for("GET", f"/v1/payouts/po_{paid}")  # polled while pending
    assert (await withdrawal_of(carol, paid))["status"] == "pending"
    fake.payout_status[f"po_{paid}"] = "paid"
    fake.payout_status[f"po_{failed}"] = "failed"
    assert (await settled(carol, paid))["status"] == "paid"
    lost = await settled(carol, failed)
    assert (lost["status"], lost["reason"]) == ("failed", "The bank account has been closed.")
    [retrieve, *_] = stub.calls("GET", f"/v1/payouts/po_{paid}")
    assert retrieve.headers["stripe-account"] == ACCOUNT
    assert len(stub.calls("POST", f"/v1/transfers/tr_{failed}/reversals")) == 1
    assert await diamonds(carol) == 400
    # a webhook after the poll settled it changes nothing
    late = await deliver(
        apis["stripe"], event("payout.paid", fake.payout_object(f"po_{paid}", paid, "paid"))
    )
    assert late.json()["withdrawal"]["status"] == "paid"
    await assert_audit(server)


async def test_an_unreachable_provider_loses_nothing(
    server: LiveServer, apis: dict[str, Api], stub: PayoutStub, ready: FakeStripe
) -> None:
    fake, carol = ready, apis["carol"]

    stub.unreachable = True
    down = await withdraw(carol, 200, "w1")
    status, code, message = error(down)
    assert (status, code) == (503, "provider_unavailable")
    assert "stays pending with its diamonds reserved" in message
    [pending] = (await carol.get("/v1/withdrawals")).json()["withdrawals"]
    assert pending["status"] == "pending"
    assert await diamonds(carol) == 400  # reserved, not lost: it is paid or returned
    assert error(await carol.get("/v1/me/payout-account"))[:2] == (503, "provider_unavailable")

    # the provider is back: the poll submits it again with the same idempotency keys
    stub.unreachable = False
    [transfer] = await stub.wait_for("POST", "/v1/transfers")
    assert transfer.headers["idempotency-key"] == f"{pending['id']}-transfer"
    await stub.wait_for("POST", "/v1/payouts")
    fake.payout_status[f"po_{pending['id']}"] = "paid"
    assert (await settled(carol, pending["id"]))["status"] == "paid"
    assert await diamonds(carol) == 400
    await assert_audit(server)


async def test_forged_stale_and_malformed_webhooks_are_refused(
    server: LiveServer, apis: dict[str, Api], ready: FakeStripe
) -> None:
    fake, carol, hook = ready, apis["carol"], apis["stripe"]
    wid = (await withdraw(carol, 200, "w1")).json()["id"]
    body = event("payout.paid", fake.payout_object(f"po_{wid}", wid, "paid"))

    wrong = await deliver(hook, body, secret="whsec_not_ours_0123456789")
    assert error(wrong)[:2] == (401, "unauthorized")
    stale = await deliver(hook, body, at=int(time.time()) - 3_600)
    assert error(stale)[:2] == (401, "unauthorized")
    future = await deliver(hook, body, at=int(time.time()) + 3_600)
    assert error(future)[:2] == (401, "unauthorized")
    unsigned = await hook.client.post(WEBHOOK, content=body)
    assert error(unsigned)[:2] == (401, "unauthorized")
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    tampered = await hook.client.post(
        WEBHOOK,
        content=body.replace(b'"paid"', b'"failed"'),
        headers={"stripe-signature": header},
    )
    assert error(tampered)[:2] == (401, "unauthorized")
    garbage = await deliver(hook, b"not json")
    assert error(garbage)[:2] == (400, "bad_request")
    unknown = await hook.client.post(
        "/v1/webhooks/payouts/paypal", content=body, headers={"stripe-signature": header}
    )
    assert error(unknown)[:2] == (400, "bad_request")

    assert (await withdrawal_of(carol, wid))["status"] == "pending"
    assert await diamonds(carol) == 400
    await assert_audit(server)

"""Card payments through Stripe, end to end against a real server: the server
talks to a recording stub of Stripe's API on a loopback port, and Stripe's events
are signed here with Stripe's own scheme (``t=…,v1=<HMAC-SHA256>``).

Coins are credited only by a signed ``payment_intent.succeeded`` (or
``checkout.session.completed``), once per PaymentIntent whatever the retries and
the order; refunds and disputes reverse the purchase; a locked account pays its
debt by buying. Each test ends with a clean audit."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from live.payments.stripe_cards import stripe_idempotency_key
from tests.live.http.test_money import assert_audit, error
from tests.live.launch import on_engine, running
from tests.live.server import Api, LiveServer
from tests.providers.stripe_stub import ProviderStub, StubRequest, stripe_error
from tests.services import Services

STRIPE_WEBHOOK_SECRET = "whsec_test_0123456789abcdefghijklmnop"
STRIPE_API_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
INTENTS = "/v1/payment_intents"
_ids = itertools.count(1)


def stripe_env(stub: ProviderStub) -> dict[str, str]:
    return {
        "LIVE_HOLD_SECONDS": "0",
        "LIVE_STRIPE_API_KEY": STRIPE_API_KEY,
        "LIVE_STRIPE_PUBLISHABLE_KEY": "pk_test_publishable",
        "LIVE_STRIPE_API_BASE": stub.url,
        "LIVE_STRIPE_MAX_NETWORK_RETRIES": "1",
        "LIVE_PAYMENT_WEBHOOK_SECRETS": f"stripe={STRIPE_WEBHOOK_SECRET}",
        "LIVE_PAYMENT_REGIONS": orjson.dumps({"stripe": ["US", "GB"]}).decode(),
    }


class Intents:
    """Stripe's PaymentIntents as the stub creates them (by id)."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create(self, request: StubRequest) -> tuple[int, Any]:
        """Stripe's answer to ``POST /v1/payment_intents``."""
        intent_id = f"pi_{next(_ids):08d}"
        self.created[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(request.form["amount"]),
            "currency": request.form["currency"],
            "client_secret": f"{intent_id}_secret_abc",
            "status": "requires_payment_method",
            "metadata": request.nested("metadata"),
            "livemode": False,
        }
        return 200, self.created[intent_id]


@pytest.fixture
def intents() -> Intents:
    return Intents()


@pytest.fixture
async def stub(intents: Intents) -> AsyncIterator[ProviderStub]:
    async with ProviderStub() as started:
        started.script("POST", INTENTS, intents.create)
        yield started


@pytest.fixture
async def server(
    engine_services: Services | None, tmp_path: Path, stub: ProviderStub
) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", stripe_env(stub)) as srv:
        yield srv


@pytest.fixture
async def embedded(tmp_path: Path, stub: ProviderStub) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path / "data", env=stripe_env(stub))
    async with running(srv):
        yield srv


@contextlib.asynccontextmanager
async def users(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    made = {
        "alice": Api(server, server.token("alice")),
        "carol": Api(server, server.token("carol", creator=True)),
        "stripe": Api(server, None),
    }
    try:
        yield made
    finally:
        for api in made.values():
            await api.aclose()


@pytest.fixture
async def apis(server: LiveServer) -> AsyncIterator[dict[str, Api]]:
    async with users(server) as made:
        yield made


@pytest.fixture
async def embedded_apis(embedded: LiveServer) -> AsyncIterator[dict[str, Api]]:
    async with users(embedded) as made:
        yield made


# --------------------------------------------------------------------------- #
# Stripe's side: events, signed
# --------------------------------------------------------------------------- #


def stripe_signature(body: bytes, *, timestamp: int, secret: str = STRIPE_WEBHOOK_SECRET) -> str:
    """The ``Stripe-Signature`` header Stripe sends: HMAC-SHA256 of ``"<t>.<body>"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event(kind: str, obj: dict[str, Any], *, livemode: bool = False) -> bytes:
    return orjson.dumps(
        {
            "id": f"evt_{next(_ids):08d}",
            "object": "event",
            "api_version": "2025-09-30.clover",
            "type": kind,
            "created": int(time.time()),
            "livemode": livemode,
            "data": {"object": obj},
        }
    )


def succeeded(intent: dict[str, Any], **changes: Any) -> bytes:
    """``payment_intent.succeeded`` of a PaymentIntent the stub created."""
    obj = {**intent, "status": "succeeded", "amount_received": intent["amount"], **changes}
    return event("payment_intent.succeeded", obj)


def refunded(intent_id: str, *, full: bool = True) -> bytes:
    charge = {"id": f"ch_{intent_id}", "object": "charge", "payment_intent": intent_id}
    return event("charge.refunded", {**charge, "refunded": full, "amount_refunded": 1})


def disputed(intent_id: str, kind: str = "charge.dispute.created") -> bytes:
    dispute = {"id": f"dp_{intent_id}", "object": "dispute", "charge": f"ch_{intent_id}"}
    return event(kind, {**dispute, "payment_intent": intent_id, "reason": "fraudulent"})


async def deliver(
    api: Api, body: bytes, *, timestamp: int | None = None, header: str | None = None
) -> Any:
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = stripe_signature(body, timestamp=stamp) if header is None else header
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature:
        headers["stripe-signature"] = signature
    return await api.client.post("/v1/webhooks/payments/stripe", content=body, headers=headers)


async def start(api: Api, package: str, *, key: str, **fields: Any) -> Any:
    return await api.post(
        "/v1/purchases", {"provider": "stripe", "package": package, **fields}, key=key
    )


# --------------------------------------------------------------------------- #
# buying coins with a card
# --------------------------------------------------------------------------- #


async def test_a_card_payment_is_credited_once_by_its_signed_event(
    server: LiveServer, apis: dict[str, Api], stub: ProviderStub, intents: Intents
) -> None:
    alice, stripe = apis["alice"], apis["stripe"]
    started = await start(alice, "us_700", key="buy-1")
    assert started.status_code == 202, started.text
    body = started.json()
    payment_id = body["payment_id"]
    assert body["status"] == "pending" and payment_id.startswith("pi_")
    assert (body["provider"], body["package"], body["amount_minor"], body["currency"]) == (
        "stripe",
        "us_700",
        999,
        "USD",
    )
    assert body["client"] == {
        "payment_intent": payment_id,
        "client_secret": f"{payment_id}_secret_abc",
        "amount_minor": 999,
        "currency": "USD",
        "publishable_key": "pk_test_publishable",
    }
    [call] = stub.calls("POST", INTENTS)
    assert call.headers["authorization"] == f"Bearer {STRIPE_API_KEY}"
    assert call.idempotency_key == stripe_idempotency_key("alice", "buy-1")
    assert (call.form["amount"], call.form["currency"]) == ("999", "usd")
    assert call.nested("metadata") == {
        "user_id": "alice",
        "username": "alice",
        "adult": "true",
        "package": "us_700",
        "region": "US",
        "price_minor": "999",
        "currency": "USD",
        "idempotency_key": "buy-1",
    }
    assert await alice.balance() == 0  # nothing before Stripe says it is paid

    # the client retries its request: the same PaymentIntent, through Stripe's idempotency
    again = await start(alice, "us_700", key="buy-1")
    assert (again.status_code, again.json()["payment_id"]) == (202, payment_id)
    assert [c.idempotency_key for c in stub.calls("POST", INTENTS)] == [call.idempotency_key] * 2
    other = await start(alice, "us_1400", key="buy-1")  # the same key for another package
    assert (other.status_code, error(other)) == (409, "conflict")
    assert len(intents.created) == 1

    intent = intents.created[payment_id]
    now = int(time.time())
    credited = await deliver(stripe, succeeded(intent), timestamp=now)
    assert credited.status_code == 200, credited.text
    purchase = credited.json()["purchase"]
    assert (purchase["status"], purchase["coins"], purchase["replayed"]) == ("credited", 707, False)
    # Stripe retries (each delivery signed anew), and a Checkout Session of the same payment
    for n in range(1, 3):
        retry = await deliver(stripe, succeeded(intent), timestamp=now - n)
        assert retry.status_code == 200 and retry.json()["purchase"]["replayed"] is True
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "payment_intent": payment_id,
        "payment_status": "paid",
        "amount_total": 999,
        "currency": "usd",
        "metadata": intent["metadata"],
    }
    completed = await deliver(stripe, event("checkout.session.completed", session))
    assert completed.json()["purchase"]["replayed"] is True
    assert await alice.balance() == 707

    [tx] = (await alice.get("/v1/me/transactions")).json()["transactions"]
    assert (tx["kind"], tx["coins"], tx["package"], tx["debt_paid"]) == (
        "purchase",
        707,
        "us_700",
        0,
    )
    assert tx["counterparty"] == {"type": "provider", "id": "stripe"}
    assert tx["meta"]["payment_id"] == payment_id
    ignored = await deliver(stripe, event("customer.created", {"id": "cus_1"}))
    assert ignored.json()["ignored"] is True
    await assert_audit(server)


async def test_refunds_disputes_and_paying_off_the_debt_by_card(
    server: LiveServer, apis: dict[str, Api], intents: Intents
) -> None:
    alice, carol, stripe = apis["alice"], apis["carol"], apis["stripe"]
    assert (await carol.post("/v1/rooms", {"id": "carol", "title": "live"})).status_code == 201
    first = (await start(alice, "us_350", key="b1")).json()["payment_id"]
    second = (await start(alice, "us_350", key="b2")).json()["payment_id"]

    # a dispute before the payment is credited: not found, so Stripe delivers it again
    early = await deliver(stripe, disputed(first))
    assert (early.status_code, error(early)) == (404, "not_found")
    for payment_id in (first, second):
        credited = await deliver(stripe, succeeded(intents.created[payment_id]))
        assert credited.status_code == 200, credited.text
    assert await alice.balance() == 700

    # a partial refund leaves the coins; a full refund of the unspent purchase takes them back
    partial = await deliver(stripe, refunded(second, full=False))
    assert partial.json()["ignored"] is True
    full = (await deliver(stripe, refunded(second))).json()["reversal"]
    assert (full["kind"], full["taken"], full["debt"]) == ("refund", 350, 0)

    # alice spends the first purchase's coins, then disputes it
    gift = await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti", "count": 3}, key="g1")
    assert gift.status_code == 201, gift.text
    chargeback = (await deliver(stripe, disputed(first))).json()["reversal"]
    assert (chargeback["kind"], chargeback["taken"], chargeback["debt"]) == ("chargeback", 50, 300)
    assert (chargeback["clawed_back"], chargeback["debt_after"]) == (150, 150)
    withdrawn = await deliver(stripe, disputed(first, "charge.dispute.funds_withdrawn"))
    assert withdrawn.json()["reversal"]["replayed"] is True  # one reversal per payment
    wallet = (await alice.get("/v1/me/wallet")).json()
    assert (wallet["coins"], wallet["debt"], wallet["locked"]) == (0, 150, True)
    assert (await carol.get("/v1/me/wallet")).json()["diamonds"] == 0
    await assert_locked(alice, owing=150)

    # locked, alice may still buy: the coins pay the debt first, then unlock her
    owed = await start(alice, "us_70", key="b3")
    assert owed.status_code == 202, owed.text
    partly = await deliver(stripe, succeeded(intents.created[owed.json()["payment_id"]]))
    assert (partly.json()["purchase"]["debt_paid"], partly.json()["purchase"]["coins"]) == (70, 70)
    assert (await alice.get("/v1/me/wallet")).json()["locked"] is True
    await assert_locked(alice, owing=80)
    rest = (await start(alice, "us_350", key="b4")).json()["payment_id"]
    paid = (await deliver(stripe, succeeded(intents.created[rest]))).json()["purchase"]
    assert (paid["debt_paid"], paid["balance"]) == (80, {"coins": 270})
    wallet = (await alice.get("/v1/me/wallet")).json()
    assert (wallet["coins"], wallet["debt"], wallet["locked"]) == (270, 0, False)
    history = (await alice.get("/v1/me/transactions")).json()["transactions"]
    assert [(t["kind"], t["coins"], t["debt"], t.get("debt_paid")) for t in history[:3]] == [
        ("purchase", 270, -80, 80),
        ("purchase", 0, -70, 70),
        ("chargeback", -50, 150, None),
    ]
    # unlocked: the coins left buy an item in carol's room, her share included
    item = await alice.post("/v1/me/items", {"item": "badge_star", "room": "carol"}, key="i9")
    assert item.status_code == 201, item.text
    assert (item.json()["coins"], item.json()["balance"]) == (99, {"coins": 171})
    await assert_audit(server)


async def assert_locked(alice: Api, *, owing: int) -> None:
    """While the debt is owed, an item purchase is refused exactly like a gift
    and charges nothing."""
    coins = await alice.balance()
    gift = await alice.post("/v1/rooms/carol/gifts", {"gift": "confetti"}, key=f"lg{owing}")
    item = await alice.post("/v1/me/items", {"item": "badge_star"}, key=f"li{owing}")
    assert (gift.status_code, item.status_code) == (403, 403), item.text
    assert item.json()["error"] == gift.json()["error"]
    assert item.json()["error"]["message"] == (
        f"your account is locked until its chargeback debt of {owing} coins is settled"
    )
    assert await alice.balance() == coins


async def test_forged_stale_replayed_and_mismatched_events_credit_nothing(
    embedded: LiveServer, embedded_apis: dict[str, Api], intents: Intents
) -> None:
    alice, stripe = embedded_apis["alice"], embedded_apis["stripe"]
    payment_id = (await start(alice, "us_70", key="k1")).json()["payment_id"]
    intent = intents.created[payment_id]
    body = succeeded(intent)
    now = int(time.time())
    refused = {
        "unsigned": await deliver(stripe, body, header=""),
        "malformed": await deliver(stripe, body, header="v1=abc"),
        "wrong secret": await deliver(
            stripe,
            body,
            header=stripe_signature(body, timestamp=now, secret="whsec_other_0123456789"),
        ),
        "tampered": await deliver(
            stripe,
            body.replace(b'"amount_received":109', b'"amount_received":110'),
            header=stripe_signature(body, timestamp=now),
        ),
        "stale": await deliver(stripe, body, timestamp=now - 3_600),
        "from the future": await deliver(stripe, body, timestamp=now + 3_600),
    }
    for what, response in refused.items():
        assert (response.status_code, error(response)) == (401, "unauthorized"), what
    mismatched = {
        "amount": succeeded(intent, amount_received=1),
        "currency": succeeded(intent, currency="eur"),
        "package": succeeded(intent, metadata={**intent["metadata"], "package": "nope"}),
        "not succeeded": succeeded(intent, status="processing"),
        "live mode": event(
            "payment_intent.succeeded", {**intent, "status": "succeeded"}, livemode=True
        ),
    }
    for what, mismatch in mismatched.items():
        response = await deliver(stripe, mismatch)
        assert (response.status_code, error(response)) == (400, "bad_request"), what
    assert await alice.balance() == 0

    header = stripe_signature(body, timestamp=now)
    assert (await deliver(stripe, body, header=header)).status_code == 200
    replayed = await deliver(stripe, body, header=header)  # the same delivery captured and resent
    assert (replayed.status_code, replayed.json()["error"]["message"]) == (401, "replayed delivery")
    assert await alice.balance() == 70
    await assert_audit(embedded)


async def test_stripe_unreachable_or_failing_credits_nothing(
    embedded: LiveServer, embedded_apis: dict[str, Api], stub: ProviderStub
) -> None:
    alice = embedded_apis["alice"]
    stub.script("POST", INTENTS, stripe_error(500, "api_error", "Something went wrong"))
    failing = await start(alice, "us_70", key="k1")
    assert (failing.status_code, error(failing)) == (503, "provider_unavailable")
    assert "retry" in failing.json()["error"]["message"]
    # the retry (LIVE_STRIPE_MAX_NETWORK_RETRIES=1) went under the same idempotency key
    keys = [c.idempotency_key for c in stub.calls("POST", INTENTS)]
    assert keys == [stripe_idempotency_key("alice", "k1")] * 2

    await stub.stop()  # nothing listens any more
    unreachable = await start(alice, "us_70", key="k2")
    assert (unreachable.status_code, error(unreachable)) == (503, "provider_unavailable")
    wallet = (await alice.get("/v1/me/wallet")).json()
    assert (wallet["coins"], wallet["debt"]) == (0, 0)
    assert (await alice.get("/v1/me/transactions")).json()["transactions"] == []
    await assert_audit(embedded)
    logged = embedded.log_path.read_text()
    assert "stripe unavailable" in logged
    assert STRIPE_API_KEY not in logged and STRIPE_WEBHOOK_SECRET not in logged


async def test_providers_are_offered_per_region(
    embedded: LiveServer, embedded_apis: dict[str, Api], stub: ProviderStub
) -> None:
    alice = embedded_apis["alice"]
    us = (await alice.get("/v1/coin-packages?region=US")).json()
    assert us["providers"] == ["sandbox", "stripe"]
    india = (await alice.get("/v1/coin-packages?region=IN")).json()
    assert india["providers"] == ["sandbox"]
    package = india["packages"][0]["id"]
    refused = await start(alice, package, key="k1")
    assert (refused.status_code, error(refused)) == (400, "bad_request")
    assert "not offered in IN" in refused.json()["error"]["message"]
    assert stub.calls("POST", INTENTS) == []
    minor = Api(embedded, embedded.token("kid", adult=False))
    try:
        assert error(await start(minor, "us_70", key="k2")) == "forbidden"
    finally:
        await minor.aclose()
    assert stub.calls("POST", INTENTS) == []


async def test_a_payment_is_checked_against_the_price_it_was_created_for(
    embedded: LiveServer, embedded_apis: dict[str, Api], intents: Intents
) -> None:
    alice, stripe = embedded_apis["alice"], embedded_apis["stripe"]
    admin = Api(embedded, embedded.token("root", admin=True))
    try:
        before = (await start(alice, "us_70", key="k1")).json()["payment_id"]
        changed = await admin.client.patch(
            "/v1/admin/catalog/packages/us_70", json={"price_minor": 129}
        )
        assert changed.status_code == 200, changed.text
        after = (await start(alice, "us_70", key="k2")).json()
        assert after["amount_minor"] == 129
        # each payment is credited at the price the buyer was shown when it was created
        old_price = await deliver(stripe, succeeded(intents.created[before]))
        assert old_price.status_code == 200, old_price.text
        cheaper = succeeded(intents.created[after["payment_id"]], amount_received=109)
        assert error(await deliver(stripe, cheaper)) == "bad_request"
        new_price = await deliver(stripe, succeeded(intents.created[after["payment_id"]]))
        assert new_price.status_code == 200, new_price.text
        assert await alice.balance() == 140
        await assert_audit(embedded)
    finally:
        await admin.aclose()

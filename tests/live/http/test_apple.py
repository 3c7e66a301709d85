"""App Store purchases end to end against a real server: transactions and server
notifications are JWS signed here by a test certificate chain (root, intermediate,
leaf) whose root the server trusts, exactly as ``SignedDataVerifier`` checks
Apple's (online revocation checks off). A purchase is credited once per
transaction id; a REFUND notification reverses it. Each test ends with a clean
audit."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from live.payments.apple_store import account_token
from tests.live.http.test_money import assert_audit, error
from tests.live.launch import on_engine, running
from tests.live.server import Api, LiveServer
from tests.providers.apple_jws import AppleSigner, notification, transaction
from tests.services import Services

BUNDLE = "com.example.live"
APP_ID = 1_234_567_890
COINS_70, COINS_700 = f"{BUNDLE}.coins70", f"{BUNDLE}.coins700"
_ids = itertools.count(2_000_000_001)


@pytest.fixture(scope="module")
def apple() -> AppleSigner:
    return AppleSigner.create()


def apple_env(apple: AppleSigner, tmp_path: Path) -> dict[str, str]:
    return {
        "LIVE_HOLD_SECONDS": "0",
        "LIVE_APPLE_BUNDLE_ID": BUNDLE,
        "LIVE_APPLE_APP_APPLE_ID": str(APP_ID),
        "LIVE_APPLE_ENVIRONMENTS": "Production",
        "LIVE_APPLE_ROOT_CERTIFICATES": str(apple.write_root(tmp_path / "root.cer")),
        "LIVE_APPLE_PRODUCTS": orjson.dumps({COINS_70: "us_70", COINS_700: "us_700"}).decode(),
        "LIVE_APPLE_ONLINE_CHECKS": "false",
    }


@pytest.fixture
async def server(
    engine_services: Services | None, tmp_path: Path, apple: AppleSigner
) -> AsyncIterator[LiveServer]:
    async with on_engine(engine_services, tmp_path / "data", apple_env(apple, tmp_path)) as srv:
        yield srv


@pytest.fixture
async def embedded(tmp_path: Path, apple: AppleSigner) -> AsyncIterator[LiveServer]:
    srv = LiveServer(data_dir=tmp_path / "data", env=apple_env(apple, tmp_path))
    async with running(srv):
        yield srv


def signed_purchase(signer: AppleSigner, product: str = COINS_700, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "transaction_id": str(next(_ids)),
        "product_id": product,
        "bundle_id": BUNDLE,
        **changes,
    }
    return signer.sign(transaction(**fields))


def transaction_id(signed: str) -> str:
    return str(jwt.decode(signed, options={"verify_signature": False})["transactionId"])


async def buy(api: Api, signed: str, *, key: str, package: str = "us_700") -> Any:
    body = {"provider": "apple", "package": package, "signed_transaction": signed}
    return await api.post("/v1/purchases", body, key=key)


async def notify(api: Api, signed_payload: str | None, *, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else orjson.dumps({"signedPayload": signed_payload})
    return await api.client.post(
        "/v1/webhooks/payments/apple", content=body, headers={"content-type": "application/json"}
    )


def refund_of(signer: AppleSigner, purchase: str) -> str:
    """Apple's REFUND notification of a purchase's transaction."""
    refunded = {
        **jwt.decode(purchase, options={"verify_signature": False}),
        "revocationDate": 1,
        "revocationReason": 0,
    }
    return signer.sign(
        notification(
            "REFUND",
            bundle_id=BUNDLE,
            app_apple_id=APP_ID,
            signed_transaction=signer.sign(refunded),
        )
    )


async def test_an_app_store_purchase_is_credited_once_and_refunded(
    server: LiveServer, apple: AppleSigner
) -> None:
    alice = Api(server, server.token("alice"))
    bob = Api(server, server.token("bob"))
    apple_server = Api(server, None)
    try:
        signed = signed_purchase(apple, account_token=account_token(BUNDLE, "alice"))
        bought = await buy(alice, signed, key="a1")
        assert bought.status_code == 201, bought.text
        assert (bought.json()["status"], bought.json()["coins"]) == ("credited", 707)
        # the app posts it again (another request, a reinstall): credited once per transaction
        again = await buy(alice, signed, key="a2")
        assert (again.status_code, again.json()["replayed"]) == (200, True)
        stolen = await buy(bob, signed, key="b1")  # bound to alice's account token
        assert (stolen.status_code, error(stolen)) == (403, "forbidden")
        assert await alice.balance() == 707 and await bob.balance() == 0
        [tx] = (await alice.get("/v1/me/transactions")).json()["transactions"]
        assert tx["counterparty"] == {"type": "provider", "id": "apple"}
        assert tx["meta"]["payment_id"] == transaction_id(signed)

        asked = await notify(
            apple_server,
            apple.sign(notification("CONSUMPTION_REQUEST", bundle_id=BUNDLE, app_apple_id=APP_ID)),
        )
        assert asked.status_code == 200 and asked.json()["ignored"] is True
        refund = refund_of(apple, signed)
        reversed_ = await notify(apple_server, refund)
        assert reversed_.status_code == 200, reversed_.text
        assert (reversed_.json()["reversal"]["kind"], reversed_.json()["reversal"]["taken"]) == (
            "refund",
            707,
        )
        resent = await notify(apple_server, refund)  # Apple resends as signed: no effect twice
        assert resent.json()["reversal"]["replayed"] is True
        assert await alice.balance() == 0
        await assert_audit(server)
    finally:
        for api in (alice, bob, apple_server):
            await api.aclose()


async def test_app_store_data_that_fails_a_check_credits_nothing(
    embedded: LiveServer, apple: AppleSigner
) -> None:
    alice = Api(embedded, embedded.token("alice"))
    apple_server = Api(embedded, None)
    forger = AppleSigner.create("Forged Root CA")
    try:
        genuine = signed_purchase(apple)
        tampered = genuine.rsplit(".", 1)[0][:-4] + "AAAA." + genuine.rsplit(".", 1)[1]
        refused = {
            "another root": await buy(alice, signed_purchase(forger), key="k1"),
            "tampered": await buy(alice, tampered, key="k2"),
            "not a JWS": await buy(alice, "not-a-jws", key="k3"),
            "another app": await buy(
                alice, signed_purchase(apple, bundle_id="com.other"), key="k4"
            ),
            "sandbox": await buy(alice, signed_purchase(apple, environment="Sandbox"), key="k5"),
            "unknown product": await buy(alice, signed_purchase(apple, "com.x.gems"), key="k6"),
            "other package": await buy(alice, signed_purchase(apple, COINS_70), key="k7"),
            "not consumable": await buy(
                alice, signed_purchase(apple, kind="Non-Consumable"), key="k8"
            ),
            "two at once": await buy(alice, signed_purchase(apple, quantity=2), key="k9"),
            "revoked": await buy(alice, signed_purchase(apple, revocationDate=1), key="k10"),
            "no proof": await alice.post(
                "/v1/purchases", {"provider": "apple", "package": "us_700"}, key="k11"
            ),
        }
        for what, response in refused.items():
            assert (response.status_code, error(response)) == (400, "bad_request"), what
        other_user = signed_purchase(apple, account_token=account_token(BUNDLE, "bob"))
        assert error(await buy(alice, other_user, key="k12")) == "forbidden"
        assert await alice.balance() == 0

        # notifications: forged ones are refused, a refund of nothing credited is retried later
        forged = await notify(apple_server, refund_of(forger, genuine))
        assert (forged.status_code, error(forged)) == (401, "unauthorized")
        shapeless = await notify(apple_server, None, raw=b'{"payload": 1}')
        assert (shapeless.status_code, error(shapeless)) == (400, "bad_request")
        early = await notify(apple_server, refund_of(apple, genuine))
        assert (early.status_code, error(early)) == (404, "not_found")
        assert (await buy(alice, genuine, key="k13")).status_code == 201
        assert (await notify(apple_server, refund_of(apple, genuine))).status_code == 200
        assert await alice.balance() == 0
        await assert_audit(embedded)
    finally:
        await alice.aclose()
        await apple_server.aclose()

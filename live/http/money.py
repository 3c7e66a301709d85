"""Money: the user's wallet and history, buying coins, parental limits, payment
provider webhooks, and a creator's earnings and withdrawals."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.actions.money import PendingPayment
from live.checks import check_key
from live.errors import LiveError
from live.http.common import (
    MAX_BODY_BYTES,
    actions_of,
    created,
    endpoint,
    field_int,
    field_str,
    json_body,
    query_count,
    user_of,
)
from live.http.money_views import (
    earnings_public,
    limits_public,
    pending_public,
    purchase_public,
    receipt_public,
    transaction_public,
    withdrawal_public,
)
from live.json import json_response
from live.payments import MAX_WEBHOOK_BYTES
from store.ids import now_ms

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


# -- wallet --------------------------------------------------------------------------------
@endpoint
async def my_wallet(request: Request) -> Response:
    user = user_of(request)
    balance = await actions_of(request).money.balance(user.id)
    return json_response(
        {
            "user_id": user.id,
            "coins": balance.coins,
            "diamonds": balance.diamonds,
            "debt": balance.debt,
            "locked": balance.debt > 0,
        }
    )


@endpoint
async def my_transactions(request: Request) -> Response:
    user = user_of(request)
    before = request.query_params.get("before") or None
    limit = query_count(request, "limit", default=PAGE_SIZE, most=MAX_PAGE_SIZE)
    actions = actions_of(request)
    records = await actions.money.transactions(user.id, before=before, limit=limit)
    items = [transaction_public(r, user.id) for r in records]
    page: dict[str, object] = {
        "transactions": items,
        "next": items[-1]["id"] if len(items) == limit else None,
    }
    if before is None:  # the first page: the items whose time ran out, latest first
        page["item_expiries"] = [
            {"item": o.item_id, "kind": o.kind, "expired_at": o.expires_at}
            for o in await actions.items.expired(user.id)
        ]
    return json_response(page)


@endpoint
async def create_purchase(request: Request) -> Response:
    user = user_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    receipt = await actions_of(request).money.purchase(
        user=user,
        package_id=field_str(body, "package"),
        key=key,
        provider=field_str(body, "provider", default="sandbox"),
        method=field_str(body, "payment_method", default="sandbox_card"),
        region=field_str(body, "region") if "region" in body else None,
        # an app store's signed transaction (a JWS with its certificate chain)
        proof=(
            field_str(body, "signed_transaction", max_chars=MAX_BODY_BYTES)
            if "signed_transaction" in body
            else ""
        ),
    )
    if isinstance(receipt, PendingPayment):
        # the client completes the payment with the provider; its event credits it
        return json_response(pending_public(receipt), status=202)
    return json_response(purchase_public(receipt), status=created(receipt.replayed))


# -- the user's limits ----------------------------------------------------------------------
@endpoint
async def get_limits(request: Request) -> Response:
    user = user_of(request)
    actions = actions_of(request)
    account = await actions.money.account(user.id)
    return json_response(limits_public(actions.settings, account))


@endpoint
async def put_limits(request: Request) -> Response:
    """Parental controls: purchases and gifting on or off, lower caps, the time zone
    of the caps' day and month, and a PIN that must be given to relax them again."""
    user = user_of(request)
    actions = actions_of(request)
    account = await actions.money.set_limits(user=user, body=await json_body(request))
    return json_response(limits_public(actions.settings, account))


# -- payment providers --------------------------------------------------------------------
@endpoint
async def payments_webhook(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise LiveError("too_large", f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    provider = request.path_params["provider"]
    outcome = await actions_of(request).money.payment_webhook(provider, request.headers, body)
    reply: dict[str, object] = {"ok": True, "event": outcome.event_id, "type": outcome.event_type}
    if outcome.purchase is not None:
        reply["purchase"] = purchase_public(outcome.purchase)
    elif outcome.reversal is not None:
        reply["reversal"] = receipt_public(outcome.reversal)
    else:
        reply["ignored"] = True
    return json_response(reply)


# -- creators -----------------------------------------------------------------------------
@endpoint
async def my_earnings(request: Request) -> Response:
    user = user_of(request)
    actions = actions_of(request)
    tz = request.query_params.get("tz", "UTC")
    days = query_count(request, "days", default=30, most=366)
    now = now_ms()
    earnings = await actions.payouts.earnings(user.id, now=now)
    return json_response(earnings_public(actions.settings, earnings, tz=tz, days=days, now=now))


@endpoint
async def create_withdrawal(request: Request) -> Response:
    user = user_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    actions = actions_of(request)
    diamonds = field_int(body, "diamonds")
    withdrawal = await actions.payouts.withdraw(
        user=user,
        diamonds=diamonds,
        key=key,
        provider=field_str(body, "provider", default="sandbox"),
        destination=field_str(body, "destination", default="sandbox_bank"),
    )
    return json_response(
        withdrawal_public(actions.settings, withdrawal), status=created(withdrawal.replayed)
    )


@endpoint
async def list_withdrawals(request: Request) -> Response:
    user = user_of(request)
    actions = actions_of(request)
    limit = query_count(request, "limit", default=PAGE_SIZE, most=MAX_PAGE_SIZE)
    items = await actions.payouts.withdrawals(
        user.id, before=request.query_params.get("before") or None, limit=limit
    )
    return json_response(
        {
            "withdrawals": [withdrawal_public(actions.settings, w) for w in items],
            "next": items[-1].id if len(items) == limit else None,
        }
    )


routes = [
    Route("/v1/me/wallet", my_wallet, methods=["GET"]),
    Route("/v1/me/transactions", my_transactions, methods=["GET"]),
    Route("/v1/purchases", create_purchase, methods=["POST"]),
    Route("/v1/me/limits", get_limits, methods=["GET"]),
    Route("/v1/me/limits", put_limits, methods=["PUT"]),
    Route("/v1/webhooks/payments/{provider}", payments_webhook, methods=["POST"]),
    Route("/v1/me/earnings", my_earnings, methods=["GET"]),
    Route("/v1/withdrawals", create_withdrawal, methods=["POST"]),
    Route("/v1/withdrawals", list_withdrawals, methods=["GET"]),
]

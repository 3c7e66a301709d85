"""The HTTP API of money beyond buying and gifting: limits, earnings, withdrawals,
payment webhooks and the admin's refunds, verifications and settlements.
Errors are ``{"error": {"code", "message"}}`` like the rest of ``/v1``."""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.api import endpoint, field_int, field_str, json_body, services_of, user_of
from live.errors import LiveError
from live.json import json_response
from live.money import (
    Payouts,
    debt_public,
    earnings_public,
    limits_public,
    payment_webhook,
    refund_public,
    require_admin,
    resolve_withdrawal,
    set_limits,
    settle_debt,
    withdraw,
    withdrawal_public,
)
from live.payments import MAX_WEBHOOK_BYTES
from live.services import check_key
from store.domain.accounts import REFUND, RefundRequest
from store.ids import now_ms

USER_ID: Final = re.compile(r"^[\x21-\x7e]{1,200}$")


def payouts_of(request: Request) -> Payouts:
    payouts = getattr(request.app.state, "payouts", None)
    return payouts if isinstance(payouts, Payouts) else Payouts()


def _user_id(request: Request) -> str:
    user_id: str = request.path_params["user_id"]
    if not USER_ID.match(user_id):
        raise LiveError("bad_request", "user id must be 1-200 printable ASCII characters")
    return user_id


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise LiveError("bad_request", "limit must be an integer from 1 to 200")
    return int(raw)


def _created(replayed: bool) -> int:
    return 200 if replayed else 201


# -- the user's limits ----------------------------------------------------------------------
@endpoint
async def get_limits(request: Request) -> Response:
    user = user_of(request)
    services = services_of(request)
    account = await services.engine.wallet.account(user.id)
    return json_response(limits_public(services, account))


@endpoint
async def put_limits(request: Request) -> Response:
    """Parental controls: purchases and gifting on or off, lower caps, the time zone
    of the caps' day and month, and a PIN that must be given to relax them again."""
    user = user_of(request)
    services = services_of(request)
    account = await set_limits(services, user=user, body=await json_body(request))
    return json_response(limits_public(services, account))


# -- creators -----------------------------------------------------------------------------
@endpoint
async def my_earnings(request: Request) -> Response:
    user = user_of(request)
    services = services_of(request)
    tz = request.query_params.get("tz", "UTC")
    raw_days = request.query_params.get("days", "30")
    if not raw_days.isdigit() or not 1 <= int(raw_days) <= 366:
        raise LiveError("bad_request", "days must be an integer from 1 to 366")
    now = now_ms()
    earnings = await services.engine.wallet.earnings(user.id, now=now)
    return json_response(earnings_public(services, earnings, tz=tz, days=int(raw_days), now=now))


@endpoint
async def create_withdrawal(request: Request) -> Response:
    user = user_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    services = services_of(request)
    diamonds = field_int(body, "diamonds")
    withdrawal = await withdraw(
        services,
        payouts_of(request),
        user=user,
        diamonds=diamonds,
        key=key,
        provider=field_str(body, "provider", default="sandbox"),
        destination=field_str(body, "destination", default="sandbox_bank"),
    )
    return json_response(
        withdrawal_public(services, withdrawal), status=_created(withdrawal.replayed)
    )


@endpoint
async def list_withdrawals(request: Request) -> Response:
    user = user_of(request)
    services = services_of(request)
    limit = _limit(request)
    items = await services.engine.wallet.withdrawals(
        user.id, before=request.query_params.get("before") or None, limit=limit
    )
    return json_response(
        {
            "withdrawals": [withdrawal_public(services, w) for w in items],
            "next": items[-1].id if len(items) == limit else None,
        }
    )


# -- payment providers --------------------------------------------------------------------
@endpoint
async def payments_webhook(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise LiveError("too_large", f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    provider = request.path_params["provider"]
    reply = await payment_webhook(services_of(request), provider, request.headers, body)
    return json_response(reply)


# -- admins -------------------------------------------------------------------------------
@endpoint
async def admin_refund(request: Request) -> Response:
    """Refund (or record a chargeback of) a purchase by its payment id."""
    require_admin(user_of(request))
    body = await json_body(request)
    receipt = await services_of(request).engine.wallet.refund(
        RefundRequest(
            provider=field_str(body, "provider", default="sandbox"),
            payment_id=field_str(body, "payment_id", max_chars=200),
            kind=field_str(body, "kind", default=REFUND),
            reason=_text(body, "reason"),
        )
    )
    return json_response(refund_public(receipt), status=_created(receipt.replayed))


@endpoint
async def admin_verification(request: Request) -> Response:
    """Record (or remove) a creator's verification: only verified creators withdraw."""
    admin = user_of(request)
    require_admin(admin)
    body = await json_body(request)
    verified = body.get("verified", True)
    if not isinstance(verified, bool):
        raise LiveError("bad_request", "verified must be true or false")
    account = await services_of(request).engine.wallet.set_verified(
        _user_id(request), verified=verified, by=admin.id
    )
    return json_response(
        {
            "user_id": account.user_id,
            "verified": account.verified,
            "verified_at": account.verified_at,
            "verified_by": account.verified_by,
        }
    )


@endpoint
async def admin_settle_debt(request: Request) -> Response:
    """Settle a user's chargeback debt: ``paid`` (received outside the app) or
    ``written_off``; the account is unlocked."""
    admin = user_of(request)
    require_admin(admin)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    receipt = await settle_debt(
        services_of(request),
        user_id=_user_id(request),
        method=field_str(body, "method"),
        key=key,
        by=admin,
        note=_text(body, "note"),
    )
    return json_response(debt_public(receipt), status=_created(receipt.replayed))


@endpoint
async def admin_resolve_withdrawal(request: Request) -> Response:
    """Resolve a pending withdrawal: ``paid`` or ``failed`` (the diamonds return)."""
    require_admin(user_of(request))
    body = await json_body(request)
    services = services_of(request)
    withdrawal = await resolve_withdrawal(
        services,
        withdrawal_id=request.path_params["withdrawal_id"],
        status=field_str(body, "status"),
        reference=_text(body, "reference"),
        reason=_text(body, "reason"),
    )
    return json_response(withdrawal_public(services, withdrawal))


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > 500:
        raise LiveError("bad_request", f"{name} must be a string of at most 500 characters")
    return value


routes = [
    Route("/v1/me/limits", get_limits, methods=["GET"]),
    Route("/v1/me/limits", put_limits, methods=["PUT"]),
    Route("/v1/me/earnings", my_earnings, methods=["GET"]),
    Route("/v1/withdrawals", create_withdrawal, methods=["POST"]),
    Route("/v1/withdrawals", list_withdrawals, methods=["GET"]),
    Route("/v1/webhooks/payments/{provider}", payments_webhook, methods=["POST"]),
    Route("/v1/admin/refunds", admin_refund, methods=["POST"]),
    Route("/v1/admin/creators/{user_id}/verification", admin_verification, methods=["POST"]),
    Route("/v1/admin/users/{user_id}/settle-debt", admin_settle_debt, methods=["POST"]),
    Route("/v1/admin/withdrawals/{withdrawal_id}", admin_resolve_withdrawal, methods=["POST"]),
]

"""Admins: the ledger's audit, refunds and chargebacks, creators' verification,
settling a user's debt and resolving a pending withdrawal."""

from __future__ import annotations

import re
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.checks import check_key
from live.errors import LiveError
from live.http.common import (
    actions_of,
    admin_of,
    created,
    endpoint,
    field_str,
    field_text,
    json_body,
)
from live.http.money_views import receipt_public, withdrawal_public
from live.json import json_response
from store.domain.accounts import REFUND, RefundRequest

USER_ID: Final = re.compile(r"^[\x21-\x7e]{1,200}$")


def _user_id(request: Request) -> str:
    user_id: str = request.path_params["user_id"]
    if not USER_ID.match(user_id):
        raise LiveError("bad_request", "user id must be 1-200 printable ASCII characters")
    return user_id


@endpoint
async def audit(request: Request) -> Response:
    admin_of(request)
    report = await actions_of(request).money.audit()
    return json_response(report.public(), status=200 if report.ok else 409)


@endpoint
async def refund(request: Request) -> Response:
    """Refund (or record a chargeback of) a purchase by its payment id."""
    admin_of(request)
    body = await json_body(request)
    receipt = await actions_of(request).money.refund(
        RefundRequest(
            provider=field_str(body, "provider", default="sandbox"),
            payment_id=field_str(body, "payment_id", max_chars=200),
            kind=field_str(body, "kind", default=REFUND),
            reason=field_text(body, "reason"),
        )
    )
    return json_response(receipt_public(receipt), status=created(receipt.replayed))


@endpoint
async def verification(request: Request) -> Response:
    """Record (or remove) a creator's verification: only verified creators withdraw."""
    admin = admin_of(request)
    body = await json_body(request)
    verified = body.get("verified", True)
    if not isinstance(verified, bool):
        raise LiveError("bad_request", "verified must be true or false")
    account = await actions_of(request).money.set_verified(
        _user_id(request), verified=verified, by=admin
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
async def settle_debt(request: Request) -> Response:
    """Settle a user's chargeback debt: ``paid`` (received outside the app) or
    ``written_off``; the account is unlocked."""
    admin = admin_of(request)
    key = check_key(request.headers.get("idempotency-key"))
    body = await json_body(request)
    receipt = await actions_of(request).money.settle_debt(
        user_id=_user_id(request),
        method=field_str(body, "method"),
        key=key,
        by=admin,
        note=field_text(body, "note"),
    )
    return json_response(receipt_public(receipt), status=created(receipt.replayed))


@endpoint
async def resolve_withdrawal(request: Request) -> Response:
    """Resolve a pending withdrawal: ``paid`` or ``failed`` (the diamonds return)."""
    admin_of(request)
    body = await json_body(request)
    actions = actions_of(request)
    withdrawal = await actions.payouts.resolve(
        withdrawal_id=request.path_params["withdrawal_id"],
        status=field_str(body, "status"),
        reference=field_text(body, "reference"),
        reason=field_text(body, "reason"),
    )
    return json_response(withdrawal_public(actions.settings, withdrawal))


routes = [
    Route("/v1/admin/audit", audit, methods=["GET"]),
    Route("/v1/admin/refunds", refund, methods=["POST"]),
    Route("/v1/admin/creators/{user_id}/verification", verification, methods=["POST"]),
    Route("/v1/admin/users/{user_id}/settle-debt", settle_debt, methods=["POST"]),
    Route("/v1/admin/withdrawals/{withdrawal_id}", resolve_withdrawal, methods=["POST"]),
]

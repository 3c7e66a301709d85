"""A creator's payout account at a payout provider, and the provider's webhooks.

``POST /v1/me/payout-account`` creates the account on first use and returns a
fresh onboarding link; ``GET /v1/me/payout-account`` tells whether it can
receive payouts yet; ``POST /v1/webhooks/payouts/{provider}`` takes the
provider's signed events (payouts paid or failed, accounts updated).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.errors import LiveError
from live.http.common import actions_of, endpoint, field_str, json_body, user_of
from live.http.money_views import withdrawal_public
from live.json import json_response
from live.payouts import MAX_WEBHOOK_BYTES

DEFAULT_PROVIDER = "stripe_connect"


@endpoint
async def link_payout_account(request: Request) -> Response:
    user = user_of(request)
    body = await json_body(request)
    account, link = await actions_of(request).payouts.link_account(
        user=user, provider=field_str(body, "provider", default=DEFAULT_PROVIDER)
    )
    return json_response(
        {
            "account": account.public(),
            "onboarding": {"url": link.url, "expires_at": link.expires_at},
        }
    )


@endpoint
async def payout_account_status(request: Request) -> Response:
    user = user_of(request)
    provider = request.query_params.get("provider", DEFAULT_PROVIDER)
    account = await actions_of(request).payouts.account_status(user=user, provider=provider)
    return json_response({"account": account.public()})


@endpoint
async def payouts_webhook(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise LiveError("too_large", f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    actions = actions_of(request)
    outcome = await actions.payouts.webhook(request.path_params["provider"], request.headers, body)
    reply: dict[str, object] = {"ok": True, "event": outcome.event_id, "type": outcome.event_type}
    if outcome.withdrawal is not None:
        reply["withdrawal"] = withdrawal_public(actions.settings, outcome.withdrawal)
    elif outcome.account is not None:
        reply["account"] = outcome.account.public()
    else:
        reply["ignored"] = True
    return json_response(reply)


routes = [
    Route("/v1/me/payout-account", link_payout_account, methods=["POST"]),
    Route("/v1/me/payout-account", payout_account_status, methods=["GET"]),
    Route("/v1/webhooks/payouts/{provider}", payouts_webhook, methods=["POST"]),
]

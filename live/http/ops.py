"""Operations: liveness, readiness and the Prometheus metrics page."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from live.auth import bearer_token
from live.errors import error_response
from live.http.common import actions_of
from live.json import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        ready = await actions_of(request).readiness()
    except Exception as exc:
        return json_response({"status": "unavailable", "error": str(exc)}, status=503)
    return json_response(ready)


async def metrics(request: Request) -> Response:
    actions = actions_of(request)
    wanted = actions.settings.metrics_token
    if wanted:
        given = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            refused = error_response("unauthorized", "metrics need the bearer token", status=401)
            refused.headers["WWW-Authenticate"] = "Bearer"
            return refused
    return PlainTextResponse(
        await actions.metrics_text(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

"""Operations: liveness, readiness and the Prometheus metrics page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live.http.common import actions_of
from live.json import json_response
from live.metrics import PROMETHEUS_TEXT, scrape_allowed, scrape_refusal


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
    token = actions.settings.metrics_token
    if not scrape_allowed(request.headers.get("authorization"), token=token):
        return scrape_refusal()
    return Response(await actions.metrics_text(), media_type=PROMETHEUS_TEXT)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

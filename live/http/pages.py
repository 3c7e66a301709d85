"""The pages the server hosts itself: the creator's overlay and the viewer's watch page.

They are plain HTML, CSS and JavaScript modules in ``live/static`` (no build step),
and speak the public protocol and HTTP API like any other client. The room id
is read by the page from its own path; nothing a request carries is written
into the HTML.

- ``GET /overlay/{room_id}?key=…``: a transparent 1920x1080 page for a streaming
  software's browser source (options: docs/OPERATIONS.md).
- ``GET /watch/{room_id}``: sign in with a token, buy coins, send gifts, like, chat.
- ``/static/…``: the pages' files and the gift art named by the catalog's ``image``.
- ``/static/client/…``: the JavaScript client library the pages use (``clients/js``).
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent.parent / "static"
CLIENT_DIR = Path(__file__).parents[2] / "clients" / "js" / "src"
"""The JavaScript client library (clients/js), served to the pages as it is: plain
ES modules, no build step."""
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# The pages load only their own files; avatars may come from any https host.
# Overlay keys and tokens ride in page URLs: never send them on as a Referer.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; "
        "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class PageStaticFiles(StaticFiles):
    """Static files with ``nosniff``, and short caching (they change with releases)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=300")
        return response


def _page(filename: str) -> Route:
    async def endpoint(request: Request) -> Response:
        if not _ROOM_ID.fullmatch(request.path_params["room_id"]):
            return PlainTextResponse(
                "room ids are 1 to 64 characters of A-Z a-z 0-9 _ -", status_code=404
            )
        return FileResponse(STATIC_DIR / filename, media_type="text/html", headers=_PAGE_HEADERS)

    return Route(f"/{filename.removesuffix('.html')}/{{room_id}}", endpoint, methods=["GET"])


routes: list[BaseRoute] = [
    _page("overlay.html"),
    _page("watch.html"),
    Mount("/static/client", app=PageStaticFiles(directory=CLIENT_DIR), name="client"),
    Mount("/static", app=PageStaticFiles(directory=STATIC_DIR), name="static"),
]

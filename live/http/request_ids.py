"""Request ids: every HTTP request gets one, answered in ``X-Request-Id`` and
carried by every log line written while it is handled, so a client's report, a
proxy's log and ours can be matched."""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from starlette.types import Message, Scope

from live.logs import REQUEST_ID

HEADER: Final = b"x-request-id"
_SANE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""An incoming id is kept when it is this short and plain (a proxy's or a client's
id); anything else is replaced, so a header can't forge log content."""


def new_request_id() -> str:
    return uuid.uuid4().hex


def incoming_request_id(scope: Scope) -> str | None:
    """The request's own ``X-Request-Id``, if there is exactly one and it is sane."""
    given = [value for name, value in scope.get("headers", ()) if name == HEADER]
    if len(given) != 1:
        return None
    text = given[0].decode("latin-1")
    return text if _SANE.fullmatch(text) else None


class RequestIds:
    """ASGI middleware (outermost, so every answer has the header): take the
    incoming id or make one, put it in ``scope["state"]`` and the logging
    context, and add it to the response headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        await self.app(scope, receive, send_with_id)
        # Left set when the app raised: the server's error line then names the request.
        REQUEST_ID.reset(token)

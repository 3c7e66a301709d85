"""Every HTTP request has an id: the caller's sane ``X-Request-Id`` or a new one,
answered in the response header and carried by the JSON log lines written while
the request was handled (uvicorn's access line included)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.live.launch import running
from tests.live.server import LiveServer


def _logged(srv: LiveServer) -> list[dict[str, Any]]:
    lines = srv.log_path.read_text().splitlines()
    return [orjson.loads(line) for line in lines if line.startswith("{")]


async def test_request_ids_in_headers_and_json_logs(tmp_path: Path) -> None:
    srv = LiveServer(
        data_dir=tmp_path / "data", env={"LIVE_LOG_FORMAT": "json", "LIVE_LOG_LEVEL": "info"}
    )
    async with running(srv), httpx.AsyncClient(base_url=srv.url) as http:
        kept = await http.get("/healthz", headers={"X-Request-Id": "edge-42.a:b"})
        assert kept.status_code == 200
        assert kept.headers["x-request-id"] == "edge-42.a:b"

        made = await http.get("/healthz")
        made_id = made.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made_id)
        again = await http.get("/healthz")
        assert again.headers["x-request-id"] != made_id

        # An id that could forge log content, or is too long, or repeated, is replaced.
        for headers in (
            [("X-Request-Id", "a b\tc")],
            [("X-Request-Id", "x" * 129)],
            [("X-Request-Id", "one"), ("X-Request-Id", "two")],
        ):
            replaced = await http.get("/v1/nothing-here", headers=headers)
            assert replaced.status_code == 404
            assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
            assert len(replaced.headers.get_list("x-request-id")) == 1

        # An answer the body limit gives before any route runs has one too.
        too_large = await http.post(
            "/v1/rooms", content=b"x" * 20_000, headers={"X-Request-Id": "big-1"}
        )
        assert too_large.status_code == 413
        assert too_large.headers["x-request-id"] == "big-1"

    access = {
        line["request_id"]: line["message"]
        for line in _logged(srv)
        if line["logger"] == "uvicorn.access" and "request_id" in line
    }
    assert "/healthz" in access["edge-42.a:b"]
    assert "/healthz" in access[made_id] and " 200" in access[made_id]
    assert "413" in access["big-1"]
    assert "a b" not in srv.log_path.read_text()

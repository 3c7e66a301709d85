"""The WebSocket endpoint under a plain ASGI server (here Starlette's test client):
no raw transport to hand the connection over to, so the endpoint keeps its own
read loop. The same commands get the same answers as on ``live serve``."""

from __future__ import annotations

import warnings
from pathlib import Path

import orjson
import pytest
from starlette.websockets import WebSocketDisconnect

from live.app import create_app
from live.auth import issue_token
from live.settings import Settings

SECRET = "asgi-secret-0123456789abcdef0123456789abcdef"

with warnings.catch_warnings():  # starlette would rather see httpx2 behind TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def test_commands_on_the_asgi_read_loop(tmp_path: Path) -> None:
    app = create_app(Settings(secret=SECRET, data_dir=tmp_path / "data"))
    creator = issue_token(secret=SECRET, user_id="carol", adult=True, roles=["creator"])
    viewer = issue_token(secret=SECRET, user_id="ann", adult=True)
    with TestClient(app) as client:
        room = client.post("/v1/rooms", json={}, headers={"authorization": f"Bearer {creator}"})
        assert room.status_code == 201, room.text
        with client.websocket_connect(f"/v1/rooms/carol/live?access_token={viewer}") as ws:
            assert ws.receive_json()[0]["type"] == "welcome"

            def reply(command: dict[str, object]) -> dict[str, object]:
                ws.send_text(orjson.dumps(command).decode())
                while True:
                    for event in ws.receive_json():
                        if event.get("id") == command["id"]:
                            return dict(event)

            assert reply({"type": "ping", "id": "p1"}) == {"type": "ack", "id": "p1"}
            gift = reply({"type": "send_gift", "id": "g1", "gift": "rose"})
            assert (gift["type"], gift["code"]) == ("error", "insufficient_funds")
            bad = reply({"type": "send_gift", "id": "g2", "gift": "rose", "count": 0})
            assert (bad["type"], bad["code"]) == ("error", "bad_request")
            like = reply({"type": "like", "id": "l1", "count": 3})
            assert like["type"] == "ack" and like["total"] == 3
            chat = reply({"type": "chat", "id": "c1", "text": "hello"})
            assert chat["type"] == "ack"
            fresh = issue_token(secret=SECRET, user_id="ann", adult=True, ttl_seconds=7_200)
            renewed = reply({"type": "auth", "id": "a1", "token": fresh})
            assert renewed["type"] == "ack" and isinstance(renewed["expires_at"], int)
            other = reply({"type": "auth", "id": "a2", "token": creator})
            assert (other["type"], other["code"]) == ("error", "forbidden")
            ws.send_text("{not json")
            closing = ws.receive_json()
            assert closing[0]["code"] == "bad_request"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1008

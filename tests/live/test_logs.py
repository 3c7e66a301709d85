"""``LIVE_LOG_FORMAT=json``: a real server (and a command) writes one JSON object
per line, and no secret it handled (token, overlay key, webhook secret, the HS256
secret) reaches its log."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path

import orjson

from live.logs import JsonFormatter, RedactSecrets
from live.payments import PAYMENT_SUCCEEDED, sandbox_event, sign
from loadtest.processes import free_port, live_command, live_env
from store.domain.catalog import Catalog
from store.domain.models import Profile
from store.scaled.postgres import migrations
from tests.live.launch import running
from tests.live.server import SECRET, Api, Client, LiveServer
from tests.services import Services

WEBHOOK_SECRET = "whsec-logs-0123456789abcdef"
METRICS_TOKEN = "metrics-logs-0123456789abcdef"


async def test_json_logs_are_one_object_per_line_without_secrets(tmp_path: Path) -> None:
    srv = LiveServer(
        data_dir=tmp_path / "data",
        env={
            "LIVE_LOG_FORMAT": "json",
            "LIVE_LOG_LEVEL": "debug",
            "LIVE_PAYMENT_WEBHOOK_SECRETS": f"sandbox={WEBHOOK_SECRET}",
            "LIVE_METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    token = srv.token("carol", creator=True)
    async with running(srv):
        carol = Api(srv, token)
        room = (await carol.post("/v1/rooms", {"title": "t"})).json()
        overlay_key = room["overlay_key"]
        async with Client.open(srv, "carol", token=token) as viewer:
            await viewer.wait_for(lambda e: e["type"] == "welcome")
        async with Client.open(srv, "carol", query=f"overlay_key={overlay_key}") as overlay:
            await overlay.wait_for(lambda e: e["type"] == "welcome")
        package = Catalog().package("us_350")
        assert package is not None
        body = sandbox_event(
            PAYMENT_SUCCEEDED,
            payment_id="pay-1",
            event_id="evt-1",
            package=package,
            user=Profile(id="alice", username="alice", adult=True),
        )
        headers = {
            "content-type": "application/json",
            "live-signature": sign(WEBHOOK_SECRET, body, int(time.time())),
        }
        paid = await carol.client.post(
            "/v1/webhooks/payments/sandbox", content=body, headers=headers
        )
        assert paid.status_code == 200, paid.text
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert (await carol.client.get("/metrics", headers=scrape)).status_code == 200
        await carol.aclose()

    text = srv.log_path.read_text()
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    messages = " ".join(line["message"] for line in lines)
    # the WebSocket handshake with a token was logged, with the token masked
    assert "access_token=[redacted]" in messages
    assert "overlay_key=[redacted]" in messages
    for secret in (token, overlay_key, WEBHOOK_SECRET, SECRET, METRICS_TOKEN):
        assert secret not in text


def test_redaction_masks_secret_shapes_fields_and_known_values() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlX3ZhbHVl"
    record = logging.LogRecord(
        "live.test",
        logging.WARNING,
        __file__,
        1,
        "%s and %s",
        (f"Bearer {jwt}", "whsec-xyz-123"),
        None,
    )
    record.webhook_secret = "whsec-xyz-123"
    record.room = "carol"
    record.user = "redis://u:hunter22@host/0"
    assert RedactSecrets(["whsec-xyz-123"]).filter(record)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "Bearer [redacted] and [redacted]"
    assert line["room"] == "carol" and line["user"] == "redis://u:[redacted]@host/0"
    assert record.webhook_secret == "[redacted]"
    assert line["level"] == "warning" and line["logger"] == "live.test"


async def test_commands_log_json_too(services: Services, tmp_path: Path) -> None:
    urls = await services.reset()
    environ = live_env(
        secret=SECRET,
        data_dir=tmp_path / "data",
        port=free_port(),
        extra={
            "LIVE_REDIS_URL": urls.redis,
            "LIVE_DATABASE_URL": urls.database,
            "LIVE_LOG_FORMAT": "json",
            "LIVE_LOG_LEVEL": "info",
        },
    )
    result = await asyncio.to_thread(
        subprocess.run, live_command("migrate"), env=environ, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("store.scaled.postgres", f"applied migration {name}") for name, _ in migrations()
    ]

"""``live ledger``, ``live audit`` and ``live repair`` on a Redis Cluster URL, as
processes: the worker files every slot's outbox and stops on SIGTERM, the audit
passes once everything is filed and settled and fails when a slot lost a
balance, the repair puts it back."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from loadtest.processes import free_port, live_command, live_env
from store.scaled.client import connect_redis
from store.scaled.keys import CLUSTER, wallet_key
from store.scaled.postgres import migrate
from tests.live.test_cli_errors import SECRET, live
from tests.services import Services, Urls, eventually, pg_count
from tests.store.scaled.outboxes import grant, settle

pytestmark = pytest.mark.scaled


async def test_ledger_audit_and_repair_commands_on_a_cluster(
    services: Services, tmp_path: Path
) -> None:
    urls = await services.reset_cluster()
    await migrate(urls.database)
    env = {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": urls.database}
    users = [f"user-{n}" for n in range(12)]
    redis = connect_redis(urls.redis)
    try:
        for n, user in enumerate(users):
            await grant(redis, user, 10 + n, n=n)
        await settle(redis, [CLUSTER.outbox(wallet_key(u)) for u in users])
        worker = await asyncio.create_subprocess_exec(
            *live_command("ledger", "--consumer", "ledger-cli"),
            env=live_env(secret=SECRET, data_dir=tmp_path / "data", port=free_port(), extra=env),
            stderr=subprocess.PIPE,
        )
        try:
            await eventually(
                lambda: _filed(urls, len(users)), what="live ledger to file every slot"
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = await worker.communicate()
        assert worker.returncode == 0, stderr.decode()

        audit = await live(tmp_path, "audit", **env)
        assert audit.returncode == 0, audit.stderr
        report = orjson.loads(audit.stdout)
        assert report["ok"] and report["transactions"] == len(users)

        await redis.hset(wallet_key("user-3"), "coin", 0)  # a slot lost the grant
        audit = await live(tmp_path, "audit", **env)
        assert audit.returncode == 1
        assert orjson.loads(audit.stdout)["mismatches"] == [
            {"account": "user:user-3:coins", "asset": "coin", "hot": 0, "ledger": 13}
        ]
        repair = await live(tmp_path, "repair", **env)
        assert repair.returncode == 0, repair.stderr
        result = orjson.loads(repair.stdout)
        assert result["audit"]["ok"] and len(result["repair"]["balances"]) == 1
        assert await redis.hget(wallet_key("user-3"), "coin") == b"13"
    finally:
        await redis.aclose()


async def _filed(urls: Urls, count: int) -> bool:
    return await pg_count(urls, "SELECT count(*) FROM transactions") >= count

"""``live`` commands report operational failures as one line on stderr and a
non-zero exit: backends down, a bad URL, a missing secret, a missing database.
``live migrate`` creates a missing database when the role may."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
import pytest

from loadtest.processes import free_port, live_command, live_env
from tests.services import Services

SECRET = "cli-secret-0123456789abcdef0123456789abcdef"


async def live(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a ``live`` command to its end, with only the given ``LIVE_*`` settings."""
    environ = live_env(secret=SECRET, data_dir=tmp_path / "data", port=free_port(), extra=env)
    return await asyncio.to_thread(
        subprocess.run,
        live_command(*args),
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_failure(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The single stderr line of a failed command, checked for its shape."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"live {command}: "), lines[0]
    return lines[0]


def closed_backends() -> dict[str, str]:
    return {
        "LIVE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LIVE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/live",
    }


@pytest.mark.parametrize(
    "args", [["migrate"], ["audit"], ["repair"], ["catalog", "export"], ["serve"]]
)
async def test_unreachable_backends_are_one_line(tmp_path: Path, args: list[str]) -> None:
    result = await live(tmp_path, *args, **closed_backends())
    line = one_line_failure(result, " ".join(args))
    assert "unavailable" in line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"LIVE_REDIS_URL": "localhost:6379", "LIVE_DATABASE_URL": "postgresql://h/live"},
            "LIVE_REDIS_URL must start with redis://",
        ),
        (
            {"LIVE_REDIS_URL": "redis://h/0", "LIVE_DATABASE_URL": "mysql://h/live"},
            "LIVE_DATABASE_URL must start with postgresql://",
        ),
        (
            {"LIVE_REDIS_URL": "redis+cluster://h", "LIVE_DATABASE_URL": "postgresql://h/live"},
            "LIVE_REDIS_URL: a cluster seed is host:port",
        ),
        ({"LIVE_LOG_FORMAT": "xml"}, "LIVE_LOG_FORMAT must be 'text' or 'json'"),
    ],
)
async def test_bad_settings_are_one_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = await live(tmp_path, "audit", **env)
    assert expected in one_line_failure(result, "audit")


async def test_missing_secret_in_production_is_one_line(tmp_path: Path) -> None:
    result = await live(tmp_path, "token", "bob", LIVE_ENV="production", LIVE_SECRET="")
    assert "LIVE_SECRET" in one_line_failure(result, "token")


async def test_missing_key_file_is_one_line(tmp_path: Path) -> None:
    result = await live(tmp_path, "token", "bob", "--private-key", str(tmp_path / "none.pem"))
    assert "none.pem" in one_line_failure(result, "token")


async def test_migrate_creates_a_missing_database_once(services: Services, tmp_path: Path) -> None:
    urls = await services.reset()
    database = f"live fresh {free_port()}"  # a name that needs quoting
    env = {"LIVE_REDIS_URL": urls.redis, "LIVE_DATABASE_URL": services.postgres.url_for(database)}
    first = await live(tmp_path, "migrate", **env)
    assert first.returncode == 0, first.stderr
    assert f'created database "{database}"' in first.stdout
    assert "applied: 001_ledger" in first.stdout
    again = await live(tmp_path, "migrate", **env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "applied: nothing (up to date)"


async def test_migrate_without_the_right_to_create_says_what_to_run(
    services: Services, tmp_path: Path
) -> None:
    role = f"nocreate_{free_port()}"
    await services.postgres.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    url = f"postgresql://{role}@127.0.0.1:{services.postgres.port}/missing_{role}"
    result = await live(
        tmp_path, "migrate", LIVE_REDIS_URL=services.redis.url, LIVE_DATABASE_URL=url
    )
    line = one_line_failure(result, "migrate")
    assert f'CREATE DATABASE "missing_{role}"' in line
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(url)


async def test_audit_of_a_missing_database_is_one_line(services: Services, tmp_path: Path) -> None:
    url = services.postgres.url_for(f"absent_{free_port()}")
    result = await live(tmp_path, "audit", LIVE_REDIS_URL=services.redis.url, LIVE_DATABASE_URL=url)
    line = one_line_failure(result, "audit")
    assert "does not exist" in line and "live migrate" in line

"""Redis's time by command, as the commit benchmark reports it per gift."""

from __future__ import annotations

import pytest

from loadtest.bench import per_gift_by_command
from loadtest.servers import command_time
from tests.services import Services

pytestmark = pytest.mark.scaled


@pytest.mark.asyncio(loop_scope="session")
async def test_command_time_counts_a_scripts_own_calls_under_their_commands(
    services: Services,
) -> None:
    await services.reset()
    before = await command_time([services.redis])
    client = services.redis.client()
    try:
        await client.set("plain", "1")
        script = "redis.call('SET', KEYS[1], '2'); return redis.call('INCR', KEYS[2])"
        assert await client.eval(script, 2, "in-script", "counter") == 1  # type: ignore[misc]
    finally:
        await client.aclose()
    after = await command_time([services.redis])

    def calls(name: str) -> int:
        return after[name][0] - before.get(name, (0, 0))[0]

    assert (calls("set"), calls("incr"), calls("eval")) == (2, 1, 1)
    assert after["eval"][1] >= before.get("eval", (0, 0))[1]


def test_per_gift_by_command_ranks_by_time_and_divides_by_gifts() -> None:
    commands = {"hget": (400, 300), "evalsha": (200, 5_000), "xadd": (100, 900)}
    assert per_gift_by_command(commands, 100, most=2) == (
        "evalsha 2.00x 50.0 us, xadd 1.00x 9.0 us"
    )
    assert per_gift_by_command(commands, 0) == ""

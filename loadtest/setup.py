"""Setting a deployment up for a run, and checking its money afterwards, over the
public HTTP API only: creators go live, gifters buy coins with the sandbox
provider, wallets are read before and after, and the admin audit is asked.

Tokens are minted here with the deployment's secret (``--secret`` or
``LIVE_SECRET``), exactly as ``live token`` does.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from live.auth import issue_token

PACKAGE = "us_7000"
PACKAGE_COINS = 7_700
"""What one ``us_7000`` purchase credits (7,000 coins and 700 bonus)."""


@dataclass
class People:
    run: str
    rooms: list[str]
    creator_tokens: dict[str, str]
    gifter_tokens: list[str]
    gifter_rooms: list[str]
    admin_token: str
    price: int = 1
    coins_before: int = 0
    diamonds_before: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def make_people(
    *, secret: str, run: str, rooms: int, gifters: int, room_prefix: str | None = None
) -> People:
    ttl = 6 * 3600
    room_ids = [f"{room_prefix or 'lt-' + run}-{r}" for r in range(rooms)]
    creators = {
        room: issue_token(
            secret=secret,
            user_id=f"lt-{run}-c{r}",
            adult=True,
            roles=["creator"],
            ttl_seconds=ttl,
        )
        for r, room in enumerate(room_ids)
    }
    gifter_tokens = [
        issue_token(secret=secret, user_id=f"lt-{run}-g{i}", adult=True, ttl_seconds=ttl)
        for i in range(gifters)
    ]
    admin = issue_token(
        secret=secret, user_id=f"lt-{run}-admin", adult=True, roles=["admin"], ttl_seconds=ttl
    )
    return People(
        run=run,
        rooms=room_ids,
        creator_tokens=creators,
        gifter_tokens=gifter_tokens,
        gifter_rooms=[room_ids[i % rooms] for i in range(gifters)],
        admin_token=admin,
    )


class Deployment:
    """The HTTP side of the deployment under test."""

    def __init__(self, base_url: str, *, concurrency: int = 32) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=30.0,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.gate = asyncio.Semaphore(concurrency)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["authorization"] = f"Bearer {token}"
        async with self.gate:
            for attempt in range(5):
                try:
                    return await self.client.request(method, path, headers=headers, **kw)
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def gift_price(self, gift_id: str) -> int:
        response = await self.call("GET", "/v1/gifts")
        response.raise_for_status()
        for gift in response.json()["gifts"]:
            if gift["id"] == gift_id:
                return int(gift["coins"])
        raise ValueError(f"the deployment has no gift {gift_id!r}")

    async def go_live(self, people: People) -> None:
        async def one(room: str, token: str) -> None:
            r = await self.call(
                "POST", "/v1/rooms", token=token, json={"id": room, "title": "load"}
            )
            if r.status_code != 201:
                raise RuntimeError(f"going live in {room} failed: {r.status_code} {r.text}")

        await asyncio.gather(*(one(room, tok) for room, tok in people.creator_tokens.items()))

    async def fund(self, people: People, coins_each: int) -> None:
        """Buy enough ``us_7000`` packages for every gifter to spend ``coins_each``."""
        packages = max(1, math.ceil(coins_each / PACKAGE_COINS))

        async def buy(token: str, g: int, k: int) -> None:
            r = await self.call(
                "POST",
                "/v1/purchases",
                token=token,
                json={"package": PACKAGE},
                headers={"idempotency-key": f"lt-{people.run}-{g}-{k}"},
            )
            if r.status_code not in (200, 201):
                raise RuntimeError(f"purchase failed: {r.status_code} {r.text}")

        await asyncio.gather(
            *(
                buy(token, g, k)
                for g, token in enumerate(people.gifter_tokens)
                for k in range(packages)
            )
        )

    async def wallets(self, tokens: list[str]) -> list[dict[str, int]]:
        async def one(token: str) -> dict[str, int]:
            r = await self.call("GET", "/v1/me/wallet", token=token)
            r.raise_for_status()
            body = r.json()
            return {"coins": int(body["coins"]), "diamonds": int(body["diamonds"])}

        return list(await asyncio.gather(*(one(t) for t in tokens)))

    async def totals(self, people: People) -> tuple[int, int]:
        """(coins held by the gifters, diamonds held by the creators)."""
        gifters = await self.wallets(people.gifter_tokens)
        creators = await self.wallets(list(people.creator_tokens.values()))
        return sum(w["coins"] for w in gifters), sum(w["diamonds"] for w in creators)

    async def audit(self, people: People, *, timeout: float = 60.0) -> dict[str, Any]:
        """The admin audit (``live audit`` over HTTP), retried while the scaled
        engine's ledger worker is still draining."""
        deadline = time.monotonic() + timeout
        while True:
            r = await self.call("GET", "/v1/admin/audit", token=people.admin_token)
            body: dict[str, Any] = r.json() if r.content else {}
            if r.status_code == 200 or time.monotonic() > deadline:
                body.setdefault("ok", r.status_code == 200)
                return body
            await asyncio.sleep(0.5)


async def prepare(
    base_url: str, people: People, *, gift: str, coins_each: int, concurrency: int = 32
) -> None:
    api = Deployment(base_url, concurrency=concurrency)
    try:
        people.price = await api.gift_price(gift)
        await api.go_live(people)
        if people.gifter_tokens:
            await api.fund(people, coins_each * people.price)
        people.coins_before, people.diamonds_before = await api.totals(people)
    finally:
        await api.aclose()


def money_matches(
    *,
    spent: int,
    diamonds: int,
    coins_acked: int,
    diamonds_acked: int,
    coins_unanswered: int = 0,
    diamonds_unanswered: int = 0,
) -> bool:
    """The wallets' movement (``spent`` coins, ``diamonds`` credited) against the
    acks: exactly the acked gifts, plus any of the unanswered ones, and the
    platform's share never negative."""
    return (
        coins_acked <= spent <= coins_acked + coins_unanswered
        and diamonds_acked <= diamonds <= diamonds_acked + diamonds_unanswered
        and spent - diamonds >= 0
    )


async def money_check(
    base_url: str,
    people: People,
    *,
    coins_spent: int,
    diamonds_expected: int,
    coins_unanswered: int = 0,
    diamonds_unanswered: int = 0,
) -> dict[str, Any]:
    """Coins the gifters lost must equal the coins the load tester was acked for,
    and equal diamonds credited plus the platform's share; the audit must pass.

    A gift left unanswered (the reply timed out) may or may not have been
    committed, so the wallets may have moved by up to its coins and diamonds
    more than the acks say, never less."""
    api = Deployment(base_url)
    try:
        coins_after, diamonds_after = await api.totals(people)
        audit = await api.audit(people)
    finally:
        await api.aclose()
    spent = people.coins_before - coins_after
    diamonds = diamonds_after - people.diamonds_before
    platform = spent - diamonds
    ok = money_matches(
        spent=spent,
        diamonds=diamonds,
        coins_acked=coins_spent,
        diamonds_acked=diamonds_expected,
        coins_unanswered=coins_unanswered,
        diamonds_unanswered=diamonds_unanswered,
    ) and bool(audit.get("ok"))
    return {
        "ok": ok,
        "coins_spent_wallets": spent,
        "coins_spent_acked": coins_spent,
        "coins_unanswered": coins_unanswered,
        "diamonds_credited": diamonds,
        "diamonds_expected": diamonds_expected,
        "platform_share": platform,
        "audit_ok": bool(audit.get("ok")),
        "audit_transactions": audit.get("transactions"),
    }

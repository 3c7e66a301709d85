"""Conformance of ``Subscriptions``: the same calls give the same queue, leases
and states on every engine of ``tests.engines.ENGINES``."""

from __future__ import annotations

import pytest

from store.domain.subscriptions import App, Delivery, Subscription
from store.errors import BadRequest
from store.roles import Engine

NOW = 1_000_000


def subscription(sub_id: str = "sub_1", *, owner: str = "carol", app_id: str = "") -> Subscription:
    return Subscription(
        id=sub_id,
        owner_id=owner,
        room_id=owner,
        types=("gift", "chat"),
        callback="https://hooks.example.com/live",
        secret="s" * 40,
        app_id=app_id,
        created_at=NOW,
    )


def item(source: str, sub_id: str = "sub_1") -> Delivery:
    return Delivery(
        subscription_id=sub_id,
        message_id=f"msg_{source}",
        source=source,
        type="gift",
        body=f'{{"n": "{source}"}}',
        created_at=NOW,
    )


async def test_queue_in_order_once_per_source(engine: Engine) -> None:
    subs = engine.subscriptions
    await subs.create(subscription())
    assert await subs.enqueue([item("a"), item("b")]) == 2
    # a second node queueing the same events (and one more) adds only the new one
    assert await subs.enqueue([item("a"), item("b"), item("c")]) == 1
    assert await subs.pending("sub_1") == 3
    seen = []
    for _ in range(3):
        [(got, head)] = await subs.claim(node="n1", now=NOW, lease_ms=10_000, limit=5)
        assert got.id == "sub_1"
        seen.append(head.source)
        await subs.delivered("sub_1", head.position, node="n1")
    assert seen == ["a", "b", "c"]
    assert await subs.pending("sub_1") == 0
    assert await subs.claim(node="n1", now=NOW, lease_ms=10_000, limit=5) == []


async def test_a_lease_keeps_other_nodes_out_until_settled_or_expired(engine: Engine) -> None:
    subs = engine.subscriptions
    await subs.create(subscription())
    await subs.enqueue([item("a"), item("b")])
    [(_, head)] = await subs.claim(node="n1", now=NOW, lease_ms=5_000, limit=5)
    assert await subs.claim(node="n2", now=NOW + 4_999, lease_ms=5_000, limit=5) == []
    # an expired lease: n2 takes over; n1's late answer changes nothing
    [(_, again)] = await subs.claim(node="n2", now=NOW + 5_000, lease_ms=5_000, limit=5)
    assert again.position == head.position
    await subs.delivered("sub_1", head.position, node="n1")
    assert await subs.pending("sub_1") == 2
    await subs.failed(
        "sub_1", head.position, node="n2", now=NOW + 5_000, retry_at=NOW + 9_000, error="500"
    )
    got = await subs.get("sub_1")
    assert got is not None
    assert (got.failing_since, got.next_attempt_at, got.last_error) == (
        NOW + 5_000,
        NOW + 9_000,
        "500",
    )
    assert await subs.claim(node="n1", now=NOW + 8_999, lease_ms=5_000, limit=5) == []
    [(_, retried)] = await subs.claim(node="n1", now=NOW + 9_000, lease_ms=5_000, limit=5)
    assert (retried.position, retried.attempts) == (head.position, 1)
    await subs.delivered("sub_1", retried.position, node="n1")
    got = await subs.get("sub_1")
    assert got is not None and got.failing_since is None and got.last_error == ""


async def test_pause_disable_resume_and_delete(engine: Engine) -> None:
    subs = engine.subscriptions
    await subs.create(subscription())
    await subs.create(subscription("sub_2"))
    await subs.enqueue([item("a")])
    paused = await subs.set_status("sub_1", "paused")
    assert paused is not None and paused.status == "paused"
    assert await subs.enqueue([item("b")]) == 0  # nothing new while paused
    assert [s.id for s in await subs.enabled()] == ["sub_2"]
    assert await subs.claim(node="n1", now=NOW, lease_ms=1_000, limit=5) == []
    resumed = await subs.set_status("sub_1", "enabled")
    assert resumed is not None and resumed.status == "enabled"
    assert await subs.pending("sub_1") == 1  # what was queued waited
    disabled = await subs.set_status("sub_1", "disabled", reason="failing")
    assert disabled is not None and disabled.disabled_reason == "failing"
    assert await subs.pending("sub_1") == 0
    assert await subs.set_status("nope", "paused") is None
    rotated = await subs.set_secret("sub_1", "t" * 40)
    assert rotated is not None and rotated.secret == "t" * 40
    assert await subs.delete("sub_1") is True
    assert await subs.delete("sub_1") is False
    assert [s.id for s in await subs.owned("carol")] == ["sub_2"]


async def test_apps_and_what_they_made(engine: Engine) -> None:
    subs = engine.subscriptions
    app = App(client_id="app_1", owner_id="carol", name="alerts", secret_hash="h", created_at=NOW)
    await subs.add_app(app)
    assert await subs.app("app_1") == app
    assert await subs.apps("carol") == [app]
    await subs.create(subscription("sub_app", app_id="app_1"))
    await subs.create(subscription("sub_own"))
    await subs.enqueue([item("a", "sub_app")])
    assert await subs.delete_app("dave", "app_1") is False
    assert await subs.delete_app("carol", "app_1") is True
    assert await subs.app("app_1") is None
    assert [s.id for s in await subs.owned("carol")] == ["sub_own"]
    assert await subs.pending("sub_app") == 0


async def test_bad_subscriptions_are_refused_alike(engine: Engine) -> None:
    subs = engine.subscriptions
    good = subscription()
    for wrong in (
        Subscription(**{**_fields(good), "types": ()}),
        Subscription(**{**_fields(good), "types": ("gift", "gift")}),
        Subscription(**{**_fields(good), "types": ("bribe",)}),
        Subscription(**{**_fields(good), "callback": ""}),
        Subscription(**{**_fields(good), "status": "sleeping"}),
        Subscription(**{**_fields(good), "room_id": ""}),
    ):
        with pytest.raises(BadRequest):
            await subs.create(wrong)
    with pytest.raises(BadRequest):
        await subs.set_status("sub_1", "sleeping")
    assert await subs.owned("carol") == []


def _fields(s: Subscription) -> dict[str, object]:
    return {name: getattr(s, name) for name in Subscription.__dataclass_fields__}

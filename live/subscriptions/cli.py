"""``live subscriptions list`` and ``live subscriptions trigger``: look at the
subscriptions and send one a test event, from the command line.

Both open the configured engine (the same settings as ``live serve``), so they
work on either engine while servers run: a triggered event is queued like any
other and a running server delivers it within a moment, signed, flagged
``test: true``, moving no money.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from live.settings import Settings
from live.subscriptions.messages import test_delivery
from store.domain.subscriptions import EVENT_TYPES
from store.engine import open_engine


async def _list(settings: Settings, owner: str) -> list[dict[str, Any]]:
    engine = await open_engine(settings.engine_config(), catalog=settings.catalog())
    try:
        found = await engine.subscriptions.owned(owner)
        return [s.public(pending=await engine.subscriptions.pending(s.id)) for s in found]
    finally:
        await engine.close()


async def _trigger(settings: Settings, subscription_id: str, event_type: str) -> str | None:
    """The queued message's id, or None when there is no enabled subscription."""
    engine = await open_engine(settings.engine_config(), catalog=settings.catalog())
    try:
        subscription = await engine.subscriptions.get(subscription_id)
        if subscription is None or subscription.status != "enabled":
            return None
        item = test_delivery(subscription, event_type)
        queued = await engine.subscriptions.enqueue([item])
        return item.message_id if queued else None
    finally:
        await engine.close()


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    found = asyncio.run(_list(settings, args.owner))
    sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    message_id = asyncio.run(_trigger(settings, args.subscription, args.type))
    if message_id is None:
        print(
            f"live subscriptions trigger: no enabled subscription {args.subscription}",
            file=sys.stderr,
        )
        return 1
    print(message_id)
    return 0


def add_parser(sub: Any, settings_of: Any) -> None:
    """``live subscriptions list|trigger`` on the ``live`` command's subparsers."""
    parser = sub.add_parser("subscriptions", help="list event subscriptions, send test events")
    actions = parser.add_subparsers(dest="subscriptions_command", required=True)
    listing = actions.add_parser("list", help="a creator's subscriptions (secrets left out)")
    listing.add_argument("--owner", required=True, help="the creator's user id")
    trigger = actions.add_parser("trigger", help="queue a test event (test: true) for one")
    trigger.add_argument("subscription", help="the subscription id")
    trigger.add_argument("--type", choices=EVENT_TYPES, default="gift")
    for p, command in ((listing, cmd_list), (trigger, cmd_trigger)):
        p.add_argument("--data-dir")
        p.set_defaults(func=lambda args, command=command: command(args, settings_of(args)))

"""A gift-alert bot: prints every gift in a room with the sender's name and the
combo count, and keeps going across drops and server restarts.

    python examples/gift_alert_bot.py http://127.0.0.1:8000 demo [overlay key]

With the room's overlay key it also sees the creator's test alerts.
"""

from __future__ import annotations

import asyncio
import sys

from live.client import LiveRoom


async def main(url: str, room_id: str, overlay_key: str = "") -> None:
    room = LiveRoom(url, room_id, overlay_key=overlay_key, persistent=True)
    room.on("snapshot", lambda _welcome: print("(missed some events while away)"))
    welcome = await room.connect()
    print(f"watching {welcome['room']['title'] or room_id}: {welcome['viewers']} viewers")
    async for event in room:
        if event["type"] != "gift" or event["count"] == 0:
            continue  # a streak's final event adds nothing
        sender = event["sender"]["display_name"]
        combo = event["combo"]["count"]
        test = " (test)" if event.get("test") else ""
        print(f"{sender} sent {event['gift']['name']} x{event['count']} (combo x{combo}){test}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:4]))

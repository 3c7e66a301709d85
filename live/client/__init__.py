"""A client for the live room protocol (docs/PROTOCOL.md) on asyncio and websockets.

The same semantics as the JavaScript library in ``clients/js``:

- every server frame is an array of events, JSON or MessagePack;
- room events carry ``seq``: one already seen is never delivered twice, and a
  gap makes the connection reconnect with ``since`` to fill it;
- drops reconnect with exponential backoff and jitter (0.5 s doubling to 30 s,
  reset once a connection stayed up), resuming with ``?since=``; a ``welcome``
  that could not resume is announced as a ``snapshot``;
- close codes that mean "don't come back unchanged" stop the reconnecting; 4001
  (token expired) comes back only with a fresh token from ``refresh_token``;
- commands are matched to their ``ack``/``error`` by ``id``; a ``send_gift`` with
  no reply at a drop (or sent while disconnected) is sent again with the same id
  after reconnecting, so it takes effect exactly once.

```python
async with LiveRoom("http://127.0.0.1:8000", "demo", token=token) as room:
    ack = await room.send_gift("rose", count=5, coins=1)
    async for event in room:
        if event["type"] == "gift":
            print(event["sender"]["display_name"], event["combo"]["count"])
```
"""

from live.client.room import (
    CLIENT_RECONNECT,
    RECONNECT_CODES,
    LiveError,
    LiveRoom,
    new_id,
    token_expiry,
)

__all__ = [
    "CLIENT_RECONNECT",
    "RECONNECT_CODES",
    "LiveError",
    "LiveRoom",
    "new_id",
    "token_expiry",
]

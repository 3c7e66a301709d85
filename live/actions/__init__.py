"""What the product does: gifts, rooms and their activity, money and payouts.

The HTTP handlers and the WebSocket endpoint call only these (``node.Actions``)."""

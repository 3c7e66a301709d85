"""The realtime path: the WebSocket endpoint, the hub that fans room events out,
the sinks that write them, and all of the glue to uvicorn's internals."""

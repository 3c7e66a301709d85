"""The HTTP API under ``/v1``, the operations endpoints and the hosted pages,
one module per resource; ``common`` holds what every handler shares."""

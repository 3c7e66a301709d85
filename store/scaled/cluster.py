"""Redis Cluster addressing for the engine's own RESP batcher.

A cluster is named by ``redis+cluster://[user:password@]host:port[,host:port...]``
(``rediss+cluster://`` for TLS): the seed nodes. The batcher asks a seed for
``CLUSTER SLOTS``, keeps which primary serves each of the 16384 slots, and sends
every call to the primary of its key's slot (``key_slot``: CRC16 of the hash tag,
the ``{...}`` part of a key). A ``MOVED`` reply updates the map (and the whole
map is read again before the next pipeline); an ``ASK`` reply sends that one
call to the importing node after ``ASKING``. Nothing here does I/O but
``discover``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

SCHEMES: Final = ("redis+cluster://", "rediss+cluster://")

Node = tuple[str, int]
"""A primary's address (host, port)."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``)."""
    return url.startswith(SCHEMES)


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """The seeds and credentials of a ``redis+cluster://`` URL."""

    seeds: tuple[Node, ...]
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> ClusterAddress:
        """Parse the URL; a malformed one raises ``ValueError`` naming what is wrong."""
        if not is_cluster_url(url):
            raise ValueError("a Redis Cluster URL starts with redis+cluster://")
        parts = urlsplit(url)
        netloc = parts.netloc
        username = password = None
        if "@" in netloc:
            credentials, netloc = netloc.rsplit("@", 1)
            user, _, secret = credentials.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if secret else None
        if parts.path not in ("", "/", "/0"):
            raise ValueError("a Redis Cluster has only database 0")
        seeds: list[Node] = []
        for seed in netloc.split(","):
            host, _, port = seed.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65_536:
                raise ValueError(f"a cluster seed is host:port, not {seed!r}")
            seeds.append((host.strip("[]"), int(port)))
        return cls(
            seeds=tuple(seeds),
            username=username,
            password=password,
            tls=url.startswith("rediss+"),
        )

    def node_url(self, node: Node) -> str:
        """The plain URL of one node, with the cluster's credentials."""
        host, port = node
        credentials = ""
        if self.password is not None:
            credentials = f"{self.username or ''}:{self.password}@"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{credentials}{host}:{port}/0"


def command_slot(args: Sequence[Any]) -> int | None:
    """The slot of a call's first key: ``EVALSHA sha numkeys key...`` or
    ``COMMAND key ...``; ``None`` for a call without a key."""
    if args[0] == "EVALSHA":
        if int(args[2]) == 0:
            return None
        keys = args[3 : 3 + int(args[2])]
        slots = {key_slot(_bytes(key)) for key in keys}
        if len(slots) > 1:
            raise CrossSlot("the script's keys hash to different slots")
        return slots.pop()
    if len(args) < 2:
        return None
    return key_slot(_bytes(args[1]))


class CrossSlot(ValueError):
    """A script declared keys of more than one slot: a cluster refuses it."""


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class SlotMap:
    """Which primary serves each slot, as ``CLUSTER SLOTS`` last said, corrected by
    ``MOVED`` replies since."""

    def __init__(self) -> None:
        self._nodes: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self.stale = True
        """Read ``CLUSTER SLOTS`` again before the next pipeline."""

    def load(self, reply: Sequence[Any]) -> None:
        """Replace the map with a ``CLUSTER SLOTS`` reply."""
        nodes: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
            node = (host, int(primary[1]))
            for slot in range(start, end + 1):
                nodes[slot] = node
        self._nodes = nodes
        self.stale = False

    def node(self, slot: int | None) -> Node | None:
        """The primary of ``slot`` (any known primary for ``None``)."""
        if slot is None:
            return next((node for node in self._nodes if node is not None), None)
        return self._nodes[slot]

    def moved(self, slot: int, node: Node) -> None:
        """A ``MOVED`` reply: the slot is served elsewhere (others may have moved too)."""
        self._nodes[slot] = node
        self.stale = True

    @property
    def primaries(self) -> list[Node]:
        """Every primary serving a slot, in slot order."""
        return list(dict.fromkeys(node for node in self._nodes if node is not None))


def redirection(message: str) -> tuple[str, int, Node] | None:
    """``("MOVED"|"ASK", slot, node)`` of a redirection error reply, else ``None``."""
    kind, _, rest = message.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, address = rest.partition(" ")
    host, _, port = address.rpartition(":")
    return kind, int(slot), (host, int(port))

"""The one outgoing request of a subscription, safe against SSRF.

A callback must be ``https`` (plain ``http`` only to loopback, when the
configuration allows loopback at all). Its host is resolved here and *every*
address it resolves to must be public, unless it falls in a range the
configuration allows: loopback, private, link-local, multicast, reserved and
shared ranges are refused, including IPv4 mapped into IPv6. The connection then
goes to the checked address itself (TLS still verifies the host's name), so a
DNS answer that changes between the check and the connection cannot redirect
it. Redirects are never followed; the whole exchange has a deadline and the
answer a size cap.

This is a small HTTP/1.1 client on asyncio streams, not a library's: pinning
the address while keeping the name for TLS and the Host header is what the
check needs, and it stays within the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from live.subscriptions import SubscriptionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HEAD_BYTES: Final = 16_384
"""The status line and headers of an answer, at most."""
USER_AGENT: Final = "live-webhooks/1"


@dataclass(frozen=True, kw_only=True, slots=True)
class SendPolicy:
    """Where callbacks may go and how long they may take."""

    timeout_seconds: float = 10.0
    max_response_bytes: int = 65_536
    allow_loopback: bool = False
    allowed_networks: tuple[Network, ...] = ()
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    """TLS trust (default: the system's); tests pass their own CA."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_callback(url: str, policy: SendPolicy) -> Target:
    """The callback's parts, or ``refused_url`` for what is never allowed (before
    any DNS): a scheme other than https (http only with loopback allowed),
    credentials in the URL, a fragment, no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SubscriptionError("refused_url", "the callback is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise SubscriptionError("refused_url", "the callback must be an https URL")
    if scheme == "http" and not policy.allow_loopback:
        raise SubscriptionError("refused_url", "the callback must be an https URL")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise SubscriptionError("refused_url", "the callback needs a host and no credentials")
    if parts.fragment:
        raise SubscriptionError("refused_url", "the callback must not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in path for c in "\r\n ") or any(c in parts.hostname for c in "\r\n /"):
        raise SubscriptionError("refused_url", "the callback is not a valid URL")
    return Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def address_allowed(address: IPAddress, policy: SendPolicy) -> bool:
    """A public address, or one in a range the configuration allows."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in policy.allowed_networks):
        return True
    if address.is_loopback:
        return policy.allow_loopback
    return address.is_global and not address.is_multicast


async def resolve(target: Target, policy: SendPolicy) -> list[IPAddress]:
    """Every address of the host, all checked; ``refused_url`` if one is not allowed."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        found: Sequence[IPAddress] = [literal]
    else:
        try:
            async with asyncio.timeout(policy.timeout_seconds):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise SubscriptionError("unreachable", f"cannot resolve {target.host}: {exc}") from None
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise SubscriptionError("unreachable", f"{target.host} has no address")
    for address in found:
        if not address_allowed(address, policy):
            raise SubscriptionError(
                "refused_url", f"the callback resolves to a non-public address ({address})"
            )
    if target.scheme == "http" and not all(_loopback(a) for a in found):
        raise SubscriptionError("refused_url", "plain http is allowed only to loopback")
    return list(found)


def _loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def post(url: str, *, body: bytes, headers: Mapping[str, str], policy: SendPolicy) -> Answer:
    """POST ``body`` to the callback; its answer if it is a 2xx, else
    ``SubscriptionError`` (see the module docstring for what is checked)."""
    target = parse_callback(url, policy)
    addresses = await resolve(target, policy)
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            return await _exchange(target, addresses[0], body, headers, policy)
    except TimeoutError:
        raise SubscriptionError(
            "unreachable", f"no answer within {policy.timeout_seconds:g} seconds"
        ) from None


async def _exchange(
    target: Target,
    address: IPAddress,
    body: bytes,
    headers: Mapping[str, str],
    policy: SendPolicy,
) -> Answer:
    tls: ssl.SSLContext | None = None
    if target.scheme == "https":
        tls = policy.ssl_context or ssl.create_default_context()
    try:
        reader, writer = await asyncio.open_connection(
            str(address),
            target.port,
            ssl=tls,
            server_hostname=target.host if tls is not None else None,
            limit=MAX_HEAD_BYTES,
        )
    except (OSError, ssl.SSLError) as exc:
        raise SubscriptionError("unreachable", f"cannot connect: {exc}") from None
    try:
        default_port = 443 if target.scheme == "https" else 80
        host = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            host = f"{host}:{target.port}"
        lines = [
            f"POST {target.path} HTTP/1.1",
            f"Host: {host}",
            f"User-Agent: {USER_AGENT}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        return await _read_answer(reader, policy.max_response_bytes)
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        raise SubscriptionError("unreachable", f"the connection failed: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader, max_bytes: int) -> Answer:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise SubscriptionError("bad_response", "the answer's headers are too large") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise SubscriptionError("bad_response", "the answer is not HTTP/1.x")
    status = int(parts[1])
    fields: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if 300 <= status < 400:
        raise SubscriptionError("bad_response", f"answered {status}: redirects are not followed")
    if not 200 <= status < 300:
        raise SubscriptionError("bad_response", f"answered {status}")
    if "chunked" in fields.get("transfer-encoding", "").lower():
        content = await _read_chunked(reader, max_bytes)
    elif "content-length" in fields:
        length = fields["content-length"]
        if not length.isdigit():
            raise SubscriptionError("bad_response", "the answer's length is malformed")
        if int(length) > max_bytes:
            raise SubscriptionError("bad_response", f"the answer is over {max_bytes} bytes")
        content = await reader.readexactly(int(length))
    else:
        content = await reader.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise SubscriptionError("bad_response", f"the answer is over {max_bytes} bytes")
    return Answer(status, content)


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    content = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise SubscriptionError("bad_response", "the answer's chunks are malformed") from None
        if size == 0:
            return bytes(content)
        if len(content) + size > max_bytes:
            raise SubscriptionError("bad_response", f"the answer is over {max_bytes} bytes")
        content += await reader.readexactly(size)
        await reader.readexactly(2)

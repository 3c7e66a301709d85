"""The SSRF-safe sender against real sockets: what it refuses before connecting,
TLS to a name pinned to its checked address, and the limits on an answer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from live.subscriptions import SubscriptionError, signing
from live.subscriptions.sender import SendPolicy, post

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOOPBACK = SendPolicy(timeout_seconds=2.0, max_response_bytes=1_000, allow_loopback=True)


@contextlib.asynccontextmanager
async def answering(answer: Answerer, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(reader, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def replying(raw: bytes) -> Answerer:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)

    return answer


async def refused(url: str, policy: SendPolicy = LOOPBACK) -> SubscriptionError:
    with pytest.raises(SubscriptionError) as caught:
        await post(url, body=b"{}", headers={}, policy=policy)
    return caught.value


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http beyond loopback
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.10/hook",
        "https://100.64.0.1/hook",  # shared address space
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/hook",
        "https://[::1]:9/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://224.0.0.1/hook",
        "gopher://example.com/",
        "https://a:b@example.com/",
        "https:///nohost",
    ],
)
async def test_refused_before_connecting(url: str) -> None:
    strict = SendPolicy(timeout_seconds=2.0)
    assert (await refused(url, strict)).code == "refused_url"


async def test_loopback_names_are_checked_after_resolving() -> None:
    # "localhost" resolves to loopback: refused unless loopback is allowed
    error = await refused("https://localhost:9/hook", SendPolicy(timeout_seconds=2.0))
    assert error.code == "refused_url" and "non-public" in error.message


async def test_allowed_networks_open_a_private_range_to_https_only() -> None:
    policy = SendPolicy(
        timeout_seconds=0.3, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    # https to the allowed range is attempted (nothing listens on port 9: unreachable)
    assert (await refused("https://127.0.0.1:9/hook", policy)).code == "unreachable"
    assert (await refused("http://127.0.0.1:9/hook", policy)).code == "refused_url"


async def test_redirects_errors_and_oversized_answers_fail() -> None:
    cases = [
        (
            b"HTTP/1.1 301 Moved\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n",
            "redirect",
        ),
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", "503"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, "over 1000"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"800\r\n" + b"x" * 2048,
            "over",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000, "over 1000"),
        (b"SMTP ready\r\n\r\n", "not HTTP"),
    ]
    for raw, words in cases:
        async with answering(replying(raw)) as port:
            error = await refused(f"http://127.0.0.1:{port}/hook")
            assert error.code == "bad_response" and words in error.message, (raw[:30], error)


async def test_answers_within_limits_are_read() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with answering(replying(chunked)) as port:
        answer = await post(f"http://127.0.0.1:{port}/", body=b"{}", headers={}, policy=LOOPBACK)
        assert (answer.status, answer.body) == (200, b"abcde")


async def test_a_silent_callback_times_out() -> None:
    async def never(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    policy = SendPolicy(timeout_seconds=0.3, allow_loopback=True)
    async with answering(never) as port:
        loop = asyncio.get_running_loop()
        started = loop.time()
        error = await refused(f"http://127.0.0.1:{port}/hook", policy)
        assert error.code == "unreachable" and loop.time() - started < 2.0


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for ``localhost`` and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_verifies_the_name_on_the_pinned_address(tmp_path: Path) -> None:
    server_tls, client_tls = _certificate(tmp_path)
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readexactly(2))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    policy = SendPolicy(timeout_seconds=2.0, allow_loopback=True, ssl_context=client_tls)
    body = b"{}"
    headers = signing.headers(
        secret="k", message_id="m1", timestamp=1, kind="notification", event_type="gift", body=body
    )
    async with answering(record, tls=server_tls) as port:
        answer = await post(
            f"https://localhost:{port}/hook", body=body, headers=headers, policy=policy
        )
        assert answer.status == 204 and seen == [body]
        # the certificate is for "localhost": the same server by address fails TLS
        error = await refused(f"https://127.0.0.1:{port}/hook", policy)
        assert error.code == "unreachable"

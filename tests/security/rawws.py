"""A WebSocket client over a plain socket, driven by hand (websockets' sans-I/O
``ClientProtocol``): it can stop reading, never answer a ping, or send frames no
well-behaved library would, which is what the security tests need."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri


class RawClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.response: Response | None = None
        self.frames: list[Frame] = []
        self.eof = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        subprotocol: str = "gift.v1.json",
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
    ) -> RawClient:
        """Open the TCP connection and send the upgrade request (no waiting for the
        response: a client that never reads never gets it either)."""
        uri = parse_uri(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        protocol = ClientProtocol(
            uri,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            max_size=None,
        )
        request = protocol.connect()
        for name, value in (headers or {}).items():
            request.headers[name] = value
        protocol.send_request(request)
        client = cls(reader, writer, protocol)
        client.flush()
        return client

    def flush(self) -> None:
        """Write whatever the protocol wants to send (pongs included)."""
        data = b"".join(self.protocol.data_to_send())
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def send_frame(self, opcode: Opcode, payload: bytes) -> None:
        """Send one data frame with any payload (even invalid UTF-8 in a text frame)."""
        if opcode is Opcode.TEXT:
            self.protocol.send_text(payload)
        else:
            self.protocol.send_binary(payload)
        self.flush()

    async def read_some(self, timeout: float, *, answer_pings: bool = True) -> bool:
        """Read what arrives within ``timeout``; False at end of stream."""
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        except TimeoutError:
            return True
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            self.protocol.receive_eof()
        else:
            self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):
                self.frames.append(event)
        if answer_pings:
            self.flush()
        return not self.eof

    async def read_until_closed(self, timeout: float, *, answer_pings: bool = True) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError("the server did not close the connection in time")
            await self.read_some(min(left, 0.5), answer_pings=answer_pings)

    @property
    def close_code(self) -> int | None:
        for frame in self.frames:
            if frame.opcode is Opcode.CLOSE:
                return Close.parse(frame.data).code
        return None

    def data_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.opcode in (Opcode.TEXT, Opcode.BINARY)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


async def raw_http(host: str, port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        chunks: list[bytes] = []
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(1 << 16):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.transport.abort()


def status_of(response: bytes) -> int:
    line = response.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0

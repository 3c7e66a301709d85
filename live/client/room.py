"""``LiveRoom``: one viewer's (or overlay's) connection to a live room, kept up
across drops. See the package's docstring for the rules it follows."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

Event = dict[str, Any]
Listener = Callable[..., Any]
TokenHook = Callable[[], "Awaitable[str] | str"]

RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 4008})
"""Close codes after which a client comes back, with ``since`` (PROTOCOL.md section 8)."""
CLIENT_RECONNECT = 4000
"""The close code ``reconnect()`` uses for a drop the client asks for itself."""
SUBPROTOCOLS = {"json": "gift.v1.json", "msgpack": "gift.v1.msgpack"}
_RETRYABLE = frozenset({"rate_limited", "internal", "timeout", "connection_lost"})


class LiveError(Exception):
    """A command the server refused (``code`` is a protocol error code), or one that
    got no reply: ``connection_lost``, ``timeout``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        id: str | None = None,
        command: Event | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.id = id
        self.command = command
        """The command, to send again with the same id."""
        self.close_code = close_code

    @property
    def retryable(self) -> bool:
        """The server says: send again later with the same id."""
        return self.code in _RETRYABLE

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def new_id(prefix: str = "") -> str:
    """A random command id."""
    return prefix + secrets.token_hex(12)


def token_expiry(token: str) -> float | None:
    """A JWT's ``exp`` (seconds since the epoch), unchecked: only to know when to renew."""
    parts = token.split(".")
    if len(parts) < 2:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


@dataclass
class _Pending:
    command: Event
    future: asyncio.Future[Event]
    renew_on_expiry: bool


class LiveRoom:
    """A live room connection: events through ``on(type, listener)`` or ``async for``,
    commands as coroutines that return the ``ack`` or raise ``LiveError``.

    Listener types: ``event`` (every room event and overlay test event, once each,
    in order), each event type (``gift``, ``like``, …), ``welcome`` (``welcome,
    info``), ``snapshot`` (a welcome that replaces your state: history was too
    short to resume), ``status`` (``status, detail``), ``error`` (an error event
    not about one of your commands), ``closed`` (final: ``{code, reason, error}``).
    """

    def __init__(
        self,
        url: str,
        room_id: str,
        *,
        token: str = "",
        overlay_key: str = "",
        encoding: str = "json",
        refresh_token: TokenHook | None = None,
        persistent: bool = False,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        stable_after: float = 10.0,
        reply_timeout: float = 15.0,
        ended_delay: float = 5.0,
        refresh_before: float = 60.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not room_id:
            raise ValueError("room_id is required")
        if encoding not in SUBPROTOCOLS:
            raise ValueError("encoding is json or msgpack")
        if token and overlay_key:
            raise ValueError("connect with a token or an overlay key, not both")
        self.base = url
        self.room_id = room_id
        self.token = token
        self.overlay_key = overlay_key
        self.encoding = encoding
        self.refresh_token = refresh_token
        self.persistent = persistent
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.reply_timeout = reply_timeout
        self.ended_delay = ended_delay
        self.refresh_before = refresh_before
        self.rng = rng
        self.last_seq: int | None = None
        """The last ``seq`` seen: what a reconnect passes as ``since``."""
        self.welcome: Event | None = None
        self.status = "idle"
        self.final_close: int | None = None
        """The close code after which this room won't come back."""
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._live = False
        self._forced = False
        self._stopped = False
        self._delay = first_delay
        self._pending: dict[str, _Pending] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._queues: set[asyncio.Queue[Event | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[Event | None] | None = None
        self._last_error: Event | None = None
        self._retried_handshake = False
        self._background: set[asyncio.Task[Any]] = set()

    # -- events ---------------------------------------------------------------------

    def on(self, kind: str, listener: Listener) -> Callable[[], None]:
        """Listen to ``kind``; returns a function that stops listening."""
        self._listeners.setdefault(kind, []).append(listener)
        return lambda: self.off(kind, listener)

    def off(self, kind: str, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.get(kind, []).remove(listener)

    def _emit(self, kind: str, *args: Any) -> None:
        for listener in list(self._listeners.get(kind, [])):
            listener(*args)

    async def events(self) -> AsyncIterator[Event]:
        """Every room event (and ``welcome``) from now on, until the room closes."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        if self.final_close is not None:
            return
        self._queues.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._queues.discard(queue)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    def _publish(self, event: Event | None) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    # -- the connection -------------------------------------------------------------

    def url(self) -> str:
        """The WebSocket URL of the next connection."""
        parts = urlsplit(self.base)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        query: dict[str, str] = {}
        if self.token:
            query["access_token"] = self.token
        if self.overlay_key:
            query["overlay_key"] = self.overlay_key
        if self.last_seq is not None:
            query["since"] = str(self.last_seq)
        path = f"/v1/rooms/{quote(self.room_id, safe='')}/live"
        return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))

    async def connect(self) -> Event:
        """Open the connection (and keep it open). Returns the first ``welcome``;
        raises ``LiveError`` when the room closes before one."""
        if self._live and self.welcome is not None:
            return self.welcome  # connected already
        loop = asyncio.get_running_loop()
        first: asyncio.Future[Event] = loop.create_future()

        def welcomed(welcome: Event, _info: Event) -> None:
            if not first.done():
                first.set_result(welcome)

        def closed(detail: Event) -> None:
            if not first.done():
                error = detail.get("error") or {}
                first.set_exception(
                    LiveError(
                        error.get("code", "connection_lost"),
                        error.get("message", f"closed with {detail['code']}"),
                        close_code=detail["code"],
                    )
                )

        offs = [self.on("welcome", welcomed), self.on("closed", closed)]
        self.open()
        try:
            return await first
        finally:
            for off in offs:
                off()

    def open(self) -> None:
        """Start connecting in the background; after ``close()``, come back after the
        last ``seq`` seen (a ``snapshot`` when the history no longer reaches it)."""
        if self._task is not None and not self._task.done():
            return
        self._stopped = False
        self.final_close = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reconnect(self) -> None:
        """Drop the connection and resume at once, as after a network drop."""
        if self._ws is not None:
            self._forced = True
            self._spawn(self._ws.close(CLIENT_RECONNECT, "reconnect"))

    async def close(self) -> None:
        """Close for good: pending commands fail with ``connection_lost``."""
        self._stopped = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(1000)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._background):
            task.cancel()
        self._finish(1000, "closed by the client")

    async def __aenter__(self) -> LiveRoom:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _set_status(self, status: str, detail: Any = None) -> None:
        self.status = status
        self._emit("status", status, detail)

    async def _run(self) -> None:
        while not self.stopped():
            self._set_status("connecting" if self.connections == 0 else "reconnecting")
            try:
                code, reason = await self._session()
            except InvalidURI as error:  # no connection can ever be made: final
                self._last_error = {"type": "error", "id": None, "code": "bad_request"}
                self._last_error["message"] = str(error)
                self._finish(1006, str(error))
                return
            self._live = False
            self._ws = None
            for command_id, entry in list(self._pending.items()):
                if entry.command["type"] != "send_gift":
                    self._settle(command_id, error=self._lost(entry.command, "dropped", code))
            if self.stopped():  # close() ran meanwhile
                return
            refused = (
                code == 1008
                and (self._last_error or {}).get("code") == "unauthorized"
                and not self._retried_handshake
                and bool(self.token)
            )
            if self.refresh_token is not None and (code == 4001 or refused):
                # Expired (4001), or refused at the handshake: once, with a fresh token.
                self._retried_handshake = self._retried_handshake or refused
                before = self.token
                with contextlib.suppress(Exception):
                    await self.renew()
                if self.token == before:
                    self._finish(code, "no fresh token")
                    return
                self._last_error = None
                continue
            again = (
                code in RECONNECT_CODES
                or code == CLIENT_RECONNECT
                or (self.persistent and code == 4010)
            )
            if not again:
                self._finish(code, reason)
                return
            floor = self.ended_delay if code == 4010 else 0.0
            wait = 0.0 if code == CLIENT_RECONNECT else max(floor, self._delay * (0.5 + self.rng()))
            self._delay = min(self._delay * 2, self.max_delay)
            self._set_status("reconnecting", {"code": code, "wait": wait})
            await asyncio.sleep(wait)

    async def _session(self) -> tuple[int, str]:
        """One connection, until it closes: its close code and reason."""
        loop = asyncio.get_running_loop()
        stable: asyncio.TimerHandle | None = None
        self._forced = False
        try:
            async with connect(
                self.url(),
                subprotocols=[SUBPROTOCOLS[self.encoding]],  # type: ignore[list-item]
                open_timeout=10,
                max_size=2**24,
            ) as ws:
                self._ws = ws
                stable = loop.call_later(self.stable_after, self._reset_delay)
                async for message in ws:
                    if not await self._receive(ws, message):
                        self._forced = True  # a gap: resume from the last seq we have
                        await ws.close(CLIENT_RECONNECT, "gap")
                        break
            code = ws.close_code or 1006
            reason = ws.close_reason or ""
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            reason = closed.rcvd.reason if closed.rcvd is not None else ""
        except (OSError, InvalidHandshake, TimeoutError) as error:
            code, reason = 1006, str(error)
        finally:
            if stable is not None:
                stable.cancel()
        return (CLIENT_RECONNECT if self._forced else code), reason

    def stopped(self) -> bool:
        """``close()`` was called."""
        return self._stopped

    def _reset_delay(self) -> None:
        self._delay = self.first_delay

    def _decode(self, message: str | bytes) -> Any:
        if isinstance(message, str):
            return json.loads(message)
        if self.encoding == "msgpack":
            return msgpack.unpackb(message, raw=False)
        return json.loads(message)

    def _encode(self, command: Event) -> str | bytes:
        if self.encoding == "msgpack":
            packed: bytes = msgpack.packb(command, use_bin_type=True)
            return packed
        return json.dumps(command, ensure_ascii=False)

    async def _receive(self, ws: ClientConnection, message: str | bytes) -> bool:
        """Dispatch a frame's events; False on a gap."""
        try:
            events = self._decode(message)
        except ValueError:
            return True
        if not isinstance(events, list):
            return True
        for event in events:
            if isinstance(event, dict) and not await self._dispatch(event):
                return False
        return True

    async def _dispatch(self, event: Event) -> bool:
        kind = event.get("type")
        if kind == "welcome":
            await self._welcomed(event)
            return True
        if kind == "ack":
            self._settle(str(event.get("id")), ack=event)
            return True
        if kind == "error":
            command_id = event.get("id")
            if isinstance(command_id, str) and command_id in self._pending:
                self._refused(event)
            else:
                self._last_error = event
                self._emit("error", event)
                self._set_status("error", event)
            return True
        seq = event.get("seq")
        if isinstance(seq, int) and self.last_seq is not None:
            if seq <= self.last_seq:
                return True  # seen already
            if seq > self.last_seq + 1:
                return False
        if isinstance(seq, int):
            self.last_seq = seq
        self._emit("event", event)
        if isinstance(kind, str):
            self._emit(kind, event)
        self._publish(event)
        return True

    async def _welcomed(self, welcome: Event) -> None:
        self.connections += 1
        self._last_error = None
        self._retried_handshake = False
        self._live = True
        resumed = welcome.get("resumed") is True
        snapshot = not resumed and self.last_seq is not None
        if not resumed or self.last_seq is None:
            self.last_seq = welcome.get("seq")
        self.welcome = welcome
        info = {"resumed": resumed, "first": self.connections == 1, "snapshot": snapshot}
        self._emit("welcome", welcome, info)
        self._publish(welcome)
        if snapshot:
            self._emit("snapshot", welcome)
        self._set_status("live", welcome)
        self._schedule_refresh()
        for entry in list(self._pending.values()):
            await self._transmit(entry.command)

    def _finish(self, code: int, reason: str) -> None:
        """The room won't come back: fail what is pending, say so once."""
        if self._refresh_task is not None:
            self._refresh_task.cancel()
        for command_id, entry in list(self._pending.items()):
            self._settle(command_id, error=self._lost(entry.command, "closed", code))
        if self.final_close is not None:
            return
        self.final_close = code
        self._live = False
        detail = {"code": code, "reason": reason, "error": self._last_error}
        self._set_status("closed", detail)
        self._emit("closed", detail)
        self._publish(None)

    @staticmethod
    def _lost(command: Event, why: str, close_code: int | None) -> LiveError:
        if close_code == 4010:
            return LiveError(
                "room_not_live", "the stream has ended", id=command["id"], command=command
            )
        return LiveError(
            "connection_lost",
            f"the connection {why}",
            id=command["id"],
            command=command,
            close_code=close_code,
        )

    # -- tokens ---------------------------------------------------------------------

    def _schedule_refresh(self) -> None:
        current = asyncio.current_task()
        if self._refresh_task is not None and self._refresh_task is not current:
            self._refresh_task.cancel()
        self._refresh_task = None
        exp = token_expiry(self.token) if self.token and self.refresh_token else None
        if exp is None:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, exp - time.time() - self.refresh_before)

        async def refresh() -> None:
            await asyncio.sleep(wait)
            with contextlib.suppress(LiveError):
                await self.renew()

        self._refresh_task = loop.create_task(refresh())

    async def renew(self) -> Event | None:
        """Ask ``refresh_token`` for a fresh token and renew the connection with it.
        Concurrent callers share one refresh."""
        hook = self.refresh_token
        if hook is None:
            raise LiveError("unauthorized", "no refresh_token hook")
        if self._refreshing is None or self._refreshing.done():

            async def refresh() -> Event | None:
                fresh = hook()
                token = await fresh if inspect.isawaitable(fresh) else fresh
                if not token:
                    raise LiveError("unauthorized", "refresh_token gave no token")
                return await self.renew_token(token)

            self._refreshing = asyncio.get_running_loop().create_task(refresh())
        return await asyncio.shield(self._refreshing)

    async def renew_token(self, token: str) -> Event | None:
        """Replace the access token: on the open connection with an ``auth`` command
        (same user), and for every reconnect from now on. Returns the ``ack``, or
        None when not connected (the next connection uses the token)."""
        self.token = token
        self._schedule_refresh()
        if not self._live:
            return None
        return await self.send("auth", {"token": token}, renew_on_expiry=False)

    # -- commands -------------------------------------------------------------------

    async def send(
        self,
        kind: str,
        fields: Event | None = None,
        *,
        id: str | None = None,
        renew_on_expiry: bool = True,
    ) -> Event:
        """Send a command; returns its ``ack``, raises ``LiveError``."""
        command_id = id or new_id(kind[:1] + "-")
        command: Event = {"type": kind, "id": command_id, **(fields or {})}
        if command_id in self._pending:
            raise LiveError(
                "conflict", "a command with this id is waiting for its reply", id=command_id
            )
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = _Pending(command, future, renew_on_expiry)
        if self._live:
            await self._transmit(command)
        elif self.final_close is not None or self._stopped:
            self._settle(command_id, error=self._lost(command, "closed", self.final_close))
        elif kind != "send_gift":
            self._settle(command_id, error=self._lost(command, "is not open", None))
        # a gift waits for the next welcome, which sends it
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.reply_timeout)
        except TimeoutError:
            self._pending.pop(command_id, None)
            raise LiveError(
                "timeout", "no reply from the server", id=command_id, command=command
            ) from None

    async def _transmit(self, command: Event) -> None:
        ws = self._ws
        if ws is not None and self._live:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(self._encode(command))

    def _refused(self, error: Event) -> None:
        command_id = str(error["id"])
        entry = self._pending[command_id]
        if (
            error.get("code") == "unauthorized"
            and entry.renew_on_expiry
            and self.refresh_token is not None
            and self.token
            and entry.command["type"] != "auth"
        ):
            # The token expired: renew it, then send the command again (it ran nowhere).
            entry.renew_on_expiry = False

            async def renew_and_resend() -> None:
                try:
                    await self.renew()
                except LiveError:
                    self._settle(command_id, error=self._error(error, entry.command))
                    return
                await self._transmit(entry.command)

            self._spawn(renew_and_resend())
            return
        self._settle(command_id, error=self._error(error, entry.command))

    @staticmethod
    def _error(error: Event, command: Event | None) -> LiveError:
        return LiveError(
            str(error.get("code")), str(error.get("message", "")), id=error["id"], command=command
        )

    def _settle(
        self, command_id: str, *, ack: Event | None = None, error: LiveError | None = None
    ) -> None:
        entry = self._pending.pop(command_id, None)
        if entry is None or entry.future.done():
            return
        if error is not None:
            entry.future.set_exception(error)
        else:
            entry.future.set_result(ack or {})

    async def send_gift(
        self, gift: str, *, count: int = 1, coins: int | None = None, id: str | None = None
    ) -> Event:
        """Send a gift. Its id is its idempotency key: it is sent again with the same
        id after a drop, and charged once. ``coins`` is the price of one you showed
        the user: a changed price fails with ``price_changed``, charging nothing."""
        fields: Event = {"gift": gift, "count": count}
        if coins is not None:
            fields["coins"] = coins
        return await self.send("send_gift", fields, id=id or new_id("g-"))

    async def like(self, count: int = 1) -> Event:
        return await self.send("like", {"count": count})

    async def chat(self, text: str) -> Event:
        return await self.send("chat", {"text": text})

    async def ping(self) -> Event:
        return await self.send("ping")

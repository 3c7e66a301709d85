"""The WebSocket endpoint ``/v1/rooms/{room_id}/live``.

The handshake, auth and the welcome run here, through ASGI; the room's events
reach the socket through the hub's sinks (see ``live.realtime.sinks``). On ``live
serve``'s own WebSocket protocol the connection is then handed over: the ASGI
call returns, and the client's commands arrive as callbacks (``Commands``), so
an idle viewer keeps no task and no coroutine stack. On any other ASGI server
the endpoint reads the commands itself until the client leaves.

What the commands do (a gift, a chat line, a like) is ``live.actions``; what a
signed-in connection's token allows as it expires, and the ``auth`` command that
renews it, is ``live.realtime.expiry``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket

from live.actions.node import Actions
from live.auth import AuthError, bearer_token
from live.checks import ROOM_ID
from live.errors import BANNED, LiveError, error_code
from live.identity.service import Identity
from live.identity.verifier import Verified
from live.limits import ConnectionGuard, Refusal, set_send_buffer
from live.realtime.expiry import acting_user, lease_for, reauthenticate
from live.realtime.hub import Connection
from live.realtime.pacing import ConnectionPacer, pace_option
from live.realtime.sinks import RAW_EXTENSION, AsgiSink, Sink
from protocol import (
    AlertDone,
    Auth,
    Chat,
    CloseCode,
    Command,
    CommandReader,
    Like,
    Ping,
    Reject,
    SendGift,
    negotiate,
)
from protocol import Close as CloseDecision
from protocol import events as ev
from store.domain.models import Profile
from store.domain.refusals import ROOM_NOT_FOUND

if TYPE_CHECKING:  # only ``live serve`` installs it; other servers run without it
    from live.realtime.uvicorn_glue import RawWebSocket

log = logging.getLogger("live.ws")


async def live_endpoint(websocket: WebSocket) -> None:
    started = time.perf_counter()
    actions: Actions = websocket.app.state.actions
    settings = actions.settings
    metrics = actions.metrics
    codec, subprotocol = negotiate(websocket.scope.get("subprotocols", []))
    room_id = websocket.path_params["room_id"]
    query = websocket.query_params
    identity: Identity = websocket.app.state.identity
    guard: ConnectionGuard = websocket.app.state.guard
    if not guard.origin_allowed(
        websocket.headers.getlist("origin"), host=websocket.headers.get("host")
    ):
        # Before the upgrade: the browser gets 403 and the page learns nothing.
        metrics.refused.labels("origin").inc()
        log.info("refused a WebSocket handshake from origin %.100r", websocket.headers["origin"])
        await websocket.close(CloseCode.POLICY)
        return

    async def refuse(code: str, message: str, close_code: int) -> None:
        await websocket.accept(subprotocol=subprotocol)
        payload = codec.encode([ev.error(id=None, code=code, message=message)])
        if codec.binary:
            await websocket.send_bytes(payload)
        else:
            await websocket.send_text(payload.decode())
        metrics.closes.labels(str(close_code)).inc()
        await websocket.close(close_code, message[:120])

    if not ROOM_ID.match(room_id):
        await refuse("not_found", ROOM_NOT_FOUND.template, CloseCode.ROOM_NOT_FOUND)
        return
    profile: Profile | None = None
    verified: Verified | None = None
    token = query.get("access_token") or bearer_token(websocket.headers.get("authorization"))
    if token:
        try:
            verified = await identity.authenticate(token)
        except AuthError as exc:
            await refuse("unauthorized", str(exc), CloseCode.POLICY)
            return
        profile = verified.profile
    room = await actions.rooms.for_handshake(room_id)  # read once for a crowd
    if profile is not None:
        # equipped badge and name style: in the welcome's `you` and the `join` event
        profile = await actions.items.looks.dress(profile)
    if room is None:
        await refuse("not_found", ROOM_NOT_FOUND.template, CloseCode.ROOM_NOT_FOUND)
        return
    overlay = False
    overlay_key = query.get("overlay_key")
    if overlay_key is not None:
        if not hmac.compare_digest(overlay_key.encode(), room.overlay_key.encode()):
            await refuse("unauthorized", "bad overlay key", CloseCode.POLICY)
            return
        overlay = True
    activity = actions.activity
    if profile is not None and not overlay and await actions.rooms.is_banned(room_id, profile.id):
        await refuse("forbidden", BANNED, CloseCode.POLICY)
        return
    since: int | None = None
    raw_since = query.get("since")
    if raw_since is not None:
        if not raw_since.isdigit() or len(raw_since) > 18:
            await refuse("bad_request", "since must be a non-negative integer", CloseCode.POLICY)
            return
        since = int(raw_since)
    pace = pace_option(query.get("pace"))
    if pace is None:
        await refuse("bad_request", "pace must be 0 or 1", CloseCode.POLICY)
        return
    ticket = guard.admit(
        user_id=profile.id if profile else None,
        ip=websocket.client.host if websocket.client else "",
        room_id=room_id,
        viewer=not overlay,
    )
    if isinstance(ticket, Refusal):
        metrics.refused.labels(ticket.reason).inc()
        await refuse(ticket.code, ticket.message, ticket.close_code)
        return

    try:
        await websocket.accept(subprotocol=subprotocol)
    except BaseException:
        guard.release(ticket)
        raise
    raw = websocket.scope.get("extensions", {}).get(RAW_EXTENSION)
    if raw is not None:
        set_send_buffer(raw.transport, settings.socket_send_buffer_bytes)
    sink: Sink = (
        raw.sink()
        if raw is not None
        else AsgiSink(websocket.send, limit_bytes=settings.send_buffer_bytes)
    )
    conn = Connection(
        session=secrets.token_urlsafe(12),
        room_id=room_id,
        codec=codec,
        sink=sink,
        profile=profile,
        overlay=overlay,
    )
    hub = actions.hub
    if pace:
        conn.pacer = ConnectionPacer.of(conn, settings)
    if verified is not None and not overlay:
        close = settings.expired_token == "close"
        conn.lease = lease_for(conn, identity, verified.expires_at, hub=hub, close=close)
    handed_over = False
    try:
        channel = await hub.open_channel(room_id)  # its board: the welcome's leaderboard, goal
        leaderboard, goal, stats = await actions.rooms.welcome_reads(
            room, board=channel.board, overlay=overlay
        )
        stream_effect = await actions.rooms.stream_effect(room)
        await activity.prepare_welcome(room_id)
        plan = await hub.join(conn, since=since)
        # No await from here to attach: the welcome's seq is the stream's start.
        welcome = ev.welcome(
            session=conn.session,
            room=room.public(),
            you=profile.public() if profile else None,
            seq=conn.cursor,
            viewers=activity.viewers(room_id) + (0 if overlay else 1),
            leaderboard=leaderboard,
            goal=goal,
            resumed=plan.resumed,
            catalog_version=actions.engine.catalog.version,
            stream_effect=stream_effect,
        )
        if stats is not None:  # creator-only detail: the stream's running totals
            welcome["overlay"] = {"stream": stats.public()}
        hub.attach(conn, plan, welcome)
        metrics.handshake_seconds.observe(time.perf_counter() - started)
        if conn.lease is not None:
            conn.lease.arm()
        activity.joined(conn, resumed=plan.resumed)
        if profile is not None and not overlay and not plan.resumed:
            actions.items.joined(profile, room_id)  # the entrance effect, if equipped
        if (
            profile is not None
            and not overlay
            and await actions.rooms.is_banned(room_id, profile.id)
        ):
            # banned while this connection was being set up: the kick may have missed it
            conn.send([ev.error(id=None, code="forbidden", message=BANNED)])
            hub.close_connection(conn, CloseCode.POLICY, "banned")
        if raw is not None and not conn.closed:

            def leave() -> None:
                guard.release(ticket)
                hub.leave(conn)
                activity.left(conn)

            commands = Commands(actions, conn, raw, leave)
            raw.hand_over(commands.receive, commands.disconnected)
            handed_over = True
            return
        await _read_commands(websocket, actions, conn)
    finally:
        if not handed_over:
            guard.release(ticket)
            hub.leave(conn)
            activity.left(conn)
            if isinstance(sink, AsgiSink):
                await sink.finish(timeout=1.0)


async def _read_commands(websocket: WebSocket, actions: Actions, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    reader = CommandReader(codec=conn.codec, limits=actions.settings.limits(), now=loop.time())
    while not conn.closed:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            conn.closed = True
            return
        data = message.get("bytes")
        if data is None:
            data = message.get("text", "")
        actions.metrics.events_in.inc()
        result = reader.receive(data, now=loop.time())
        waiting = _answer_at_once(actions, conn, result)
        if isinstance(result, CloseDecision):
            return
        if waiting is not None:
            conn.send([await _execute(actions, conn, waiting)])


def _answer_at_once(
    actions: Actions, conn: Connection, result: Command | Reject | CloseDecision
) -> SendGift | Chat | Auth | None:
    """Do what a command reader does without waiting on the engine: answer a bad
    frame, close, queue a like (likes are published once per tick, so the next
    command need not wait), answer a ping. Returns the command that must wait."""
    if isinstance(result, Reject):
        conn.send([result.error])
    elif isinstance(result, CloseDecision):
        if result.error is not None:
            conn.send([result.error])
        actions.hub.close_connection(conn, result.code, result.reason)
    elif isinstance(result, Like):
        _reply_later(actions, conn, result)
    elif isinstance(result, Ping):
        conn.send([ev.ack(id=result.id)])
    elif isinstance(result, AlertDone):
        conn.send([ConnectionPacer.answer(conn, result)])
    else:
        return result
    return None


class Commands:
    """The command reader of a handed-over connection (``RawWebSocket.hand_over``).

    Frames arrive as calls to ``receive``; what can be answered at once is (a ping,
    a bad command); a command that waits on the engine (a gift, a chat line) runs
    in a task of its own, and the connection reads no more until it is answered:
    one command at a time, in order, as the ASGI read loop does it."""

    __slots__ = ("_actions", "_backlog", "_busy", "_conn", "_leave", "_raw", "_reader")

    def __init__(
        self, actions: Actions, conn: Connection, raw: RawWebSocket, leave: Callable[[], None]
    ) -> None:
        self._actions = actions
        self._conn = conn
        self._raw = raw
        self._leave = leave
        loop = asyncio.get_running_loop()
        self._reader = CommandReader(
            codec=conn.codec, limits=actions.settings.limits(), now=loop.time()
        )
        self._busy = False
        self._backlog: deque[str | bytes] = deque()

    def receive(self, data: str | bytes) -> None:
        if self._conn.closed:
            return
        if self._busy or self._backlog:
            self._backlog.append(data)
            self._raw.pause_reading()
            return
        self._handle(data)

    def disconnected(self, code: int) -> None:
        self._conn.closed = True
        self._backlog.clear()
        self._leave()

    def _handle(self, data: str | bytes) -> None:
        actions, conn = self._actions, self._conn
        try:
            actions.metrics.events_in.inc()
            loop = asyncio.get_running_loop()
            result = self._reader.receive(data, now=loop.time())
            waiting = _answer_at_once(actions, conn, result)
            if waiting is not None:
                self._busy = True
                self._raw.track(loop.create_task(self._run(waiting)))
        except Exception:
            log.exception("reading a command failed", extra=conn.log_context())
            actions.hub.close_connection(conn, CloseCode.INTERNAL_ERROR, "internal error")

    async def _run(self, command: SendGift | Chat | Auth) -> None:
        try:
            self._conn.send([await _execute(self._actions, self._conn, command)])
        finally:
            self._busy = False
            while self._backlog and not self._busy and not self._conn.closed:
                self._handle(self._backlog.popleft())
            if not self._busy:
                self._raw.resume_reading()


_REPLYING: set[asyncio.Task[None]] = set()


def _reply_later(actions: Actions, conn: Connection, command: Like) -> None:
    async def reply() -> None:
        conn.send([await _execute(actions, conn, command)])

    task = asyncio.get_running_loop().create_task(reply())
    _REPLYING.add(task)
    task.add_done_callback(_REPLYING.discard)


async def _execute(
    actions: Actions, conn: Connection, command: SendGift | Like | Chat | Ping | Auth
) -> dict[str, object]:
    """Run a command and time it, received to answered (``live_ack_seconds``)."""
    started = time.perf_counter()
    try:
        return await _execute_command(actions, conn, command)
    finally:
        kind = COMMAND_KINDS.get(type(command), "other")
        metrics = actions.metrics
        metrics.series(metrics.ack_seconds, kind).observe(time.perf_counter() - started)


COMMAND_KINDS: dict[type, str] = {SendGift: "gift", Chat: "chat", Auth: "auth", Like: "like"}


async def _execute_command(
    actions: Actions, conn: Connection, command: SendGift | Like | Chat | Ping | Auth
) -> dict[str, object]:
    if isinstance(command, Ping):
        return ev.ack(id=command.id)
    if isinstance(command, Auth):
        return await reauthenticate(conn, command)
    sender = acting_user(conn, command.id)
    if not isinstance(sender, Profile):
        return sender  # the refusal
    try:
        if isinstance(command, SendGift):
            receipt = await actions.gifts.send(
                sender=sender,
                room_id=conn.room_id,
                gift_id=command.gift,
                count=command.count,
                key=command.id,
                shown_coins=command.coins,
            )
            return ev.ack(
                id=command.id,
                tx=receipt.tx,
                balance={"coins": receipt.balance},
                replayed=receipt.replayed,
            )
        if isinstance(command, Chat):
            await actions.rooms.chat(
                sender=sender, room_id=conn.room_id, message_id=command.id, text=command.text
            )
            return ev.ack(id=command.id)
        total = await actions.rooms.like(sender=sender, room_id=conn.room_id, count=command.count)
        return ev.ack(id=command.id, total=total)
    except (LiveError, Exception) as exc:
        code, message = error_code(exc)
        if code == "internal":
            log.exception("command %s failed", type(command).__name__, extra=conn.log_context())
        return ev.error(id=command.id, code=code, message=message)

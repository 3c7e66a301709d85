"""Alert pacing on a live connection that asked for it (``pace=1``).

The rules (what goes next, the backlog cap and its summary) are the pure
``protocol.pacing.AlertPacer``; this wires it to a connection: the hub hands it
the room events the connection was sent (``Connection.pacer``), alerts go out
as per-connection events, ``alert_done`` frees the screen, and a timer sends
the next alert when the client never says it finished.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from protocol import AlertDone
from protocol import events as ev
from protocol.events import Event
from protocol.pacing import AlertPacer

if TYPE_CHECKING:
    from live.realtime.hub import Connection
    from live.settings import Settings


def pace_option(raw: str | None) -> bool | None:
    """The ``pace`` query parameter: absent or ``0`` off, ``1`` on, None if invalid."""
    if raw is None or raw == "0":
        return False
    return True if raw == "1" else None


class ConnectionPacer:
    """One paced connection's alerts: called with what it receives, and on ``alert_done``."""

    __slots__ = ("_conn", "_pacer", "_timer")

    def __init__(self, conn: Connection, *, backlog: int, timeout_seconds: float) -> None:
        self._conn = conn
        self._pacer = AlertPacer(backlog=backlog, timeout_seconds=timeout_seconds)
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, conn: Connection, settings: Settings) -> ConnectionPacer:
        return cls(
            conn,
            backlog=settings.overlay_alert_backlog,
            timeout_seconds=settings.overlay_alert_timeout_seconds,
        )

    @staticmethod
    def answer(conn: Connection, command: AlertDone) -> Event:
        """The reply to ``alert_done``: an ``ack`` (also for an alert that already
        timed out, so a late client isn't scolded), or an error when the
        connection never asked for pacing."""
        if conn.pacer is None:
            return ev.error(
                id=command.id,
                code="bad_request",
                message="this connection is not paced; connect with pace=1",
            )
        conn.pacer.done(command.alert)
        return ev.ack(id=command.id)

    def __call__(self, events: list[Event]) -> None:
        """Room or overlay events this connection was just sent."""
        self._pacer.offer(events)
        self._send_next()

    def done(self, alert_id: str) -> bool:
        """The client finished ``alert_id``; the next alert goes out at once."""
        if not self._pacer.done(alert_id):
            return False
        self._send_next()
        return True

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_next(self) -> None:
        if self._conn.closed:
            self.stop()
            return
        loop = asyncio.get_running_loop()
        alert = self._pacer.next_alert(loop.time())
        if alert is not None:
            self._conn.send([alert])
        deadline = self._pacer.deadline
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = loop.call_at(deadline, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._send_next()

"""The inbound side of one connection, as a state machine without I/O.

The hub feeds it each frame's payload with the current monotonic time and
acts on the answer: run the command, send the rejection, or close. Keeping the
clock outside makes rate limiting exact to test and cheap to run.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.codec import Codec
from protocol.commands import Command, Limits, command_id_of, parse_command
from protocol.errors import CloseCode, ErrorCode, FrameTooLarge, InvalidCommand, MalformedFrame
from protocol.events import Event, error

__all__ = ["Close", "CommandReader", "Reject"]


@dataclass(frozen=True, slots=True)
class Reject:
    """Send ``error`` to this client and keep the connection open."""

    error: Event


@dataclass(frozen=True, slots=True)
class Close:
    """Send ``error`` (when there is one), then close the connection with ``code``."""

    code: CloseCode
    reason: str
    error: Event | None = None


class CommandReader:
    """Decodes, rate limits and validates the commands of one connection.

    Every decodable map takes a token from a bucket refilled at
    ``Limits.command_rate`` per second and holding ``Limits.command_burst``;
    invalid commands pay too, so junk can't be sent faster than real commands.
    Without a token the command is rejected with ``rate_limited`` and counts a
    strike; ``Limits.flood_strikes`` strikes in a row close the connection
    with 4029. Once a ``Close`` is returned, every later call returns it again.
    """

    __slots__ = (
        "_closed",
        "_codec",
        "_last",
        "_limits",
        "_strikes",
        "_tokens",
        "commands",
        "rejected",
    )

    def __init__(self, *, codec: Codec, limits: Limits, now: float) -> None:
        self._codec = codec
        self._limits = limits
        self._tokens = float(limits.command_burst)
        self._last = now
        self._strikes = 0
        self._closed: Close | None = None
        self.commands = 0  # commands accepted
        self.rejected = 0  # commands answered with a Reject

    @property
    def strikes(self) -> int:
        """Rate-limited commands in a row so far."""
        return self._strikes

    @property
    def closed(self) -> Close | None:
        """The ``Close`` already returned, if any."""
        return self._closed

    def receive(self, data: bytes | str, *, now: float) -> Command | Reject | Close:
        """Handle one frame's payload received at monotonic time ``now`` (seconds)."""
        if self._closed is not None:
            return self._closed
        try:
            obj = self._codec.decode(data, limits=self._limits)
        except FrameTooLarge as exc:
            return self._close(CloseCode.TOO_LARGE, "frame too large", exc.code, exc.message)
        except MalformedFrame as exc:
            return self._close(CloseCode.POLICY, "malformed frame", exc.code, exc.message)
        if not isinstance(obj, dict):
            return self._close(
                CloseCode.POLICY,
                "malformed frame",
                ErrorCode.BAD_REQUEST,
                "a frame must hold one command: a map with a type and an id",
            )

        if not self._take_token(now):
            self._strikes += 1
            command_id = command_id_of(obj, limits=self._limits)
            limits = self._limits
            message = (
                f"too many commands: at most {limits.command_rate:g} per second, "
                f"in bursts of up to {limits.command_burst}"
            )
            if self._strikes >= limits.flood_strikes:
                return self._close(
                    CloseCode.RATE_LIMITED,
                    "rate limited",
                    ErrorCode.RATE_LIMITED,
                    message,
                    command_id=command_id,
                )
            self.rejected += 1
            return Reject(error(id=command_id, code=ErrorCode.RATE_LIMITED, message=message))
        self._strikes = 0

        try:
            command = parse_command(obj, limits=self._limits)
        except InvalidCommand as exc:
            self.rejected += 1
            return Reject(error(id=exc.command_id, code=exc.code, message=exc.message))
        self.commands += 1
        return command

    def _take_token(self, now: float) -> bool:
        elapsed = now - self._last
        if elapsed > 0:
            # A clock that goes backwards refills nothing and moves nothing back.
            self._last = now
            self._tokens = min(
                float(self._limits.command_burst),
                self._tokens + elapsed * self._limits.command_rate,
            )
        # The epsilon keeps a client sending exactly at the rate from losing to rounding.
        if self._tokens >= 1.0 - 1e-9:
            self._tokens -= 1.0
            return True
        return False

    def _close(
        self,
        code: CloseCode,
        reason: str,
        error_code: ErrorCode,
        message: str,
        *,
        command_id: str | None = None,
    ) -> Close:
        self._closed = Close(code, reason, error(id=command_id, code=error_code, message=message))
        return self._closed

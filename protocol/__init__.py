"""The wire protocol: commands, events, codecs and frames, without any I/O.

Everything here works on bytes and plain values, so it is tested byte-in,
byte-out and shared by the server, the load tester and test clients.
"""

from protocol import events
from protocol.codec import CODECS, JSON_CODEC, MSGPACK_CODEC, Codec, negotiate
from protocol.commands import (
    Chat,
    Command,
    Like,
    Limits,
    Ping,
    SendGift,
    command_id_of,
    parse_command,
)
from protocol.errors import (
    CloseCode,
    EncodeError,
    ErrorCode,
    FrameTooLarge,
    InvalidCommand,
    MalformedFrame,
    ProtocolError,
)
from protocol.events import (
    CONNECTION_EVENT_TYPES,
    ROOM_EVENT_TYPES,
    Event,
    ack,
    chat,
    chat_deleted,
    error,
    gift,
    goal,
    goal_reached,
    join,
    leaderboard,
    like,
    room_ended,
    viewers,
    welcome,
)
from protocol.frames import MAX_CLOSE_REASON_BYTES, close_frame, server_frame
from protocol.session import Close, CommandReader, Reject

__all__ = [
    "CODECS",
    "CONNECTION_EVENT_TYPES",
    "JSON_CODEC",
    "MAX_CLOSE_REASON_BYTES",
    "MSGPACK_CODEC",
    "ROOM_EVENT_TYPES",
    "Chat",
    "Close",
    "CloseCode",
    "Codec",
    "Command",
    "CommandReader",
    "EncodeError",
    "ErrorCode",
    "Event",
    "FrameTooLarge",
    "InvalidCommand",
    "Like",
    "Limits",
    "MalformedFrame",
    "Ping",
    "ProtocolError",
    "Reject",
    "SendGift",
    "ack",
    "chat",
    "chat_deleted",
    "close_frame",
    "command_id_of",
    "error",
    "events",
    "gift",
    "goal",
    "goal_reached",
    "join",
    "leaderboard",
    "like",
    "negotiate",
    "parse_command",
    "room_ended",
    "server_frame",
    "viewers",
    "welcome",
]

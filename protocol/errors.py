"""Errors of the wire protocol.

::

    ProtocolError                 anything wrong on the wire; ends that one connection
     ├── FrameTooLarge            length prefix above the cap (checked before reading the body)
     ├── MalformedFrame           body is not one msgpack map within the unpacker limits
     ├── InvalidMessage           unknown type tag, missing field, field of the wrong type
     ├── HandshakeFailed          wrong secret, replayed answer, rejected by the master
     │    └── VersionMismatch     protocol major versions differ (carries both)
     ├── ConnectionClosed         the peer went away (EOF, reset) or we disconnected
     └── PeerTimeout              the peer sent nothing within the heartbeat timeout
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every protocol failure. Ends the connection it happened on, nothing else."""


class FrameTooLarge(ProtocolError):
    """The length prefix announces more than the current cap allows."""

    def __init__(self, length: int, cap: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the cap of {cap} bytes")
        self.length = length
        self.cap = cap


class MalformedFrame(ProtocolError):
    """The frame body is not a single msgpack map within the decoder's limits."""


class InvalidMessage(ProtocolError):
    """The frame decoded, but it is not a valid message (tag, fields, types)."""

    def __init__(self, detail: str, msg_type: str | None = None) -> None:
        where = f"{msg_type}: " if msg_type else ""
        super().__init__(f"{where}{detail}")
        self.detail = detail
        self.msg_type = msg_type


class HandshakeFailed(ProtocolError):
    """Authentication or version negotiation failed; ``reason`` is safe to show the peer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VersionMismatch(HandshakeFailed):
    """The two sides speak different protocol major versions."""

    def __init__(self, ours: str, theirs: str) -> None:
        super().__init__(f"protocol version mismatch: master speaks {ours}, slave speaks {theirs}")
        self.ours = ours
        self.theirs = theirs


class ConnectionClosed(ProtocolError):
    """The connection is closed (by the peer, by an error, or by us)."""


class PeerTimeout(ProtocolError):
    """The peer sent nothing (not even a heartbeat) within the allowed time."""

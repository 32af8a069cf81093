"""The handshake: mutual proof of the shared secret, version check, capabilities.

::

    master                                   slave
      hello {protocol_version, nonce_m} ───▶
                                        ◀─── auth {name, ..., nonce_s,
                                                   mac = HMAC(secret, "pyti-auth-v1" | nonce_m
                                                              | nonce_s | name)}
      welcome {..., proof = HMAC(secret, "pyti-welcome-v1" | nonce_m | nonce_s)} ───▶
      or reject {reason}, then close

Both nonces are 32 fresh random bytes, so an answer recorded from another
connection never verifies (no replay), and the slave learns the master knows the
secret before it takes any job. MACs are compared in constant time. Every frame
of the handshake is read under the 4 KiB pre-authentication cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar

from protocol.errors import (
    HandshakeFailed,
    InvalidMessage,
    PeerTimeout,
    ProtocolError,
    VersionMismatch,
)
from protocol.framing import PRE_AUTH_MAX_FRAME, pack, read_frame
from protocol.messages import (
    PROTOCOL_VERSION,
    Auth,
    Capabilities,
    Hello,
    Message,
    Reject,
    Welcome,
    decode,
    encode,
)

NONCE_SIZE = 32
HANDSHAKE_TIMEOUT = 10.0
_AUTH_CONTEXT = b"pyti-auth-v1"
_WELCOME_CONTEXT = b"pyti-welcome-v1"

T = TypeVar("T", bound=Message)


def auth_mac(secret: bytes, master_nonce: bytes, slave_nonce: bytes, name: str) -> bytes:
    """The slave's proof: binds both nonces and its name to the secret."""
    data = b"|".join((_AUTH_CONTEXT, master_nonce, slave_nonce, name.encode()))
    return hmac.new(secret, data, hashlib.sha256).digest()


def welcome_proof(secret: bytes, master_nonce: bytes, slave_nonce: bytes) -> bytes:
    """The master's proof, with a different context so an auth MAC can't be reflected."""
    data = b"|".join((_WELCOME_CONTEXT, master_nonce, slave_nonce))
    return hmac.new(secret, data, hashlib.sha256).digest()


def major(version: str) -> str:
    """The major part of a ``MAJOR.MINOR`` protocol version."""
    return version.split(".", 1)[0]


async def _send(writer: asyncio.StreamWriter, msg: Message) -> None:
    writer.write(pack(encode(msg)))
    await writer.drain()


async def _expect(reader: asyncio.StreamReader, cls: type[T] | tuple[type[Message], ...]) -> T:
    msg = decode(await read_frame(reader, PRE_AUTH_MAX_FRAME))
    if not isinstance(msg, cls):
        raise InvalidMessage(f"unexpected {msg.TYPE!r} during the handshake")
    return msg  # type: ignore[return-value]  # isinstance checked above


async def server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    secret: bytes | Sequence[bytes],
    master_name: str,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    max_frame: int,
    session: str,
    admit: Callable[[Auth], str | None] | None = None,
    timeout: float = HANDSHAKE_TIMEOUT,
) -> Auth:
    """The master's side. Returns the slave's verified ``Auth``.

    On any failure a ``reject`` with a reason is sent where possible and a
    ``ProtocolError`` raised; the caller closes the connection. ``admit`` may
    refuse an authenticated slave (returns the reason), e.g. a duplicate name.
    A wrong secret is answered with "authentication failed" and nothing else.
    ``secret`` may be several secrets (a rotation in progress): a slave proving
    any one of them is admitted, and the welcome proves that same one.
    """
    accepted = (secret,) if isinstance(secret, bytes) else tuple(secret)
    nonce = secrets.token_bytes(NONCE_SIZE)
    try:
        async with asyncio.timeout(timeout):
            return await _serve(
                reader,
                writer,
                nonce,
                accepted,
                master_name,
                heartbeat_interval,
                heartbeat_timeout,
                max_frame,
                session,
                admit,
            )
    except TimeoutError:
        raise PeerTimeout(f"handshake not completed within {timeout:g} s") from None


async def _serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    nonce: bytes,
    accepted: tuple[bytes, ...],
    master_name: str,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    max_frame: int,
    session: str,
    admit: Callable[[Auth], str | None] | None,
) -> Auth:
    await _send(writer, Hello(protocol_version=PROTOCOL_VERSION, nonce=nonce, master=master_name))
    auth = await _expect(reader, Auth)
    failure: HandshakeFailed | None = None
    secret = _proven(accepted, nonce, auth) if len(auth.nonce) == NONCE_SIZE else None
    if major(auth.protocol_version) != major(PROTOCOL_VERSION):
        failure = VersionMismatch(PROTOCOL_VERSION, auth.protocol_version)
    elif secret is None:
        failure = HandshakeFailed("authentication failed")
    elif admit is not None and (reason := admit(auth)) is not None:
        failure = HandshakeFailed(reason)
    if failure is not None or secret is None:
        failure = failure or HandshakeFailed("authentication failed")
        await _send(writer, Reject(reason=failure.reason))
        raise failure
    await _send(
        writer,
        Welcome(
            session=session,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            max_frame=max_frame,
            proof=welcome_proof(secret, nonce, auth.nonce),
        ),
    )
    return auth


def _proven(accepted: tuple[bytes, ...], nonce: bytes, auth: Auth) -> bytes | None:
    """The accepted secret ``auth`` proves, or None. Every secret is tried (no early exit),
    so the time taken does not tell which one matched."""
    found: bytes | None = None
    for candidate in accepted:
        if hmac.compare_digest(auth.mac, auth_mac(candidate, nonce, auth.nonce, auth.name)):
            found = found or candidate
    return found


async def client_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    secret: bytes,
    name: str,
    software_version: str,
    capabilities: Capabilities,
    timeout: float = HANDSHAKE_TIMEOUT,
) -> Welcome:
    """The slave's side. Returns the master's verified ``Welcome``.

    Raises ``VersionMismatch`` (saying both versions) when the master speaks
    another major version, ``HandshakeFailed`` with the master's reason on a
    reject, or when the master cannot prove it knows the secret.
    """
    nonce = secrets.token_bytes(NONCE_SIZE)
    try:
        async with asyncio.timeout(timeout):
            return await _answer(
                reader, writer, nonce, secret, name, software_version, capabilities
            )
    except TimeoutError:
        raise PeerTimeout(f"handshake not completed within {timeout:g} s") from None


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    nonce: bytes,
    secret: bytes,
    name: str,
    software_version: str,
    capabilities: Capabilities,
) -> Welcome:
    hello = await _expect(reader, Hello)
    if major(hello.protocol_version) != major(PROTOCOL_VERSION):
        raise VersionMismatch(hello.protocol_version, PROTOCOL_VERSION)
    await _send(
        writer,
        Auth(
            name=name,
            software_version=software_version,
            protocol_version=PROTOCOL_VERSION,
            capabilities=capabilities,
            nonce=nonce,
            mac=auth_mac(secret, hello.nonce, nonce, name),
        ),
    )
    answer: Message = await _expect(reader, (Welcome, Reject))
    if isinstance(answer, Reject):
        if "version mismatch" in answer.reason:
            raise VersionMismatch(hello.protocol_version, PROTOCOL_VERSION)
        raise HandshakeFailed(f"rejected by the master: {answer.reason}")
    assert isinstance(answer, Welcome)
    if not hmac.compare_digest(answer.proof, welcome_proof(secret, hello.nonce, nonce)):
        raise HandshakeFailed("the master could not prove it knows the shared secret")
    return answer


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "NONCE_SIZE",
    "ProtocolError",
    "auth_mac",
    "client_handshake",
    "server_handshake",
    "welcome_proof",
]

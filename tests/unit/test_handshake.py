"""The handshake over a real loopback socket: secrets, replays, versions, stalls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol import handshake
from protocol.errors import FrameTooLarge, HandshakeFailed, PeerTimeout, VersionMismatch
from protocol.framing import PRE_AUTH_MAX_FRAME, pack, read_frame
from protocol.handshake import client_handshake, server_handshake
from protocol.messages import Auth, Hello, Reject, Welcome, decode, encode
from tests.unit.loopback import stream_pair
from tests.unit.protocol_samples import CAPS

SECRET = b"s3cret-shared-between-master-and-slaves"

SERVER_KW: dict[str, Any] = {
    "master_name": "master-test",
    "heartbeat_interval": 1.0,
    "heartbeat_timeout": 4.0,
    "max_frame": 1 << 20,
    "session": "sess-1",
}


async def _both(
    server_secret: bytes = SECRET, client_secret: bytes = SECRET, **server_extra: Any
) -> tuple[Auth | BaseException, Welcome | BaseException]:
    async with stream_pair() as p:
        results = await asyncio.gather(
            server_handshake(
                p.server_reader, p.server_writer, secret=server_secret, **SERVER_KW, **server_extra
            ),
            client_handshake(
                p.client_reader,
                p.client_writer,
                secret=client_secret,
                name="slave-1",
                software_version="0.1",
                capabilities=CAPS,
            ),
            return_exceptions=True,
        )
    return results[0], results[1]


async def test_handshake_succeeds_with_the_shared_secret() -> None:
    """Both sides authenticate each other; the master learns name and capabilities."""
    auth, welcome = await _both()
    assert isinstance(auth, Auth) and auth.name == "slave-1" and auth.capabilities == CAPS
    assert isinstance(welcome, Welcome) and welcome.session == "sess-1"
    assert welcome.max_frame == 1 << 20


async def test_wrong_secret_is_rejected_without_detail() -> None:
    """A slave with the wrong secret gets only 'authentication failed'."""
    auth, welcome = await _both(client_secret=b"guess")
    assert isinstance(auth, HandshakeFailed) and auth.reason == "authentication failed"
    assert isinstance(welcome, HandshakeFailed)
    assert "rejected by the master: authentication failed" in str(welcome)


async def test_admit_can_refuse_an_authenticated_slave() -> None:
    """The master's admission check (e.g. duplicate name) rejects with its reason."""
    auth, welcome = await _both(admit=lambda a: f"a slave named {a.name} is already connected")
    assert isinstance(auth, HandshakeFailed)
    assert isinstance(welcome, HandshakeFailed) and "already connected" in str(welcome)


async def test_master_without_the_secret_is_not_trusted() -> None:
    """A master that cannot prove the secret is refused by the slave."""
    async with stream_pair() as p:

        async def fake_master() -> None:
            p.server_writer.write(
                pack(encode(Hello(protocol_version="1.0", nonce=b"n" * 32, master="evil")))
            )
            await read_frame(p.server_reader, PRE_AUTH_MAX_FRAME)
            p.server_writer.write(
                pack(
                    encode(
                        Welcome(
                            session="x",
                            heartbeat_interval=1,
                            heartbeat_timeout=2,
                            max_frame=1 << 20,
                            proof=b"\x00" * 32,
                        )
                    )
                )
            )

        _, outcome = await asyncio.gather(
            fake_master(),
            client_handshake(
                p.client_reader,
                p.client_writer,
                secret=SECRET,
                name="s",
                software_version="0.1",
                capabilities=CAPS,
            ),
            return_exceptions=True,
        )
    assert isinstance(outcome, HandshakeFailed)
    assert "could not prove" in str(outcome)


async def test_replayed_answer_is_rejected() -> None:
    """An auth frame recorded from one connection does not verify on another."""
    recorded: list[bytes] = []
    async with stream_pair() as p:
        orig_write = p.client_writer.write

        def tap(data: bytes | bytearray | memoryview) -> None:
            recorded.append(bytes(data))
            orig_write(data)

        p.client_writer.write = tap  # type: ignore[method-assign]  # a tap on the real socket
        await asyncio.gather(
            server_handshake(p.server_reader, p.server_writer, secret=SECRET, **SERVER_KW),
            client_handshake(
                p.client_reader,
                p.client_writer,
                secret=SECRET,
                name="slave-1",
                software_version="0.1",
                capabilities=CAPS,
            ),
        )
    assert recorded
    async with stream_pair() as p:

        async def replayer() -> None:
            await read_frame(p.client_reader, PRE_AUTH_MAX_FRAME)  # the new, fresh hello
            p.client_writer.write(recorded[0])
            await p.client_writer.drain()

        outcome, _ = await asyncio.gather(
            server_handshake(p.server_reader, p.server_writer, secret=SECRET, **SERVER_KW),
            replayer(),
            return_exceptions=True,
        )
    assert isinstance(outcome, HandshakeFailed) and outcome.reason == "authentication failed"


async def test_version_mismatch_names_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slave of another major version is rejected with both versions in the reason."""
    async with stream_pair() as p:

        async def old_slave() -> Reject:
            hello = decode(await read_frame(p.client_reader, PRE_AUTH_MAX_FRAME))
            assert isinstance(hello, Hello)
            auth = Auth(
                name="old",
                software_version="0.0",
                protocol_version="0.9",
                capabilities=CAPS,
                nonce=b"o" * 32,
                mac=handshake.auth_mac(SECRET, hello.nonce, b"o" * 32, "old"),
            )
            p.client_writer.write(pack(encode(auth)))
            reply = decode(await read_frame(p.client_reader, PRE_AUTH_MAX_FRAME))
            assert isinstance(reply, Reject)
            return reply

        master_err, reject = await asyncio.gather(
            server_handshake(p.server_reader, p.server_writer, secret=SECRET, **SERVER_KW),
            old_slave(),
            return_exceptions=True,
        )
    assert isinstance(master_err, VersionMismatch)
    assert isinstance(reject, Reject)
    assert "1.0" in reject.reason and "0.9" in reject.reason


async def test_slave_refuses_a_master_of_another_major_version() -> None:
    """The slave checks the master's version from the hello before answering."""
    async with stream_pair() as p:
        p.server_writer.write(
            pack(encode(Hello(protocol_version="2.0", nonce=b"n" * 32, master="future")))
        )
        with pytest.raises(VersionMismatch, match=r"2\.0.*1\.0"):
            await client_handshake(
                p.client_reader,
                p.client_writer,
                secret=SECRET,
                name="s",
                software_version="0.1",
                capabilities=CAPS,
            )


async def test_stalled_peer_times_out() -> None:
    """A peer that connects and says nothing is dropped after the handshake timeout."""
    async with stream_pair() as p:
        with pytest.raises(PeerTimeout, match="handshake"):
            await server_handshake(
                p.server_reader, p.server_writer, secret=SECRET, timeout=0.3, **SERVER_KW
            )


async def test_oversized_frame_before_auth() -> None:
    """An unauthenticated peer cannot send more than 4 KiB in one frame."""
    async with stream_pair() as p:
        p.client_writer.write(pack({"type": "auth", "name": "x" * 10_000}))
        with pytest.raises(FrameTooLarge):
            await server_handshake(p.server_reader, p.server_writer, secret=SECRET, **SERVER_KW)

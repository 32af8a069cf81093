"""The guest's SSH relay (guest_image/files/ssh_wait.py), run on the host between socketpairs."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "guest_image" / "files" / "ssh_wait.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ssh_wait", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drain(sock: socket.socket, out: list[bytes], expect: int | None = None) -> None:
    """Read until EOF, or until ``expect`` bytes arrived."""
    total = 0
    while expect is None or total < expect:
        data = sock.recv(65536)
        if not data:
            return
        out.append(data)
        total += len(data)


def test_relay_moves_big_payloads_both_ways_at_once() -> None:
    """Megabytes flow in both directions concurrently without deadlock, bytes intact."""
    relay = _load().relay
    host, port_end = socket.socketpair()  # port_end stands in for the virtio port
    sshd_end, sshd = socket.socketpair()
    up = os.urandom(5 << 20)
    down = os.urandom(5 << 20)
    got_up: list[bytes] = []
    got_down: list[bytes] = []
    threads = [
        threading.Thread(target=relay, args=(port_end.fileno(), sshd_end)),
        threading.Thread(target=_drain, args=(sshd, got_up, len(up))),
        threading.Thread(target=_drain, args=(host, got_down)),
        threading.Thread(target=host.sendall, args=(up,)),
        threading.Thread(target=sshd.sendall, args=(down,)),
    ]
    for t in threads:
        t.start()
    for t in threads[1:2] + threads[3:]:
        t.join(60)
    sshd.close()  # sshd exits: the relay passes on what it said, then returns
    threads[0].join(30)
    assert not threads[0].is_alive()
    port_end.close()
    threads[2].join(30)
    assert b"".join(got_up) == up
    assert b"".join(got_down) == down
    for s in (host, sshd_end):
        s.close()


def test_relay_returns_when_the_host_closes() -> None:
    """The host closing the port ends the session even while sshd stays silent."""
    relay = _load().relay
    host, port_end = socket.socketpair()
    sshd_end, sshd = socket.socketpair()
    host.sendall(b"SSH-2.0-client\r\n")
    host.close()
    worker = threading.Thread(target=relay, args=(port_end.fileno(), sshd_end))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert sshd.recv(100) == b"SSH-2.0-client\r\n"
    for s in (port_end, sshd_end, sshd):
        s.close()

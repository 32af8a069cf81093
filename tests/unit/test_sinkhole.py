"""The guest's sinkhole daemon (guest_image/files/sinkhole.py), run on the host on loopback."""

from __future__ import annotations

import importlib.util
import json
import socket
import ssl
import struct
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "guest_image" / "files" / "sinkhole.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sinkhole", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sinkhole = _load()


def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack(">HH", qtype, 1)
    )


@dataclass
class Running:
    dns: tuple[str, int]
    tcp: tuple[str, int]
    log: Path

    def lines(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The log's lines once there are at least ``n`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text() if self.log.exists() else ""
            lines = [json.loads(line) for line in text.splitlines()]
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def ask(self, name: str, qtype: int = 1) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(query(name, qtype), self.dns)
            return s.recv(512)


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """The resolver and the TCP listener on ephemeral loopback ports, logging to tmp_path."""
    monkeypatch.setattr(sinkhole, "MODE_FILE", str(tmp_path / "mode"))
    monkeypatch.setattr(sinkhole, "READ_TIMEOUT", 0.5)
    log = sinkhole.Log(str(tmp_path / "events.jsonl"))
    names = sinkhole.Names()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    for target, sock in ((sinkhole.serve_dns, dns), (sinkhole.serve_tcp, listener)):
        threading.Thread(target=target, args=(sock, names, log), daemon=True).start()
    yield Running(dns.getsockname(), listener.getsockname(), tmp_path / "events.jsonl")


def test_every_name_gets_its_own_stable_address() -> None:
    """A name always maps to the same address in 198.18.0.0/15, never the dummy's own."""
    a, b = sinkhole.Names(), sinkhole.Names()
    first = a.address("Exfil.Example.com.")
    assert first == b.address("exfil.example.com") == a.address("exfil.example.com")
    assert first.startswith("198.1") and first != sinkhole.LOCAL_ADDR
    assert a.address("other.example.com") != first
    assert a.name_of(first) == "exfil.example.com"


def test_malformed_questions_are_refused_not_crashed_on() -> None:
    """Truncated packets, replies and compression pointers in a question give None."""
    good = query("a.example")
    assert sinkhole.parse_question(good) is not None
    assert sinkhole.parse_question(good[:15]) is None
    assert sinkhole.parse_question(b"\x12\x34\x81\x80" + good[4:]) is None
    assert sinkhole.parse_question(good[:12] + b"\xc0\x0c\x00\x01\x00\x01") is None


def test_sni_is_read_from_a_client_hello() -> None:
    """The server name of a real ClientHello (from the ssl module) comes out; junk gives None."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="c2.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert sinkhole.tls_sni(outgoing.read()) == "c2.example"
    assert sinkhole.tls_sni(b"\x16\x03\x01" + b"\xff" * 60) is None


def test_sanitise_keeps_printable_ascii_only() -> None:
    """Control bytes, backslashes and non-ASCII become escapes; the head is cut."""
    assert sinkhole.sanitise(b"GET /\r\n\x00\xff\\") == "GET /\\r\\n\\x00\\xff\\x5c"
    assert len(sinkhole.sanitise(b"a" * 1000)) == sinkhole.HEAD_BYTES


def test_dns_answers_every_name_and_logs_the_question(running: Running) -> None:
    """A gets one record with the name's address, AAAA an empty answer; both are logged."""
    reply = running.ask("exfil.example.com")
    assert struct.unpack(">HHHH", reply[:8]) == (0x1234, 0x8580, 1, 1)
    assert socket.inet_ntoa(reply[-4:]) == sinkhole.Names().address("exfil.example.com")
    empty = running.ask("exfil.example.com", qtype=28)
    assert struct.unpack(">HH", empty[6:10]) == (0, 0) and empty[3] & 0x0F == 0
    lines = running.lines(2)
    assert [(x["kind"], x["qname"], x["qtype"]) for x in lines] == [
        ("dns", "exfil.example.com", "A"),
        ("dns", "exfil.example.com", "AAAA"),
    ]
    assert lines[0]["answer"] == socket.inet_ntoa(reply[-4:])
    assert lines[0]["uid"] is not None  # the asking socket was found in /proc/net/udp


def test_offline_mode_answers_servfail(running: Running, tmp_path: Path) -> None:
    """With the mode file saying offline, names do not resolve (SERVFAIL), still logged."""
    (tmp_path / "mode").write_text("offline\n")
    reply = running.ask("pypi.org")
    assert reply[3] & 0x0F == 2 and struct.unpack(">H", reply[6:8])[0] == 0
    assert running.lines(1)[0]["mode"] == "offline"


def test_http_request_gets_200_and_is_recorded(running: Running) -> None:
    """A POST is answered 200 with the stub body; method, host, path, body size are logged."""
    url = f"http://{running.tcp[0]}:{running.tcp[1]}/upload?k=v"
    req = urllib.request.Request(url, data=b"x" * 5000, headers={"Host": "exfil.example.com"})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test server
        assert resp.status == 200 and resp.read() == sinkhole.HTTP_BODY
    tcp, http = running.lines(2)
    assert tcp["kind"] == "tcp" and tcp["dst"] == f"{running.tcp[0]}:{running.tcp[1]}"
    assert http["kind"] == "http"
    assert (http["method"], http["host"], http["path"]) == (
        "POST",
        "exfil.example.com",
        "/upload?k=v",
    )
    assert http["body_size"] == 5000
    assert http["head"].startswith("POST /upload?k=v HTTP/1.1\\r\\n")


def test_raw_bytes_and_silent_clients_are_closed(running: Running) -> None:
    """Non-HTTP bytes are logged (size, head); a client that sends nothing gets EOF."""
    with socket.create_connection(running.tcp, timeout=5) as c:
        c.sendall(b"stolen\x00data")
        c.shutdown(socket.SHUT_WR)
        assert c.recv(10) == b""
    with socket.create_connection(running.tcp, timeout=5) as quiet:
        assert quiet.recv(10) == b""  # after READ_TIMEOUT: the listener never hangs a payload
    lines = running.lines(3)
    data = [x for x in lines if x["kind"] == "data"]
    assert [(x["size"], x["head"]) for x in data] == [(11, "stolen\\x00data")]
    assert [x["kind"] for x in lines].count("tcp") == 2

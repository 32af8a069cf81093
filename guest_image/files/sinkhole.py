"""The guest's sinkhole network: a resolver that answers every name, a catch-all TCP listener.

Runs in the guest as root (pyti-sinkhole.service), started at boot, so it is in
the RAM snapshot and costs a job nothing. The guest has no NIC: a dummy
interface ``sink0`` holds the default route, and nftables (sinkhole.nft)
sends every outgoing TCP connection that is not to a local address to
198.18.0.1:1 (this listener, on sink0's address: 127.0.0.1:1 stays closed, as test
suites expect ``localhost:1`` to be) and every UDP datagram to port 53 to 127.0.0.1:53
(this resolver). Everything else routed to ``sink0`` is dropped by the dummy
device: no packet can leave the VM, there is nowhere for it to go.

- DNS (UDP 127.0.0.1:53, the resolv.conf nameserver): every A question is
  answered with a sinkhole address of its own in 198.18.0.0/15 (benchmarking
  space; derived from the name, so the same name gets the same address in every
  job); AAAA and other types get an empty answer (IPv6 has no route: fails
  fast with ENETUNREACH).
- TCP (198.18.0.1:1): the original destination comes from ``SO_ORIGINAL_DST``.
  The first bytes decide: an HTTP request gets ``200 OK`` with a tiny body
  (a no-op shell script, so a downloaded "stage 2" runs and exits 0); a TLS
  ClientHello is read for its SNI, then closed; anything else is read for up to
  ``READ_TIMEOUT`` seconds, then closed (EOF).
- Mode ``offline`` (the runner writes MODE_FILE before the tests phase and drops
  the default route): questions are answered SERVFAIL, as if there were no
  network, so a test suite's network use fails the way it does offline.

Every question, connection and request is one JSON line in LOG_FILE (root only):
``{"time", "mono", "kind": "dns"|"tcp"|"http"|"tls"|"data", "uid", "pid",
"process", ...}``. The runner reads new lines and emits them as ``network``
events. Stdlib only; never trusts what a client sends.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from typing import Any

RUN_DIR = "/run/pyti-sinkhole"
LOG_FILE = RUN_DIR + "/events.jsonl"
MODE_FILE = RUN_DIR + "/mode"
DNS_ADDR = ("127.0.0.1", 53)
TCP_ADDR = ("198.18.0.1", 1)
#: Names resolve into this network (RFC 2544 benchmarking space, never routed on the Internet).
SINK_NET = ipaddress.ip_network("198.18.0.0/15")
#: The dummy interface's own address (the source of redirected connections).
LOCAL_ADDR = "198.18.0.1"
SO_ORIGINAL_DST = 80
READ_TIMEOUT = 2.0
HEAD_BYTES = 256
HEADER_CAP = 16 << 10
BODY_CAP = 16 << 20
MAX_CLIENTS = 64
LOG_CAP = 16 << 20
TTL = 60
HTTP_BODY = b"#!/bin/sh\n# pyti sinkhole\nexit 0\n"
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
          33: "SRV", 65: "HTTPS", 255: "ANY"}  # fmt: skip
_HTTP_METHOD = re.compile(rb"^[A-Z]{3,10} \S{1,8192} HTTP/\d\.\d\r?$")


def sanitise(data: bytes, limit: int = HEAD_BYTES) -> str:
    """Printable ASCII of the first ``limit`` bytes; anything else as ``\\xNN``."""
    out = []
    for byte in data[:limit]:
        if 0x20 <= byte < 0x7F and byte != 0x5C:
            out.append(chr(byte))
        elif byte == 0x0A:
            out.append("\\n")
        elif byte == 0x0D:
            out.append("\\r")
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class Log:
    """Appends JSON lines to LOG_FILE; capped; thread-safe; never raises."""

    def __init__(self, path: str = LOG_FILE, cap: int = LOG_CAP) -> None:
        self.path = path
        self.cap = cap
        self.written = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def write(self, kind: str, **fields: Any) -> None:
        record = {"time": round(time.time(), 3), "mono": round(time.monotonic(), 3), "kind": kind}
        record.update(fields)
        line = (json.dumps(record, default=str) + "\n").encode()
        with self.lock:
            if self.written + len(line) > self.cap:
                self.dropped += 1
                return
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
                self.written += len(line)
            except OSError:
                self.dropped += 1


def mode() -> str:
    """``sinkhole`` (answer everything) or ``offline`` (names do not resolve)."""
    try:
        with open(MODE_FILE) as f:
            return f.read(32).strip() or "sinkhole"
    except OSError:
        return "sinkhole"


# ---------------------------------------------------------------------------- who


def _hex_addr(text: str) -> tuple[str, int]:
    """``0100007F:0035`` (a /proc/net/tcp column, IPv4) -> ("127.0.0.1", 53)."""
    host, _, port = text.partition(":")
    if len(host) != 8:
        raise ValueError(host)
    return socket.inet_ntoa(struct.pack("<I", int(host, 16))), int(port, 16)


def socket_owner(
    table: str, local: tuple[str, int], remote: tuple[str, int] | None
) -> tuple[int, int] | None:
    """(uid, inode) of the socket in /proc/net/<table> bound to ``local`` (and to ``remote``)."""
    try:
        with open(f"/proc/net/{table}") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    best = None
    for row in rows:
        cols = row.split()
        if len(cols) < 10:
            continue
        try:
            ip, port = _hex_addr(cols[1])
            rip, rport = _hex_addr(cols[2])
        except (ValueError, OSError, struct.error):
            continue
        if port != local[1] or ip not in (local[0], "0.0.0.0"):  # noqa: S104 - compared
            continue
        if remote is not None and (rip, rport) != remote:
            continue
        if cols[9] == "0":
            continue
        best = (int(cols[7]), int(cols[9]))
        if ip == local[0]:
            break
    return best


def inode_pid(inode: int, uid: int) -> int | None:
    """The process (of ``uid``) holding socket ``inode``: a scan of /proc/*/fd."""
    target = f"socket:[{inode}]"
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) == target:
                        return int(entry.name)
        except OSError:
            continue
    return None


def who(table: str, local: tuple[str, int], remote: tuple[str, int] | None) -> dict[str, Any]:
    """``uid``, ``pid`` and ``process`` (comm) of a client socket, as far as /proc tells."""
    owner = socket_owner(table, local, remote)
    if owner is None:
        return {"uid": None, "pid": None}
    uid, inode = owner
    pid = inode_pid(inode, uid)
    out: dict[str, Any] = {"uid": uid, "pid": pid}
    if pid is not None:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
            out["process"] = f.read(64).strip()
    return out


# ---------------------------------------------------------------------------- names


class Names:
    """Each name its own sinkhole address (stable: from its hash), and back."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}
        self.by_addr: dict[str, str] = {}
        self.lock = threading.Lock()

    def address(self, name: str) -> str:
        name = name.lower().rstrip(".")
        with self.lock:
            known = self.by_name.get(name)
            if known is not None:
                return known
            size = SINK_NET.num_addresses - 4
            slot = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % size
            for step in range(size):
                addr = str(SINK_NET.network_address + 2 + (slot + step) % size)
                if addr not in self.by_addr:
                    break
            if len(self.by_name) < 100_000:
                self.by_name[name] = addr
                self.by_addr[addr] = name
            return addr

    def name_of(self, addr: str) -> str | None:
        with self.lock:
            return self.by_addr.get(addr)


def parse_question(packet: bytes) -> tuple[int, int, str, int, int] | None:
    """(id, flags, name, qtype, end of question) of a DNS query; None when malformed."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack(">HHH", packet[:6])
    if flags & 0x8000 or qdcount < 1:
        return None
    labels: list[str] = []
    pos = 12
    while True:
        if pos >= len(packet):
            return None
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(packet) or len(labels) > 127:
            return None
        labels.append(packet[pos : pos + length].decode("ascii", "backslashreplace"))
        pos += length
    if pos + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack(">HH", packet[pos : pos + 4])
    return ident, flags, ".".join(labels), qtype, pos + 4


def answer(packet: bytes, question: tuple[int, int, str, int, int], address: str | None,
           rcode: int = 0) -> bytes:  # fmt: skip
    """The reply: the question echoed, one A record when ``address`` is given."""
    ident, flags, _name, _qtype, end = question
    reply_flags = 0x8000 | 0x0400 | (flags & 0x7900) | 0x0080 | rcode  # QR AA opcode RD RA
    ancount = 1 if address is not None and rcode == 0 else 0
    out = struct.pack(">HHHHHH", ident, reply_flags, 1, ancount, 0, 0) + packet[12:end]
    if ancount:
        out += struct.pack(">HHHIH", 0xC00C, 1, 1, TTL, 4) + socket.inet_aton(address or "")
    return out


def serve_dns(sock: socket.socket, names: Names, log: Log) -> None:
    while True:
        try:
            packet, peer = sock.recvfrom(4096)
        except OSError:
            continue
        try:
            question = parse_question(packet)
            if question is None:
                log.write("dns", malformed=True, size=len(packet), peer=f"{peer[0]}:{peer[1]}",
                          head=sanitise(packet, 64))  # fmt: skip
                continue
            _ident, _flags, name, qtype, _end = question
            offline = mode() == "offline"
            address = names.address(name) if qtype == 1 and not offline else None
            log.write(
                "dns",
                qname=name[:300],
                qtype=QTYPES.get(qtype, str(qtype)),
                answer=address,
                mode="offline" if offline else "sinkhole",
                **who("udp", (peer[0], peer[1]), None),
            )
            sock.sendto(answer(packet, question, address, rcode=2 if offline else 0), peer)
        except Exception as exc:  # one bad packet never stops the resolver
            log.write("error", where="dns", error=f"{type(exc).__name__}: {exc}"[:300])


# ---------------------------------------------------------------------------- tcp


def original_dst(conn: socket.socket) -> tuple[str, int]:
    """Where the client meant to connect (before the redirect); our address if not redirected."""
    try:
        raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        port = struct.unpack(">H", raw[2:4])[0]
        return socket.inet_ntoa(raw[4:8]), port
    except OSError:
        host, port = conn.getsockname()[:2]
        return host, port


def tls_sni(data: bytes) -> str | None:
    """The server name of a TLS ClientHello (record 0x16, handshake 1), if it carries one."""
    try:
        if len(data) < 43 or data[0] != 0x16 or data[5] != 0x01:
            return None
        pos = 9 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + data[pos]  # session id
        pos += 2 + struct.unpack(">H", data[pos : pos + 2])[0]  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = pos + 2 + struct.unpack(">H", data[pos : pos + 2])[0]
        pos += 2
        while pos + 4 <= min(end, len(data)):
            ext, size = struct.unpack(">HH", data[pos : pos + 4])
            pos += 4
            if ext == 0:  # server_name: list length, type 0, name length, name
                name_len = struct.unpack(">H", data[pos + 3 : pos + 5])[0]
                return data[pos + 5 : pos + 5 + name_len].decode("ascii", "backslashreplace")[:300]
            pos += size
    except (IndexError, struct.error):
        return None
    return None


def read_some(conn: socket.socket, want: int, deadline: float) -> bytes:
    """Up to ``want`` bytes, whatever arrives before ``deadline``."""
    data = b""
    while len(data) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(min(65536, want - len(data)))
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data or data[:1] == b"\x16":
            break
    return data


def parse_http(head: bytes) -> dict[str, Any] | None:
    """Method, path, Host and Content-Length of an HTTP request head; None when not HTTP."""
    lines = head.split(b"\n")
    if not _HTTP_METHOD.match(lines[0]):
        return None
    method, target, _version = lines[0].rstrip(b"\r").decode("ascii", "replace").split(" ", 2)
    headers: dict[str, str] = {}
    for raw in lines[1:100]:
        key, sep, value = raw.decode("latin-1").partition(":")
        if sep:
            headers.setdefault(key.strip().lower(), value.strip()[:300])
    host = headers.get("host", "")
    path = target
    if "://" in target:  # proxy form
        _scheme, _, rest = target.partition("://")
        host_part, slash, tail = rest.partition("/")
        host, path = host or host_part, slash + tail
    length = headers.get("content-length", "")
    return {
        "method": method[:16],
        "host": host[:300],
        "path": path[:1000],
        "content_length": int(length) if length.isdigit() else None,
        "chunked": "chunked" in headers.get("transfer-encoding", "").lower(),
        "user_agent": headers.get("user-agent"),
    }


def handle_tcp(conn: socket.socket, peer: tuple[str, int], names: Names, log: Log) -> None:
    dst_ip, dst_port = original_dst(conn)
    base: dict[str, Any] = {"dst": f"{dst_ip}:{dst_port}", "src": f"{peer[0]}:{peer[1]}"}
    if (name := names.name_of(dst_ip)) is not None:
        base["qname"] = name
    base.update(who("tcp", (peer[0], peer[1]), (dst_ip, dst_port)))
    log.write("tcp", **base)
    deadline = time.monotonic() + READ_TIMEOUT
    data = read_some(conn, HEADER_CAP, deadline)
    if not data:
        return
    if data[:1] == b"\x16":
        log.write("tls", **base, sni=tls_sni(data), size=len(data), head=sanitise(data, 64))
        return
    head, sep, body = data.partition(b"\r\n\r\n")
    request = parse_http(head) if sep else None
    if request is None:
        total = len(data) + len(read_some(conn, BODY_CAP, deadline))
        log.write("data", **base, size=total, head=sanitise(data))
        return
    want = request.pop("content_length")
    chunked = request.pop("chunked")
    seen = body
    size = len(body)
    while (want is not None and size < min(want, BODY_CAP)) or (
        chunked and not seen.endswith(b"0\r\n\r\n") and size < BODY_CAP
    ):
        more = read_some(conn, min(65536, BODY_CAP - size), time.monotonic() + READ_TIMEOUT)
        if not more:
            break
        size += len(more)
        seen = (seen + more)[-HEAD_BYTES:] if len(seen) >= HEAD_BYTES else seen + more
    log.write("http", **base, **request, body_size=size, head=sanitise(data))
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    reply += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(HTTP_BODY)
    with contextlib.suppress(OSError):
        conn.sendall(reply + (b"" if request["method"] == "HEAD" else HTTP_BODY))


def serve_tcp(listener: socket.socket, names: Names, log: Log) -> None:
    slots = threading.BoundedSemaphore(MAX_CLIENTS)
    while True:
        try:
            conn, peer = listener.accept()
        except OSError:
            time.sleep(0.01)
            continue
        if not slots.acquire(blocking=False):
            log.write("tcp", dropped=True, src=f"{peer[0]}:{peer[1]}")
            conn.close()
            continue

        def run(conn: socket.socket = conn, peer: tuple[str, int] = peer) -> None:
            try:
                handle_tcp(conn, peer, names, log)
            except Exception as exc:  # one client never stops the listener
                log.write("error", where="tcp", error=f"{type(exc).__name__}: {exc}"[:300])
            finally:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                slots.release()

        threading.Thread(target=run, daemon=True).start()


# ---------------------------------------------------------------------------- main


def notify_ready() -> None:
    """sd_notify(READY=1) for Type=notify, when systemd asked for it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", path)


def main(argv: list[str]) -> int:
    dns_addr = (argv[1], int(argv[2])) if len(argv) > 2 else DNS_ADDR
    tcp_addr = (argv[1], int(argv[3])) if len(argv) > 3 else TCP_ADDR
    log = Log(argv[4]) if len(argv) > 4 else Log()
    names = Names()
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(dns_addr)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(tcp_addr)
    listener.listen(256)
    threading.Thread(target=serve_dns, args=(dns, names, log), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(listener, names, log), daemon=True).start()
    notify_ready()
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

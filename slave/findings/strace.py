"""Parse strace lines (``strace -f -yy -s N``) into `TraceLine` records.

The lines come from the guest, where the package under test controls the strings
strace prints (paths, argv, buffers), so the parser is written for hostile input:
it never raises, bounds everything it keeps, and treats what it cannot read as
``LineKind.OTHER``. It understands:

- ``PID name(args) = result`` (also ``[pid PID]`` and a leading timestamp);
- ``PID name(args <unfinished ...>`` / ``PID <... name resumed>rest`` pairs, joined
  back into one syscall (per pid, at most `MAX_PENDING` open at once);
- ``PID +++ exited with N +++``, ``PID +++ killed by SIGx +++``, ``PID --- SIGx {..} ---``;
- quoted C strings with escapes (``"a\\"b\\x41\\101"...``), ``-yy`` fd annotations
  (``3</path>``, ``AT_FDCWD</cwd>``, ``5<TCP:[a:1->b:2]>``, ``</dev/null<char 1:3>>``)
  and socket addresses (``{sa_family=AF_INET, sin_port=htons(53), ...}``).
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from dataclasses import dataclass

LINE_MAX = 64 * 1024  # longer lines are cut before parsing: the runner already cuts at 16 KiB
MAX_PENDING = 1024  # unfinished syscalls kept for their resumption (oldest evicted)
MAX_ARGS = 64

_PREFIX = re.compile(
    r"^\s*(?:\[pid\s+(?P<bpid>\d+)\]|(?P<pid>\d+))?\s*"
    r"(?:(?:\d{1,2}:\d\d:\d\d|\d{9,})(?:\.\d+)?\s+)?"
)
_EXITED = re.compile(r"^\+\+\+ exited with (-?\d+) \+\+\+")
_KILLED = re.compile(r"^\+\+\+ killed by (SIG\w+)")
_SIGNAL = re.compile(r"^--- (SIG\w+)")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>\s?")
_CALL = re.compile(r"^(\w+)\(")
_UNFINISHED = " <unfinished ...>"
_RESULT = re.compile(r"^=\s*(-?\d+|0x[0-9a-fA-F]+|\?)(.*)$", re.S)
_ERRNO = re.compile(r"^\s*(E[A-Z0-9]+)\b")
_SOCKET_ANNOTATION = re.compile(r"[A-Za-z_][\w -]*:\[")
_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "e": 27}


class LineKind(enum.Enum):
    """What a trace line is."""

    SYSCALL = "syscall"  # complete (or resumed) call; result may be None if cut short
    UNFINISHED = "unfinished"  # first half of a call, held until it resumes
    EXITED = "exited"
    KILLED = "killed"
    SIGNAL = "signal"
    OTHER = "other"  # anything we cannot read: kept as evidence, never an error


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One parsed strace line. ``args`` are raw argument texts split at top level."""

    raw: str
    kind: LineKind
    pid: int | None = None
    name: str = ""
    args: tuple[str, ...] = ()
    retval: int | None = None  # None for "?" or when the line was cut before the result
    errno: str | None = None  # "ENOENT" for "= -1 ENOENT (...)"
    ret_path: str | None = None  # the -yy annotation of the result: "3</etc/passwd>"
    exit_code: int | None = None
    signal: str | None = None

    @property
    def failed(self) -> bool:
        return self.errno is not None or (self.retval is not None and self.retval < 0)


class TraceParser:
    """Stateful parser: joins ``<unfinished ...>``/``resumed>`` halves per pid."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: OrderedDict[int, str] = OrderedDict()
        self._max_pending = max_pending

    def parse(self, line: str) -> list[TraceLine]:
        """Every record this line completes (usually one); never raises."""
        try:
            return self._parse(line[:LINE_MAX].rstrip("\n"))
        except Exception:  # hostile input must never stop the analysis
            return [TraceLine(raw=line[:LINE_MAX], kind=LineKind.OTHER)]

    def _parse(self, line: str) -> list[TraceLine]:
        match = _PREFIX.match(line)
        pid_text = (match.group("pid") or match.group("bpid")) if match else None
        pid = int(pid_text) if pid_text and len(pid_text) < 10 else None
        body = line[match.end() :] if match else line
        if found := _EXITED.match(body):
            return [*self._flush(pid), _ended(line, pid, LineKind.EXITED, code=found.group(1))]
        if found := _KILLED.match(body):
            return [*self._flush(pid), _ended(line, pid, LineKind.KILLED, sig=found.group(1))]
        if found := _SIGNAL.match(body):
            return [TraceLine(raw=line, kind=LineKind.SIGNAL, pid=pid, signal=found.group(1))]
        if found := _RESUMED.match(body):
            head = self._pending.pop(pid, None) if pid is not None else None
            rest = body[found.end() :]
            body = (head if head is not None else f"{found.group(1)}(") + rest
        if body.endswith(_UNFINISHED) and _CALL.match(body):
            if pid is not None:
                self._pending[pid] = body[: -len(_UNFINISHED)]
                self._pending.move_to_end(pid)
                while len(self._pending) > self._max_pending:
                    self._pending.popitem(last=False)
            return [TraceLine(raw=line, kind=LineKind.UNFINISHED, pid=pid)]
        return [parse_call(line, pid, body)]

    def pending_forks(self) -> list[int]:
        """Pids inside an unfinished clone/fork/vfork, most recent first.

        A vforked child runs (and execs) before its parent's call returns, so its first
        lines come from a pid nobody has announced yet: one of these is its parent.
        """
        return [
            pid
            for pid, head in reversed(self._pending.items())
            if head.startswith(("clone(", "clone3(", "vfork(", "fork("))
        ]

    def _flush(self, pid: int | None) -> list[TraceLine]:
        """A process died inside a call: what we saw of it is still evidence."""
        head = self._pending.pop(pid, None) if pid is not None else None
        return [] if head is None else [parse_call(head, pid, head)]


def _ended(
    line: str, pid: int | None, kind: LineKind, *, code: str = "", sig: str = ""
) -> TraceLine:
    exit_code = int(code) if code and len(code) < 10 else None
    return TraceLine(raw=line, kind=kind, pid=pid, exit_code=exit_code, signal=sig or None)


def parse_call(raw: str, pid: int | None, body: str) -> TraceLine:
    """``name(args) = result`` → a SYSCALL line; OTHER when it does not look like one."""
    found = _CALL.match(body)
    if not found:
        return TraceLine(raw=raw, kind=LineKind.OTHER, pid=pid)
    name = found.group(1)
    args, end = split_args(body, found.end())
    retval = errno = ret_path = None
    if end is not None:
        result = _RESULT.match(body[end + 1 :].strip())
        if result:
            value, rest = result.group(1), result.group(2)
            if value != "?":
                retval = int(value, 16) if value.startswith("0x") else int(value[:20])
            if rest.startswith("<"):
                ret_path = annotation(rest)
            if err := _ERRNO.match(rest):
                errno = err.group(1)
    return TraceLine(
        raw=raw,
        kind=LineKind.SYSCALL,
        pid=pid,
        name=name,
        args=tuple(args),
        retval=retval,
        errno=errno,
        ret_path=ret_path,
    )


def split_args(text: str, start: int) -> tuple[list[str], int | None]:
    """Arguments from ``text[start:]`` up to the matching ``)``; its index, or None if cut."""
    args: list[str] = []
    closers: list[str] = []
    i = begin = start
    n = len(text)
    while i < n:
        ch = text[i]
        in_angle = bool(closers) and closers[-1] == ">"
        if ch == '"' and not in_angle:
            i = _skip_string(text, i)
            continue
        if ch == "<":
            if _SOCKET_ANNOTATION.match(text, i + 1):
                close = text.find("]>", i)
                i = n if close < 0 else close + 2
                continue
            closers.append(">")
        elif ch in "([{" and not in_angle:
            closers.append({"(": ")", "[": "]", "{": "}"}[ch])
        elif closers and ch == closers[-1]:
            closers.pop()
        elif ch == ")" and not closers:
            _append_arg(args, text[begin:i])
            return args, i
        elif ch == "," and not closers:
            _append_arg(args, text[begin:i])
            begin = i + 1
        i += 1
    _append_arg(args, text[begin:])
    return args, None


def _append_arg(args: list[str], text: str) -> None:
    text = text.strip()
    if text and len(args) < MAX_ARGS:
        args.append(text)


def _skip_string(text: str, i: int) -> int:
    """Index just past the quoted string starting at ``text[i]`` (and its ``...``)."""
    i += 1
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            i += 1
            return i + 3 if text.startswith("...", i) else i
        i += 1
    return n


def unquote(arg: str) -> str | None:
    """The text of a quoted strace string argument; None if ``arg`` is not one.

    Escapes (``\\n``, ``\\"``, ``\\x41``, octal ``\\101``) are decoded; bytes that are not
    UTF-8 become U+FFFD. A trailing ``...`` (string cut by ``-s``) is dropped.
    """
    arg = arg.strip()
    if not arg.startswith('"'):
        return None
    end = _skip_string(arg, 0)
    inner = arg[1:end]
    if inner.endswith('"...'):
        inner = inner[:-4]
    elif inner.endswith('"'):
        inner = inner[:-1]
    return decode_escapes(inner)


def decode_escapes(text: str) -> str:
    """C escapes as strace prints them → text."""
    if "\\" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[i + 1 : i + 4])
            assert digits is not None
            out.append(int(digits.group(0), 8) & 0xFF)
            i += 1 + len(digits.group(0))
        else:
            out.append(_ESCAPES.get(nxt, ord(nxt) if ord(nxt) < 256 else 63))
            i += 2
    return out.decode("utf-8", "replace")


def annotation(arg: str) -> str | None:
    """The ``-yy`` annotation of an fd argument or result: ``3</a/b>`` → ``/a/b``."""
    start = arg.find("<")
    if start < 0:
        return None
    if _SOCKET_ANNOTATION.match(arg, start + 1):
        close = arg.find("]>", start)
        return arg[start + 1 : close + 1] if close > 0 else arg[start + 1 :]
    depth = 0
    for i in range(start, len(arg)):
        if arg[i] == "<":
            depth += 1
        elif arg[i] == ">":
            depth -= 1
            if depth == 0:
                inner = arg[start + 1 : i]
                # "/dev/null<char 1:3>": the device note is not part of the path
                cut = inner.find("<")
                return decode_escapes(inner[:cut] if cut >= 0 else inner)
    return decode_escapes(arg[start + 1 :])


def string_array(arg: str) -> list[str]:
    """``["a", "b"...]`` (execve argv) → the decoded strings, at most MAX_ARGS."""
    arg = arg.strip()
    if not arg.startswith("["):
        return []
    items, _ = split_args(arg, 1)
    out = []
    for item in items:
        text = unquote(item)
        if text is not None:
            out.append(text)
    return out


@dataclass(frozen=True, slots=True)
class SockAddr:
    """A socket address argument."""

    family: str
    address: str | None = None  # IP address or UNIX path
    port: int | None = None

    @property
    def is_loopback(self) -> bool:
        if self.family == "AF_INET":
            return (self.address or "").startswith("127.")
        if self.family == "AF_INET6":
            addr = self.address or ""
            return addr == "::1" or addr.startswith("::ffff:127.")
        return False

    @property
    def is_inet(self) -> bool:
        return self.family in ("AF_INET", "AF_INET6")

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.family}:{self.address}"
        host = f"[{self.address}]" if self.family == "AF_INET6" else self.address
        return f"{host}:{self.port}"


_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_ADDR4 = re.compile(r'sin_addr=inet_addr\("([^"]*)"\)')
_ADDR6 = re.compile(r'inet_pton\(AF_INET6,\s*"([^"]*)"')
_SUN = re.compile(r"sun_path=(@?\"(?:[^\"\\]|\\.)*\")")


def sockaddr(arg: str) -> SockAddr | None:
    """``{sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("1.1.1.1")}`` → SockAddr."""
    family = _FAMILY.search(arg)
    if not family:
        return None
    fam = family.group(1)
    port = _PORT.search(arg)
    port_no = int(port.group(1)) if port and len(port.group(1)) < 6 else None
    if fam == "AF_INET":
        addr = _ADDR4.search(arg)
        return SockAddr(fam, addr.group(1) if addr else None, port_no)
    if fam == "AF_INET6":
        addr = _ADDR6.search(arg)
        return SockAddr(fam, addr.group(1) if addr else None, port_no)
    if fam == "AF_UNIX":
        sun = _SUN.search(arg)
        path = unquote(sun.group(1).lstrip("@")) if sun else None
        return SockAddr(fam, path)
    return SockAddr(fam)


_PEER = re.compile(r"->(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})\]")


def fd_peer(arg: str) -> SockAddr | None:
    """The remote end of a connected socket from its ``-yy`` annotation, if shown."""
    note = annotation(arg) or ""
    found = _PEER.search(note)
    if not found:
        return None
    family = "AF_INET6" if note.startswith(("TCPv6", "UDPv6")) else "AF_INET"
    return SockAddr(family, found.group(1) or found.group(2), int(found.group(3)))

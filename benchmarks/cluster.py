"""A real master and slave on loopback, started through the ``pyti`` command line.

Benchmarks that judge verdicts (``corpus.py``, ``detection.py``) drive pyti the way
a sysadmin and a CI hook do: the daemons are the installed ``pyti`` console
command, jobs go in through the HTTP API and results come back from it. Nothing
here imports the daemons' internals, so the benchmarks measure what users get.

    async with LocalCluster(work_dir, image_dir, accel="tcg") as cluster:
        job_id = await cluster.submit("six")
        job = await cluster.wait(job_id, timeout=900)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

#: Seconds between two looks at a job that has not finished.
POLL_S = 2.0
FINAL_STATES = frozenset({"finished", "cancelled"})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pyti_command() -> str:
    """The ``pyti`` console command of the interpreter running this script."""
    candidate = Path(sys.executable).parent / "pyti"
    if not candidate.exists():
        raise SystemExit(f"no pyti command next to {sys.executable}: run scripts/setup.sh first")
    return str(candidate)


class ClusterError(Exception):
    """A daemon did not start, or the API answered with an error."""


class MasterApi:
    """The master's HTTP API calls the benchmark harnesses share (`LocalCluster`,
    ``fleet.Fleet``): they provide ``session`` (authenticated) and ``base_url``."""

    base_url: str

    @property
    def session(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    async def healthy(self) -> bool:
        async with self.session.get(f"{self.base_url}/healthz") as resp:
            return resp.status == 200

    async def _json(self, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        body: dict[str, Any] = await resp.json(content_type=None)
        if resp.status >= 400:
            raise ClusterError(f"{resp.status} {body.get('error')}: {body.get('detail')}")
        return body

    async def upload(self, path: Path, data: bytes | None = None) -> int:
        """Queue an sdist or wheel (``rerun``: a new job every time); returns the job id.
        ``data``: the file's bytes, when the caller already has them."""
        payload = data if data is not None else await asyncio.to_thread(path.read_bytes)
        form = aiohttp.FormData()
        form.add_field("rerun", "true")
        form.add_field("file", payload, filename=path.name,
                       content_type="application/octet-stream")  # fmt: skip
        async with self.session.post(f"{self.base_url}/api/v1/jobs", data=form) as resp:
            body = await self._json(resp)
        return int(body["job"]["id"])

    async def job(self, job_id: int) -> dict[str, Any]:
        """The job as ``GET /api/v1/jobs/{id}`` shows it."""
        async with self.session.get(f"{self.base_url}/api/v1/jobs/{job_id}") as resp:
            body = await self._json(resp)
        job: dict[str, Any] = body["job"]
        return job


class LocalCluster(MasterApi):
    """One master (no feed) and one slave as child processes; stopped on exit."""

    def __init__(
        self,
        work: Path,
        image_dir: Path,
        *,
        accel: str = "tcg",
        slots: int = 1,
        pypi_url: str | None = None,
        slave_args: tuple[str, ...] = (),
    ) -> None:
        self.work = work
        self.image_dir = image_dir
        self.accel = accel
        self.slots = slots
        self.pypi_url = pypi_url
        self.slave_args = slave_args
        self.http_port = free_port()
        self.slave_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.token = secrets.token_hex(16)
        self._procs: list[asyncio.subprocess.Process] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LocalCluster:
        self.work.mkdir(parents=True, exist_ok=True)
        secret = self.work / "secret"
        secret.write_text(secrets.token_hex(32))
        tokens = self.work / "tokens"
        tokens.write_text(self.token + "\n")
        os.chmod(secret, 0o600)
        os.chmod(tokens, 0o600)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=120),
        )
        try:
            master = [
                "master", "--data-dir", str(self.work / "master"),
                "--slave-addr", f"127.0.0.1:{self.slave_port}",
                "--http-addr", f"127.0.0.1:{self.http_port}",
                "--secret-file", str(secret), "--token-file", str(tokens), "--no-feed",
            ]  # fmt: skip
            if self.pypi_url:
                master += ["--pypi-url", self.pypi_url]
            await self._spawn(master, self.work / "master.log")
            await self._until(self.healthy, 30, "the master did not answer /healthz")
            slave = [
                "slave", "--master", f"127.0.0.1:{self.slave_port}",
                "--secret-file", str(secret), "--image-dir", str(self.image_dir),
                "--accel", self.accel, "--slots", str(self.slots),
                "--work-dir", str(self.work / "slave"), "--name", "bench-slave",
                *self.slave_args,
            ]  # fmt: skip
            if self.pypi_url:
                slave += ["--pypi-url", self.pypi_url]
            await self._spawn(slave, self.work / "slave.log")
            await self._until(self._slave_connected, 120, "the slave did not connect")
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """SIGTERM every daemon (slave first), SIGKILL what is left after 30 s."""
        for proc in reversed(self._procs):
            if proc.returncode is None:
                proc.terminate()
                try:
                    async with asyncio.timeout(30):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        self._procs.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _spawn(self, args: list[str], log_path: Path) -> None:
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                pyti_command(), *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self._procs.append(proc)

    async def _until(self, check: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.returncode is not None:
                    raise ClusterError(f"{what}: a daemon exited ({proc.returncode}); see logs in "
                                       f"{self.work}")  # fmt: skip
            with contextlib.suppress(aiohttp.ClientError, OSError):
                if await check():
                    return
            await asyncio.sleep(0.3)
        raise ClusterError(f"{what} within {seconds:g} s; see logs in {self.work}")

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "cluster not started"
        return self._session

    async def _slave_connected(self) -> bool:
        async with self.session.get(f"{self.base_url}/api/v1/slaves") as resp:
            body = await resp.json()
        return any(s.get("name") == "bench-slave" for s in body.get("slaves", []))

    async def submit(self, project: str, version: str | None = None) -> int:
        """Queue a release from the index; returns the job id (``ClusterError`` if refused)."""
        payload: dict[str, Any] = {"project": project, "rerun": True}
        if version:
            payload["version"] = version
        async with self.session.post(f"{self.base_url}/api/v1/jobs", json=payload) as resp:
            body = await self._json(resp)
        return int(body["job"]["id"])

    async def wait(self, job_id: int, timeout: float) -> dict[str, Any]:
        """The job once finished or cancelled; cancels it and returns it past ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if job["state"] in FINAL_STATES:
                return job
            if time.monotonic() > deadline:
                url = f"{self.base_url}/api/v1/jobs/{job_id}/cancel"
                async with self.session.post(url) as resp:
                    await resp.read()
                job = await self.job(job_id)
                job.setdefault("summary", {})["bench_error"] = f"no result within {timeout:g} s"
                return job
            await asyncio.sleep(POLL_S)


def write_outputs(
    figures: dict[str, Any],
    table: str,
    json_path: Path | None,
    markdown_path: Path | None,
    *,
    quiet: bool = False,
) -> None:
    """Print the Markdown table (unless ``quiet``); write the figures (``--json``) and the
    table (``--markdown``)."""
    if not quiet:
        print(table)
    if json_path:
        json_path.write_text(json.dumps(figures, indent=1))
    if markdown_path:
        markdown_path.write_text(table)


def phase_seconds(job: dict[str, Any]) -> dict[str, float]:
    """Each phase's duration as the result recorded it."""
    out: dict[str, float] = {}
    for name, entry in (job.get("phases") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("duration_s"), int | float):
            out[name] = round(float(entry["duration_s"]), 1)
    return out

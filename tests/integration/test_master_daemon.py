"""The ``pyti master`` command: config errors exit 2; kill -9 loses nothing acknowledged;
SIGTERM drains slaves and re-queues what they did not finish."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from master.jobs import JobRequest, JobState
from master.store import Store
from protocol.messages import Drain, EventsAck, JobOffer, ResultAck, RunningJob
from pyti.cli import main
from tests.fakes.slave import FakeSlave

SECRET = b"daemon-secret-0123456789abcdef"
FAST_TOML = """
heartbeat_interval = 0.2
heartbeat_timeout = 2.0
reconnect_grace = 30.0
drain_grace = 1.0
master_name = "daemon-test"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _files(tmp_path: Path, secret: bytes = SECRET) -> list[str]:
    (tmp_path / "secret").write_bytes(secret)
    (tmp_path / "tokens").write_text("tok-1\n")
    (tmp_path / "master.toml").write_text(FAST_TOML)
    return [
        "master",
        "--data-dir",
        str(tmp_path / "data"),
        "--secret-file",
        str(tmp_path / "secret"),
        "--token-file",
        str(tmp_path / "tokens"),
        "--config",
        str(tmp_path / "master.toml"),
        "--no-feed",
    ]


def test_missing_or_empty_secret_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secret, or an empty one, is a clear error and exit status 2."""
    argv = _files(tmp_path, secret=b"  \n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--secret-file" in err and "is empty" in err
    (tmp_path / "secret").unlink()
    assert main(argv) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown key, a wrong type or broken TOML names the problem and exits 2."""
    argv = _files(tmp_path)
    for text, expected in (
        ("heartbeat_intervall = 1\n", "unknown setting 'heartbeat_intervall'"),
        ("retry_limit = 'three'\n", "retry_limit has the wrong type"),
        ("[feed\n", "not valid TOML"),
        ("heartbeat_timeout = 0.1\n", "heartbeat_timeout must be longer"),
    ):
        (tmp_path / "master.toml").write_text(text)
        assert main(argv) == 2
        assert expected in capsys.readouterr().err


@pytest.mark.parametrize("key", ["heartbeat_interval", "retry_limit", "max_frame"])
def test_true_where_a_number_belongs_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """``heartbeat_interval = true`` is not 1 second: the master refuses it, naming file and key."""
    argv = _files(tmp_path)
    (tmp_path / "master.toml").write_text(f"{key} = true\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'master.toml'}: {key} has the wrong type" in err


def test_unusable_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A data directory that cannot be created (a file is in the way) exits 2."""
    argv = _files(tmp_path)
    (tmp_path / "blocker").write_text("")
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "blocker" / "data")
    assert main(argv) == 2
    assert "--data-dir" in capsys.readouterr().err


class Daemon:
    """``pyti master`` in a subprocess on free loopback ports."""

    def __init__(self, tmp_path: Path, slave_port: int | None = None) -> None:
        self.argv = [
            *_files(tmp_path),
            "--slave-addr",
            f"127.0.0.1:{slave_port or _free_port()}",
            "--http-addr",
            f"127.0.0.1:{_free_port()}",
        ]
        self.slave_port = int(self.argv[self.argv.index("--slave-addr") + 1].split(":")[1])
        self.db = tmp_path / "data" / "pyti.sqlite3"
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, object]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from pyti.cli import main; sys.exit(main())",
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await self.wait_log("master_started")

    async def wait_log(self, event: str, timeout: float = 20.0) -> dict[str, object]:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = b"" if self.proc.stderr is None else await self.proc.stderr.read()
                    raise AssertionError(f"daemon exited: {err.decode()[-2000:]}")
                if not line.startswith(b"{"):
                    continue
                entry: dict[str, object] = json.loads(line)  # JSON: stdout is not a TTY
                self.lines.append(entry)
                if entry.get("event") == event:
                    return entry

    async def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        async with asyncio.timeout(20):
            await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode


@asynccontextmanager
async def daemon(tmp_path: Path, slave_port: int | None = None) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path, slave_port)
    await d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.returncode is None:
            d.proc.kill()
            await d.proc.communicate()


async def _queue(tmp_path: Path, project: str) -> int:
    (tmp_path / "data").mkdir(exist_ok=True)
    store = await Store.open(tmp_path / "data" / "pyti.sqlite3")
    try:
        return (await store.jobs.submit(JobRequest(project, "1.0", [], "bookworm"))).job.id
    finally:
        await store.close()


async def test_port_in_use_exits_2(tmp_path: Path) -> None:
    """A slave port already taken is reported and the daemon exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        d = Daemon(tmp_path, slave_port=taken.getsockname()[1])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from pyti.cli import main; sys.exit(main())",
            *d.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"cannot start" in err and b"in use" in err


async def test_kill_9_loses_no_acknowledged_event_or_job(tmp_path: Path) -> None:
    """After SIGKILL and a restart, every acked event is stored and the slave's job is adopted."""
    job_id = await _queue(tmp_path, "survivor")
    async with daemon(tmp_path) as d:
        slave = FakeSlave("127.0.0.1", d.slave_port, SECRET, name="s1", mode="accept")
        await slave.connect()
        offer = await slave.next(JobOffer)
        for _ in range(5):
            await slave.send_events(job_id, offer.lease, 40)
        await slave.wait_for(lambda: slave.jobs[job_id].acked == 200)
        d.proc.kill()  # type: ignore[union-attr]
        await d.proc.communicate()  # type: ignore[union-attr]
        await slave.kill()
    async with daemon(tmp_path, slave_port=d.slave_port) as d2:
        back = FakeSlave(
            "127.0.0.1",
            d2.slave_port,
            SECRET,
            name="s1",
            running=[RunningJob(job_id=job_id, lease=offer.lease, last_seq=200)],
        )
        await back.connect()
        back.adopt(offer, next_seq=201)
        await back.send_events(job_id, offer.lease, 10)
        assert (await back.next(EventsAck)).seq == 210
        await back.send_result(job_id, offer.lease, "passed", last_seq=210)
        await back.next(ResultAck)
        await back.close()
        assert await d2.signal(signal.SIGTERM) == 0
    store = await Store.open(d.db)
    try:
        job = await store.jobs.get(job_id)
        assert job is not None and job.state is JobState.FINISHED and job.attempt == 1
        assert [e.seq for e in await store.events.read(job_id, limit=1000)] == list(range(1, 211))
    finally:
        await store.close()


async def test_sigterm_drains_slaves_and_requeues_unfinished_jobs(tmp_path: Path) -> None:
    """SIGTERM sends drain, waits the grace, re-queues the running job and exits 0."""
    job_id = await _queue(tmp_path, "slowpoke")
    async with daemon(tmp_path) as d:
        slave = FakeSlave("127.0.0.1", d.slave_port, SECRET, name="s1", mode="accept")
        await slave.connect()
        await slave.next(JobOffer)
        await d.wait_log("job_accepted")
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        drain = await slave.next(Drain)
        assert "shutting down" in drain.reason
        async with asyncio.timeout(20):
            await d.proc.wait()
        assert d.proc.returncode == 0
        await slave.close()
    store = await Store.open(d.db)
    try:
        job = await store.jobs.get(job_id)
        assert job is not None and job.state is JobState.QUEUED and job.attempt == 2
        assert [a.status for a in await store.jobs.attempts(job_id)] == ["dropped"]
    finally:
        await store.close()


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    """File settings apply, flags win over them, relative paths follow the file, tables pass."""
    from master.daemon_cli import load
    from pyti.cli import build_parser

    argv = _files(tmp_path)
    (tmp_path / "master.toml").write_text(
        'slave_addr = "127.0.0.1:7700"\nhttp_addr = ":7781"\npypi_url = "http://127.0.0.1:9/"\n'
        'secret_file = "secret"\nretry_limit = 5\nrequire_read_token = true\n'
        "[feed]\ninterval = 60\n[http]\nmax_upload = 1024\n"
    )
    i = argv.index("--secret-file")
    del argv[i : i + 2]  # from the file, relative to it
    argv += ["--slave-addr", "127.0.0.1:7601", "--feed-url", "http://127.0.0.1:8/rss"]
    args = build_parser(load="master").parse_args(argv)
    cfg = load(args)
    assert (cfg.slave_host, cfg.slave_port) == ("127.0.0.1", 7601)
    assert (cfg.http_host, cfg.http_port) == ("0.0.0.0", 7781)  # noqa: S104  # ":PORT" = all
    assert cfg.secret == SECRET and cfg.tokens == frozenset({"tok-1"})
    assert cfg.pypi_url == "http://127.0.0.1:9" and cfg.feed_urls == ("http://127.0.0.1:8/rss",)
    assert cfg.retry_limit == 5 and cfg.require_read_token and not cfg.feed_enabled
    assert cfg.feed == {"interval": 60} and cfg.http == {"max_upload": 1024}
    assert cfg.db_path == (tmp_path / "data" / "pyti.sqlite3").resolve()
    assert SECRET.decode() not in repr(cfg) and "tok-1" not in repr(cfg)


def test_short_secret_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret under 16 bytes is refused at start, as the slave refuses it."""
    args = _files(tmp_path, secret=b"short")
    assert main(args) == 2
    assert "too short" in capsys.readouterr().err

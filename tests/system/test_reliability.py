"""Reliability under failure: real ``pyti master``/``pyti slave`` processes, real QEMU (TCG).

Each test kills, floods or starves a part of a running system and checks that
nothing is lost, doubled or wedged: a slave SIGKILLed mid-job, a master SIGKILLed
mid-job and restarted on its data dir, a storm of malformed frames and wrong-secret
logins on the slave port, a feed that answers garbage, 500s and nothing, and
packages that flood output, fork-bomb or fill the disk. The figures measured go to
``$PYTI_RELIABILITY_JSON`` when set (one flat JSON object) and are printed;
``docs/reliability.md`` summarises them. ``PYTI_SOAK_SECONDS`` (default 30) is how
long the feed stays broken; raise it for a soak run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slave.image_builder.manifest import Image
from tests.fakes import behaviours
from tests.fakes.feeds import BILLION_LAUGHS, release_item, rss
from tests.fakes.pypi import FakePyPI
from tests.system.daemons import Api, Cluster, descendants, percentile, rss_kib

pytestmark = pytest.mark.system

JOB_TIMEOUT = 600.0  # one TCG job on a loaded 2-core machine
SOAK_SECONDS = float(os.environ.get("PYTI_SOAK_SECONDS", "30"))
FRAMES = int(os.environ.get("PYTI_ATTACK_FRAMES", "10000"))
LOGINS = int(os.environ.get("PYTI_ATTACK_LOGINS", "1000"))
#: Guest phase timeouts: the samples are tiny, a hostile one must not hold the suite.
TIMEOUTS = {"install": 120.0, "import": 60.0, "tests": 120.0, "quality": 60.0}
#: A lost slave's jobs wait 3 s for it (the default 30 s would only slow the suite).
FAST_REQUEUE = {"heartbeat_interval": 1.0, "heartbeat_timeout": 5.0, "reconnect_grace": 3.0}

FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_figures() -> Iterator[None]:
    """Print the module's figures at the end and write them where asked."""
    yield
    print("\nreliability figures:", json.dumps(FIGURES, indent=1, sort_keys=True))
    target = os.environ.get("PYTI_RELIABILITY_JSON")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=1, sort_keys=True) + "\n")


@pytest.fixture
async def pypi() -> AsyncIterator[FakePyPI]:
    async with FakePyPI() as index:
        yield index


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a VM's Unix sockets must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rel-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def cluster(short_dir: Path, pypi: FakePyPI) -> AsyncIterator[Cluster]:
    c = Cluster(short_dir, pypi_url=pypi.base_url)
    try:
        yield c
    finally:
        await c.stop()


def seqs_ok(events: list[dict[str, Any]]) -> None:
    """The job's events are seq 1..N, each once, ending with ``job_finished``."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"gap or duplicate: {_holes(seqs)}"
    assert events[-1]["event"] == "job_finished", events[-1]


def _holes(seqs: list[int]) -> str:
    dup = sorted({s for s in seqs if seqs.count(s) > 1})
    missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
    return f"duplicates {dup[:10]}, missing {missing[:10]}"


def phase_started(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "phase_started" and e["phase"] == phase


def finished(job: dict[str, Any]) -> bool:
    return bool(job["state"] in ("finished", "cancelled"))


async def test_slave_killed_mid_job_is_requeued_to_the_next_slave(
    cluster: Cluster, pypi: FakePyPI, image: Image, tmp_path: Path
) -> None:
    """SIGKILL of the slave mid-job: re-queued, finished by another slave, seqs 1..N once."""
    pypi.add_project(tmp_path / "d", "relkill", "1.0")
    master = cluster.master(config=FAST_REQUEUE)
    await master.start()
    s1 = cluster.slave("s1", image.dir.parent, timeouts=TIMEOUTS)
    await s1.start()
    async with Api(master.http_url, cluster.token) as api:
        await api.wait_slave("s1", timeout=120)
        job_id = await api.submit("relkill", "1.0")
        before = await api.wait_event(job_id, phase_started("install"), JOB_TIMEOUT)
        killed = time.monotonic()
        orphans = await s1.kill(orphan_grace=5.0)
        job = await api.wait_job(job_id, lambda j: j["state"] == "queued", 60, poll=0.05)
        requeue_s = time.monotonic() - killed
        assert job["attempt"] == 2, job

        s2 = cluster.slave("s2", image.dir.parent, timeouts=TIMEOUTS)
        await s2.start()
        job = await api.wait_job(job_id, finished, JOB_TIMEOUT)
        rerun_s = time.monotonic() - killed
        assert job["outcome"] == "passed", (job, s2.log_tail())
        assert job["slave"] == "s2"
        events = await api.events(job_id)
    seqs_ok(events)
    assert events[: len(before)] == before, "an event stored before the kill changed or vanished"
    assert not orphans, f"{len(orphans)} processes (its QEMU) outlived the killed slave"
    FIGURES.update(
        slave_kill_requeue_s=round(requeue_s, 2),
        slave_kill_reconnect_grace_s=FAST_REQUEUE["reconnect_grace"],
        slave_kill_finished_after_s=round(rerun_s, 1),
        slave_kill_events=len(events),
        slave_kill_events_before_kill=len(before),
        slave_kill_orphan_processes=len(orphans),
    )


async def test_master_killed_mid_job_restarts_on_the_same_data(
    cluster: Cluster, pypi: FakePyPI, image: Image, tmp_path: Path
) -> None:
    """SIGKILL of the master mid-job: after a restart the job and its events survive, it ends."""
    pypi.add_project(tmp_path / "d", "relphoenix", "1.0")
    master = cluster.master(config={"heartbeat_interval": 1.0, "heartbeat_timeout": 5.0})
    await master.start()
    s1 = cluster.slave("s1", image.dir.parent, timeouts=TIMEOUTS)
    await s1.start()
    async with Api(master.http_url, cluster.token) as api:
        await api.wait_slave("s1", timeout=120)
        job_id = await api.submit("relphoenix", "1.0")
        before = await api.wait_event(job_id, phase_started("install"), JOB_TIMEOUT)
        await master.kill()
        await asyncio.sleep(1.0)  # down for a moment: the slave's reconnects fail meanwhile
        restarted = time.monotonic()
        await master.start()
        restart_s = time.monotonic() - restarted
        reconnect_s = await api.wait_slave("s1", timeout=60) + restart_s
        job = await api.wait_job(job_id, finished, JOB_TIMEOUT)
        assert job["outcome"] == "passed", (job, s1.log_tail(), master.log_tail())
        events = await api.events(job_id)
    assert s1.alive, s1.log_tail()
    seqs_ok(events)
    assert events[: len(before)] == before, "an event stored before the kill changed or vanished"
    # the slave brought the job back within the grace: adopted, not run twice
    assert job["attempt"] == 1, job
    FIGURES.update(
        master_kill_restart_s=round(restart_s, 2),
        master_kill_slave_back_s=round(reconnect_s, 2),
        master_kill_events=len(events),
        master_kill_events_before_kill=len(before),
    )


#: Keeps the job running while the storm lasts (3-6 s on this machine; the storm
#: starts once this test is running, so it has a minute of margin).
SLEEPY_TEST = "import time\n\n\ndef test_takes_a_while():\n    time.sleep(60)\n"


async def test_frame_storm_and_wrong_logins_during_a_job(
    cluster: Cluster, pypi: FakePyPI, image: Image, tmp_path: Path
) -> None:
    """Malformed frames and wrong-secret logins on the slave port: job ends, /healthz stays fast."""
    pypi.add_project(tmp_path / "d", "relstorm", "1.0", test_body=SLEEPY_TEST)
    master = cluster.master(config=FAST_REQUEUE)
    await master.start()
    s1 = cluster.slave("s1", image.dir.parent, timeouts=TIMEOUTS)
    await s1.start()
    async with Api(master.http_url, cluster.token) as api:
        await api.wait_slave("s1", timeout=120)
        job_id = await api.submit("relstorm", "1.0")
        # Attack while the package's (sleeping) tests run: the job is mid-flight for sure.
        await api.wait_event(
            job_id,
            lambda e: e["event"] == "phase_started" and e.get("phase") == "tests",
            JOB_TIMEOUT,
        )
        rss_before = rss_kib(master.pid)
        quiet = [await api.healthz_ms() for _ in range(20)]

        attacker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.system.daemons", "attack",
            "127.0.0.1", str(master.slave_port), str(FRAMES), str(LOGINS),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out_task = asyncio.create_task(attacker.communicate())
        latencies: list[float] = []
        while not out_task.done():
            latencies.append(await api.healthz_ms())
            await asyncio.sleep(0.02)
        stdout, _ = await out_task
        assert attacker.returncode == 0
        stats = json.loads(stdout)
        print("storm:", stats)
        state_after_attack = (await api.job(job_id))["state"]
        rss_after = rss_kib(master.pid)

        job = await api.wait_job(job_id, finished, JOB_TIMEOUT)
        assert job["outcome"] == "passed", (job, s1.log_tail())
        assert job["attempt"] == 1, "the storm cost the slave its session"
        events = await api.events(job_id)
        refused = await api.metric("slave_handshake_failures_total")
    seqs_ok(events)
    assert stats.get("logins_accepted", 0) == 0, stats
    accounted = ("frames_sent", "connect_failed", "refused_before_frame")
    assert sum(stats.get(k, 0) for k in accounted) == FRAMES, stats
    assert stats.get("frames_sent", 0) >= 0.99 * FRAMES, stats
    assert stats.get("logins_refused", 0) >= 0.99 * LOGINS, stats
    assert state_after_attack == "running", "the job ended before the storm did: nothing proven"
    p99 = percentile(latencies, 0.99)
    assert p99 < 100.0, f"/healthz p99 {p99:.1f} ms under attack"
    FIGURES.update(
        storm_frames_sent=stats.get("frames_sent", 0),
        storm_frames_closed_by_master=stats.get("closed_by_master", 0),
        storm_logins=LOGINS,
        storm_logins_refused=stats.get("logins_refused", 0),
        storm_handshake_failures_counted=refused,
        storm_duration_s=stats["duration_s"],
        storm_healthz_samples=len(latencies),
        storm_healthz_p50_ms=round(percentile(latencies, 0.5), 1),
        storm_healthz_p99_ms=round(p99, 1),
        storm_healthz_max_ms=round(max(latencies), 1),
        quiet_healthz_max_ms=round(max(quiet), 1),
        storm_master_rss_before_kib=rss_before,
        storm_master_rss_after_kib=rss_after,
    )


async def test_broken_feed_for_a_while_then_polling_resumes(short_dir: Path) -> None:
    """A feed giving garbage, 500s and timeouts: the master lives; a good feed then queues."""
    async with FakePyPI() as feeds:
        cluster = Cluster(short_dir, pypi_url=feeds.base_url)
        feed = {"interval": 0.5, "timeout": 2.0, "backoff_initial": 0.5, "backoff_max": 2.0,
                "resolve_retry_initial": 0.5, "resolve_retry_max": 2.0}  # fmt: skip
        master = cluster.master(config={"feed": feed}, feed_urls=[feeds.feed_url("updates")])
        try:
            await master.start()
            rss_before = rss_kib(master.pid)
            async with Api(master.http_url, cluster.token) as api:
                latencies = await _break_the_feed(feeds, api, SOAK_SECONDS)
                assert master.alive, master.log_tail()
                bad_polls = len(feeds.requests_for("/rss/updates.xml"))
                feed_errors = await api.metric("feed_errors_total")

                healed = time.monotonic()
                feeds.add_release("relfeed", "1.0", uploaded=time.time())
                feeds.set_feed("updates", rss([release_item("relfeed", "1.0", at=time.time())]))
                async with asyncio.timeout(60):
                    while not await api.jobs("relfeed"):  # noqa: ASYNC110  # another process
                        await asyncio.sleep(0.1)
                queued_s = time.monotonic() - healed
                job = (await api.jobs("relfeed"))[0]
            assert job["state"] == "queued" and job["source"] == "feed", job
            assert master.alive
            rss_after = rss_kib(master.pid)
        finally:
            await cluster.stop()
    assert feed_errors > 0, "the faults never reached the watcher: nothing was tested"
    FIGURES.update(
        feed_fault_seconds=SOAK_SECONDS,
        feed_bad_polls=bad_polls,
        feed_errors_counted=feed_errors,
        feed_healthz_max_ms={k: round(max(v), 1) for k, v in latencies.items()},
        feed_queued_after_recovery_s=round(queued_s, 2),
        feed_master_rss_before_kib=rss_before,
        feed_master_rss_after_kib=rss_after,
    )


GARBAGE = {
    "binary": b"\x00\xff" * 300,
    "truncated": b"<rss><channel><item><title>half",
    "billion_laughs": BILLION_LAUGHS,
    "json": b"{}",
}


async def _break_the_feed(feeds: FakePyPI, api: Api, seconds: float) -> dict[str, list[float]]:
    """Rotate garbage, 500s and hanging answers for ``seconds``; /healthz latencies per fault."""
    latencies: dict[str, list[float]] = {}
    end = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < end:
        match turn % 3:
            case 0:
                fault = list(GARBAGE)[(turn // 3) % len(GARBAGE)]
                feeds.set_feed("updates", GARBAGE[fault])
            case 1:
                fault = "http_500"
                feeds.faults.fail("/rss/updates.xml", 500, times=3)
            case _:
                fault = "timeout"
                feeds.faults.slow["/rss/updates.xml"] = 5.0  # longer than the watcher's 2 s timeout
        stop = min(end, time.monotonic() + 3.0)
        while time.monotonic() < stop:
            latencies.setdefault(fault, []).append(await api.healthz_ms())
            await asyncio.sleep(0.1)
        feeds.faults.slow["/rss/updates.xml"] = 0.0
        turn += 1
    return latencies


async def test_hostile_packages_leave_the_slave_working(
    cluster: Cluster, pypi: FakePyPI, image: Image, tmp_path: Path
) -> None:
    """Output flood, fork bomb, disk fill: the same slave process runs a clean package after."""
    dest = tmp_path / "d"
    for path in [
        *behaviours.flood(dest),
        *behaviours.fork_bomb(dest),
        *behaviours.disk_fill(dest),
        *behaviours.clean(dest, "relaftermath"),
    ]:
        pypi.add(path)
    master = cluster.master(config=FAST_REQUEUE)
    await master.start()
    s1 = cluster.slave("s1", image.dir.parent, timeouts=TIMEOUTS)
    await s1.start()
    async with Api(master.http_url, cluster.token) as api:
        await api.wait_slave("s1", timeout=120)
        rss_before = rss_kib(s1.pid)
        outcomes: dict[str, str] = {}
        durations: dict[str, float] = {}
        for project in ("flood", "forkbomb", "diskfill", "relaftermath"):
            start = time.monotonic()
            job_id = await api.submit(project, "1.0")
            job = await api.wait_job(job_id, finished, JOB_TIMEOUT, poll=0.5)
            durations[project] = round(time.monotonic() - start, 1)
            outcomes[project] = job["outcome"]
            assert job["attempt"] == 1, (project, job, s1.log_tail())
            assert job["outcome"] != "infra_error", (project, job, s1.log_tail())
            seqs_ok(await api.events(job_id))
        assert s1.alive and s1.starts == 1, s1.log_tail()
        assert [s["name"] for s in await api.slaves()] == ["s1"]
        rss_after = rss_kib(s1.pid)
    assert outcomes["relaftermath"] == "passed", outcomes
    FIGURES.update(
        hostile_outcomes=outcomes,
        hostile_job_seconds=durations,
        hostile_slave_rss_before_kib=rss_before,
        hostile_slave_rss_after_kib=rss_after,
    )


def qemu_of(pid: int) -> list[int]:
    """The QEMU processes below ``pid`` (a slave's job VMs), by their argv[0]."""
    found = []
    for child in descendants(pid):
        try:
            argv0 = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue  # gone meanwhile
        if argv0.endswith(b"qemu-system-x86_64"):
            found.append(child)
    return found


#: Each killed VM's job retried once (``retry_limit`` 1), then final and quarantined.
VM_KILL_RETRIES = 1
#: How each attempt's QEMU is ended: killed, then asked to quit (SIGTERM: QEMU's own
#: orderly exit with a ``SHUTDOWN`` event, which is what a guest panic or poweroff is too).
VM_KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM)


async def test_qemu_killed_under_a_running_slave_is_retried_then_quarantined(
    cluster: Cluster, pypi: FakePyPI, image: Image, tmp_path: Path
) -> None:
    """The job's QEMU SIGKILLed (slave up), then on the retry SIGTERMed (QEMU's own orderly
    exit, as after a guest panic or poweroff): each attempt is an infra_error within seconds
    naming the VM's end; after ``retry_limit`` retries the job is quarantined "kills its VM"."""
    pypi.add_project(tmp_path / "d", "relvmkill", "1.0", test_body=SLEEPY_TEST)
    master = cluster.master(config={**FAST_REQUEUE, "retry_limit": VM_KILL_RETRIES})
    await master.start()
    s1 = cluster.slave("s1", image.dir.parent, timeouts=TIMEOUTS)
    await s1.start()
    ended_after: list[float] = []
    async with Api(master.http_url, cluster.token) as api:
        await api.wait_slave("s1", timeout=120)
        job_id = await api.submit("relvmkill", "1.0")
        for attempt in range(1, VM_KILL_RETRIES + 2):
            await _wait_tests_started(api, job_id, attempt)
            (qemu,) = qemu_of(s1.pid)
            os.kill(qemu, VM_KILL_SIGNALS[attempt - 1])
            killed = time.monotonic()
            await api.wait_job(job_id, _past_attempt(attempt), 120, poll=0.05)
            ended_after.append(round(time.monotonic() - killed, 2))
        doc = await api.get(f"/api/v1/jobs/{job_id}")
        events = await api.events(job_id)
    job, attempts = doc["job"], doc["attempts"]
    assert job["state"] == "finished" and job["outcome"] == "infra_error", job
    assert job["quarantined"] and "kills its VM" in (job["error"] or ""), job
    assert job["attempt"] == VM_KILL_RETRIES + 1, job
    assert [a["status"] for a in attempts] == ["retried"] * VM_KILL_RETRIES + ["quarantined"]
    expected = [
        "QEMU was killed by signal 9 (SIGKILL)",
        "QEMU exited with status 0 (shutdown: host-signal)",
    ]
    for a, how in zip(attempts, expected, strict=True):
        assert a["outcome"] == "infra_error", a
        assert a["summary"]["vm_exit"] == how, a
        assert a["summary"]["error"].startswith(f"the VM died: {how}; "), a
        assert a["summary"]["reason"].startswith("pyti could not run the job: the VM died"), a
    # within seconds, not at a heartbeat or phase timeout (tests: 120 s)
    assert max(ended_after) < 15.0, ended_after
    seqs_ok(events)
    assert s1.alive and s1.starts == 1, s1.log_tail()
    jobs_dir = cluster.root / "slave-s1" / "jobs"
    async with asyncio.timeout(10):  # the slave removes the job's dir once its result is acked
        while list(jobs_dir.glob("*")):  # noqa: ASYNC110  # another process's files
            await asyncio.sleep(0.1)
    assert not qemu_of(s1.pid)
    FIGURES.update(
        vm_kill_to_result_s=ended_after,
        vm_kill_attempts=len(attempts),
        vm_kill_error=attempts[0]["summary"]["error"][:300],
        vm_kill_job_error=job["error"][:300],
    )


def _past_attempt(attempt: int) -> Callable[[dict[str, Any]], bool]:
    return lambda j: bool(j["attempt"] > attempt or finished(j))


async def _wait_tests_started(api: Api, job_id: int, attempt: int) -> None:
    """Until the ``attempt``-th ``tests`` phase has started (the VM is busy with the package)."""
    async with asyncio.timeout(JOB_TIMEOUT):
        while True:
            events = await api.events(job_id)
            if sum(phase_started("tests")(e) for e in events) >= attempt:
                return
            await asyncio.sleep(0.2)

"""Hostile and broken releases as real jobs in real VMs: outcomes, findings, containment.

One slave daemon (with the real ``VMExecutor``) runs every sample of
``tests.fakes.behaviours`` in turn, one fresh VM each, against a fake master and a
fake PyPI on loopback; the last job is a clean release again, which proves the
slave survived the rest. Each job takes 80-200 s under TCG on 2 busy cores (most of
it pip: installing the release, then pytest).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from protocol.messages import ImageInfo, JobResult
from protocol.results import phases_to_json
from slave.config import SlaveConfig
from slave.daemon import SlaveDaemon
from slave.findings import diff, profile_from_json
from slave.image_builder.manifest import Image
from slave.job.executor import VMExecutor
from slave.prepare import PipOptions
from slave.vm.accel import Accel
from tests.fakes import behaviours
from tests.fakes.behaviours import (
    DELAYED_HOST,
    DELAYED_SLEEP_S,
    DROPPER_HOST,
    DROPPER_IP,
    DROPPER_PORT,
    EXFIL_HOST,
    EXFIL_PORT,
    METADATA_IP,
    PROBE_V6,
    STEALER_PTH,
)
from tests.fakes.master import FakeMaster, stop_task
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env

pytestmark = [pytest.mark.system, pytest.mark.asyncio(loop_scope="module")]

SECRET = b"behaviour-test-secret-0123456789abcdef"
JOB_TIMEOUT = 900.0
OUTPUT_CAP = 1 << 20
SAMPLES: dict[str, Callable[[Path], list[Path]]] = {
    "cleanpkg": behaviours.clean,
    "stealer": behaviours.stealer,
    "segfaulter": behaviours.segfault,
    "forkbomb": behaviours.fork_bomb,
    "diskfill": behaviours.disk_fill,
    "memhog": behaviours.memory_hog,
    "flood": behaviours.flood,
    "dropper": behaviours.dropper,
    "dynsetup": behaviours.dynamic_setup,
    "netprobe": behaviours.netprobe,
    "delayed": behaviours.delayed,
}


@dataclass
class Harness:
    master: FakeMaster
    daemon: SlaveDaemon
    #: every job's events land here as JSON lines, for whoever debugs a failure
    events_dir: Path
    #: the image every job names (``$PYTI_TEST_IMAGE``, default bookworm)
    image: str = "bookworm"
    next_id: int = 1
    results: dict[str, JobResult] = field(default_factory=dict)

    async def run(self, project: str, **offer: Any) -> tuple[int, JobResult]:
        """Offer ``project`` 1.0 and wait for its result."""
        job_id = self.next_id
        self.next_id += 1
        started = time.monotonic()
        await self.master.offer(
            job_id, project=project, version="1.0", image=self.image, **offer
        )  # fmt: skip
        result = await self.master.wait_result(job_id, timeout=JOB_TIMEOUT)
        dump = self.events_dir / f"{job_id}-{project}.jsonl"
        stored = sorted(self.master.events.get(job_id, {}).items())
        lines = [{"seq": seq, "event": e.event, "phase": e.phase, **e.fields} for seq, e in stored]
        dump.write_text("".join(json.dumps(line, default=str) + "\n" for line in lines))
        # Shown with -s; the figures the report quotes.
        print(f"\n{project}: {result.outcome} in {time.monotonic() - started:.1f} s ({dump})")
        self.results[project] = result
        return job_id, result

    def events(self, job_id: int, name: str) -> list[dict[str, Any]]:
        stored = self.master.events.get(job_id, {})
        return [
            {"phase": e.phase, **e.fields} for _, e in sorted(stored.items()) if e.event == name
        ]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(tmp_path_factory: pytest.TempPathFactory, image: Image) -> AsyncIterator[Harness]:
    """One slave daemon for the whole module: the jobs run one after another on it."""
    root = tmp_path_factory.mktemp("behaviour")
    async with FakeMaster(SECRET) as master, FakePyPI() as pypi:
        for name, build in SAMPLES.items():
            for path in build(root / "dists" / name):
                pypi.add(path)
        config = SlaveConfig(
            master_host="127.0.0.1",
            master_port=master.port,
            secret=SECRET,
            image_dir=image.dir.parent,
            work_dir=root / "w",
            name="behaviour-slave",
            accel="tcg",
            pypi_url=pypi.base_url,
            output_cap=OUTPUT_CAP,
            # Generous: a plain pip install takes 40-100 s under TCG on 2 shared cores.
            timeouts={"install": 300.0, "import": 120.0, "tests": 300.0},
        )
        pip = PipOptions(index_url=pypi.index_url, args=HERMETIC_PIP_ARGS, env=hermetic_pip_env())
        executor = VMExecutor({image.name: image}, Accel.TCG, config, pip=pip)
        info = ImageInfo(image.name, image.python_version, image.digest)
        daemon = SlaveDaemon(config, images=[info], accel="tcg", executor=executor)
        task = asyncio.create_task(daemon.run())
        try:
            await master.wait_session()
            events_dir = root / "events"
            events_dir.mkdir()
            yield Harness(master, daemon, events_dir, image.name)
        finally:
            await stop_task(task)


def found(result: JobResult) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The result's findings by (rule, phase, target)."""
    return {(f["rule"], f["phase"], f["target"]): f for f in result.summary.to_json()["findings"]}


def assert_contained(h: Harness, job_id: int, result: JobResult) -> None:
    """The runner finished, the VM was torn down, the slave kept its one session."""
    assert result.summary.to_json().get("error") is None, result.summary.to_json().get("error")
    assert h.events(job_id, "runner_finished"), "the guest runner did not finish"
    teardown = [e for e in h.events(job_id, "phase_finished") if e["phase"] == "teardown"]
    assert [e["status"] for e in teardown] == ["passed"]
    assert len(h.master.sessions) == 1


async def test_clean_release_passes(harness: Harness) -> None:
    """A release that does nothing unusual passes with a clean verdict and no real findings."""
    job_id, result = await harness.run("cleanpkg")
    assert result.outcome == "passed", (result.phases, result.summary)
    assert result.summary.to_json()["verdict"] == "clean"
    assert [f for f in result.summary.to_json()["findings"] if f["severity"] != "info"] == []
    assert result.summary.to_json()["tests"]["passed"] == 1
    assert_contained(harness, job_id, result)


async def test_stealer_is_harmful(harness: Harness, image: Image) -> None:
    """Network at build time, a code .pth, bait reads and curl at import: harmful, each named."""
    job_id, result = await harness.run("stealer")
    python = f"python{image.python_version}"  # the job venv's lib/pythonX.Y
    assert result.outcome == "harmful", (result.phases, result.summary)
    assert result.summary.to_json()["verdict"] == "malicious"
    got = found(result)
    expected = {
        ("net.socket", "install", "AF_INET"): "info",
        ("net.connect", "install", f"{EXFIL_HOST}:{EXFIL_PORT}"): "high",
        ("persist.site_hook", "install",
         f"$VENV/lib/{python}/site-packages/{STEALER_PTH}"): "high",
        ("persist.pth_import", "install", STEALER_PTH): "medium",
        ("cred.bait", "import", "~/.ssh/id_rsa"): "critical",
        ("cred.bait", "import", "~/.aws/credentials"): "critical",  # the .pth's doing
        ("cred.token", "import", "token"): "critical",
        ("proc.shell", "import", "sh"): "medium",
        ("proc.network_tool", "import", "curl"): "high",
    }  # fmt: skip
    assert {k: got[k]["severity"] for k in expected if k in got} == expected, sorted(got)
    assert got[("net.connect", "install", f"{EXFIL_HOST}:{EXFIL_PORT}")]["process"] == (
        "build-backend"
    )
    assert "connect(" in got[("net.connect", "install", f"{EXFIL_HOST}:{EXFIL_PORT}")]["evidence"]
    # findings went out live, as events, not only in the result
    live = {(e["rule"], e["phase"]) for e in harness.events(job_id, "finding")}
    assert ("cred.bait", "import") in live and ("net.connect", "install") in live
    assert_contained(harness, job_id, result)


async def test_sinkhole_shows_a_droppers_later_stages(harness: Harness) -> None:
    """Inside the VM the sinkhole answers: lookup, POST, raw send, download, chmod, exec all
    show as findings of the import; the offline tests phase's lookup fails and stays low."""
    started = time.monotonic()
    job_id, result = await harness.run("dropper")
    assert result.outcome == "harmful", (result.phases, result.summary)
    assert result.summary.to_json()["verdict"] == "malicious"
    got = found(result)
    expected = {
        ("net.sinkhole_dns", "import", DROPPER_HOST): "high",
        ("net.sinkhole_http", "import", f"{DROPPER_HOST}/upload"): "high",
        ("net.sinkhole_http", "import", f"{DROPPER_HOST}/stage2"): "high",
        ("net.sinkhole_connect", "import", f"{DROPPER_HOST}:80"): "high",
        ("net.sinkhole_connect", "import", f"{DROPPER_IP}:{DROPPER_PORT}"): "high",
        ("net.sinkhole_data", "import", f"{DROPPER_IP}:{DROPPER_PORT}"): "high",
        ("proc.exec_temp", "import", "/tmp/.stage2"): "high",
        ("net.sinkhole_dns", "tests", "pypi.org"): "low",
    }  # fmt: skip
    assert {k: got[k]["severity"] for k in expected if k in got} == expected, sorted(got)
    post = json.loads(got[("net.sinkhole_http", "import", f"{DROPPER_HOST}/upload")]["evidence"])
    assert (post["method"], post["host"], post["path"]) == ("POST", DROPPER_HOST, "/upload")
    assert post["body_size"] > 0 and post["head"].startswith("POST /upload HTTP/1.1")
    assert post["uid"] == 1000
    sent = got[("net.sinkhole_data", "import", f"{DROPPER_IP}:{DROPPER_PORT}")]
    raw = json.loads(sent["evidence"])
    assert raw["head"].startswith("READY ")
    assert (
        result.summary.to_json()["tests"]["passed"] == 1
    )  # the lookup in the tests phase failed offline
    network = harness.events(job_id, "network")
    assert {e["phase"] for e in network} == {"import", "tests"}
    assert time.monotonic() - started < JOB_TIMEOUT / 2  # nothing hung on the sinkhole


async def test_detached_delayed_payload_is_watched_after_the_import(harness: Harness) -> None:
    """An import that double-forks a detached child which sleeps, then sends the bait key:
    the runner keeps tracing it after the import returned, so the theft and the sinkhole's
    answers are findings of the import; it and a longer sleeper are listed and killed."""
    job_id, result = await harness.run("delayed")
    assert result.outcome == "harmful", (result.phases, result.summary)
    assert result.summary.to_json()["verdict"] == "malicious"
    got = found(result)
    expected = {
        ("cred.bait", "import", "~/.ssh/id_rsa"): "critical",
        ("net.sinkhole_dns", "import", DELAYED_HOST): "high",
        ("net.sinkhole_connect", "import", f"{DELAYED_HOST}:443"): "high",
        ("proc.outlived_phase", "import", "sleep 600"): "medium",
    }  # fmt: skip
    assert {k: got[k]["severity"] for k in expected if k in got} == expected, sorted(got)
    assert any(
        rule == "proc.outlived_phase" and phase == "import" and " -c import os, socket" in target
        for rule, phase, target in got
    ), sorted(got)
    (imp,) = [e for e in harness.events(job_id, "phase_finished") if e["phase"] == "import"]
    assert imp["status"] == "passed", imp
    outlived = {" ".join(o["argv"]): o["killed"] for o in imp["outlived"]}
    assert outlived["sleep 600"] is True, imp["outlived"]
    payload = [k for k in outlived if " -c import os, socket" in k]
    assert [outlived[k] for k in payload] == [False], imp["outlived"]  # it ended by itself
    # watched for the grace period, not held until the phase's timeout
    assert DELAYED_SLEEP_S < imp["duration_s"] < 100, imp["duration_s"]
    assert_contained(harness, job_id, result)


async def test_network_probes_fail_and_are_recorded(harness: Harness) -> None:
    """IPv6 out, raw and packet sockets, the metadata address, AF_VSOCK to the host: nothing
    leaves the guest (refused, unreachable, or the sinkhole answers), and each is a finding."""
    job_id, result = await harness.run("netprobe")
    (line,) = [e["line"] for e in harness.events(job_id, "output") if "NETPROBE" in e["line"]]
    got = json.loads(line.split("NETPROBE ", 1)[1])
    print("netprobe:", got)
    assert got["v6_global"] == "ENETUNREACH"  # no IPv6 route at all
    assert got["v6_loopback"] == "ECONNREFUSED"
    assert got["v6_mapped"] == "ok"  # IPv4 underneath: the sinkhole took it
    assert (got["raw_icmp"], got["raw_icmp6"], got["packet"]) == ("EPERM",) * 3
    assert got["metadata"].startswith("HTTP/1.1 200")  # the sinkhole's answer, not metadata
    assert got["vsock"] in ("ENODEV", "EAFNOSUPPORT", "ECONNRESET", "ETIMEDOUT"), got["vsock"]
    findings = found(result)
    expected = {
        ("net.connect", "import", f"[{PROBE_V6}]:443"): "high",
        ("net.connect_loopback", "import", "[::1]:1"): "low",
        ("net.connect", "import", "[::ffff:203.0.113.7]:443"): "high",
        ("net.raw_socket", "import", "AF_INET SOCK_RAW|SOCK_CLOEXEC"): "medium",
        ("net.raw_socket", "import", "AF_INET6 SOCK_RAW|SOCK_CLOEXEC"): "medium",
        ("net.raw_socket", "import", "AF_PACKET SOCK_RAW|SOCK_CLOEXEC"): "medium",
        ("net.connect", "import", f"{METADATA_IP}:80"): "high",
        ("net.sinkhole_http", "import", f"{METADATA_IP}/latest/meta-data/"): "high",
        ("net.vsock", "import", "AF_VSOCK"): "high",
        ("net.vsock", "import", "cid VMADDR_CID_HOST port 1234"): "high",
    }  # fmt: skip
    assert {k: findings[k]["severity"] for k in expected if k in findings} == expected, sorted(
        findings
    )
    assert result.summary.to_json()["verdict"] == "malicious"
    assert_contained(harness, job_id, result)


async def test_dynamic_setup_py_is_traced_from_its_metadata_build(harness: Harness) -> None:
    """No static metadata and an undeclared import atop setup.py: the metadata build is
    traced (its findings count), retried with the import's wheel, and installs for real."""
    job_id, result = await harness.run("dynsetup")
    got = found(result)
    undeclared = got[("build.undeclared_import", "install", "setup.py (fakehelper)")]
    assert (undeclared["severity"], undeclared["source"]) == ("low", "static")
    assert list(result.summary.to_json()["prepare"]["build_import_wheels"]) == ["fakehelper"]
    # the payload after the import ran, under the tracer, first while building metadata
    staged = [e for e in harness.events(job_id, "trace") if e.get("stage") == "metadata"]
    assert any("id_rsa" in e["line"] for e in staged), len(staged)
    assert ("net.connect", "install", f"{EXFIL_HOST}:{EXFIL_PORT}") in got, sorted(got)
    assert any(k[0].startswith("cred.") and k[1] == "install" for k in got), sorted(got)
    (retry,) = harness.events(job_id, "build_retry")
    # pip names the module; newer pip (trixie's) only says the in-tree backend did not import
    assert retry["stage"] == "metadata", retry
    assert "fakehelper" in retry["reason"] or "Cannot import 'setup'" in retry["reason"], retry
    (meta,) = harness.events(job_id, "metadata")
    assert meta["phase"] == "install" and list(meta["requires_dist"]) == ["fakedep"]
    (summary,) = harness.events(job_id, "install_summary")
    assert summary["metadata_built"] is True and summary["build_retry"]["stage"] == "metadata"
    # the dependency only the built metadata named was fetched by the host and installed
    assert result.phases["install"].status == "passed", result.phases
    assert result.phases["import"].status == "passed", result.phases
    assert result.summary.to_json()["verdict"] == "malicious"
    assert result.outcome == "harmful"
    assert_contained(harness, job_id, result)


async def test_segfault_in_a_test_is_a_crash(harness: Harness) -> None:
    """A test dereferencing NULL: crashed, with SIGSEGV, the phase and faulthandler's traceback."""
    job_id, result = await harness.run("segfaulter")
    assert result.outcome == "crashed", (result.phases, result.summary)
    crash = result.summary.to_json()["crash"]
    assert (crash["phase"], crash["signal"], crash["signal_name"]) == ("tests", 11, "SIGSEGV")
    assert "Fatal Python error: Segmentation fault" in crash["traceback"]
    assert "test_dereferences_null" in crash["traceback"]
    assert phases_to_json(result.phases)["tests"]["status"] == "crashed"
    assert phases_to_json(result.phases)["import"]["status"] == "passed"
    assert_contained(harness, job_id, result)


async def test_fork_bomb_is_contained(harness: Harness) -> None:
    """A test forking until refused: the process limit stops it, a finding names it."""
    job_id, result = await harness.run("forkbomb")
    assert phases_to_json(result.phases)["tests"]["status"] == "passed", result.phases
    bomb = found(result)[("res.fork_bomb", "tests", "EAGAIN")]
    assert bomb["severity"] == "high" and "EAGAIN" in bomb["evidence"]
    assert result.summary.to_json()["verdict"] == "suspicious"
    assert result.outcome == "passed"  # suspicious is not harmful: the verdict says the rest
    assert phases_to_json(result.phases)["quality"]["status"] != "error"
    assert_contained(harness, job_id, result)


async def test_disk_fill_is_contained(harness: Harness) -> None:
    """A test filling the disk meets ENOSPC at the overlay's size; the runner notices."""
    job_id, result = await harness.run("diskfill")
    assert phases_to_json(result.phases)["tests"]["status"] == "passed", (
        result.phases,
        result.summary,
    )
    full = found(result)[("res.disk_filled", "tests", "disk")]
    assert full["severity"] == "low" and "'disk_free_min'" in full["evidence"]
    assert result.outcome == "passed"
    # the runner emptied the package's TMPDIR: the next phase had room again
    assert phases_to_json(result.phases)["quality"]["status"] == "passed", result.phases
    assert_contained(harness, job_id, result)


async def test_memory_hog_is_contained(harness: Harness) -> None:
    """A test eating memory is what the guest's OOM killer takes: incomplete, SIGKILL, found."""
    job_id, result = await harness.run("memhog")
    assert result.outcome == "incomplete", (result.phases, result.summary)
    assert result.summary.reason == (
        "the tests ran out of memory: the guest's OOM killer stopped them (SIGKILL)"
    )
    crash = result.summary.to_json()["crash"]
    assert (crash["phase"], crash["signal_name"]) == ("tests", "SIGKILL")
    assert ("res.oom", "tests", "oom kill") in found(result)
    assert_contained(harness, job_id, result)


async def test_output_flood_is_capped(harness: Harness) -> None:
    """An import printing 1 GiB: the guest sends the cap, counts the rest, a finding says so."""
    job_id, result = await harness.run("flood")
    assert phases_to_json(result.phases)["import"]["status"] == "passed", result.phases
    assert phases_to_json(result.phases)["import"]["output_dropped"] >= (1 << 30) - OUTPUT_CAP
    assert ("res.output_flood", "import", "output cap") in found(result)
    lines = [e for e in harness.events(job_id, "output") if e["phase"] == "import"]
    assert 0 < sum(len(e["line"]) + 1 for e in lines) <= OUTPUT_CAP
    assert result.outcome == "passed"
    assert_contained(harness, job_id, result)


async def test_slave_runs_a_clean_job_after_all_that(harness: Harness) -> None:
    """After every nasty job, the same slave (same session) still passes a clean release."""
    job_id, result = await harness.run("cleanpkg")
    assert result.outcome == "passed", (result.phases, result.summary)
    assert result.summary.to_json()["verdict"] == "clean"
    assert_contained(harness, job_id, result)


async def test_results_carry_a_profile_the_master_can_diff(harness: Harness) -> None:
    """Each result's summary has its behaviour profile; clean → stealer reads as new behaviour."""
    before = profile_from_json(harness.results["cleanpkg"].summary.to_json().get("profile"))
    after = profile_from_json(harness.results["stealer"].summary.to_json().get("profile"))
    changes = [str(c) for c in diff(before, after)]
    assert f"started reaching for the network at install time ({EXFIL_HOST}:{EXFIL_PORT})" in (
        changes
    )

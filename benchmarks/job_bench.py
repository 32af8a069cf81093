"""What a whole job costs beyond the work it does: VM, SSH, upload, tracing, reporting.

For a small pure-Python package built here (trusted code, so it may also run on
the host), it measures

- ``job_s``: a whole job through the slave daemon (fake master and fake PyPI on
  loopback, the real image and QEMU): from the offer to the result;
- ``guest_s``: the in-guest phase time of that job (install + import + tests +
  quality, as the runner reports them);
- ``host_s``: the same install + import + tests run directly on the host (a
  fresh venv, ``pip install --no-index`` of the package and of pytest, import,
  pytest), without VM or tracing.

``overhead_s = job_s - guest_s`` is what the slave adds around the guest's work
(prepare, boot or restore, upload, teardown, event handling). Medians over
``--runs``. Target under TCG: overhead ≤ 3 s.

    python -m benchmarks.job_bench [--runs 3] [--image bookworm] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/job_bench.py``): the repository root is the import root,
# so the test fakes (``tests.fakes``) it drives the slave with are importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.messages import ImageInfo
from slave.config import GUEST_PHASES, SlaveConfig
from slave.daemon import SlaveDaemon
from slave.image_builder.manifest import Image, default_image_dir
from slave.job.executor import VMExecutor
from slave.prepare import PipOptions
from slave.vm.accel import Accel
from tests.fakes.master import FakeMaster, stop_task
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env

SECRET = b"benchmark-secret-0123456789abcdef"
PACKAGE_BODY = '__version__ = "{version}"\n\n\ndef add(a, b):\n    return a + b\n'
TEST_BODY = (
    "import {module}\n\n\ndef test_add():\n    assert {module}.add(2, 3) == 5\n\n\n"
    "def test_version():\n    assert {module}.__version__\n"
)


async def run_jobs(image: Image, work: Path, runs: int) -> list[tuple[float, float]]:
    """(job seconds, in-guest phase seconds) of ``runs`` jobs through the daemon."""
    out = []
    async with FakeMaster(SECRET) as master, FakePyPI() as pypi:
        pypi.add_project(work / "dist", "benchpkg", "1.0", package_body=PACKAGE_BODY,
                         test_body=TEST_BODY)  # fmt: skip
        config = SlaveConfig(
            master_host="127.0.0.1", master_port=master.port, secret=SECRET,
            image_dir=image.dir.parent, work_dir=work / "slave", name="bench", accel="tcg",
            pypi_url=pypi.base_url,
        )  # fmt: skip
        pip = PipOptions(index_url=pypi.index_url, args=HERMETIC_PIP_ARGS, env=hermetic_pip_env())
        executor = VMExecutor({image.name: image}, Accel.TCG, config, pip=pip)
        info = ImageInfo(image.name, image.python_version, image.digest)
        daemon = SlaveDaemon(config, images=[info], accel="tcg", executor=executor)
        task = asyncio.create_task(daemon.run())
        try:
            await master.wait_session()
            for job_id in range(1, runs + 1):
                t0 = time.monotonic()
                await master.offer(job_id, project="benchpkg", version="1.0", image=image.name)
                result = await master.wait_result(job_id, timeout=900)
                job_s = time.monotonic() - t0
                if result.outcome != "passed":
                    raise SystemExit(
                        f"job {job_id} did not pass: {result.outcome} {result.summary}"
                    )
                guest_s = sum((result.phases[p].duration_s or 0.0) for p in GUEST_PHASES)
                print(f"job {job_id}: {job_s:.2f} s, in guest {guest_s:.2f} s")
                print("  " + breakdown(master, job_id))
                out.append((job_s, guest_s))
        finally:
            await stop_task(task)
    return out


def breakdown(master: FakeMaster, job_id: int) -> str:
    """Seconds between landmark events of a job (host arrival times), to see the overhead."""
    marks: dict[str, float] = {}
    for seq in master.seqs(job_id):
        ev = master.events[job_id][seq]
        key = f"{ev.event}:{ev.phase or ev.fields.get('stage', '')}"
        marks.setdefault(key, ev.ts)
        if ev.event == "phase_finished":
            marks[key] = ev.ts
    order = ["job_started:", "phase_finished:prepare", "phase_finished:boot",
             "phase_finished:upload", "runner_started:runner", "phase_started:install",
             "phase_finished:quality", "runner_finished:runner", "phase_finished:teardown",
             "job_finished:"]  # fmt: skip
    present = [k for k in order if k in marks]
    return ", ".join(
        f"{a.split(':')[-1] or a.split(':')[0]}→{b.split(':')[-1] or b.split(':')[0]} "
        f"{marks[b] - marks[a]:.2f}"
        for a, b in itertools.pairwise(present)
    )


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=hermetic_pip_env())


def host_run(work: Path, wheels: Path) -> float:
    """Seconds for venv + install + import + pytest of the same package on the host."""
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        d = Path(scratch)
        t0 = time.monotonic()
        _run([sys.executable, "-m", "venv", str(d / "venv")], d)
        py = str(d / "venv" / "bin" / "python")
        pip = [py, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--find-links"]
        _run([*pip, str(work / "dist"), "--find-links", str(wheels), "benchpkg"], d)
        _run([py, "-c", "import benchpkg"], d)
        _run([*pip, str(wheels), "pytest"], d)
        tests = d / "tests"
        tests.mkdir()
        (tests / "test_x.py").write_text(TEST_BODY.format(module="benchpkg"))
        _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], d)
        return time.monotonic() - t0


def fetch_pytest(dest: Path) -> None:
    """pytest's wheels for the host run, once, through the machine's pip configuration."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-q", "-d", str(dest),
         "pytest"],
        check=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", default="bookworm")
    parser.add_argument("--image-dir", type=Path, default=default_image_dir())
    parser.add_argument("--json", type=Path, help="write the figures here as one JSON object")
    args = parser.parse_args(argv)
    image = Image.load(args.image_dir, args.image)
    with tempfile.TemporaryDirectory(prefix="pyti-bench-") as tmp:
        work = Path(tmp)
        jobs = asyncio.run(run_jobs(image, work, args.runs))
        fetch_pytest(work / "wheels")
        hosts = [host_run(work, work / "wheels") for _ in range(args.runs)]
    job_s = statistics.median(j for j, _ in jobs)
    guest_s = statistics.median(g for _, g in jobs)
    figures: dict[str, Any] = {
        "job_s": round(job_s, 3),
        "guest_s": round(guest_s, 3),
        "host_s": round(statistics.median(hosts), 3),
        "overhead_s": round(statistics.median(j - g for j, g in jobs), 3),
        "runs": args.runs,
        "accel": "tcg",
        "snapshot": image.snapshot("tcg", "max") is not None,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

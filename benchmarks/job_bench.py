"""What a job costs, per phase, for reference releases built here, vs the same steps on the host.

The benchmark writes four small releases (trusted code, so they may also run on the
host) and serves them, with what they need, from a fake PyPI on loopback:

- ``wheel``: a one-wheel pure package (wheel + sdist, no dependencies; like ``six``);
- ``sdist``: a pure package published as an sdist only (setuptools backend, static
  metadata in ``pyproject.toml``): the guest builds it;
- ``deps``: a pure wheel with ten wheel dependencies;
- ``cext``: an sdist only, whose ``setup.py`` builds a C extension and leaves its
  metadata dynamic (the guest's ``metadata`` stage, then the build).

Each runs ``--runs`` times as a whole job through the slave daemon (fake master,
real image and QEMU), interleaved so load hits them alike, and after each job the
same install, import and tests run directly on the host as the floor: ``pip install --no-index``
into a venv that already has pytest (as the image's job venv has), ``import``,
pytest on the sdist's tests; no VM, no tracing. Figures per release (medians):
``{name}_job_s`` (offer to result), ``{name}_{install,import,tests,quality}_s``
(the runner's phase durations), ``{name}_native_s`` and its phases
``{name}_native_{install,import,tests}_s``, and ``{name}_ratio`` = job / native,
the figure that survives the machine's load. ``overhead_s``: job minus its
in-guest phases (median over every job).

With ``--slots 1,2`` it measures throughput instead: one slave with that many
slots runs ``--jobs`` jobs of the chosen releases (``--only``, in turn), each slot
taking the next as soon as it is free; ``jobs_per_hour_{N}`` with the host's
``host_cpus``, ``host_mem_gib`` and load.

    python benchmarks/job_bench.py [--runs 3] [--only wheel,sdist] [--image bookworm]
        [--image-dir DIR] [--json PATH] [--slots 1,2 --jobs 6]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
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
from tests.fakes.dists import build_sdist, build_wheel, make_project
from tests.fakes.master import FakeMaster, stop_task
from tests.fakes.pypi import HERMETIC_PIP_ARGS, FakePyPI, hermetic_pip_env

SECRET = b"benchmark-secret-0123456789abcdef"
VERSION = "1.0"
PACKAGE_BODY = '__version__ = "{version}"\n\n\ndef add(a, b):\n    return a + b\n'
TEST_BODY = (
    "import {module}\n\n\ndef test_add():\n    assert {module}.add(2, 3) == 5\n\n\n"
    "def test_version():\n    assert {module}.__version__\n"
)
DEPENDENCIES = [f"benchdep{i}" for i in range(10)]
C_SOURCE = r"""#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedup", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speedup(void) { return PyModule_Create(&module); }
"""
C_SETUP = (
    "from setuptools import Extension, setup\n\n"
    "setup(name='benchcext', version='1.0', packages=['benchcext'], package_dir={'': 'src'},\n"
    "      ext_modules=[Extension('benchcext._speedup', ['src/benchcext/_speedup.c'])])\n"
)
# [build-system] only: the metadata stays dynamic (setup.py), so the guest builds it first.
C_PYPROJECT = (
    '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
)
C_PACKAGE = '__version__ = "1.0"\nfrom benchcext._speedup import add\n'
PHASES = ("install", "import", "tests", "quality")
NATIVE_PHASES = ("install", "import", "tests")


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference release: its key in the figures, project name, module, files."""

    key: str
    project: str
    module: str
    files: tuple[Path, ...]

    @property
    def sdist(self) -> Path:
        return next(p for p in self.files if p.name.endswith(".tar.gz"))

    @property
    def target(self) -> Path:
        """What the install takes: the wheel, else the sdist (as the runner does)."""
        return next((p for p in self.files if p.name.endswith(".whl")), self.sdist)


def build_references(dist: Path) -> tuple[list[Reference], list[Path]]:
    """The four reference releases, and the other files the index must serve (deps)."""
    wheel = make_project(dist, "benchwheel", VERSION, package_body=PACKAGE_BODY,
                         test_body=TEST_BODY)  # fmt: skip
    sdist = make_project(dist, "benchsdist", VERSION, package_body=PACKAGE_BODY,
                         test_body=TEST_BODY, wheel=False)  # fmt: skip
    deps = make_project(dist, "benchdeps", VERSION, package_body=PACKAGE_BODY,
                        test_body=TEST_BODY, requires_dist=DEPENDENCIES)  # fmt: skip
    extra = [
        build_wheel(dist, name, VERSION, {f"{name}/__init__.py": f"NAME = {name!r}\n"})
        for name in DEPENDENCIES
    ]
    cext = build_sdist(
        dist,
        "benchcext",
        VERSION,
        {
            "setup.py": C_SETUP,
            "src/benchcext/__init__.py": C_PACKAGE,
            "src/benchcext/_speedup.c": C_SOURCE,
            "tests/test_x.py": TEST_BODY.format(module="benchcext"),
        },
        pyproject=C_PYPROJECT,
    )
    refs = [
        Reference("wheel", "benchwheel", "benchwheel", tuple(wheel.files)),
        Reference("sdist", "benchsdist", "benchsdist", tuple(sdist.files)),
        Reference("deps", "benchdeps", "benchdeps", tuple(deps.files)),
        Reference("cext", "benchcext", "benchcext", (cext,)),
    ]
    return refs, extra


def fetch_wheels(dest: Path, *requirements: str) -> list[Path]:
    """Binary wheels of ``requirements`` (with dependencies), through the machine's pip
    configuration: pytest for the host runs, setuptools for the builds (a current one,
    which needs no ``wheel`` package)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "-q", "-d", str(dest),
         *requirements],
        check=True,
    )  # fmt: skip
    return sorted(dest.glob("*.whl"))


Figures = dict[str, float]


@contextlib.asynccontextmanager
async def slave(
    image: Image, work: Path, served: list[Path], slots: int = 1
) -> AsyncIterator[FakeMaster]:
    """A real slave daemon (VMs under TCG) with ``slots``, fed by a fake master and PyPI."""
    async with FakeMaster(SECRET) as master, FakePyPI() as pypi:
        for path in served:
            pypi.add(path)
        config = SlaveConfig(
            master_host="127.0.0.1", master_port=master.port, secret=SECRET,
            image_dir=image.dir.parent, work_dir=work / f"slave-{slots}", name="bench",
            accel="tcg", pypi_url=pypi.base_url, slots=slots,
        )  # fmt: skip
        pip = PipOptions(index_url=pypi.index_url, args=HERMETIC_PIP_ARGS, env=hermetic_pip_env())
        executor = VMExecutor({image.name: image}, Accel.TCG, config, pip=pip)
        info = ImageInfo(image.name, image.python_version, image.digest)
        daemon = SlaveDaemon(config, images=[info], accel="tcg", executor=executor)
        task = asyncio.create_task(daemon.run())
        try:
            await master.wait_session(timeout=60)
            yield master
        finally:
            await stop_task(task)


async def run_jobs(
    image: Image,
    work: Path,
    refs: list[Reference],
    served: list[Path],
    runs: int,
    native: Callable[[Reference], Figures],
) -> tuple[dict[str, list[Figures]], dict[str, list[Figures]]]:
    """Per release, the figures of ``runs`` whole jobs through the daemon and of as many
    native runs, each right after its job (so both see the same load), interleaved."""
    jobs: dict[str, list[Figures]] = {r.key: [] for r in refs}
    natives: dict[str, list[Figures]] = {r.key: [] for r in refs}
    async with slave(image, work, served) as master:
        job_id = 0
        for run in range(1, runs + 1):
            for ref in refs:
                job_id += 1
                figures = await one_job(master, image, job_id, ref)
                natives[ref.key].append(await asyncio.to_thread(native, ref))
                figures["native"] = natives[ref.key][-1]["whole"]
                shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
                print(f"run {run} {ref.key}: {shown}", flush=True)
                jobs[ref.key].append(figures)
    return jobs, natives


async def throughput(
    image: Image, work: Path, refs: list[Reference], served: list[Path], slots: int, jobs: int
) -> float:
    """Jobs per hour of one slave with ``slots``: ``jobs`` jobs (the ``refs`` in turn), each
    slot offered the next one as soon as its last result is in."""
    queue = list(itertools.islice(itertools.cycle(refs), jobs))
    ids = itertools.count(1_000 * slots)
    async with slave(image, work, served, slots) as master:

        async def slot_loop() -> None:
            while queue:
                ref = queue.pop(0)
                while True:
                    job_id = next(ids)
                    await master.offer(job_id, project=ref.project, version=VERSION,
                                       image=image.name)  # fmt: skip
                    reply = await master.wait_reply(job_id, timeout=60)
                    if reply.TYPE == "job_accept":
                        break
                    await asyncio.sleep(0.5)  # the slot is still being freed
                result = await master.wait_result(job_id, timeout=1800)
                if result.outcome != "passed":
                    raise SystemExit(f"{ref.key} job {job_id}: {result.outcome}")

        t0 = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for _ in range(slots):
                group.create_task(slot_loop())
        wall = time.monotonic() - t0
    per_hour = jobs / wall * 3600
    print(f"slots {slots}: {jobs} jobs in {wall:.1f} s = {per_hour:.0f} jobs/h", flush=True)
    return per_hour


#: set by ``--events DIR``: every job's events are written there as JSON lines
EVENTS_DIR: list[Path] = []


async def one_job(master: FakeMaster, image: Image, job_id: int, ref: Reference) -> Figures:
    t0 = time.monotonic()
    await master.offer(job_id, project=ref.project, version=VERSION, image=image.name)
    result = await master.wait_result(job_id, timeout=1800)
    job_s = time.monotonic() - t0
    if EVENTS_DIR:
        stored = sorted(master.events.get(job_id, {}).items())
        lines = [{"seq": q, "ts": e.ts, "event": e.event, "phase": e.phase, **e.fields}
                 for q, e in stored]  # fmt: skip
        dump = EVENTS_DIR[0] / f"{job_id}-{ref.key}.jsonl"
        dump.write_text("".join(json.dumps(line, default=str) + "\n" for line in lines))
    if result.outcome != "passed":
        raise SystemExit(f"{ref.key} job {job_id} did not pass: {result.outcome} {result.summary}")
    figures = {"job": job_s}
    phases = result.phases
    for phase in PHASES:
        figures[phase] = (phases[phase].duration_s or 0.0) if phase in phases else 0.0
    figures["guest"] = sum((phases[p].duration_s or 0.0) for p in GUEST_PHASES if p in phases)
    return figures


def _run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=hermetic_pip_env())


def _timed(step: Callable[[], None]) -> float:
    t0 = time.monotonic()
    step()
    return time.monotonic() - t0


def native_run(work: Path, ref: Reference, links: list[Path], base: Path) -> Figures:
    """Seconds of install, import and tests of ``ref`` on the host, in a copy of ``base``."""
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        d = Path(scratch)
        venv = d / "venv"
        # Untimed, as the image's job venv is there before the job: a venv with pytest.
        _run(["cp", "-a", str(base), str(venv)], d)
        py = str(venv / "bin" / "python")
        find = [arg for link in links for arg in ("--find-links", str(link))]
        pip = [py, "-m", "pip", "install", "--no-index", "--no-cache-dir", *find]
        figures = {"install": _timed(lambda: _run([*pip, str(ref.target)], d))}
        figures["import"] = _timed(lambda: _run([py, "-c", f"import {ref.module}"], d))
        with tarfile.open(ref.sdist) as tar:
            tar.extractall(d / "src", filter="data")
        (root,) = (d / "src").iterdir()
        pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
        figures["tests"] = _timed(lambda: _run(pytest, root))
        figures["whole"] = sum(figures[p] for p in NATIVE_PHASES)
        return figures


def native_base(work: Path, wheels: Path) -> Path:
    """A venv with pytest (from ``wheels``), copied into every native run."""
    base = work / "native-base"
    _run([sys.executable, "-m", "venv", str(base)], work)
    pip = [str(base / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index"]
    _run([*pip, "--find-links", str(wheels), "pytest"], work)
    return base


def summarise(
    jobs: dict[str, list[Figures]], natives: dict[str, list[Figures]], runs: int, image: Image
) -> dict[str, Any]:
    """The flat JSON object (medians), documented in benchmarks/README.md."""
    figures: dict[str, Any] = {}
    overheads: list[float] = []
    for key, runs_of in jobs.items():
        for name in ("job", *PHASES):
            figures[f"{key}_{name}_s" if name != "job" else f"{key}_job_s"] = round(
                statistics.median(f[name] for f in runs_of), 3
            )
        native = statistics.median(f["whole"] for f in natives[key])
        figures[f"{key}_native_s"] = round(native, 3)
        for phase in NATIVE_PHASES:
            figures[f"{key}_native_{phase}_s"] = round(
                statistics.median(f[phase] for f in natives[key]), 3
            )
        figures[f"{key}_ratio"] = round(figures[f"{key}_job_s"] / native, 2)
        overheads += [f["job"] - f["guest"] for f in runs_of]
    figures["overhead_s"] = round(statistics.median(overheads), 3)
    figures.update(runs=runs, accel="tcg", image_digest=image.digest[:16])
    return figures


def host_figures(image: Image) -> dict[str, Any]:
    """The host the throughput was measured on: cores, memory, load, the guest's size."""
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "host_cpus": os.cpu_count(),
        "host_mem_gib": round(mem_kib / (1 << 20), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "guest_memory_mb": image.manifest.get("vm", {}).get("memory_mb"),
        "accel": "tcg",
        "image_digest": image.digest[:16],
    }


def table(figures: dict[str, Any], keys: list[str]) -> str:
    cols = ["job", *PHASES, "native", "native_install", "native_import", "native_tests"]
    head = "| release | " + " | ".join(cols) + " | ratio |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for key in keys:
        row = [f"{figures[f'{key}_{c}_s']:.2f}" for c in cols]
        lines.append(f"| {key} | " + " | ".join(row) + f" | {figures[f'{key}_ratio']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated: wheel,sdist,deps,cext")
    parser.add_argument("--image", default="bookworm")
    parser.add_argument("--image-dir", type=Path, default=default_image_dir())
    parser.add_argument("--json", type=Path, help="write the figures here as one JSON object")
    parser.add_argument("--events", type=Path, help="write each job's events here (JSON lines)")
    parser.add_argument("--slots", default="", help="throughput instead: e.g. 1,2 slots")
    parser.add_argument("--jobs", type=int, default=6, help="throughput: jobs per slot count")
    args = parser.parse_args(argv)
    image = Image.load(args.image_dir, args.image)
    if args.events:
        args.events.mkdir(parents=True, exist_ok=True)
        EVENTS_DIR.append(args.events)
    with tempfile.TemporaryDirectory(prefix="pyti-bench-") as tmp:
        work = Path(tmp)
        refs, extra = build_references(work / "dist")
        if args.only:
            wanted = set(args.only.split(","))
            refs = [r for r in refs if r.key in wanted]
        backends = fetch_wheels(work / "backends", "setuptools>=70.1")
        served = [*(p for r in refs for p in r.files), *extra, *backends]
        if args.slots:
            figures = host_figures(image)
            for slots in (int(n) for n in args.slots.split(",")):
                rate = asyncio.run(throughput(image, work, refs, served, slots, args.jobs))
                figures[f"jobs_per_hour_{slots}"] = round(rate, 1)
            figures["throughput_jobs"] = args.jobs
            figures["throughput_mix"] = ",".join(r.key for r in refs)
            print(json.dumps(figures, indent=2))
            if args.json:
                args.json.write_text(json.dumps(figures) + "\n")
            return 0
        fetch_wheels(work / "wheels", "pytest")
        base = native_base(work, work / "wheels")
        links = [work / "dist", work / "wheels", work / "backends"]

        def native(ref: Reference) -> Figures:
            return native_run(work, ref, links, base)

        jobs, natives = asyncio.run(run_jobs(image, work, refs, served, args.runs, native))
    figures = summarise(jobs, natives, args.runs, image)
    print(table(figures, [r.key for r in refs]))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

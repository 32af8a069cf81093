"""Verdicts on real releases: a list of popular projects through a real master and slave.

Each release is submitted through the HTTP API of a master started here (no
feed) and tested by one slave in a real VM (``--accel tcg`` by default), exactly
as a user's submission is. The table says, per release: outcome, verdict, the
one-line reason when it is not ``passed``, test counts, and per-phase seconds.
Releases come from the package index configured here (``--pypi-url``, default
PyPI's own); this is a benchmark, not a CI test: it needs that index.

    python benchmarks/corpus.py [--only six,attrs] [--list FILE] [--slots 1]
                                [--json PATH] [--markdown PATH] [--timeout 2700]
                                [--phase-timeout tests=1800]

The default list (``DEFAULT_CORPUS``) mixes the kinds the "right verdicts" issue
names: pure Python, C extensions with wheels, sdist-only, test dependencies in
extras / dependency groups / requirements files / tox, tests that need the
network, and a release that needs a newer Python than Debian 12 has.
Figures in the JSON: ``releases``, ``passed``, ``passed_ratio``, ``infra_error``,
``harmful``, ``flagged`` (verdict not clean), ``total_s``, and ``rows`` (one
object per release) — the table, as ``docs/corpus.md`` publishes it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/corpus.py``): the repository root is the import root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import ClusterError, LocalCluster, phase_seconds, write_outputs

#: (project, kind) — newest release of each is tested.
DEFAULT_CORPUS: tuple[tuple[str, str], ...] = (
    ("six", "pure, one module, tests in sdist"),
    ("idna", "pure, relative file URLs here"),
    ("packaging", "pure, tests need pretend"),
    ("pluggy", "pure, tox deps"),
    ("iniconfig", "pure, hatch"),
    ("attrs", "pure, dependency-groups (hypothesis)"),
    ("jinja2", "pure, requirements/tests.txt (trio)"),
    ("click", "pure, pager tests"),
    ("itsdangerous", "pure, flit"),
    ("blinker", "pure, flit"),
    ("werkzeug", "pure, tests need the network"),
    ("urllib3", "pure, trustme / tornado in test deps"),
    ("requests", "pure, tests need httpbin and the network"),
    ("certifi", "pure, data; newest release wheel-only here"),
    ("tomli", "pure, flit"),
    ("more-itertools", "pure"),
    ("typing-extensions", "pure, tests in src"),
    ("python-dateutil", "pure, setuptools-scm"),
    ("pytz", "pure, tests in package"),
    ("wcwidth", "pure, C-extension check in tests"),
    ("colorama", "pure"),
    ("zipp", "pure, coherent.build"),
    ("platformdirs", "pure, hatch-vcs"),
    ("filelock", "pure"),
    ("decorator", "pure"),
    ("pygments", "pure, large test suite"),
    ("tabulate", "pure"),
    ("pyparsing", "pure, flit"),
    ("sortedcontainers", "pure"),
    ("cachetools", "pure"),
    ("markupsafe", "C extension, wheels"),
    ("pyyaml", "C extension, wheels"),
    ("msgpack", "C extension (cython), wheels"),
    ("wrapt", "C extension, wheels"),
    ("simplejson", "C extension, wheels"),
    ("docopt", "sdist-only, setup.py, no tests shipped"),
    ("crcmod", "sdist-only, C extension, unittest module"),
    ("toolz", "pure"),
    ("isodate", "pure"),
    ("pyasn1", "pure"),
    ("mock", "pure, unittest"),
    ("django", "needs Python >= 3.12"),
)
DEFAULT_TIMEOUT_S = 2700.0
#: The tests phase's budget under TCG: the slave's default (900 s) is for KVM, and
#: TCG runs the same suite about ten times slower (packaging's: 15+ min).
TCG_TESTS_TIMEOUT_S = 1800.0


def reason_of(job: dict[str, Any]) -> str:
    """One line a maintainer reads: why the job did not simply pass."""
    summary = job.get("summary") or {}
    for key in ("reason", "bench_error", "error"):
        if summary.get(key):
            return str(summary[key]).splitlines()[0][:200]
    if job.get("error"):
        return str(job["error"]).splitlines()[0][:200]
    for name, entry in (job.get("phases") or {}).items():
        if isinstance(entry, dict) and entry.get("status") not in (None, "passed", "skipped"):
            detail = entry.get("reason") or entry.get("signal_name") or entry.get("exit_code")
            return f"{name} {entry.get('status')}" + (f": {detail}" if detail else "")
    tests = summary.get("tests") or {}
    if job.get("outcome") == "passed" and not tests.get("passed"):
        return "passed without running a test"
    return ""


def row_of(project: str, kind: str, job: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    """One table row (the JSON and Markdown tables share it)."""
    if job is None:
        return {"release": project, "kind": kind, "outcome": "refused", "verdict": "",
                "reason": error[:200], "tests": {}, "phases_s": {}}  # fmt: skip
    summary = job.get("summary") or {}
    tests = summary.get("tests") or {}
    return {
        "release": f"{job['project']} {job['version']}",
        "kind": kind,
        "job": job["id"],
        "outcome": job.get("outcome") or job.get("state"),
        "verdict": summary.get("verdict", ""),
        "reason": reason_of(job),
        "tests": {k: tests[k] for k in ("passed", "failed", "errors", "skipped") if k in tests},
        "findings": [f.get("rule") for f in (summary.get("findings") or [])][:10],
        "phases_s": phase_seconds(job),
    }


def markdown(rows: list[dict[str, Any]], figures: dict[str, Any]) -> str:
    """The table as ``docs/corpus.md`` shows it."""
    lines = [
        f"{figures['releases']} releases, {figures['passed']} passed "
        f"({figures['passed_ratio']:.0%}), {figures['infra_error']} infra_error, "
        f"{figures['harmful']} harmful, {figures['flagged']} flagged; "
        f"{figures['total_s'] / 60:.0f} min in all.",
        "",
        "| release | kind | outcome | verdict | reason | tests p/f/e/s | phases (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row["tests"]
        counts = "/".join(str(t.get(k, "–")) for k in ("passed", "failed", "errors", "skipped"))
        phases = ", ".join(f"{k} {v:g}" for k, v in row["phases_s"].items())
        reason = str(row["reason"]).replace("|", "\\|")
        lines.append(f"| {row['release']} | {row['kind']} | {row['outcome']} | "
                     f"{row['verdict']} | {reason} | {counts} | {phases} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def figures_of(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The JSON figures of the rows so far."""
    outcomes = Counter(r["outcome"] for r in rows)
    return {
        "releases": len(rows),
        "passed": outcomes["passed"],
        "passed_ratio": round(outcomes["passed"] / len(rows), 3) if rows else 0.0,
        "infra_error": outcomes["infra_error"],
        "harmful": outcomes["harmful"],
        "flagged": sum(1 for r in rows if r["verdict"] not in ("", "clean")),
        "outcomes": dict(outcomes),
        "total_s": round(seconds, 1),
        "rows": rows,
    }


async def run(args: argparse.Namespace, corpus: list[tuple[str, str]]) -> dict[str, Any]:
    """Test the corpus; the JSON and Markdown files are rewritten after every release,
    so a run stopped half-way still leaves the table of what it finished."""
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pyti-corpus-"))
    slave_args = tuple(f"--timeout={t}" for t in args.phase_timeout)
    async with LocalCluster(work, args.image_dir, accel=args.accel, slots=args.slots,
                            pypi_url=args.pypi_url, slave_args=slave_args) as cluster:  # fmt: skip
        submitted: list[tuple[str, str, int | None, str]] = []
        for project, kind in corpus:
            name, _, version = project.partition("==")
            try:
                submitted.append((project, kind, await cluster.submit(name, version or None), ""))
            except ClusterError as exc:
                submitted.append((project, kind, None, str(exc)))
        for project, kind, job_id, error in submitted:
            job = await cluster.wait(job_id, args.timeout) if job_id is not None else None
            row = row_of(project, kind, job, error)
            rows.append(row)
            print(f"{row['release']:<32} {row['outcome']:<12} {row['verdict']:<10} "
                  f"{row['reason']}", flush=True)  # fmt: skip
            so_far = figures_of(rows, time.monotonic() - started)
            write_outputs(so_far, markdown(rows, so_far), args.json, args.markdown, quiet=True)
    return figures_of(rows, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated projects (PROJECT or PROJECT==VERSION)")
    parser.add_argument("--list", type=Path, help="file: one PROJECT[==VERSION] [kind] a line")
    parser.add_argument("--image-dir", default="~/.cache/pyti/images")
    parser.add_argument("--accel", default="tcg", choices=("auto", "kvm", "tcg"))
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--pypi-url", default=None, help="JSON API / simple index base")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds a job may take from submission")  # fmt: skip
    tcg_default = f"tests={TCG_TESTS_TIMEOUT_S:g}"
    parser.add_argument("--phase-timeout", action="append", metavar="PHASE=SECONDS",
                        help="the slave's per-phase timeout (repeatable; default under tcg: "
                        f"{tcg_default}, as TCG runs a guest ~10x slower than KVM)")  # fmt: skip
    parser.add_argument("--work-dir", help="logs and state (default: a new temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures and rows here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    args.image_dir = Path(args.image_dir).expanduser()
    if args.phase_timeout is None:
        args.phase_timeout = [f"tests={TCG_TESTS_TIMEOUT_S:g}"] if args.accel == "tcg" else []
    corpus = list(DEFAULT_CORPUS)
    if args.list:
        corpus = []
        for line in args.list.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                project, _, kind = line.strip().partition(" ")
                corpus.append((project, kind.strip()))
    if args.only:
        wanted = [p.strip() for p in args.only.split(",") if p.strip()]
        kinds = dict(corpus)
        corpus = [(p, kinds.get(p, "")) for p in wanted]
    # SIGTERM as Ctrl-C: the cluster's clean-up stops its master and slave (asyncio's
    # default ended the process and left them running).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    figures = asyncio.run(run(args, corpus))
    write_outputs(figures, markdown(figures["rows"], figures), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

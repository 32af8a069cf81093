"""Detection on labelled samples: malicious techniques and benign look-alikes, end to end.

Every sample of ``benchmarks/detection_samples.py`` (and the behaviour system
tests' ``stealer``) is built here as data, uploaded to a master started here,
and tested by a real slave in a real VM, as a CI hook's upload is. Per sample the
benchmark reports pyti's outcome and verdict and — on the same files, in the same
run — GuardDog's answer (``guarddog pypi scan FILE``, static rules; installed on
first use into ``~/.cache/pyti/guarddog-venv``; GuardDog reads files, it runs
none of them). Totals: recall (malicious samples flagged ``suspicious`` or
``malicious``), ``malicious`` recall, and the false-positive rate on the benign ones.

    python benchmarks/detection.py [--only NAME,...] [--guarddog auto|off]
                                   [--json PATH] [--markdown PATH]

JSON figures: ``samples``, ``malicious_samples``, ``benign_samples``, ``flagged``,
``flagged_malicious``, ``recall``, ``malicious_recall``, ``false_positive_rate``,
``guarddog_recall``, ``guarddog_false_positive_rate``, ``total_s``, ``rows``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/detection.py``): the repository root is the import root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import LocalCluster, phase_seconds, write_outputs
from benchmarks.detection_samples import BENIGN, MALICIOUS, SAMPLES, Sample
from tests.fakes import behaviours

GUARDDOG_VENV = Path("~/.cache/pyti/guarddog-venv").expanduser()
FLAGGED = frozenset({"suspicious", "malicious"})
ALL_SAMPLES: tuple[Sample, ...] = (
    *SAMPLES,
    Sample("stealer (system test)", MALICIOUS, "install-time connect, .pth, key read",
           behaviours.stealer),
)  # fmt: skip


def guarddog_command(mode: str) -> Path | None:
    """GuardDog's command, installed into its own venv on first use; None if off or failing."""
    if mode == "off":
        return None
    exe = GUARDDOG_VENV / "bin" / "guarddog"
    if not exe.exists():
        print("installing GuardDog into", GUARDDOG_VENV, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(GUARDDOG_VENV)], check=True)
        subprocess.run([str(GUARDDOG_VENV / "bin" / "pip"), "install", "-q", "guarddog"],
                       check=False)  # fmt: skip
    return exe if exe.exists() else None


def guarddog_scan(exe: Path | None, path: Path) -> dict[str, Any]:
    """GuardDog's rules that fired on ``path`` (``{"flagged": bool, "rules": [...]}``)."""
    if exe is None:
        return {"flagged": None, "rules": []}
    proc = subprocess.run(
        [str(exe), "pypi", "scan", str(path), "--output-format", "json"],
        stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    try:  # its warnings about caches it cannot refresh offline may follow the JSON
        report, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        return {"flagged": None, "rules": [], "error": (proc.stderr or proc.stdout)[-300:]}
    results = report.get("results") or {}
    rules = sorted(name for name, hit in results.items() if hit)
    # GuardDog 3 splits its rules: capability-* describe what code can do (informational),
    # threat-* (and the older named heuristics) are what it flags a package for.
    threats = [r for r in rules if not r.startswith("capability-")]
    return {"flagged": bool(threats), "rules": threats}


def upload_file(files: list[Path]) -> Path:
    """The file a CI hook would upload: the sdist when there is one (its code and tests)."""
    sdists = [f for f in files if not f.name.endswith(".whl")]
    return (sdists or files)[0]


def ratio(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def markdown(rows: list[dict[str, Any]], figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['malicious_samples']} malicious samples: {figures['flagged']} flagged "
        f"(recall {figures['recall']:.0%}), {figures['flagged_malicious']} `malicious`; "
        f"{figures['benign_samples']} benign: false-positive rate "
        f"{figures['false_positive_rate']:.0%}. GuardDog on the same files: recall "
        f"{figures['guarddog_recall']:.0%}, false-positive rate "
        f"{figures['guarddog_false_positive_rate']:.0%}.",
        "",
        "| sample | label | technique | outcome | verdict | rules | GuardDog |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gd = r["guarddog"]
        gd_text = "–" if gd["flagged"] is None else (", ".join(gd["rules"]) or "clean")
        lines.append(f"| {r['sample']} | {r['label']} | {r['technique']} | {r['outcome']} | "
                     f"{r['verdict']} | {', '.join(r['rules'][:6])} | {gd_text} |")  # fmt: skip
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace, samples: list[Sample]) -> dict[str, Any]:
    started = time.monotonic()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="pyti-detection-"))
    built = {s.name: upload_file(s.build(work / "dists" / s.name)) for s in samples}
    guarddog = guarddog_command(args.guarddog)
    gd_answers = {name: guarddog_scan(guarddog, path) for name, path in built.items()}
    rows: list[dict[str, Any]] = []
    async with LocalCluster(work / "cluster", args.image_dir, accel=args.accel,
                            slots=args.slots) as cluster:  # fmt: skip
        ids = {s.name: await cluster.upload(built[s.name]) for s in samples}
        for sample in samples:
            job = await cluster.wait(ids[sample.name], args.timeout)
            summary = job.get("summary") or {}
            rules = sorted({str(f.get("rule")) for f in summary.get("findings") or []})
            row = {
                "sample": sample.name,
                "label": sample.label,
                "technique": sample.technique,
                "file": built[sample.name].name,
                "job": job["id"],
                "outcome": job.get("outcome") or job.get("state"),
                "verdict": summary.get("verdict", ""),
                "rules": rules,
                "phases_s": phase_seconds(job),
                "guarddog": gd_answers[sample.name],
            }
            rows.append(row)
            print(f"{sample.name:<24} {sample.label:<9} {row['outcome']:<12} "
                  f"{row['verdict']:<10} {', '.join(rules[:5])}", flush=True)  # fmt: skip
    bad = [r for r in rows if r["label"] == MALICIOUS]
    good = [r for r in rows if r["label"] == BENIGN]
    flagged = sum(1 for r in bad if r["verdict"] in FLAGGED)
    flagged_malicious = sum(1 for r in bad if r["verdict"] == "malicious")
    benign_flagged = sum(1 for r in good if r["verdict"] in FLAGGED)
    gd_bad = sum(1 for r in bad if r["guarddog"]["flagged"])
    gd_good = sum(1 for r in good if r["guarddog"]["flagged"])
    return {
        "samples": len(rows),
        "malicious_samples": len(bad),
        "benign_samples": len(good),
        "flagged": flagged,
        "flagged_malicious": flagged_malicious,
        "recall": ratio(flagged, len(bad)),
        "malicious_recall": ratio(flagged_malicious, len(bad)),
        "false_positive_rate": ratio(benign_flagged, len(good)),
        "guarddog_recall": ratio(gd_bad, len(bad)),
        "guarddog_false_positive_rate": ratio(gd_good, len(good)),
        "total_s": round(time.monotonic() - started, 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated sample names")
    parser.add_argument("--image-dir", default="~/.cache/pyti/images")
    parser.add_argument("--accel", default="tcg", choices=("auto", "kvm", "tcg"))
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1500.0)
    parser.add_argument("--guarddog", default="auto", choices=("auto", "off"))
    parser.add_argument("--work-dir", help="samples, logs and state (default: a new temp dir)")
    parser.add_argument("--json", type=Path, help="write the figures and rows here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    args.image_dir = Path(args.image_dir).expanduser()
    samples = list(ALL_SAMPLES)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        samples = [s for s in samples if s.name in wanted]
    figures = asyncio.run(run(args, samples))
    write_outputs(figures, markdown(figures["rows"], figures), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

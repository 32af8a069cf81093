"""Cold boot vs snapshot restore, to "SSH + Python ready", under TCG (or --accel kvm).

Each run starts a fresh VM (process start counted), opens SSH over the
virtio-serial port and runs ``python3 -c pass``; the time until that returns is
the figure. The phases of restore runs are reported too (QEMU start+restore,
SSH handshake, first Python). Runs are sequential; medians are printed and, with
``--json PATH``, written as one flat JSON object (``cold_boot_s``,
``restore_ready_s``, ...).

    python benchmarks/vm_bench.py --runs 5 --json vm.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from slave.image_builder.manifest import Image, default_image_dir
from slave.vm.accel import Accel
from slave.vm.guest import Guest
from slave.vm.machine import VM


async def one_run(image: Image, accel: Accel, work: Path, snapshot: bool) -> dict[str, float]:
    """Seconds from VM.start to the first Python answer, split into phases."""
    t0 = time.perf_counter()
    async with await VM.start(image, work, accel, snapshot=snapshot, timeout=300) as vm:
        if vm.restored != snapshot:
            raise SystemExit(f"expected restored={snapshot}, got {vm.restored}: no snapshot?")
        t1 = time.perf_counter()
        async with await Guest.connect(vm, image, timeout=300) as guest:
            t2 = time.perf_counter()
            result = await guest.run(["python3", "-c", "pass"], timeout=120)
            t3 = time.perf_counter()
    if result.exit_status != 0:
        raise SystemExit(f"python3 failed in the guest: {result}")
    return {"start": t1 - t0, "ssh": t2 - t1, "python": t3 - t2, "total": t3 - t0}


Figures = dict[str, float | int | str]


async def bench(image: Image, accel: Accel, runs: int, cold_runs: int) -> Figures:
    """Run both series and compute the medians."""
    results: dict[str, list[dict[str, float]]] = {"restore": [], "cold": []}
    state_mb = round(_state_size(image, accel) / (1 << 20), 1)
    with tempfile.TemporaryDirectory(prefix="pyti-vm-bench-") as tmp:
        work = Path(tmp)
        for kind, snapshot, n in (("restore", True, runs), ("cold", False, cold_runs)):
            for i in range(n):
                r = await one_run(image, accel, work, snapshot)
                results[kind].append(r)
                parts = " ".join(f"{k}={v:.2f}" for k, v in r.items())
                print(f"{kind:>7} run {i + 1}/{n}: {parts}", flush=True)

    def med(kind: str, key: str) -> float:
        if not results[kind]:
            return float("nan")
        return round(statistics.median(r[key] for r in results[kind]), 3)

    return {
        "cold_boot_s": med("cold", "total"),
        "restore_ready_s": med("restore", "total"),
        "restore_qemu_s": med("restore", "start"),
        "restore_ssh_s": med("restore", "ssh"),
        "restore_python_s": med("restore", "python"),
        "restore_min_s": round(min((r["total"] for r in results["restore"]), default=0), 3),
        "restore_max_s": round(max((r["total"] for r in results["restore"]), default=0), 3),
        "cold_ssh_ready_s": round(med("cold", "start") + med("cold", "ssh"), 3),
        "restore_runs": len(results["restore"]),
        "cold_runs": len(results["cold"]),
        "accel": accel.value,
        "state_file_mb": state_mb,
        "memory_mb": image.memory_mb,
    }


def _state_size(image: Image, accel: Accel) -> int:
    snap = image.snapshot(accel.value, accel.cpu_model)
    return snap.state.stat().st_size if snap else 0


def main() -> None:
    """Parse arguments, run, print and optionally write the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="bookworm")
    parser.add_argument("--image-dir", type=Path, default=None)
    parser.add_argument("--accel", choices=["tcg", "kvm"], default="tcg")
    parser.add_argument("--runs", type=int, default=5, help="restore runs (>= 5 for a median)")
    parser.add_argument("--cold-runs", type=int, default=None, help="cold boots (default --runs)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    image = Image.load(args.image_dir or default_image_dir(), args.image)
    accel = Accel(args.accel)
    cold = args.runs if args.cold_runs is None else args.cold_runs
    figures = asyncio.run(bench(image, accel, args.runs, cold))
    for key, value in figures.items():
        print(f"{key:>18}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

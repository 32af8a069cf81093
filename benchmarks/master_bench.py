"""Master throughput: N fake slaves (real protocol, loopback) against a real master.

Prints and (with ``--json PATH``) writes one flat JSON object:

- ``jobs_dispatched_per_s``: jobs taken from the queue through a whole cycle
  (claim → offer → accept → result → stored), over ``--jobs`` jobs and all
  slaves (target ≥ 500/s);
- ``events_stored_per_s``: events from ``--slaves`` slaves, each streaming one
  job's events in batches of ``--batch`` with up to ``--window`` batches
  unacknowledged, stored and acknowledged (target ≥ 20,000/s with 8 slaves);
- ``store_latency_p50_ms``/``store_latency_p99_ms``: with the slaves paced to
  ``--rate`` events/s in total (default 20,000: the target load), per event,
  from the slave sending its batch to the slave receiving the ``events_ack``
  that covers it (the master acks only after the commit, so this bounds "sent →
  in the database" from above; target p99 ≤ 100 ms). The unpaced phase's
  latencies are ``saturated_latency_p50_ms``/``_p99_ms`` (queueing included).

The master runs in this process; each phase's slaves run in a child process
(as real slaves would), so the two do not share one event loop. Also
``load_avg_1m`` at the start, since the machine may be shared. Each figure is
the best of ``--repeat`` runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The fake slave lives in the test tree; run from a checkout, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from master.config import build_config
from master.daemon import Master
from master.jobs import JobRequest
from protocol.messages import JobOffer
from pyti.logging import configure_logging
from tests.fakes.slave import FakeSlave

SECRET = b"bench-secret-0123456789abcdef"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _master(data: Path) -> Master:
    (data / "secret").write_bytes(SECRET)
    config = build_config(
        {
            "data_dir": str(data / "data"),
            "secret_file": str(data / "secret"),
            "slave_addr": "127.0.0.1:0",
            "no_feed": True,
            "heartbeat_interval": 5.0,
            "heartbeat_timeout": 30.0,
        }
    )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    master = Master(config, slave_port=0, http=False)
    await master.start()
    return master


async def bench_dispatch(port: int, slaves: int, slots: int, jobs: int) -> float:
    """Slave side: jobs per second through the full dispatch cycle."""
    done = asyncio.Event()
    finished = 0

    def on_change() -> None:
        nonlocal finished
        finished = sum(len(s.inbox["result_ack"]) for s in fakes)
        if finished >= jobs:
            done.set()

    fakes = [
        FakeSlave("127.0.0.1", port, SECRET, name=f"d{i}", slots=slots, mode="run")
        for i in range(slaves)
    ]
    start = time.perf_counter()
    await asyncio.gather(*(f.connect() for f in fakes))
    while not done.is_set():
        on_change()
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    for f in fakes:
        await f.close()
    return jobs / elapsed


async def bench_events(
    port: int, slaves: int, events: int, batch: int, window: int, rate: float | None
) -> tuple[float, list[float]]:
    """Slave side: events per second stored and acknowledged, per-event latencies (s).

    ``rate``: total events/s to pace the slaves to (None: as fast as acks allow).
    """
    tag = "paced" if rate else "flat"
    latencies: list[float] = []
    interval = batch / (rate / slaves) if rate else 0.0

    async def stream(index: int) -> None:
        inflight: list[tuple[int, float, int]] = []  # (last seq, sent at, count)

        def acked(job_id: int, seq: int, now: float) -> None:
            while inflight and inflight[0][0] <= seq:
                _, sent, count = inflight.pop(0)
                latencies.extend([now - sent] * count)

        fake = FakeSlave(
            "127.0.0.1",
            port,
            SECRET,
            name=f"{tag}{index}",
            slots=1,
            on_event_acked=acked,
        )
        await fake.connect()
        offer = await fake.next(JobOffer)
        await fake.accept(offer)
        sent = 0
        next_at = time.monotonic() + interval * index / slaves  # spread the slaves out
        while sent < events:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            await fake.wait_for(lambda: len(inflight) < window, timeout=60)
            n = min(batch, events - sent)
            evs = fake.make_events(offer.job_id, n)
            inflight.append((evs[-1].seq, time.monotonic(), n))
            await fake.send_events(offer.job_id, offer.lease, evs)
            sent += n
        await fake.wait_for(lambda: not inflight, timeout=60)
        await fake.close()

    start = time.perf_counter()
    await asyncio.gather(*(stream(i) for i in range(slaves)))
    elapsed = time.perf_counter() - start
    return slaves * events / elapsed, latencies


async def _queue(master: Master, prefix: str, n: int) -> None:
    for i in range(n):
        await master.ctx.store.jobs.submit(JobRequest(f"{prefix}{i}", "1.0", [], "bookworm"))


async def _slaves(args: argparse.Namespace, port: int, phase: str) -> dict[str, Any]:
    """Run one phase's slaves in a child process (a core of their own, as in real life)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--role",
        "slaves",
        "--port",
        str(port),
        "--phase",
        phase,
        "--slaves",
        str(args.slaves),
        "--slots",
        str(args.slots),
        "--jobs",
        str(args.jobs),
        "--events",
        str(args.events),
        "--batch",
        str(args.batch),
        "--window",
        str(args.window),
        "--rate",
        str(args.rate),
        "--paced-batch",
        str(args.paced_batch),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"slave process failed in phase {phase}")
    result: dict[str, Any] = json.loads(out)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Best of ``--repeat`` runs, figure by figure (the least disturbed by other load)."""
    load = os.getloadavg()[0]
    runs = [await run_once(args) for _ in range(args.repeat)]
    best: dict[str, Any] = dict(runs[0])
    for r in runs[1:]:
        for key, value in r.items():
            if key.endswith("_per_s"):
                best[key] = max(best[key], value)
            elif key.endswith("_ms"):
                best[key] = min(best[key], value)
    best["load_avg_1m"] = round(load, 2)
    best["repeat"] = args.repeat
    return best


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One master, three phases (each with fresh slaves)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pyti-bench-") as tmp:
        master = await _master(Path(tmp))
        try:
            port = master.slave_port
            await _queue(master, "bench", args.jobs)
            dispatch = await _slaves(args, port, "dispatch")
            await _queue(master, "flat", args.slaves)
            flat = await _slaves(args, port, "flat")
            await _queue(master, "paced", args.slaves)
            paced = await _slaves(args, port, "paced")
        finally:
            await master.stop()
    return {
        "jobs_dispatched_per_s": round(dispatch["per_s"], 1),
        "events_stored_per_s": round(flat["per_s"], 1),
        "store_latency_p50_ms": paced["p50_ms"],
        "store_latency_p99_ms": paced["p99_ms"],
        "paced_events_per_s": round(paced["per_s"], 1),
        "saturated_latency_p50_ms": flat["p50_ms"],
        "saturated_latency_p99_ms": flat["p99_ms"],
        "slaves": args.slaves,
        "jobs": args.jobs,
        "events": args.slaves * args.events,
        "batch": args.batch,
        "window": args.window,
        "rate": args.rate,
        "load_avg_1m": round(load, 2),
    }


async def run_slaves(args: argparse.Namespace) -> dict[str, Any]:
    if args.phase == "dispatch":
        return {"per_s": await bench_dispatch(args.port, args.slaves, args.slots, args.jobs)}
    paced = args.phase == "paced"
    per_s, lat = await bench_events(
        args.port,
        args.slaves,
        args.events,
        args.paced_batch if paced else args.batch,
        1000 if paced else args.window,
        args.rate if paced else None,
    )
    return {
        "per_s": per_s,
        "p50_ms": round(_percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(lat, 0.99) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slaves", type=int, default=8)
    parser.add_argument("--slots", type=int, default=8, help="slots per slave (dispatch phase)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--events", type=int, default=25_000, help="events per slave")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--window", type=int, default=4, help="unacknowledged batches per slave")
    parser.add_argument("--rate", type=float, default=20_000.0, help="paced phase: events/s")
    parser.add_argument("--paced-batch", type=int, default=100, help="paced phase: batch size")
    parser.add_argument("--repeat", type=int, default=3, help="runs; each figure is the best")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--role", choices=("master", "slaves"), default="master", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--phase", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("console", "warning", sys.stderr)
    if args.role == "slaves":
        print(json.dumps(asyncio.run(run_slaves(args))))
        return
    figures = asyncio.run(run(args))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()

"""Live-tail benchmark: N concurrent SSE clients on one job while a producer emits R events/s.

The master side (this process) is a real store in a temporary directory, the
real HTTP app served by ``AppRunner`` on 127.0.0.1, and a producer that does
what the slave server does with a batch of events: ``store.store_events`` then
``bus.publish`` of the new rows. Events go out in batches every ``--batch-ms``
(a slave sends batches too); each event's ``ts`` is stamped right before its
batch is handed to the store, so the latency measured includes the SQLite
commit, the fan-out, the HTTP write and the client's read.

The clients run in a second process (so their parsing does not steal the
master's event loop) and compute, per event, ``receive time - ts``. They also
check that every client saw every seq exactly once.

    python benchmarks/tail_bench.py --json out.json [--clients 100] [--rate 2000]

Keys: ``tail_latency_p99_ms`` (target ≤ 100), ``tail_latency_p50_ms``,
``tail_latency_max_ms``, ``tail_events_per_s_delivered`` (sum over clients),
``tail_events_per_s_produced``, ``tail_clients``, ``tail_gaps`` (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from master.config import MasterConfig
from master.context import MasterContext
from master.http.app import create_app
from master.http.keys import FEEDS
from master.jobs import JobRequest
from protocol.events import Event
from protocol.messages import JobResult

_TS = re.compile(rb'"seq":(\d+),"ts":([0-9.e+-]+)')
_LINE = "x" * 80  # a typical line of build output


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# ------------------------------------------------------------- clients ----


async def _one_client(
    session: aiohttp.ClientSession, url: str, latencies: list[float], ready: asyncio.Event
) -> tuple[int, int]:
    """Read one stream to its end; (events received, seq problems)."""
    received = 0
    problems = 0
    last = 0
    async with session.get(url, headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status == 200, resp.status
        ready.set()
        buffer = b""
        async for chunk in resp.content.iter_any():
            now = time.time()
            buffer += chunk
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            complete, buffer = buffer[: cut + 2], buffer[cut + 2 :]
            for seq_raw, ts_raw in _TS.findall(complete):
                seq = int(seq_raw)
                if seq != last + 1:
                    problems += 1
                last = seq
                latencies.append(now - float(ts_raw))
                received += 1
            if b"event: end" in complete:
                break
    return received, problems


async def _clients_main(url: str, n: int, started: Any, results: Any) -> None:
    latencies: list[float] = []
    cpu_start = time.process_time()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [
            asyncio.create_task(_one_client(session, url, latencies, readies[i])) for i in range(n)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        started.set()
        outcomes = await asyncio.gather(*tasks)
    latencies.sort()
    results.put(
        {
            "received": sum(r for r, _ in outcomes),
            "gaps": sum(p for _, p in outcomes),
            "per_client_min": min(r for r, _ in outcomes),
            "p50": _percentile(latencies, 0.50),
            "p99": _percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else float("nan"),
            "cpu_s": time.process_time() - cpu_start,
        }
    )


def _clients_process(url: str, n: int, started: Any, results: Any) -> None:
    asyncio.run(_clients_main(url, n, started, results))


# -------------------------------------------------------------- master ----


async def _produce(
    ctx: MasterContext,
    job_id: int,
    lease: int,
    rate: int,
    duration: float,
    batch_ms: float,
    commits: list[float],
) -> tuple[int, float]:
    """Emit ``rate`` events/s for ``duration`` s in batches; (events sent, seconds taken).

    Batches are not held back by the previous one's commit (a slave streams
    them; the store group-commits whatever is queued), so the rate is the
    producer's, not the disk's. Each batch is published once it is committed.
    """
    per_batch = max(1, round(rate * batch_ms / 1000))
    interval = per_batch / rate
    batches = int(duration / interval)
    seq = 0

    async def send(events: list[Event]) -> None:
        stored = await ctx.store.store_events(job_id, lease, events)
        ctx.bus.publish(job_id, stored.new)
        commits.append(time.time() - events[0].ts)

    start = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for i in range(batches):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time()
            events = []
            for _ in range(per_batch):
                seq += 1
                events.append(
                    Event(
                        seq=seq,
                        ts=now,
                        level="info",
                        event="output",
                        phase="tests",
                        fields={"stream": "stdout", "line": _LINE},
                    )
                )
            group.create_task(send(events))
    return seq, time.monotonic() - start


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pyti-tail-bench-") as tmp:
        data = Path(tmp)
        config = MasterConfig(
            data_dir=data, db_path=data / "pyti.sqlite3", secret=b"x" * 32, tokens=frozenset()
        )
        ctx = await MasterContext.open(config)
        try:
            return await _bench(ctx, args)
        finally:
            await ctx.close()


async def _bench(ctx: MasterContext, args: argparse.Namespace) -> dict[str, Any]:
    files = [
        {
            "filename": "bench-1.0.tar.gz",
            "sha256": "0" * 64,
            "size": 1,
            "packagetype": "sdist",
            "url": "http://127.0.0.1:9/x",
        }
    ]
    job = (
        await ctx.store.submit_job(
            JobRequest(project="bench", version="1.0", files=files, image="bookworm")
        )
    ).job
    claimed = await ctx.store.claim_next("bench-slave", ["bookworm"])
    assert claimed is not None
    await ctx.store.mark_running(claimed.id, claimed.lease)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=512).start()
    mp_ctx = mp.get_context("spawn")
    started = mp_ctx.Event()
    results = mp_ctx.Queue()
    url = f"http://127.0.0.1:{port}/api/v1/jobs/{job.id}/events/stream"
    clients = mp_ctx.Process(target=_clients_process, args=(url, args.clients, started, results))
    clients.start()
    try:
        while not started.is_set() or app[FEEDS].clients(job.id) < args.clients:
            await asyncio.sleep(0.05)  # the clients live in another process: poll
            if not clients.is_alive():
                raise RuntimeError("the client process died")
        cpu_start = time.process_time()
        commits: list[float] = []
        sent, took = await _produce(
            ctx, job.id, claimed.lease, args.rate, args.duration, args.batch_ms, commits
        )
        result = JobResult(
            job_id=job.id, lease=claimed.lease, outcome="passed", isolation="tcg", last_seq=sent
        )
        await ctx.store.finish(job.id, claimed.lease, result)
        ended = await ctx.store.get_job(job.id)
        assert ended is not None
        ctx.bus.publish_end(ended)
        stats = await asyncio.to_thread(results.get, True, 120)
        master_cpu = time.process_time() - cpu_start
        await asyncio.to_thread(clients.join, 30)
    finally:
        if clients.is_alive():
            clients.terminate()
        await runner.cleanup()
    expected = sent * args.clients
    return {
        "tail_latency_p99_ms": round(stats["p99"] * 1000, 2),
        "tail_latency_p50_ms": round(stats["p50"] * 1000, 2),
        "tail_latency_max_ms": round(stats["max"] * 1000, 2),
        "tail_events_per_s_delivered": round(stats["received"] / took, 1),
        "tail_events_per_s_produced": round(sent / took, 1),
        "tail_clients": args.clients,
        "tail_events_per_client": sent,
        "tail_gaps": stats["gaps"] + (expected - stats["received"]),
        "tail_duration_s": round(took, 2),
        # Of the latency: producer send → committed and published (the store's durable
        # group commit), before the fan-out and HTTP delivery.
        "tail_store_commit_p50_ms": round(_percentile(sorted(commits), 0.50) * 1000, 2),
        "tail_store_commit_p99_ms": round(_percentile(sorted(commits), 0.99) * 1000, 2),
        # CPU seconds used while producing and delivering: the master (store, fan-out,
        # HTTP) and the client process (reading and parsing every stream).
        "tail_master_cpu_s": round(master_cpu, 2),
        "tail_clients_cpu_s": round(stats["cpu_s"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of production")
    parser.add_argument("--batch-ms", type=float, default=10.0, help="producer batch period")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    return 0 if figures["tail_gaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

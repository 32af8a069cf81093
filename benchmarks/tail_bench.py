"""Live-tail benchmark: N concurrent SSE clients on one job while a producer emits R events/s.

The master side (this process) is a real store in a temporary directory, the
real HTTP app served by ``AppRunner`` on 127.0.0.1, and a producer that does
what the slave server does with a batch of events: ``store.events.save`` then
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
from array import array
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
from protocol.vocabulary import Outcome

_TS = re.compile(rb'"seq":(\d+),"ts":([0-9.e+-]+)')
_LINE = "x" * 80  # a typical line of build output


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# ------------------------------------------------------------- clients ----


async def _one_client(
    session: aiohttp.ClientSession,
    url: str,
    latencies: list[float],
    arrivals: tuple[array[int], array[float]],
    ready: asyncio.Event,
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
                arrivals[0].append(seq)
                arrivals[1].append(now)
                received += 1
            if b"event: end" in complete:
                break
    return received, problems


async def _clients_main(url: str, n: int, started: Any, published: Any, results: Any) -> None:
    latencies: list[float] = []
    arrivals: tuple[array[int], array[float]] = (array("q"), array("d"))
    cpu_start = time.process_time()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [
            asyncio.create_task(_one_client(session, url, latencies, arrivals, readies[i]))
            for i in range(n)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        started.release()
        outcomes = await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu_start
    # Publish time of every seq (from the master, once it is done): the fan-out's share.
    publish_times: list[float] = await asyncio.to_thread(published.get, True, 120)
    fanout = array("d", (t - publish_times[seq] for seq, t in zip(*arrivals, strict=True)))
    results.put(
        {
            "received": sum(r for r, _ in outcomes),
            "gaps": sum(p for _, p in outcomes),
            "latencies": array("d", latencies).tobytes(),
            "fanout": fanout.tobytes(),
            "cpu_s": cpu,
        }
    )


def _clients_process(url: str, n: int, started: Any, published: Any, results: Any) -> None:
    asyncio.run(_clients_main(url, n, started, published, results))


def _merge(parts: list[dict[str, Any]], key: str) -> list[float]:
    merged: list[float] = []
    for part in parts:
        values = array("d")
        values.frombytes(part[key])
        merged.extend(values)
    merged.sort()
    return merged


# -------------------------------------------------------------- master ----


async def _produce(
    ctx: MasterContext,
    job_id: int,
    lease: int,
    rate: int,
    duration: float,
    batch_ms: float,
    commits: list[float],
    published: list[float],
) -> tuple[int, float]:
    """Emit ``rate`` events/s for ``duration`` s in batches; (events sent, seconds taken).

    Batches are not held back by the previous one's commit (a slave streams
    them; the store group-commits whatever is queued), so the rate is the
    producer's, not the disk's. Each batch is published once it is committed.
    """
    per_batch = max(1, round(rate * batch_ms / 1000))
    interval = per_batch / rate
    batches = int(duration / interval)
    published.extend([0.0] * (batches * per_batch + 1))
    seq = 0

    async def send(events: list[Event]) -> None:
        stored = await ctx.store.events.save(job_id, lease, events)
        ctx.bus.publish(job_id, stored.new)
        now = time.time()
        commits.append(now - events[0].ts)
        for event in events:
            published[event.seq] = now

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
        await ctx.store.jobs.submit(
            JobRequest(project="bench", version="1.0", files=files, image="bookworm")
        )
    ).job
    claimed = await ctx.store.jobs.claim_next("bench-slave", ["bookworm"])
    assert claimed is not None
    await ctx.store.jobs.start(claimed.id, claimed.lease)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=512).start()
    mp_ctx = mp.get_context("spawn")
    started = mp_ctx.Semaphore(0)
    results = mp_ctx.Queue()
    publish_queue = mp_ctx.Queue()
    url = f"http://127.0.0.1:{port}/api/v1/jobs/{job.id}/events/stream"
    shares = [args.clients // args.client_procs] * args.client_procs
    shares[0] += args.clients - sum(shares)
    procs = [
        mp_ctx.Process(target=_clients_process, args=(url, n, started, publish_queue, results))
        for n in shares
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            await asyncio.to_thread(started.acquire, True, 120)
        while app[FEEDS].clients(job.id) < args.clients:
            await asyncio.sleep(0.05)  # connected client-side; wait for the server side too
            if not all(p.is_alive() for p in procs):
                raise RuntimeError("a client process died")
        cpu_start = time.process_time()
        commits: list[float] = []
        published: list[float] = []
        sent, took = await _produce(
            ctx, job.id, claimed.lease, args.rate, args.duration, args.batch_ms, commits, published
        )
        result = JobResult(
            job_id=job.id,
            lease=claimed.lease,
            outcome=Outcome.PASSED,
            isolation="tcg",
            last_seq=sent,
        )
        await ctx.store.jobs.finish(job.id, claimed.lease, result)
        ended = await ctx.store.jobs.get(job.id)
        assert ended is not None
        ctx.bus.publish_end(ended)
        master_cpu = time.process_time() - cpu_start
        for _ in procs:
            publish_queue.put(published)
        parts = [await asyncio.to_thread(results.get, True, 120) for _ in procs]
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        await runner.cleanup()
    latencies = _merge(parts, "latencies")
    fanout = _merge(parts, "fanout")
    received = sum(p["received"] for p in parts)
    expected = sent * args.clients
    return {
        "tail_latency_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "tail_latency_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "tail_latency_max_ms": round(latencies[-1] * 1000, 2),
        "tail_events_per_s_delivered": round(received / took, 1),
        "tail_events_per_s_produced": round(sent / took, 1),
        "tail_clients": args.clients,
        "tail_events_per_client": sent,
        "tail_gaps": sum(p["gaps"] for p in parts) + (expected - received),
        "tail_duration_s": round(took, 2),
        # Of the latency: producer send → committed and published (the store's durable
        # group commit), before the fan-out and HTTP delivery.
        "tail_store_commit_p50_ms": round(_percentile(sorted(commits), 0.50) * 1000, 2),
        "tail_store_commit_p99_ms": round(_percentile(sorted(commits), 0.99) * 1000, 2),
        # Of the latency: published on the bus → received by the client (fan-out + HTTP).
        "tail_fanout_p50_ms": round(_percentile(fanout, 0.50) * 1000, 2),
        "tail_fanout_p99_ms": round(_percentile(fanout, 0.99) * 1000, 2),
        # CPU seconds used while producing and delivering: the master (store, fan-out,
        # HTTP) and the client processes (reading and parsing every stream).
        "tail_master_cpu_s": round(master_cpu, 2),
        "tail_clients_cpu_s": round(sum(p["cpu_s"] for p in parts), 2),
        "tail_client_processes": args.client_procs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of production")
    parser.add_argument("--batch-ms", type=float, default=10.0, help="producer batch period")
    parser.add_argument(
        "--client-procs", type=int, default=2, help="processes the clients are spread over"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures) + "\n")
    return 0 if figures["tail_gaps"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

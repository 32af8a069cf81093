"""Hostile peers and a /healthz probe for the idle/slow-loris test, each its own process.

``python -m tests.fakes.hostile_peers attack SLAVE_PORT HTTP_PORT PEERS LIMIT`` opens
``PEERS`` connections to each port from 127.0.0.2 (half idle, half slow-loris: one
byte every 0.2 s of a frame, or of HTTP headers, that never ends) and prints one
JSON object: for each peer ``[seconds until the master closed it or null, bytes
read]`` under ``slave`` and ``http`` (a peer still open after ``LIMIT`` s is null).

``python -m tests.fakes.hostile_peers probe HTTP_PORT SECONDS`` times ``GET /healthz``
every 20 ms for that long (``probing`` on stderr once the first answer is in) and
prints ``[[time.monotonic() at the request, ms], ...]``
(the monotonic clock is the same in every process: the caller can split the
samples into before and during the attack).

Separate processes, so that the latencies are the master's, not those of the
attack's hundreds of client coroutines sharing a loop or a GIL with the probe.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

ATTACKER = "127.0.0.2"  # another loopback address: a peer that is not the slaves'
LORIS_FRAME = b"\x00\x00\x10\x00" + b"\x81" * 64
LORIS_HTTP = b"GET /healthz HTTP/1.1\r\nX: y\r\n"

Outcome = tuple[float | None, int]


async def hostile(port: int, drip: bytes | None, limit: float) -> Outcome:
    """One peer that never completes anything: idle (``drip`` None) or sending ``drip``
    one byte every 0.2 s. Returns (seconds until the master closed it or None, bytes read)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    except OSError:
        return 0.0, 0
    started = time.monotonic()
    got = 0
    sent = 0
    try:
        while time.monotonic() - started < limit:
            if drip is not None:
                writer.write(drip[sent % len(drip) : sent % len(drip) + 1])
                sent += 1
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.2)
            except TimeoutError:
                continue
            if not data:
                return time.monotonic() - started, got
            got += len(data)
        return None, got
    except OSError:
        return time.monotonic() - started, got
    finally:
        writer.close()


async def attack(slave_port: int, http_port: int, peers: int, limit: float) -> dict[str, Any]:
    """All hostile peers at once; their outcomes by port."""
    half = peers // 2
    outcomes = await asyncio.gather(
        *(hostile(slave_port, None, limit) for _ in range(half)),
        *(hostile(slave_port, LORIS_FRAME, limit) for _ in range(peers - half)),
        *(hostile(http_port, None, limit) for _ in range(half)),
        *(hostile(http_port, LORIS_HTTP, limit) for _ in range(peers - half)),
    )
    return {"slave": outcomes[:peers], "http": outcomes[peers:]}


async def probe(http_port: int, seconds: float) -> list[tuple[float, float]]:
    """``/healthz`` latencies (start, ms), one request every 20 ms for ``seconds``."""
    samples: list[tuple[float, float]] = []
    url = f"http://127.0.0.1:{http_port}/healthz"
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < end:
            t = time.monotonic()
            async with http.get(url) as resp:
                if resp.status != 200:
                    raise SystemExit(f"/healthz answered {resp.status}")
                await resp.read()
            samples.append((t, (time.monotonic() - t) * 1000))
            if len(samples) == 1:
                print("probing", file=sys.stderr, flush=True)  # the caller waits for it
            await asyncio.sleep(0.02)
    return samples


def main(argv: list[str]) -> None:
    if argv[0] == "attack":
        result: Any = asyncio.run(attack(int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4])))
    else:
        result = asyncio.run(probe(int(argv[1]), float(argv[2])))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])

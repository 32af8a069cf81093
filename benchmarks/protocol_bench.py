"""Protocol throughput: encode + frame + decode, on one core.

Prints and (with ``--json PATH``) writes one flat JSON object:

- ``events_per_s``: single events, each in its own ``events`` message, through
  encode → frame → unframe → decode (the issue's target: ≥ 200,000 on one core);
- ``batched_events_per_s``: events in batches of ``--batch`` (how the slave sends);
- ``job_offers_per_s``; ``*_mb_per_s``: frame bytes through the same path.

Each figure is the best of ``--repeat`` runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from protocol.events import Event
from protocol.framing import HEADER_SIZE, pack, unpack_body
from protocol.messages import Events, FileSpec, JobOffer, Message, decode, encode
from protocol.results import JobTimeouts


def _event(seq: int) -> Event:
    return Event(
        seq=seq,
        ts=time.time(),
        level="info",
        event="output",
        phase="install",
        fields={"stream": "stdout", "line": "Collecting six==1.16.0 (from -r requirements.txt)"},
    )


def _through(make: Callable[[int], Message], n: int) -> tuple[float, int]:
    """Seconds for n messages through the full path, and the bytes framed."""
    nbytes = 0
    start = time.perf_counter()
    for i in range(n):
        frame = pack(encode(make(i)))
        nbytes += len(frame)
        decode(unpack_body(frame[HEADER_SIZE:]))
    return time.perf_counter() - start, nbytes


def _best(make: Callable[[int], Message], n: int, repeat: int) -> tuple[float, float]:
    best_s, nbytes = min(_through(make, n) for _ in range(repeat))
    return n / best_s, nbytes / best_s / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("-n", type=int, default=100_000, help="messages per run")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best counts)")
    args = parser.parse_args()

    events = [_event(i) for i in range(args.n)]
    single_rate, single_mb = _best(
        lambda i: Events(job_id=1, lease=1, events=(events[i],)), args.n, args.repeat
    )
    n_batches = max(args.n // args.batch, 1)
    batches = [tuple(events[i * args.batch : (i + 1) * args.batch]) for i in range(n_batches)]
    batch_rate, batch_mb = _best(
        lambda i: Events(job_id=1, lease=1, events=batches[i]), n_batches, args.repeat
    )
    files = (
        FileSpec(filename="six-1.16.0.tar.gz", sha256="a" * 64, size=34_000, packagetype="sdist",
                 url="https://files.example/six-1.16.0.tar.gz"),
        FileSpec(filename="six-1.16.0-py2.py3-none-any.whl", sha256="b" * 64, size=11_000,
                 packagetype="bdist_wheel", url="https://files.example/six-1.16.0-py2.py3-none-any.whl"),
    )  # fmt: skip
    offer_rate, offer_mb = _best(
        lambda i: JobOffer(job_id=i, lease=1, attempt=1, project="six", version="1.16.0",
                           image="bookworm", files=files, timeouts=JobTimeouts(install=600)),
        args.n // 2,
        args.repeat,
    )  # fmt: skip
    figures = {
        "events_per_s": round(single_rate),
        "events_mb_per_s": round(single_mb, 2),
        "batched_events_per_s": round(batch_rate * args.batch),
        "batched_events_mb_per_s": round(batch_mb, 2),
        "batch_size": args.batch,
        "job_offers_per_s": round(offer_rate),
        "job_offers_mb_per_s": round(offer_mb, 2),
    }
    for key, value in figures.items():
        print(f"{key:28s} {value:>12,}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

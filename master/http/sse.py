"""Live tail of a job's events: server-sent events, or newline-delimited JSON for ``curl``.

Order of operations, which is what makes the tail gap-free:

1. subscribe to the job's feed (``fanout``: one bus subscription per job, shared
   by its clients), so nothing published from now on is missed;
2. send the stored history after the client's last seen ``seq``
   (``Last-Event-ID`` or ``?after=``), in pages;
3. forward live batches, dropping any ``seq`` already sent (the history and the
   first live batches overlap) and filling any hole from the store;
4. when the job reaches a final state, flush what the store has left and send
   an ``end`` event carrying the job;
5. when the master shuts down, send a ``closing`` event instead (no ``id``: the
   resume point stays the last event's seq) and end the stream cleanly; the
   client reconnects with ``Last-Event-ID`` once the master is back.

A subscriber that falls behind (its bounded buffer overflowed, ``Lagged``)
re-subscribes and catches up from the store — slow clients cost the store a
read, never the producer a wait. A client that stops reading altogether holds
at most its socket buffers: a 64 KiB slice of a write that it does not take
within ``WRITE_TIMEOUT_S`` raises ``Stalled`` and the caller drops the connection.
The ``seq`` of an event is the SSE ``id``, so a browser's ``EventSource`` (or
``pyti tail``) resumes exactly where it stopped.

Encoded events are cached per ``(job, seq)``, framed for both formats: a hundred
clients tailing one job share one ``json.dumps`` and one framing per event.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from aiohttp import web

from master.bus import Lagged
from master.http.fanout import Batch, Closing, JobFeeds
from master.http.validation import MAX_EVENT_SEQ, bad_request, query_int
from master.jobs import FINAL_STATES, EventRow, Job
from master.store import Store

Format = Literal["sse", "ndjson"]

#: Seconds of silence after which a keep-alive is sent (proxies drop idle connections).
KEEPALIVE_S = 15.0
#: Events read from the store per page of history.
HISTORY_PAGE = 1000
#: Seconds one write to a tail client may wait for it to read before it is dropped.
WRITE_TIMEOUT_S = 30.0
#: Bytes per timed write: a client must take this much within the timeout.
WRITE_SLICE = 64 * 1024
#: What EventSource waits before reconnecting, in milliseconds.
RETRY_MS = 2000
#: Rows buffered per tail client (5 s at 2,000 events/s); beyond this the client lags
#: and re-reads the store.
SUBSCRIBER_QUEUE = 10_000

SSE_CONTENT_TYPE = "text/event-stream"
NDJSON_CONTENT_TYPE = "application/x-ndjson"


class EncodedEvents:
    """A bounded cache of framed events keyed by ``(job_id, seq)`` (oldest evicted first)."""

    def __init__(self, capacity: int = 20000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[int, int], tuple[bytes, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def frames(self, row: EventRow) -> tuple[bytes, bytes]:
        """``(SSE frame, NDJSON line)`` of the row; JSON has no raw newline, so one data line."""
        key = (row.job_id, row.seq)
        frames = self._items.get(key)
        if frames is None:
            data = dumps(row.to_dict())
            frames = (sse_event(row.seq, "log", data), b'{"type":"event",' + data[1:] + b"\n")
            self._items[key] = frames
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return frames


def dumps(value: Any) -> bytes:
    """Compact JSON; ``ensure_ascii`` keeps U+2028/U+2029 and controls escaped for any parser."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sse_event(event_id: int | None, name: str, data: bytes) -> bytes:
    """One SSE frame; ``data`` must not contain a newline (compact JSON never does)."""
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + name.encode("ascii") + b"\ndata: " + data + b"\n\n"


def negotiate(request: web.Request) -> Format:
    """``ndjson`` for ``?format=ndjson`` or ``Accept: application/x-ndjson``, else ``sse``."""
    fmt = request.query.get("format")
    if fmt == "ndjson":
        return "ndjson"
    if fmt in (None, "", "sse"):
        return "ndjson" if NDJSON_CONTENT_TYPE in request.headers.get("Accept", "") else "sse"
    bad_request("invalid_query", "format must be sse or ndjson")


class Stalled(Exception):
    """The tail client did not take a write within the write timeout."""


class TailWriter:
    """Writes events and the end marker to one client in the negotiated format.

    Every write, in slices of ``WRITE_SLICE`` bytes, must be taken by the client
    within ``write_timeout`` seconds a slice, else ``Stalled`` (the connection is
    then in an unknown state: drop it).
    """

    def __init__(
        self,
        response: web.StreamResponse,
        fmt: Format,
        cache: EncodedEvents,
        *,
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        self.response = response
        self.fmt = fmt
        self.cache = cache
        self.last_seq = 0
        self.write_timeout = write_timeout

    async def _write(self, data: bytes) -> None:
        # In slices, each with its own deadline: a slow reader that keeps taking data
        # is never dropped, however large the write (a page of history).
        # A small write goes as it is (the shared batch's very bytes object).
        pieces: list[bytes | memoryview] = [data]
        if len(data) > WRITE_SLICE:
            view = memoryview(data)
            pieces = [view[i : i + WRITE_SLICE] for i in range(0, len(view), WRITE_SLICE)]
        for piece in pieces:
            try:
                async with asyncio.timeout(self.write_timeout):
                    await self.response.write(piece)
            except TimeoutError:
                raise Stalled(f"client took no data for {self.write_timeout:g} s") from None

    async def start(self) -> None:
        """First bytes: the reconnect delay for EventSource (nothing for NDJSON)."""
        if self.fmt == "sse":
            await self._write(b"retry: %d\n\n" % RETRY_MS)

    async def rows(self, rows: Sequence[EventRow]) -> None:
        """Send the rows newer than ``last_seq`` (in one write), in order."""
        if (
            isinstance(rows, Batch)
            and rows.contiguous
            and rows
            and rows[0].seq == self.last_seq + 1
        ):
            # The common live case: the whole shared batch, encoded once for all clients.
            data = rows.encoded.get(self.fmt)
            if data is None:
                which = 0 if self.fmt == "sse" else 1
                data = rows.encoded[self.fmt] = b"".join(self.cache.frames(r)[which] for r in rows)
            await self._write(data)
            self.last_seq = rows[-1].seq
            return
        parts: list[bytes] = []
        last = self.last_seq
        which = 0 if self.fmt == "sse" else 1
        frames = self.cache.frames
        for row in rows:
            if row.seq > last:
                parts.append(frames(row)[which])
                last = row.seq
        if parts:
            await self._write(b"".join(parts))
            self.last_seq = last

    async def end(self, job: Job) -> None:
        """The final marker, carrying the finished job."""
        data = dumps(job.to_dict())
        if self.fmt == "sse":
            await self._write(sse_event(None, "end", data))
        else:
            await self._write(b'{"type":"end","job":' + data + b"}\n")

    async def closing(self) -> None:
        """The shutdown marker: the stream ends here, reconnect and resume later."""
        data = b'{"reason":"the master is shutting down"}'
        if self.fmt == "sse":
            await self._write(sse_event(None, "closing", data))
        else:
            await self._write(b'{"type":"closing",' + data[1:] + b"\n")

    async def keepalive(self) -> None:
        """Something on the wire so idle proxies keep the connection (a comment / blank line)."""
        await self._write(b": keepalive\n\n" if self.fmt == "sse" else b"\n")


def in_order(rows: Sequence[EventRow], last: int) -> bool:
    """True when the rows newer than ``last`` are exactly ``last + 1, last + 2, ...`` in order."""
    if isinstance(rows, Batch) and rows.contiguous:
        return not rows or rows[0].seq <= last + 1
    expected = last + 1
    for row in rows:
        if row.seq < expected:
            continue  # already sent
        if row.seq != expected:
            return False
        expected += 1
    return True


async def _send_history(store: Store, job_id: int, writer: TailWriter) -> None:
    while True:
        rows = await store.events.read(job_id, after=writer.last_seq, limit=HISTORY_PAGE)
        await writer.rows(rows)
        if len(rows) < HISTORY_PAGE:
            return


async def _finish(store: Store, job: Job, writer: TailWriter) -> None:
    # Events are stored before the result; flush whatever the live path has not shown yet.
    await _send_history(store, job.id, writer)
    await writer.end(job)


async def follow(
    store: Store,
    feeds: JobFeeds,
    job_id: int,
    writer: TailWriter,
    *,
    queue: int = SUBSCRIBER_QUEUE,
    on_lag: Callable[[], None] | None = None,
) -> None:
    """Send history then live events until the job is final; returns after the ``end`` event,
    or after the ``closing`` marker when the master shuts down (``JobFeeds.closing``).

    ``on_lag`` is called each time the client fell behind and catches up from the
    store. Raises ``ConnectionResetError`` when the client goes away, ``Stalled``
    when it stops reading; on cancellation the subscription is released (the
    ``with`` block) and nothing else is held.
    """
    while True:
        with feeds.subscribe(job_id, queue) as sub:
            await _send_history(store, job_id, writer)
            job = await store.jobs.get(job_id)
            if job is None or job.state in FINAL_STATES:
                if job is not None:
                    await _finish(store, job, writer)
                return
            try:
                while True:
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):
                            item = await sub.get()
                    except TimeoutError:
                        await writer.keepalive()
                        continue
                    if isinstance(item, Job):
                        await _finish(store, item, writer)
                        return
                    if not in_order(item, writer.last_seq):
                        # A hole before or inside this batch: the store has every row of it.
                        await _send_history(store, job_id, writer)
                    await writer.rows(item)
            except Lagged:
                # Fell behind: drop this subscription, re-subscribe, catch up from the store.
                if on_lag is not None:
                    on_lag()
                continue
            except Closing:
                await writer.closing()
                return


def start_seq(request: web.Request) -> int:
    """Where to resume: ``Last-Event-ID`` (a reconnect) wins over ``?after=``."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip() != "":
        raw = header.strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
            bad_request("invalid_header", "Last-Event-ID must be an event seq (an integer)")
        return int(raw)
    after = query_int(request.query, "after", 0, 0, MAX_EVENT_SEQ)
    assert after is not None
    return after


def stream_headers(fmt: Format) -> dict[str, str]:
    """Headers of a tail response: not cached, not buffered by proxies."""
    return {
        "Content-Type": SSE_CONTENT_TYPE if fmt == "sse" else NDJSON_CONTENT_TYPE,
        "Cache-Control": "no-cache, no-store",
        "X-Accel-Buffering": "no",
    }

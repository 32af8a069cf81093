"""Per-job on-disk spool of events and results not yet acknowledged by the master.

Why: the master may restart, or the connection drop, in the middle of a job.
Events are written here before they are sent and removed only once the master
acknowledged them (``events_ack``), so a reconnect re-sends exactly what the
master may not have stored; the master drops duplicates by ``(job, seq)``. The
job's result is kept here until ``result_ack``. A slave restart finds its
spools again (:meth:`SpoolStore.load_all`).

Layout, one directory per job under ``WORK_DIR/spool/``::

    job-<id>-<lease>/
        meta.json                  the offer (job id, lease, project, ...)
        acked                      highest seq the master acknowledged (text)
        events-<first seq>.log     segments of records: u32 BE length + msgpack event
        result.msgpack             the job_result, once the job is over

Segments roll over at ``segment_bytes``; a segment whose events are all
acknowledged is deleted. Appends go straight to the file (page cache);
:meth:`JobSpool.sync` fsyncs the dirty segment in a thread and is called
before a batch is sent, so every event the master has seen is on disk — the
fsyncs come one per batch, not one per event. A torn record at the end of a
segment (a crash mid-write) is ignored on load.

Bounds: the unacknowledged events of a job may take ``max_bytes``; past that,
:meth:`JobSpool.has_room` says no for low-value events (the job logger then
drops them and counts them), and past ``2 * max_bytes`` for every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from protocol.errors import ProtocolError
from protocol.events import Event
from protocol.messages import JobResult, decode, encode
from protocol.schema import decode_record, encode_record
from slave.errors import SlaveError

_LEN = struct.Struct(">I")
_SEGMENT = re.compile(r"^events-(\d{12})\.log$")
_DIR = re.compile(r"^job-(\d+)-(\d+)$")


class SpoolError(SlaveError):
    """A spool on disk cannot be read or written."""


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    """Bounds of one job's spool."""

    max_bytes: int = 32 << 20
    segment_bytes: int = 1 << 20
    #: an event packing larger than this is replaced by a stub saying how large it was
    #: (it could not travel: frames are capped, 1 MiB by default)
    max_event_bytes: int = 256 << 10


@dataclass(slots=True)
class _Segment:
    first_seq: int
    last_seq: int
    path: Path
    size: int


def pack_event(ev: Event) -> bytes:
    """The msgpack bytes of one event (what goes on disk and, re-encoded, on the wire)."""
    data: bytes = msgpack.packb(encode_record(ev), use_bin_type=True)
    return data


def _unpack_event(data: bytes) -> Event:
    obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    ev = decode_record(Event, obj, "event")
    assert isinstance(ev, Event)
    return ev


class JobSpool:
    """The spool of one attempt of one job (one lease). Create it through :class:`SpoolStore`."""

    def __init__(self, directory: Path, meta: dict[str, Any], limits: SpoolLimits) -> None:
        self.dir = directory
        self.meta = meta
        self.job_id = int(meta["job_id"])
        self.lease = int(meta["lease"])
        self._limits = limits
        #: unacknowledged events, in seq order, with their packed size
        self._events: deque[tuple[Event, int]] = deque()
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._dirty = False
        self.acked_seq = int(meta.get("first_seq", 1)) - 1
        self.last_seq = self.acked_seq
        self.unacked_bytes = 0
        self.result: JobResult | None = None
        #: why the spool stopped writing to disk (events are then kept in memory only)
        self.disk_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"<JobSpool job={self.job_id} lease={self.lease} acked={self.acked_seq} "
            f"last={self.last_seq} bytes={self.unacked_bytes}>"
        )

    # ------------------------------------------------------------- writing --

    def has_room(self, *, important: bool) -> bool:
        """Whether another event may be spooled (see the module docstring for the bounds)."""
        cap = self._limits.max_bytes * (2 if important else 1)
        return self.unacked_bytes < cap

    def append(self, ev: Event) -> None:
        """Keep ``ev`` (the next seq, no gaps) and write it to the current segment.

        Raises ``SpoolError`` if ``ev.seq`` does not follow on. A failing disk does
        not raise: the event is kept in memory and ``disk_error`` says what failed.
        """
        if ev.seq != self.last_seq + 1:
            raise SpoolError(f"job {self.job_id}: event seq {ev.seq} after {self.last_seq}")
        data = pack_event(ev)
        if len(data) > self._limits.max_event_bytes:
            ev = Event(ev.seq, ev.ts, ev.level, ev.event, ev.phase, {"oversized_bytes": len(data)})
            data = pack_event(ev)
        # Memory first: the event is then never lost while the process lives, and seq
        # numbers stay gapless even if the disk fails (durability is what is lost then).
        self._events.append((ev, len(data)))
        self.unacked_bytes += len(data)
        self.last_seq = ev.seq
        if self.disk_error is None:
            try:
                self._write(ev.seq, _LEN.pack(len(data)) + data)
            except (OSError, SpoolError) as exc:
                self.disk_error = str(exc)
                self._close_fd()

    def _write(self, seq: int, record: bytes) -> None:
        seg = self._segments[-1] if self._segments else None
        if seg is None or self._fd is None or seg.size >= self._limits.segment_bytes:
            seg = self._roll(seq)
        assert self._fd is not None
        os.write(self._fd, record)
        seg.size += len(record)
        seg.last_seq = seq
        self._dirty = True

    def _roll(self, first_seq: int) -> _Segment:
        if self._fd is not None and self._dirty:
            # Once a MiB: the finished segment must be durable before we lose its fd.
            os.fsync(self._fd)
        self._close_fd()
        path = self.dir / f"events-{first_seq:012d}.log"
        # A leftover file of that name holds no valid event (it would have been loaded
        # and the next seq would be higher): start it afresh.
        self._segments = [s for s in self._segments if s.path != path]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise SpoolError(f"job {self.job_id}: cannot open {path}: {exc}") from exc
        seg = _Segment(first_seq, first_seq - 1, path, 0)
        self._segments.append(seg)
        return seg

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    async def sync(self) -> None:
        """Make every appended event durable (one fsync in a thread, if anything changed).

        Never raises for a disk error (it is recorded in ``disk_error``). If
        cancelled, the fsync may still complete in its thread; nothing is lost.
        """
        if not self._dirty or self._fd is None:
            return
        self._dirty = False
        fd = self._fd
        try:
            await asyncio.to_thread(os.fsync, fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:  # EBADF: the segment rolled over (and was fsync'd)
                self.disk_error = f"fsync failed: {exc}"

    def ack(self, seq: int) -> None:
        """The master stored every event up to ``seq``: forget them, delete old segments."""
        seq = min(seq, self.last_seq)
        if seq <= self.acked_seq:
            return
        self.acked_seq = seq
        while self._events and self._events[0][0].seq <= seq:
            _, size = self._events.popleft()
            self.unacked_bytes -= size
        # Keep the segment being written; delete the finished ones fully acknowledged.
        while len(self._segments) > 1 and self._segments[0].last_seq <= seq:
            seg = self._segments.pop(0)
            with contextlib.suppress(FileNotFoundError):
                seg.path.unlink()
        _write_atomic(self.dir / "acked", str(seq).encode())

    def pending(self, after: int, *, max_count: int, max_bytes: int) -> list[Event]:
        """Unacknowledged events with ``seq > after``, in order, at most that many and bytes.

        Always at least one event when there is one (each is far below a frame).
        """
        out: list[Event] = []
        total = 0
        for ev, size in self._iter_after(after):
            if out and (len(out) >= max_count or total + size > max_bytes):
                break
            out.append(ev)
            total += size
        return out

    def _iter_after(self, after: int) -> Iterator[tuple[Event, int]]:
        if not self._events:
            return
        start = max(0, after - self._events[0][0].seq + 1)
        for i in range(start, len(self._events)):
            yield self._events[i]

    def save_result(self, result: JobResult) -> None:
        """Persist the job's result (fsync'd) until the master acknowledges it."""
        data: bytes = msgpack.packb(encode(result), use_bin_type=True)
        _write_atomic(self.dir / "result.msgpack", data, fsync=True)
        self.result = result

    def close(self) -> None:
        """Close the open segment (the spool stays on disk)."""
        self._close_fd()

    def remove(self) -> None:
        """Delete this spool from disk (after ``result_ack`` or ``job_drop``)."""
        self._close_fd()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------- loading --

    def _load(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.acked_seq = max(self.acked_seq, int((self.dir / "acked").read_text()))
        self.last_seq = self.acked_seq
        for path in sorted(self.dir.iterdir()):
            m = _SEGMENT.match(path.name)
            if m is None:
                continue
            seg = _Segment(int(m.group(1)), int(m.group(1)) - 1, path, 0)
            for ev, size in _read_segment(path):
                seg.last_seq = ev.seq
                if ev.seq <= self.acked_seq:
                    continue
                if ev.seq != self.last_seq + 1:
                    # A gap means a torn or lost tail before this point: stop at the gap.
                    break
                self._events.append((ev, size))
                self.unacked_bytes += size
                self.last_seq = ev.seq
            seg.size = path.stat().st_size
            self._segments.append(seg)
        result_path = self.dir / "result.msgpack"
        if result_path.exists():
            try:
                obj = msgpack.unpackb(result_path.read_bytes(), raw=False, use_list=False)
                msg = decode(obj)
            except (ValueError, ProtocolError, msgpack.UnpackException) as exc:
                raise SpoolError(f"{result_path}: unreadable result: {exc}") from exc
            if isinstance(msg, JobResult):
                self.result = msg
        # New events after a restart go to a fresh segment: never append after a torn tail.
        self._fd = None


def _read_segment(path: Path) -> Iterator[tuple[Event, int]]:
    data = path.read_bytes()
    pos = 0
    while pos + _LEN.size <= len(data):
        (length,) = _LEN.unpack_from(data, pos)
        body = data[pos + _LEN.size : pos + _LEN.size + length]
        if len(body) < length:
            return  # torn tail
        try:
            ev = _unpack_event(body)
        except (ValueError, ProtocolError, msgpack.UnpackException):
            return
        yield ev, length
        pos += _LEN.size + length


def _write_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    tmp.replace(path)


class SpoolStore:
    """All job spools of a slave, under one directory."""

    def __init__(self, root: Path, limits: SpoolLimits = SpoolLimits()) -> None:
        self.root = root
        self.limits = limits

    def create(self, meta: dict[str, Any]) -> JobSpool:
        """A new, empty spool for ``meta`` (``job_id``, ``lease``, ``first_seq``, ...).

        An old spool of the same job and lease is replaced.
        """
        directory = self.root / f"job-{int(meta['job_id'])}-{int(meta['lease'])}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        _write_atomic(directory / "meta.json", json.dumps(meta).encode(), fsync=True)
        return JobSpool(directory, dict(meta), self.limits)

    def load_all(self) -> list[JobSpool]:
        """Every spool left on disk (after a restart), oldest job first.

        A spool whose metadata is unreadable is removed: nothing can be sent for it.
        """
        if not self.root.is_dir():
            return []
        spools = []
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir() or _DIR.match(directory.name) is None:
                continue
            try:
                meta = json.loads((directory / "meta.json").read_text())
                spool = JobSpool(directory, meta, self.limits)
                spool._load()
            except (OSError, ValueError, KeyError, TypeError, SpoolError):
                shutil.rmtree(directory, ignore_errors=True)
                continue
            spools.append(spool)
        spools.sort(key=lambda s: s.job_id)
        return spools

"""The guest's sinkhole network: its evidence as ``network`` events, and its mode per phase.

The image's sinkhole (``guest_image/files/sinkhole.py``, root, started at boot)
answers every name and accepts every TCP connection, and writes each question,
connection and request as a JSON line into a root-only file. The runner reads
the new lines during each phase (every ``POLL_S``) and once more at its end, and
emits each as a ``network`` event of the phase it happened in (by the line's
monotonic time: a line written just after a phase ended still counts for it).

During the ``tests`` phase the network is "offline" as before the sinkhole
existed: the default route is removed (connects fail with ENETUNREACH) and the
resolver answers SERVFAIL, so a test suite's network use reads as an offline
failure rather than as a test failing on the sinkhole's answers; its questions
and connection attempts are still recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from guest_runner.emit import Emitter

SINKHOLE_DIR = Path("/run/pyti-sinkhole")
#: Phases whose package code meets an offline network (see the module docstring).
OFFLINE_PHASES = frozenset({"tests", "quality"})
POLL_S = 0.5
MAX_EVENTS_PER_PHASE = 200
MAX_READ = 1 << 20
#: What a sinkhole line may carry into an event: key -> allowed types.
FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "time": (int, float),
    "uid": (int,),
    "pid": (int,),
    "process": (str,),
    "qname": (str,),
    "qtype": (str,),
    "answer": (str,),
    "mode": (str,),
    "dst": (str,),
    "method": (str,),
    "host": (str,),
    "path": (str,),
    "user_agent": (str,),
    "body_size": (int,),
    "size": (int,),
    "sni": (str,),
    "head": (str,),
    "malformed": (bool,),
    "dropped": (bool,),
}
STRING_CAP = 1000


def clean(record: dict[str, Any]) -> dict[str, Any]:
    """Only known keys of the right type; strings capped (the log is root's, but still)."""
    out: dict[str, Any] = {}
    for key, types in FIELDS.items():
        value = record.get(key)
        if value is None or (isinstance(value, bool) and bool not in types):
            continue
        if isinstance(value, types):
            out[key] = value[:STRING_CAP] if isinstance(value, str) else value
    return out


class NetworkLog:
    """Follows the sinkhole's log for one job; switches the network's mode between phases."""

    def __init__(self, emitter: Emitter, run_dir: Path = SINKHOLE_DIR, *, manage: bool = True):
        self.out = emitter
        self.log_path = run_dir / "events.jsonl"
        self.mode_path = run_dir / "mode"
        self.present = run_dir.is_dir()
        self.manage = manage and self.present  # route and mode changes: only in the guest
        self.mode = "sinkhole"
        self.windows: list[tuple[str, float]] = []
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.buffer = b""
        try:  # what happened before this job (the image's boot) is not the package's
            self.offset = self.log_path.stat().st_size
        except OSError:
            self.offset = 0

    def begin(self, phase: str) -> None:
        """``phase`` starts now: set the network's mode, follow the log in the background."""
        self.set_mode("offline" if phase in OFFLINE_PHASES else "sinkhole", phase)
        with self.lock:
            self.windows.append((phase, time.monotonic()))
        if not self.present:
            return
        self.stop.clear()
        self.thread = threading.Thread(target=self._follow, name="sinkhole-log", daemon=True)
        self.thread.start()

    def end(self) -> None:
        """The phase ended: stop following, emit what is left."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
            self.thread = None
        self.drain()

    def _follow(self) -> None:
        while not self.stop.wait(POLL_S):
            self.drain()

    def drain(self) -> None:
        """Emit every complete new line of the log as a ``network`` event."""
        if not self.present:
            return
        with self.lock:
            try:
                with self.log_path.open("rb") as f:
                    f.seek(self.offset)
                    data = f.read(MAX_READ)
            except OSError:
                return
            self.offset += len(data)
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                self._emit(line)

    def _emit(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return
        if not isinstance(record, dict) or record.get("kind") == "error":
            return
        mono = record.get("mono")
        phase = self._phase_at(mono if isinstance(mono, int | float) else time.monotonic())
        self.counts[phase] += 1
        if self.counts[phase] == MAX_EVENTS_PER_PHASE + 1:
            self.out.log(phase, "warning", f"more than {MAX_EVENTS_PER_PHASE} network events")
        if self.counts[phase] > MAX_EVENTS_PER_PHASE:
            return
        self.out.emit("network", phase, **clean(record))

    def _phase_at(self, mono: float) -> str:
        phase = "setup"
        for name, start in self.windows:
            if start > mono:
                break
            phase = name
        return phase

    def set_mode(self, mode: str, phase: str) -> None:
        """``sinkhole``: the default route to the dummy, names resolve; ``offline``: neither."""
        if not self.manage or mode == self.mode:
            return
        self.mode = mode
        try:
            tmp = self.mode_path.with_suffix(".tmp")
            tmp.write_text(mode + "\n")
            os.replace(tmp, self.mode_path)
            verb = "del" if mode == "offline" else "replace"
            ip = shutil.which("ip") or "/usr/sbin/ip"
            subprocess.run(
                [ip, "route", verb, "default", "dev", "sink0"],
                capture_output=True,
                check=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            with contextlib.suppress(Exception):
                self.out.log(phase, "warning", f"network mode {mode}: {exc}"[:500])

"""A phase's output and trace caps, shared by every command the phase runs."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# Past the trace cap, these still go out (up to twice the cap): they are the evidence
# a package would try to bury under a flood of harmless opens.
PRIORITY_TRACE = re.compile(
    rb"\b(execve|execveat|connect|socket|sendto|sendmsg|sendmmsg|bind|ptrace|set[res]*[ug]id"
    rb"|setgroups|capset|mount|init_module|finit_module|bpf|unshare|setns|process_vm_\w+)\(|"
    rb"environ|\.ssh|\.aws|killed by|O_WRONLY|O_RDWR|O_CREAT|rename|unlink|ENOSPC|EAGAIN"
)


@dataclass
class Budget:
    """Per-phase output and trace caps, shared by every command the phase runs."""

    deadline: float
    output_cap: int
    trace_cap: int
    output_bytes: int = 0
    output_dropped: int = 0
    trace_lines: int = 0
    trace_bytes: int = 0
    trace_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_output(self, size: int) -> bool:
        with self.lock:
            if self.output_bytes + size > self.output_cap:
                self.output_dropped += size
                return False
            self.output_bytes += size
            return True

    def take_trace(self, line: bytes) -> bool:
        size = len(line)
        with self.lock:
            fits = self.trace_bytes + size <= self.trace_cap
            urgent = self.trace_bytes + size <= 2 * self.trace_cap and bool(
                PRIORITY_TRACE.search(line)
            )
            if not (fits or urgent):
                self.trace_dropped += size
                return False
            self.trace_bytes += size
            self.trace_lines += 1
            return True

    def drop_output(self, size: int) -> None:
        with self.lock:
            self.output_dropped += size

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    @contextlib.contextmanager
    def capped(self, seconds: float) -> Iterator[None]:
        """Inside: the deadline at most ``seconds`` from now (one command of the phase
        that must not take the rest of it); the caps stay shared."""
        saved = self.deadline
        self.deadline = min(saved, time.monotonic() + seconds)
        try:
            yield
        finally:
            self.deadline = saved

    def counters(self) -> dict[str, int]:
        with self.lock:
            return {
                "output_bytes": self.output_bytes,
                "output_dropped": self.output_dropped,
                "output_cap": self.output_cap,
                "trace_lines": self.trace_lines,
                "trace_dropped": self.trace_dropped,
            }

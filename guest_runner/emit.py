"""The runner's only voice: one JSON object per line on stdout, flushed as it happens."""

from __future__ import annotations

import json
import threading
from typing import IO, Any


class Emitter:
    """Writes events as JSON lines to a stream; thread-safe; never raises."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = False

    def emit(self, event: str, phase: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "phase": phase, **fields}, default=str)
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # The reader (SSH channel) is gone: nobody can hear us any more, but the
                # phases still have to be torn down properly.
                self._broken = True

    def log(self, phase: str, level: str, message: str, **fields: Any) -> None:
        self.emit("log", phase, level=level, message=message, **fields)

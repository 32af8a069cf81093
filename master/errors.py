"""Root of the master's errors. Each subsystem defines its subclasses in its own module."""

from __future__ import annotations


class MasterError(Exception):
    """Root of every error raised by the master daemon's own code."""

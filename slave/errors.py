"""Root of the slave's errors. Each subsystem defines its subclasses in its own module."""

from __future__ import annotations


class SlaveError(Exception):
    """Root of every error raised by the slave daemon's own code."""

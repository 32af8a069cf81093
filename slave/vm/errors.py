"""The VM side's error: QEMU could not be started, restored or controlled.

Guest (SSH) errors are drawn in :mod:`slave.vm.guest`.
"""

from __future__ import annotations

from slave.errors import SlaveError


class VMError(SlaveError):
    """QEMU could not be started, restored or controlled."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message if not console_tail else f"{message}\nconsole:\n{console_tail}")
        self.console_tail = console_tail

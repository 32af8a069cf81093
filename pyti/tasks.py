"""Ending tasks you own without swallowing your own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> list[BaseException]:
    """Cancel ``tasks`` (owned by the caller) and wait until all have ended.

    Returns the exceptions they failed with (none for a task that returned or
    ended by the cancel): their own ``CancelledError`` ends here. A
    cancellation of the *caller* while it waits propagates, since
    ``asyncio.wait`` raises only for that; so a caller cancelled during the
    wait stops waiting, and a caller in a ``finally`` after its cancellation
    still cleans up (as ``qemu.qmp`` and ``uvicorn`` do).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    await asyncio.wait(tasks)
    return [
        error for task in tasks if not task.cancelled() and (error := task.exception()) is not None
    ]

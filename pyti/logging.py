"""structlog for both daemons: JSON lines on stdout, key=value on a terminal.

Context bound with ``structlog.contextvars`` or ``.bind()`` (``slave``,
``job_id``) ends up on every line. ``cache_logger_on_first_use`` stays off so
``structlog.testing.capture_logs`` works in tests.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog (and stdlib logging of libraries) once, at daemon start.

    ``fmt``: ``json``, ``console`` (key=value) or ``auto`` (console on a TTY).
    """
    out = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp, asyncio) log through the standard library: warnings and up.
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(name)s %(levelname)s %(message)s"
    )


def set_level(level: str) -> None:
    """Change the level of every logger from now on (a reload); the rest of the setup stays."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, 20)))

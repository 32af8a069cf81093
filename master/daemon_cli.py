"""``pyti master``: run the master daemon.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 for a configuration
the daemon cannot run with (bad config file, missing or empty secret file,
unwritable database, port in use), 1 for a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import structlog

from master.config import (
    DEFAULT_HTTP_PORT,
    DEFAULT_SLAVE_PORT,
    ConfigError,
    MasterConfig,
    build_config,
    merge,
    prepare_data_dir,
    read_toml,
)
from master.daemon import Master
from master.errors import MasterError
from master.logging import configure_logging

EXIT_CONFIG = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags of ``pyti master`` (a contract: scripts rely on them)."""
    parser.add_argument("--data-dir", help="directory of the database and uploads")
    parser.add_argument(
        "--slave-addr",
        metavar="HOST:PORT",
        help=f"slave port (default 0.0.0.0:{DEFAULT_SLAVE_PORT})",
    )
    parser.add_argument(
        "--http-addr", metavar="HOST:PORT", help=f"HTTP API (default 127.0.0.1:{DEFAULT_HTTP_PORT})"
    )
    parser.add_argument("--secret-file", help="the slaves' shared secret")
    parser.add_argument("--token-file", help="API tokens, one a line")
    parser.add_argument(
        "--feed-url",
        dest="feed_urls",
        action="append",
        metavar="URL",
        help="an RSS feed to watch (repeatable; default PyPI's update feeds)",
    )
    parser.add_argument("--pypi-url", metavar="BASE", help="PyPI JSON API and simple index base")
    parser.add_argument(
        "--no-feed", action="store_const", const=True, default=None, help="do not watch feeds"
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings; flags override it")


def load(args: argparse.Namespace) -> MasterConfig:
    """The configuration from ``--config`` and flags; ``ConfigError`` if unusable."""
    file_values = read_toml(Path(args.config)) if getattr(args, "config", None) else {}
    flags = {
        k: getattr(args, k, None)
        for k in (
            "data_dir",
            "slave_addr",
            "http_addr",
            "secret_file",
            "token_file",
            "feed_urls",
            "pypi_url",
            "no_feed",
        )
    }
    config = build_config(merge(file_values, flags))
    prepare_data_dir(config)
    config.ssl_context()  # a bad certificate is a configuration error, found now
    return config


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; the exit code."""
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"pyti master: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_format, config.log_level)
    return asyncio.run(serve(config))


async def serve(config: MasterConfig) -> int:
    """Start the master, wait for a signal, shut down in stages."""
    log = structlog.get_logger("master")
    master = Master(config)
    try:
        await master.start()
    except (MasterError, OSError) as exc:
        print(f"pyti master: cannot start: {exc}", file=sys.stderr)
        log.error("master_start_failed", error=str(exc))
        return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.request_stop)
    try:
        await master.wait()
        log.info("master_stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await master.stop()
    return 0

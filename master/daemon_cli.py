"""``pyti master``: run the master daemon.

SIGHUP re-reads the configuration and applies tokens, slave secrets and log level
(``master.reload``). Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 for a configuration
the daemon cannot run with (bad config file, missing or empty secret file,
unwritable database, port in use), 1 for a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from master.backup import run as run_backup
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
from pyti.logging import configure_logging
from pyti.reloader import Reloader

EXIT_CONFIG = 2


CONFIG_HELP = """\
config file (TOML; flags win over it; relative paths are relative to the file):
  every flag, as data_dir, slave_addr, http_addr, secret_file, token_file,
  feed_urls = [...], pypi_url, no_feed; and
  database            path of the SQLite file (default DATA_DIR/pyti.sqlite3)
  secret_files        more slave secrets accepted besides --secret-file's (rotation)
  heartbeat_interval  seconds between heartbeats (5)
  heartbeat_timeout   silence after which a peer is dropped (20)
  reconnect_grace     how long a lost slave's running jobs wait for it (30)
  drain_grace         at shutdown, how long running jobs may finish (30)
  handshake_timeout   a slave-port peer must authenticate within this (10)
  retry_limit         infra_error results re-queued before one is final (2);
                      a final one whose VM died is quarantined ("kills its VM")
  quarantine_after    lost slaves in a row before a job is quarantined (3)
  max_frame           post-authentication frame cap in bytes (1 MiB)
  tls_cert, tls_key   PEM files: TLS on the slave port
  require_read_token  reads of the API need a token too (false)
  default_image       image of jobs that name none (trixie)
  master_name, log_format (auto|json|console), log_level
  [feed]              settings of the feed watcher
  [http]              settings of the HTTP API (callback_allow: callback targets
                      allowed besides public addresses)
  [retention]         events_days, uploads_max_bytes, interval (docs/operations.md)
SIGHUP (systemctl reload) re-reads tokens, slave secrets and log_level; a bad
file keeps the old settings (logged as config_reload_failed).
exit status: 0 after SIGTERM/SIGINT, 2 for a configuration it cannot run with
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags of ``pyti master`` (a contract: scripts rely on them)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = CONFIG_HELP
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
    parser.add_argument(
        "action",
        nargs="?",
        choices=("backup",),
        help="backup PATH: an online, checked copy of the database to PATH (exit 0 good,"
        " 1 bad copy, 2 no database); without an action: run the daemon",
    )
    parser.add_argument("path", nargs="?", metavar="PATH", help="where `backup` writes the copy")


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
    """Run until SIGTERM/SIGINT (or do ``backup``); the exit code."""
    if getattr(args, "action", None) == "backup":
        return run_backup(args)
    if getattr(args, "path", None):
        print(f"pyti master: unexpected argument {args.path!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load(args)
    except ConfigError as exc:
        print(f"pyti master: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_format, config.log_level)
    return asyncio.run(serve(config, reload=lambda: load(args)))


async def serve(config: MasterConfig, reload: Callable[[], MasterConfig] | None = None) -> int:
    """Start the master, wait for a signal, shut down in stages.

    SIGHUP calls ``reload`` (in a thread) and applies what it returns (``master.reload``).
    """
    log = structlog.get_logger("master")
    master = Master(config)
    reloader = Reloader(reload or (lambda: config), master.reload, (ConfigError,))
    try:
        await master.start()
    except (MasterError, OSError) as exc:
        print(f"pyti master: cannot start: {exc}", file=sys.stderr)
        log.error("master_start_failed", error=str(exc))
        return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.request_stop)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    try:
        await master.wait()
        log.info("master_stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await reloader.close()
        await master.stop()
    return 0

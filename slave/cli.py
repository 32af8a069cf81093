"""``pyti slave``: run a slave daemon that tests jobs in fresh QEMU VMs.

::

    pyti slave --master HOST:PORT --secret-file FILE --image-dir DIR
               [--slots N] [--accel auto|kvm|tcg] [--work-dir DIR] [--name NAME]
               [--config FILE] [--pypi-url BASE] [--timeout PHASE=SECONDS]...
               [--memory-mb N] [--cpus N] [--output-cap BYTES] [--shutdown-grace S]
               [--log-format auto|json|console]

SIGHUP re-reads the configuration: the secret file (used from the next
handshake; the open session stays) and ``log_level``; a bad file keeps the old
settings (``config_reload_failed`` in the log).

Exit codes: 0 after a graceful stop (SIGTERM/SIGINT), 2 for a configuration
problem (bad flag, no usable image, KVM asked for but not working).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from protocol.messages import ImageInfo
from pyti.logging import configure_logging, set_level  # shared by both daemons
from pyti.reloader import Reloader
from slave.config import ConfigError, SlaveConfig, build_config, load_toml
from slave.daemon import SlaveDaemon
from slave.image_builder.errors import ImageError, RecipeError
from slave.image_builder.manifest import MANIFEST, Image
from slave.image_builder.recipe import load_recipe, recipe_hash
from slave.image_builder.resources import RECIPES_DIR
from slave.job.executor import VMExecutor
from slave.vm.accel import AccelError, resolve_accel

EXIT_CONFIG = 2
log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the slave's flags (they override the ``--config`` file)."""
    parser.add_argument("--master", metavar="HOST:PORT", help="the master's slave port")
    parser.add_argument("--secret-file", metavar="FILE", help="the slaves' shared secret")
    parser.add_argument("--image-dir", metavar="DIR", help="directory of built guest images")
    parser.add_argument("--slots", type=int, metavar="N", help="jobs run at once (default 1)")
    parser.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        help="auto (default): KVM only if a probe VM really runs under it, else refuse; "
        "tcg must be asked for explicitly (it is not a security boundary)",
    )
    parser.add_argument("--work-dir", metavar="DIR", help="spool, caches and job scratch space")
    parser.add_argument("--name", help="the slave's name at the master (default: host name)")
    parser.add_argument("--config", metavar="FILE", help="TOML file with any of these settings")
    parser.add_argument("--pypi-url", metavar="BASE", help="PyPI JSON API and simple index base")
    parser.add_argument(
        "--tls-ca", metavar="FILE", help="CA bundle (PEM): connect to the master over TLS"
    )
    parser.add_argument(
        "--tls-server-name", metavar="NAME", help="name on the master's certificate (default: host)"
    )
    parser.add_argument(
        "--timeout",
        action="append",
        metavar="PHASE=SECONDS",
        help="per-phase timeout, e.g. tests=900 (repeatable)",
    )
    parser.add_argument("--memory-mb", type=int, metavar="N", help="guest RAM (default: image's)")
    parser.add_argument("--cpus", type=int, metavar="N", help="guest CPUs (default: image's)")
    parser.add_argument("--output-cap", type=int, metavar="BYTES", help="output kept per phase")
    parser.add_argument(
        "--shutdown-grace", type=float, metavar="SECONDS", help="time jobs get after SIGTERM"
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log lines: JSON, key=value, or auto (key=value on a terminal)",
    )


def _timeouts(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        phase, sep, seconds = item.partition("=")
        try:
            out[phase.strip()] = float(seconds)
        except ValueError:
            raise ConfigError(f"--timeout {item!r}: expected PHASE=SECONDS") from None
        if not sep:
            raise ConfigError(f"--timeout {item!r}: expected PHASE=SECONDS")
    return out


_FLAG_KEYS = ("master", "secret_file", "image_dir", "slots", "accel", "work_dir", "name",
              "pypi_url", "memory_mb", "cpus", "output_cap", "shutdown_grace",
              "tls_ca", "tls_server_name")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> SlaveConfig:
    """The configuration from flags over the ``--config`` file; ``ConfigError`` if invalid."""
    file_values = load_toml(Path(args.config)) if args.config else {}
    flags: dict[str, Any] = {key: getattr(args, key) for key in _FLAG_KEYS}
    cli_timeouts = _timeouts(args.timeout)
    if cli_timeouts:
        flags["timeouts"] = {**dict(file_values.get("timeouts") or {}), **cli_timeouts}
    return build_config(flags, file_values, source=args.config or "config file")


def load_images(
    image_dir: Path, recipes_dir: Path = RECIPES_DIR
) -> tuple[dict[str, Image], list[str]]:
    """Every complete, current image in ``image_dir`` (files present, sizes right); refusals.

    A damaged image is refused with the reason; the others are still used. So is a
    stale one: an image built from another version of its recipe, guest files or
    runner than this slave's (``recipe_hash``) has a runner that may not read the job
    documents this slave writes, so every job on it would fail as ``infra_error``.
    An image with no recipe here (built elsewhere, on purpose) is taken as it is.
    """
    images: dict[str, Image] = {}
    problems: list[str] = []
    if not image_dir.is_dir():
        return images, [f"image directory {image_dir} does not exist"]
    for sub in sorted(image_dir.iterdir()):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        try:
            image = Image.load(image_dir, sub.name)
        except ImageError as exc:
            if (sub / MANIFEST).exists() or any(sub.iterdir()):
                problems.append(str(exc))
            continue
        try:
            recipe = load_recipe(image.name, recipes_dir)
        except RecipeError:
            recipe = None
        if recipe is not None and image.recipe_hash != recipe_hash(recipe):
            problems.append(
                f"image {image.name!r} is stale (built from another recipe, guest files or "
                f"runner than this slave's): rebuild it with `pyti image build {image.name}`"
            )
            continue
        images[image.name] = image
    return images, problems


def run(args: argparse.Namespace) -> int:
    """Start the slave; returns its exit code."""
    configure_logging(args.log_format)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"pyti slave: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    set_level(config.log_level)
    images, problems = load_images(config.image_dir)
    for problem in problems:
        print(f"pyti slave: refusing {problem}", file=sys.stderr)
    if not images:
        print(
            f"pyti slave: no usable image in {config.image_dir}; build one with `pyti image build`",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return asyncio.run(_serve(config, images, reload=lambda: config_from_args(args)))


async def verify_images(images: dict[str, Image]) -> list[str]:
    """Check every image's sha256s; damaged ones are removed from ``images`` (reasons returned)."""
    problems = []
    for name, image in list(images.items()):
        try:
            await image.verify()
        except ImageError as exc:
            problems.append(str(exc))
            del images[name]
    return problems


def apply_reload(daemon: SlaveDaemon, new: SlaveConfig) -> None:
    """Put a re-read configuration's live settings into service: the secret, the log level."""
    daemon.link.set_secret(new.secret)
    log.info("config_reloaded", log_level=new.log_level)
    set_level(new.log_level)  # after the line above: a reload is always on record


async def _serve(
    config: SlaveConfig, images: dict[str, Image], reload: Callable[[], SlaveConfig]
) -> int:
    for problem in await verify_images(images):
        print(f"pyti slave: refusing {problem}", file=sys.stderr)
    if not images:
        print("pyti slave: no usable image left; rebuild with `pyti image build`", file=sys.stderr)
        return EXIT_CONFIG
    try:
        accel = await resolve_accel(config.accel)
    except AccelError as exc:
        print(f"pyti slave: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not accel.is_security_boundary:
        log.warning("running_under_tcg", note="TCG is not a security boundary; results say so")
    daemon = SlaveDaemon(
        config,
        images=[ImageInfo(i.name, i.python_full_version, i.digest) for i in images.values()],
        accel=accel.value,
        executor=VMExecutor(images, accel, config),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    reloader = Reloader(reload, lambda new: apply_reload(daemon, new), (ConfigError,))
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    log.info("slave_started", name=config.name, master=f"{config.master_host}:{config.master_port}",
             accel=accel.value, images=sorted(images), slots=config.slots)  # fmt: skip
    try:
        await daemon.run()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await reloader.close()
    return 0

"""Every setting of the slave daemon, from command-line flags and/or a TOML file.

Flags override the file; the file overrides the defaults. The TOML keys are the
long flag names with ``_`` for ``-`` (``image_dir``, ``pypi_url``), plus a
``[timeouts]`` table of seconds per phase; ``SETTINGS`` declares them for
``pyti.settings``, which refuses an unknown key, a wrong type (``true`` is not a
number) or a value out of range, naming the file and the key::

    master = "127.0.0.1:7600"
    secret_file = "/etc/pyti/secret"
    image_dir = "/var/lib/pyti/images"
    slots = 2
    accel = "kvm"
    log_level = "info"               # SIGHUP re-reads it and the secret file
    cache_max_bytes = 21474836480    # download cache bound, least recently used out first
    [timeouts]
    install = 600
    tests = 900
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyti import settings
from pyti.logging import LEVELS
from pyti.settings import Int, Number, Setting, SettingsError, Table, Text, check
from slave.errors import SlaveError

DEFAULT_PORT = 7600
DEFAULT_PYPI_URL = "https://pypi.org"
#: Seconds per phase. Guest phases are enforced by the runner and, with a margin,
#: by the slave (a hung runner gets its VM killed).
DEFAULT_TIMEOUTS: dict[str, float] = {
    "prepare": 900.0,
    "boot": 120.0,
    "upload": 300.0,
    "install": 600.0,
    "import": 120.0,
    "tests": 900.0,
    "quality": 300.0,
}
GUEST_PHASES = ("install", "import", "tests", "quality")
#: Seconds before reconnecting to a lost master: the first delay, doubling up to the cap
#: (``slave.link.Backoff``; jittered).
RECONNECT_MIN = 0.5
RECONNECT_MAX = 30.0


class ConfigError(SlaveError):
    """A setting is missing or invalid; the message says which and why."""


@dataclass(frozen=True, slots=True)
class SlaveConfig:
    """The slave's settings (see the module docstring for where they come from)."""

    master_host: str
    master_port: int
    secret: bytes
    image_dir: Path
    work_dir: Path
    name: str
    slots: int = 1
    accel: str = "auto"
    pypi_url: str = DEFAULT_PYPI_URL
    timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    memory_mb: int | None = None
    cpus: int | None = None
    #: bytes of output per guest phase (the runner caps and records the cut)
    output_cap: int = 4 << 20
    #: the guest's wheel platform tag (bookworm: glibc 2.36)
    guest_platform: str = "manylinux_2_36_x86_64"
    #: seconds the slave adds to a guest phase's timeout before it kills the VM
    timeout_margin: float = 30.0
    #: seconds running jobs get to finish after SIGTERM before they are aborted
    shutdown_grace: float = 30.0
    #: seconds to wait for the master to send an uploaded file's chunks
    upload_wait: float = 120.0
    reconnect_min: float = RECONNECT_MIN
    reconnect_max: float = RECONNECT_MAX
    spool_max_bytes: int = 32 << 20
    #: MiB the work dir's file system must have free for the slave to take a job: a job's
    #: overlay grows with what the guest writes, and on a full disk QEMU pauses the guest
    min_free_mb: int = 1024
    events_per_batch: int = 500
    #: CA bundle (PEM) to verify the master's certificate: TLS on the slave port
    tls_ca: Path | None = None
    #: the name the master's certificate must carry (default: the master's host)
    tls_server_name: str | None = None
    #: ``debug`` … ``critical``; SIGHUP re-reads it (and the secret file)
    log_level: str = "info"
    #: size bound of the download cache (``work_dir/cache``), least recently used out first;
    #: 0: unbounded
    cache_max_bytes: int = 20 << 30
    #: seconds between two trims of the cache
    cache_trim_interval: float = 600.0

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (certificate and host name verified), or None for plain TCP.

        Authentication does not depend on TLS (the handshake's HMACs do that); TLS
        keeps job specs and logs private on the wire.
        """
        if self.tls_ca is None:
            return None
        try:
            return ssl.create_default_context(cafile=str(self.tls_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_ca: cannot load {self.tls_ca}: {exc}") from None

    def timeout(self, phase: str) -> float:
        """Seconds allowed for ``phase`` (defaults fill what the config leaves out)."""
        return float(self.timeouts.get(phase, DEFAULT_TIMEOUTS.get(phase, 300.0)))


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``[v6]:PORT``) as a pair; ``ConfigError`` if invalid."""
    host, sep, port_text = text.rpartition(":")
    if not sep or "]" in port_text:
        host, port_text = text, str(default_port)
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad address {text!r}: the port must be a number") from None
    if not host or not 0 < port < 65536:
        raise ConfigError(f"bad address {text!r}: expected HOST:PORT")
    return host, port


def read_secret(path: Path) -> bytes:
    """The shared secret from ``path`` (surrounding whitespace stripped, ≥ 16 bytes)."""
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ConfigError(f"the secret in {path} is too short (need at least 16 bytes)")
    return secret


def load_toml(path: Path) -> dict[str, Any]:
    """The settings in a TOML file, checked; ``ConfigError`` naming the file and key."""
    try:
        return check(settings.read_toml(path), SETTINGS, source=str(path))
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


#: Every key of the slave's TOML file (the long flags with ``_`` for ``-``), for ``pyti.settings``.
SETTINGS: dict[str, Setting] = {
    "master": Text(),
    "secret_file": Text(),
    "image_dir": Text(),
    "work_dir": Text(),
    "name": Text(),
    "slots": Int(minimum=1),
    "accel": Text(choices=("auto", "kvm", "tcg")),
    "pypi_url": Text(),
    "timeouts": Table({phase: Number(above=0) for phase in DEFAULT_TIMEOUTS}, noun="phase"),
    "memory_mb": Int(minimum=1),
    "cpus": Int(minimum=1),
    "output_cap": Int(minimum=1),
    "guest_platform": Text(),
    "timeout_margin": Number(minimum=0),
    "shutdown_grace": Number(minimum=0),
    "upload_wait": Number(minimum=0),
    # 0 would be no backoff at all: every slave retrying a lost master in a tight loop.
    "reconnect_min": Number(above=0),
    "reconnect_max": Number(above=0),
    "spool_max_bytes": Int(minimum=1),
    "min_free_mb": Int(minimum=0),
    "events_per_batch": Int(minimum=1),
    "tls_ca": Text(),
    "tls_server_name": Text(),
    "log_level": Text(choices=tuple(LEVELS)),
    "cache_max_bytes": Int(minimum=0),
    "cache_trim_interval": Number(above=0),
}
#: Settings that are not fields of ``SlaveConfig`` as they stand.
_DERIVED = frozenset(
    {"master", "secret_file", "image_dir", "work_dir", "name", "timeouts", "tls_ca"}
)


def build_config(
    flags: Mapping[str, Any], file_values: Mapping[str, Any], *, source: str = "config file"
) -> SlaveConfig:
    """Merge flag values (``None`` = not given) over file values over defaults.

    Raises ``ConfigError`` for an unknown key, a wrong type or value (named with
    ``source``, the file, or "command line"), or a missing required setting
    (``master``, ``secret_file``, ``image_dir``).
    """
    try:
        checked = check(file_values, SETTINGS, source=source)
        given = {k: v for k, v in flags.items() if v is not None}
        checked.update(check(given, SETTINGS, source="command line"))
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    merged: dict[str, Any] = checked
    for key in ("master", "secret_file", "image_dir"):
        if not merged.get(key):
            raise ConfigError(f"--{key.replace('_', '-')} is required (flag or config file)")
    low = merged.get("reconnect_min", RECONNECT_MIN)
    high = merged.get("reconnect_max", RECONNECT_MAX)
    if high < low:
        raise ConfigError(f"reconnect_max ({high:g}) must not be below reconnect_min ({low:g})")
    host, port = parse_address(merged["master"])
    kwargs = {k: v for k, v in merged.items() if k not in _DERIVED}
    timeouts = {**DEFAULT_TIMEOUTS, **merged.get("timeouts", {})}
    work_dir = Path(merged.get("work_dir") or Path.home() / ".cache" / "pyti" / "slave")
    config = SlaveConfig(
        master_host=host,
        master_port=port,
        secret=read_secret(Path(merged["secret_file"])),
        image_dir=Path(merged["image_dir"]),
        work_dir=work_dir,
        name=merged.get("name") or socket.gethostname(),
        timeouts=timeouts,
        tls_ca=Path(merged["tls_ca"]).expanduser() if merged.get("tls_ca") else None,
        **kwargs,
    )
    config.ssl_context()  # a bad CA file is a configuration error now, not at connect
    return config

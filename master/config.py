"""Every setting of the master daemon, from a TOML file and/or command-line flags.

Flags override the file. The file may hold every flag (``data_dir``,
``slave_addr``, ``http_addr``, ``secret_file``, ``token_file``, ``feed_urls``,
``pypi_url``, ``no_feed``) plus the keys in ``FILE_SETTINGS`` (among them
``secret_files``, more slave secrets accepted next to ``secret_file``'s, for a
rotation), two tables
passed through untouched: ``[feed]`` (to the feed watcher) and ``[http]`` (to the
HTTP API), and ``[images]`` (image name = its Python version, ``master.images``).
The keys are declared for ``pyti.settings``, which checks them. An unknown key,
a value of the wrong type (``true`` is not a number), a value out of range, a bad
address, a missing or empty secret file: ``ConfigError`` with a
message naming the culprit (the CLI exits 2). Relative paths in the file are
relative to the file.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from master.errors import MasterError
from master.images import ImagesConfigError, parse_images_table
from protocol.framing import ABSOLUTE_MAX_FRAME, MAX_FRAME, PRE_AUTH_MAX_FRAME
from pyti import settings
from pyti.logging import LEVELS
from pyti.settings import (
    AnyTable,
    Bool,
    Int,
    Number,
    Setting,
    SettingsError,
    Text,
    Texts,
    check,
    resolve_paths,
)

DEFAULT_SLAVE_PORT = 7600
DEFAULT_HTTP_PORT = 7680
DEFAULT_FEED_URLS = ("https://pypi.org/rss/updates.xml", "https://pypi.org/rss/packages.xml")
DB_NAME = "pyti.sqlite3"


class ConfigError(MasterError):
    """The configuration cannot be used; the message says which setting and why."""


def parse_addr(text: str, default_port: int, what: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT`` → (host, port)."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"{what}: bad address {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not port_text:
        port = default_port
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ConfigError(f"{what}: bad port in {text!r}")
    return host or "0.0.0.0", port  # noqa: S104  # the slave port must be reachable


@dataclass(frozen=True)
class MasterConfig:
    """The resolved settings (paths absolute, files read)."""

    data_dir: Path
    db_path: Path
    secret: bytes = field(repr=False)
    tokens: frozenset[str] = field(repr=False)
    secret_file: Path | None = None
    #: secrets accepted besides ``secret`` (``secret_files``): a rotation in progress
    other_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    token_file: Path | None = None
    slave_host: str = "0.0.0.0"  # noqa: S104  # slaves connect from other machines
    slave_port: int = DEFAULT_SLAVE_PORT
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    feed_enabled: bool = True
    feed_urls: tuple[str, ...] = DEFAULT_FEED_URLS
    pypi_url: str = "https://pypi.org"
    feed: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)
    require_read_token: bool = False
    default_image: str = "trixie"
    #: ``[images]``: image name → Python version, known before any slave advertises it.
    images: dict[str, str] = field(default_factory=dict)
    master_name: str = field(default_factory=socket.gethostname)
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 20.0
    reconnect_grace: float = 30.0  # a lost slave's running jobs wait this long for it
    handshake_timeout: float = 10.0  # a peer must authenticate within this
    drain_grace: float = 30.0  # at shutdown, running jobs get this long to finish
    retry_limit: int = 2
    quarantine_after: int = 3
    max_frame: int = MAX_FRAME
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    #: ``[retention]`` (``master.retention``), checked there
    retention: dict[str, Any] = field(default_factory=dict)

    @property
    def slave_secrets(self) -> tuple[bytes, ...]:
        """Every secret a slave may prove (``secret`` first)."""
        return (self.secret, *self.other_secrets)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The slave port's TLS context, or None without a certificate. Raises ``ConfigError``."""
        if self.tls_cert is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls_cert/tls_key: cannot load {self.tls_cert}: {exc}") from exc
        return ctx


#: Keys only the file sets (its table in ``pyti.settings`` terms).
FILE_SETTINGS: dict[str, Setting] = {
    "database": Text(path=True),
    "secret_files": Texts(path=True),
    "require_read_token": Bool(),
    "default_image": Text(),
    "master_name": Text(),
    "heartbeat_interval": Number(above=0),
    "heartbeat_timeout": Number(above=0),
    "reconnect_grace": Number(minimum=0),
    "drain_grace": Number(minimum=0),
    "handshake_timeout": Number(above=0, maximum=300),
    "retry_limit": Int(minimum=0),
    "quarantine_after": Int(minimum=1),
    "max_frame": Int(minimum=PRE_AUTH_MAX_FRAME, maximum=ABSOLUTE_MAX_FRAME),
    "tls_cert": Text(path=True),
    "tls_key": Text(path=True),
    "log_format": Text(choices=("auto", "json", "console")),
    "log_level": Text(choices=tuple(LEVELS)),
}
#: Keys a flag sets too (``--data-dir`` is ``data_dir``).
FLAG_SETTINGS: dict[str, Setting] = {
    "data_dir": Text(path=True),
    "slave_addr": Text(),
    "http_addr": Text(),
    "secret_file": Text(path=True),
    "token_file": Text(path=True),
    "feed_urls": Texts(),
    "pypi_url": Text(),
    "no_feed": Bool(),
}
#: Tables passed through to their owners: ``[feed]`` (``master.feed.settings``), ``[http]``,
#: ``[images]`` (``master.images``), ``[retention]`` (``master.retention``).
TABLES: dict[str, Setting] = {
    "feed": AnyTable(),
    "http": AnyTable(),
    "images": AnyTable(),
    "retention": AnyTable(),
}
#: Every key of the master's TOML file.
SETTINGS: dict[str, Setting] = {**FILE_SETTINGS, **FLAG_SETTINGS, **TABLES}


def read_toml(path: Path) -> dict[str, Any]:
    """The file's settings, type-checked; paths made absolute. Raises ``ConfigError``."""
    try:
        values = check(settings.read_toml(path), SETTINGS, source=str(path))
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    return resolve_paths(values, SETTINGS, path.parent)


#: Shortest shared secret either daemon accepts.
MIN_SECRET_BYTES = 16


def _read_secret(path: Path, what: str = "--secret-file") -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    if not secret:
        raise ConfigError(f"{what}: {path} is empty")
    if len(secret) < MIN_SECRET_BYTES:
        # The same minimum the slave enforces: a short secret is guessable offline
        # from one recorded handshake.
        raise ConfigError(
            f"{what}: the secret in {path} is too short (need at least {MIN_SECRET_BYTES} bytes)"
        )
    return secret


def _read_secrets(values: Mapping[str, Any]) -> tuple[Path | None, tuple[bytes, ...]]:
    """``secret_file`` (if given) and ``secret_files``: the path of the first, every secret."""
    paths: list[tuple[str, Path]] = []
    if values.get("secret_file"):
        paths.append(("--secret-file", Path(values["secret_file"]).expanduser()))
    paths += [("secret_files", Path(p).expanduser()) for p in values.get("secret_files") or ()]
    if not paths:
        raise ConfigError("--secret-file is required (or secret_files in the config file)")
    found: list[bytes] = []
    for what, path in paths:
        secret = _read_secret(path, what)
        if secret not in found:
            found.append(secret)
    return paths[0][1], tuple(found)


def _read_tokens(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file: cannot read {path}: {exc}") from exc
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def build_config(values: Mapping[str, Any]) -> MasterConfig:
    """A ``MasterConfig`` from merged settings (file keys, flags on top)."""
    try:
        values = check(values, SETTINGS, source="settings")
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    if not values.get("data_dir"):
        raise ConfigError("--data-dir is required (flag or data_dir in the config file)")
    data_dir = Path(values["data_dir"]).expanduser().resolve()
    secret_file, slave_secrets = _read_secrets(values)
    token_file = Path(values["token_file"]).expanduser() if values.get("token_file") else None
    slave_host, slave_port = parse_addr(
        values.get("slave_addr", ""), DEFAULT_SLAVE_PORT, "--slave-addr"
    )
    http_host, http_port = parse_addr(values.get("http_addr", ""), DEFAULT_HTTP_PORT, "--http-addr")
    if not values.get("http_addr"):
        http_host = "127.0.0.1"
    interval = values.get("heartbeat_interval", 5.0)
    timeout = values.get("heartbeat_timeout", 20.0)
    if timeout <= interval:
        raise ConfigError("heartbeat_timeout must be longer than heartbeat_interval")
    tls_cert = values.get("tls_cert")
    tls_key = values.get("tls_key")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("tls_cert and tls_key go together")
    try:
        images = parse_images_table(values.get("images", {}))
    except ImagesConfigError as exc:
        raise ConfigError(str(exc)) from None
    feed_urls = values.get("feed_urls") or DEFAULT_FEED_URLS
    db = values.get("database")
    return MasterConfig(
        data_dir=data_dir,
        db_path=Path(db).expanduser().resolve() if db else data_dir / DB_NAME,
        secret=slave_secrets[0],
        other_secrets=slave_secrets[1:],
        tokens=_read_tokens(token_file) if token_file else frozenset(),
        secret_file=secret_file,
        token_file=token_file,
        slave_host=slave_host,
        slave_port=slave_port,
        http_host=http_host,
        http_port=http_port,
        feed_enabled=not values.get("no_feed", False),
        feed_urls=feed_urls,
        pypi_url=str(values.get("pypi_url", "https://pypi.org")).rstrip("/"),
        feed=dict(values.get("feed", {})),
        http=dict(values.get("http", {})),
        require_read_token=bool(values.get("require_read_token", False)),
        default_image=str(values.get("default_image", "trixie")),
        images=images,
        master_name=str(values.get("master_name") or socket.gethostname()),
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        reconnect_grace=values.get("reconnect_grace", max(30.0, timeout)),
        drain_grace=values.get("drain_grace", 30.0),
        handshake_timeout=values.get("handshake_timeout", 10.0),
        retry_limit=values.get("retry_limit", 2),
        quarantine_after=values.get("quarantine_after", 3),
        max_frame=values.get("max_frame", MAX_FRAME),
        tls_cert=Path(tls_cert) if tls_cert else None,
        tls_key=Path(tls_key) if tls_key else None,
        log_format=values.get("log_format", "auto"),
        log_level=values.get("log_level", "info"),
        retention=dict(values.get("retention", {})),
    )


def merge(file_values: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """File settings with every flag that was given (not None) on top."""
    merged = dict(file_values)
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


def prepare_data_dir(config: MasterConfig) -> None:
    """Create the data directory; ``ConfigError`` when it cannot be created or written."""
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        config.db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir: cannot create {config.data_dir}: {exc.strerror}") from exc
    if not os.access(config.db_path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"database directory {config.db_path.parent} is not writable")

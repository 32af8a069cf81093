"""The ``[feed]`` configuration table, validated once at start-up.

Every key, its type, default and meaning is listed in ``docs/feed.md``; this
module and that page change together. Unknown keys are an error (a typo such as
``exlude`` must not silently queue everything). The feed URLs, the JSON API base
URL and the image come from the master's own settings (``--feed-url``,
``--pypi-url``, ``default_image``), not from this table.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from master.feed.errors import FeedConfigError
from master.feed.items import normalize_name
from master.jobs import PRIORITY_FEED

if TYPE_CHECKING:
    from master.config import MasterConfig

PYPI_FEEDS = ("https://pypi.org/rss/updates.xml", "https://pypi.org/rss/packages.xml")
PYPI_URL = "https://pypi.org"
#: keys that are set from the master's settings, never from the [feed] table
_FROM_MASTER = frozenset({"urls", "pypi_url", "image"})


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Validated feed settings (see ``docs/feed.md`` for each key)."""

    urls: tuple[str, ...] = PYPI_FEEDS
    pypi_url: str = PYPI_URL
    interval: float = 60.0
    timeout: float = 30.0
    max_feed_bytes: int = 4 * 1024 * 1024
    max_json_bytes: int = 16 * 1024 * 1024
    backoff_initial: float = 5.0
    backoff_max: float = 900.0
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    max_file_size: int | None = None
    watch_only: bool = False
    watch_list: frozenset[str] = frozenset()
    priority: int = PRIORITY_FEED
    image: str = "bookworm"
    resolve_retries: int = 10
    resolve_retry_initial: float = 30.0
    resolve_retry_max: float = 1800.0
    resolve_concurrency: int = 4
    gap_backfill_max_projects: int = 100

    @classmethod
    def from_config(cls, config: MasterConfig) -> FeedSettings:
        """Settings of the master's ``[feed]`` table, URLs and default image.

        Raises `FeedConfigError` (a `ConfigError`: the daemon exits 2) naming the key.
        """
        return cls.from_mapping(
            config.feed, urls=config.feed_urls, pypi_url=config.pypi_url, image=config.default_image
        )

    @classmethod
    def from_mapping(
        cls,
        table: Mapping[str, Any],
        *,
        urls: Sequence[str] | None = None,
        pypi_url: str | None = None,
        image: str | None = None,
    ) -> FeedSettings:
        """Settings from a ``[feed]`` table plus the master-level values.

        Raises `FeedConfigError` naming the first bad key.
        """
        known = {f.name for f in fields(cls)} - _FROM_MASTER
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise FeedConfigError(key, f"unknown key (known: {', '.join(sorted(known))})")
            values[key] = _CHECKS[key](key, value)
        if urls is not None:
            values["urls"] = _urls("feed_urls", list(urls))
        if pypi_url is not None:
            values["pypi_url"] = _url("pypi_url", pypi_url)
        if image is not None:
            values["image"] = _image("default_image", image)
        settings = cls(**values)
        if settings.backoff_max < settings.backoff_initial:
            raise FeedConfigError("backoff_max", "must not be smaller than backoff_initial")
        if settings.resolve_retry_max < settings.resolve_retry_initial:
            raise FeedConfigError("resolve_retry_max", "must not be smaller than the initial")
        return settings

    def name_excluded(self, project: str) -> str | None:
        """Why a (normalised) project is not wanted, or None when it is."""
        if self.watch_only and project not in self.watch_list:
            return "not_watched"
        if not any(fnmatch.fnmatchcase(project, p) for p in self.include):
            return "not_included"
        if any(fnmatch.fnmatchcase(project, p) for p in self.exclude):
            return "excluded"
        return None


def _positive(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FeedConfigError(key, f"must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise FeedConfigError(key, "must be a positive, finite number")
    return float(value)


def _count(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FeedConfigError(key, f"must be an integer, not {value!r}")
    if value < minimum:
        raise FeedConfigError(key, f"must be at least {minimum}")
    return value


def _strings(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FeedConfigError(key, "must be a list of non-empty strings")
    return value


def _url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise FeedConfigError(key, f"must be an http(s) URL, not {value!r}")
    return value.rstrip("/")


def _urls(key: str, value: Any) -> tuple[str, ...]:
    urls = tuple(_url(key, v) for v in _strings(key, value))
    if not urls:
        raise FeedConfigError(key, "needs at least one URL (use --no-feed to disable the feed)")
    return urls


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    # Patterns match normalised names, so normalise their literal parts the same way.
    return tuple(normalize_name(p) for p in _strings(key, value))


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FeedConfigError(key, f"must be true or false, not {value!r}")
    return value


def _max_file_size(key: str, value: Any) -> int | None:
    size = _count(key, value, minimum=0)
    return size or None  # 0 means no limit


def _priority(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FeedConfigError(key, f"must be an integer, not {value!r}")
    return value


def _image(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise FeedConfigError(key, "must be a non-empty image name")
    return value


_CHECKS: dict[str, Any] = {
    "interval": _positive,
    "timeout": _positive,
    "max_feed_bytes": _count,
    "max_json_bytes": _count,
    "backoff_initial": _positive,
    "backoff_max": _positive,
    "include": _patterns,
    "exclude": _patterns,
    "max_file_size": _max_file_size,
    "watch_only": _bool,
    "watch_list": lambda k, v: frozenset(normalize_name(n) for n in _strings(k, v)),
    "priority": _priority,
    "resolve_retries": _count,
    "resolve_retry_initial": _positive,
    "resolve_retry_max": _positive,
    "resolve_concurrency": _count,
    "gap_backfill_max_projects": lambda k, v: _count(k, v, minimum=0),
}

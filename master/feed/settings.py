"""The ``[feed]`` configuration table, validated once at start-up.

Every key, its type, default and meaning is listed in ``docs/feed.md``; this
module and that page change together. The keys are declared in ``FEED_SETTINGS``
and checked by ``pyti.settings``: unknown keys are an error (a typo such as
``exlude`` must not silently queue everything), and so is ``true`` where a
number belongs. The feed URLs, the JSON API base
URL and the image come from the master's own settings (``--feed-url``,
``--pypi-url``, ``default_image``), not from this table.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from master.feed.errors import FeedConfigError
from master.feed.items import normalize_name
from master.jobs import PRIORITY_FEED
from pyti.settings import Bool, Int, Number, Setting, SettingsError, Text, Texts, check

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
    image: str = "trixie"
    resolve_retries: int = 10
    resolve_retry_initial: float = 30.0
    resolve_retry_max: float = 1800.0
    resolve_concurrency: int = 4
    gap_backfill_max_projects: int = 100
    late_files_first: float = 600.0
    late_files_window: float = 86400.0
    late_files_batch: int = 100

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
        master_level = {"feed_urls": urls, "pypi_url": pypi_url, "default_image": image}
        try:
            values = check(table, FEED_SETTINGS, source="[feed]")
            given = check({k: v for k, v in master_level.items() if v is not None},
                          FROM_MASTER_SETTINGS, source="settings")  # fmt: skip
        except SettingsError as exc:
            raise FeedConfigError(exc.key or "", exc.sentence) from None
        for key in ("include", "exclude"):
            if key in values:
                # Patterns match normalised names: normalise their literal parts the same way.
                values[key] = tuple(normalize_name(p) for p in values[key])
        if "watch_list" in values:
            values["watch_list"] = frozenset(normalize_name(n) for n in values["watch_list"])
        if "max_file_size" in values:
            values["max_file_size"] = values["max_file_size"] or None  # 0 means no limit
        if "feed_urls" in given:
            values["urls"] = tuple(u.rstrip("/") for u in given["feed_urls"])
        if "pypi_url" in given:
            values["pypi_url"] = given["pypi_url"].rstrip("/")
        if "default_image" in given:
            values["image"] = given["default_image"]
        settings = cls(**values)
        if settings.backoff_max < settings.backoff_initial:
            raise FeedConfigError(
                "backoff_max", "backoff_max must not be smaller than backoff_initial"
            )
        if settings.resolve_retry_max < settings.resolve_retry_initial:
            raise FeedConfigError(
                "resolve_retry_max",
                "resolve_retry_max must not be smaller than resolve_retry_initial",
            )
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


_URL = re.compile(r"^https?://")

#: The keys of the ``[feed]`` table, for ``pyti.settings`` (``docs/feed.md`` explains each).
FEED_SETTINGS: dict[str, Setting] = {
    "interval": Number(above=0),
    "timeout": Number(above=0),
    "max_feed_bytes": Int(minimum=1),
    "max_json_bytes": Int(minimum=1),
    "backoff_initial": Number(above=0),
    "backoff_max": Number(above=0),
    "include": Texts(),
    "exclude": Texts(),
    "max_file_size": Int(minimum=0),
    "watch_only": Bool(),
    "watch_list": Texts(),
    "priority": Int(),
    "resolve_retries": Int(minimum=1),
    "resolve_retry_initial": Number(above=0),
    "resolve_retry_max": Number(above=0),
    "resolve_concurrency": Int(minimum=1),
    "gap_backfill_max_projects": Int(minimum=0),
    "late_files_first": Number(above=0),
    "late_files_window": Number(minimum=0),
    "late_files_batch": Int(minimum=1),
}
#: The master-level settings the feed takes, by their names in the master's config.
FROM_MASTER_SETTINGS: dict[str, Setting] = {
    # At least one URL: use --no-feed to disable the feed.
    "feed_urls": Texts(pattern=_URL, min_items=1),
    "pypi_url": Text(pattern=_URL, means="an http(s) URL"),
    "default_image": Text(),
}

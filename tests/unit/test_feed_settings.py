"""The [feed] table: validated at start-up, filters on normalised names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from master.config import ConfigError, MasterConfig
from master.feed.errors import FeedConfigError
from master.feed.settings import PYPI_FEEDS, FeedSettings
from master.jobs import PRIORITY_FEED


def test_defaults_poll_pypi_at_feed_priority() -> None:
    """An empty table polls PyPI's two feeds, every minute, at the feed priority."""
    s = FeedSettings.from_mapping({})
    assert s.urls == PYPI_FEEDS
    assert s.pypi_url == "https://pypi.org"
    assert s.interval == 60.0
    assert s.priority == PRIORITY_FEED
    assert s.name_excluded("anything") is None


def test_master_settings_supply_urls_index_and_image(tmp_path: Path) -> None:
    """Feed URLs, --pypi-url and the default image come from MasterConfig, [feed] from its table."""
    config = MasterConfig(
        data_dir=tmp_path,
        db_path=tmp_path / "db",
        secret=b"s",
        tokens=frozenset(),
        feed_urls=("http://127.0.0.1:1/rss/updates.xml",),
        pypi_url="http://127.0.0.1:1",
        default_image="trixie",
        feed={"interval": 5, "exclude": ["Evil_*"]},
    )
    s = FeedSettings.from_config(config)
    assert s.urls == ("http://127.0.0.1:1/rss/updates.xml",)
    assert s.pypi_url == "http://127.0.0.1:1"
    assert s.image == "trixie"
    assert s.interval == 5.0
    assert s.name_excluded("evil-thing") == "excluded"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"exlude": ["x"]}, "exlude"),
        ({"urls": ["https://x/"]}, "urls"),
        ({"interval": "60"}, "interval"),
        ({"interval": 0}, "interval"),
        ({"timeout": float("inf")}, "timeout"),
        ({"interval": True}, "interval"),
        ({"max_feed_bytes": True}, "max_feed_bytes"),
        ({"priority": False}, "priority"),
        ({"include": "django*"}, "include"),
        ({"include": [""]}, "include"),
        ({"max_file_size": -1}, "max_file_size"),
        ({"watch_only": "yes"}, "watch_only"),
        ({"priority": 1.5}, "priority"),
        ({"resolve_retries": 0}, "resolve_retries"),
        ({"backoff_initial": 10, "backoff_max": 5}, "backoff_max"),
    ],
)
def test_bad_keys_are_config_errors_naming_the_key(table: dict[str, Any], key: str) -> None:
    """Unknown keys, wrong types and impossible values name the culprit; it is a ConfigError."""
    with pytest.raises(FeedConfigError) as info:
        FeedSettings.from_mapping(table)
    assert info.value.key == key
    assert isinstance(info.value, ConfigError)


def test_feed_urls_must_be_http() -> None:
    """A feed URL that is not http(s) is refused at start-up."""
    with pytest.raises(FeedConfigError) as info:
        FeedSettings.from_mapping({}, urls=["file:///etc/passwd"])
    assert info.value.key == "feed_urls"


def test_include_and_exclude_match_normalised_names() -> None:
    """Patterns are fnmatch on PEP 503 names, so 'Django_*' matches 'django-foo'."""
    s = FeedSettings.from_mapping({"include": ["Django_*", "flask"], "exclude": ["django-evil*"]})
    assert s.name_excluded("django-rest") is None
    assert s.name_excluded("flask") is None
    assert s.name_excluded("requests") == "not_included"
    assert s.name_excluded("django-evil-twin") == "excluded"


def test_watch_only_queues_only_watched_projects() -> None:
    """With watch_only, a project outside the (normalised) watch list is filtered."""
    s = FeedSettings.from_mapping({"watch_only": True, "watch_list": ["Zope.Interface"]})
    assert s.name_excluded("zope-interface") is None
    assert s.name_excluded("requests") == "not_watched"


def test_max_file_size_zero_means_unlimited() -> None:
    """max_file_size = 0 turns the size filter off."""
    assert FeedSettings.from_mapping({"max_file_size": 0}).max_file_size is None
    assert FeedSettings.from_mapping({"max_file_size": 10}).max_file_size == 10

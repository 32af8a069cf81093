"""Distribution file names: what an upload may be called."""

from __future__ import annotations

import pytest

from master.http.uploads import parse_dist_filename, typed_form_fields
from master.http.validation import ApiError


@pytest.mark.parametrize(
    ("name", "project", "version", "packagetype"),
    [
        ("demo-1.0-py3-none-any.whl", "demo", "1.0", "bdist_wheel"),
        (
            "Foo_Bar-2.0rc1-1-cp311-cp311-manylinux_2_17_x86_64.whl",
            "foo-bar",
            "2.0rc1",
            "bdist_wheel",
        ),
        ("demo-1.0.tar.gz", "demo", "1.0", "sdist"),
        ("demo_pkg-0.1.dev3.zip", "demo-pkg", "0.1.dev3", "sdist"),
    ],
)
def test_valid_names(name: str, project: str, version: str, packagetype: str) -> None:
    """Wheel and sdist names parse to the normalised project, version and package type."""
    dist = parse_dist_filename(name)
    assert (dist.project, dist.version, dist.packagetype) == (project, version, packagetype)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "demo",
        "demo.whl",
        "demo-1.0.exe",
        "demo-1.0.tar.bz2",
        "../demo-1.0.tar.gz",
        "a/demo-1.0.tar.gz",
        "demo-1.0-py3-none-any.whl\x00.txt",
        "demo-notaversion!!.tar.gz",
        ".demo-1.0.tar.gz",
        "demo-1.0-py3-none.whl",
        "x" * 300 + "-1.0.tar.gz",
    ],
)
def test_invalid_names(name: str) -> None:
    """Anything else is refused with invalid_filename."""
    with pytest.raises(ApiError) as info:
        parse_dist_filename(name)
    assert (info.value.status, info.value.code) == (400, "invalid_filename")


def test_form_fields_typed() -> None:
    """Form strings become the types the JSON API checks; nonsense is a 400."""
    assert typed_form_fields({"priority": "-5", "rerun": "true", "callback_url": ""}) == {
        "priority": -5,
        "rerun": True,
        "callback_url": None,
    }
    for bad in ({"priority": "1e3"}, {"priority": "٣"}, {"rerun": "perhaps"}):
        with pytest.raises(ApiError):
            typed_form_fields(bad)

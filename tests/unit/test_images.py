"""Image choice: the release's Requires-Python against the images the master knows."""

from __future__ import annotations

import pytest

from master.images import (
    ImageCatalogue,
    ImageChoice,
    ImagesConfigError,
    UnknownImage,
    choose_image,
    fits,
    parse_images_table,
    python_at,
    requires_python,
)
from master.pypi import JsonDocument, cut_release, first_upload, parse_release, python_minors
from protocol.messages import ImageInfo

TWO = {"bookworm": "3.11.2", "trixie": "3.13.5"}


def test_default_image_when_it_satisfies() -> None:
    """The default image is kept whenever its Python satisfies the release."""
    assert choose_image(TWO, "bookworm", ">=3.8") == ImageChoice("bookworm")


def test_no_requires_python_goes_to_the_default() -> None:
    """A release that says nothing about Python runs in the default image."""
    assert choose_image(TWO, "bookworm", None) == ImageChoice("bookworm")


def test_newer_python_picks_the_image_that_has_it() -> None:
    """Requires-Python >=3.12 goes to the image with Python 3.13."""
    assert choose_image(TWO, "bookworm", ">=3.12") == ImageChoice("trixie")


def test_upper_bound_below_the_default_picks_an_older_image() -> None:
    """<3.12 with a 3.13 default goes to the 3.11 image."""
    assert choose_image(TWO, "trixie", "<3.12") == ImageChoice("bookworm")


def test_oldest_fitting_python_wins_when_the_default_does_not_fit() -> None:
    """Among several images that fit, the one with the oldest Python is chosen."""
    images = {**TWO, "forky": "3.14.0"}
    assert choose_image(images, "bookworm", ">=3.12") == ImageChoice("trixie")


def test_full_patch_version_is_compared() -> None:
    """A patch-level bound is judged on the image's full version."""
    assert choose_image(TWO, "bookworm", ">=3.11.1") == ImageChoice("bookworm")
    assert choose_image(TWO, "bookworm", ">=3.11.3") == ImageChoice("trixie")


def test_a_python_the_classifiers_name_wins_over_the_default() -> None:
    """A release naming 3.11 but not 3.13 goes to 3.11; naming the default's minor keeps
    it; humanfriendly claims 3.5-3.9, none here: 3.11 is the nearest."""
    old = ("3.5", "3.6", "3.7", "3.8", "3.9")
    assert choose_image(TWO, "trixie", None, None, old) == ImageChoice("bookworm")
    assert choose_image(TWO, "trixie", None, None, ("3.12",)) == ImageChoice("trixie")
    assert choose_image(TWO, "trixie", None, None, ("3.14",)) == ImageChoice("trixie")
    assert choose_image(TWO, "bookworm", None, None, ("3.14",)) == ImageChoice("trixie")
    assert choose_image(TWO, "trixie", None, None, (*old, "3.10", "3.11")) == ImageChoice(
        "bookworm"
    )
    assert choose_image(TWO, "trixie", None, None, ("3.11", "3.13")) == ImageChoice("trixie")
    assert choose_image(TWO, "trixie", None, None, ()) == ImageChoice("trixie")
    # Requires-Python still rules: a named minor it excludes is not taken.
    assert choose_image(TWO, "trixie", ">=3.12", None, ("3.11",)) == ImageChoice("trixie")
    # The newest named image when several are named and the default is not.
    images = {**TWO, "forky": "3.14.0"}
    assert choose_image(images, "forky", None, None, ("3.11", "3.13")) == ImageChoice("trixie")
    # An image asked for is taken whatever the classifiers say.
    assert choose_image(TWO, "trixie", None, "trixie", ("3.11",)) == ImageChoice("trixie")


def test_no_image_fits_names_the_reason() -> None:
    """A release no image can run gets the default image and a one-line reason."""
    choice = choose_image(TWO, "bookworm", ">=3.14")
    assert choice.image == "bookworm"
    assert choice.untestable == (
        "requires Python >=3.14; images here: bookworm 3.11.2, trixie 3.13.5"
    )


def test_explicit_image_is_kept() -> None:
    """A request that names an image gets it, even when the default also fits."""
    assert choose_image(TWO, "bookworm", ">=3.8", "trixie") == ImageChoice("trixie")


def test_explicit_image_that_cannot_run_it_says_why() -> None:
    """An explicit image whose Python the release refuses is untestable there."""
    choice = choose_image(TWO, "bookworm", ">=3.12", "bookworm")
    assert choice == ImageChoice(
        "bookworm", "requires Python >=3.12; image bookworm has Python 3.11.2"
    )


def test_unknown_explicit_image_is_refused() -> None:
    """Naming an image the master does not know raises UnknownImage listing the known ones."""
    with pytest.raises(UnknownImage, match="known images: bookworm, trixie"):
        choose_image(TWO, "bookworm", None, "sid")


def test_nothing_known_keeps_the_old_behaviour() -> None:
    """With no image known at all, the requested or default image is used unjudged."""
    assert choose_image({}, "bookworm", ">=3.14") == ImageChoice("bookworm")
    assert choose_image({}, "bookworm", None, "sid") == ImageChoice("sid")


def test_default_unknown_but_others_known() -> None:
    """A default image nobody advertised is skipped for a known one that fits."""
    assert choose_image({"trixie": "3.13"}, "bookworm", None) == ImageChoice("trixie")


def test_invalid_specifier_says_nothing() -> None:
    """A Requires-Python that is not a specifier set is ignored, as pip does."""
    assert fits("3.11", "python3 please")
    assert choose_image(TWO, "bookworm", "python3 please") == ImageChoice("bookworm")


def test_requires_python_combines_distinct_values() -> None:
    """info's and the files' values all apply; blanks and repeats are dropped."""
    assert requires_python([">=3.9", None, "", ">=3.9", "<4", 3]) == ">=3.9, <4"
    assert requires_python([None, " "]) is None


def test_images_table_is_checked() -> None:
    """[images] maps image names to Python versions; anything else is a config error."""
    assert parse_images_table({"trixie": "3.13"}) == {"trixie": "3.13"}
    with pytest.raises(ImagesConfigError, match="Python version"):
        parse_images_table({"trixie": 3.13})
    with pytest.raises(ImagesConfigError, match="not an image name"):
        parse_images_table({"Bad Name": "3.13"})


def test_catalogue_learns_from_slaves_over_config() -> None:
    """What a slave advertises is added to the config's images and wins for the same name."""
    catalogue = ImageCatalogue({"bookworm": "3.11"}, "bookworm")
    catalogue.learn_all([ImageInfo("bookworm", "3.11.2", "x"), ImageInfo("trixie", "3.13.5", "y")])
    catalogue.learn_capabilities({"images": [{"name": "forky", "python": "3.14.0"}, "junk"]})
    catalogue.learn("evil name", "3.99")
    assert catalogue.known() == {"bookworm": "3.11.2", "trixie": "3.13.5", "forky": "3.14.0"}
    assert catalogue.choose(">=3.12") == ImageChoice("trixie")


def test_python_minors_come_from_the_trove_classifiers() -> None:
    """Only ``Programming Language :: Python :: 3.X`` names a minor; junk is ignored."""
    classifiers = [
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 2.7",
        "Programming Language :: Python :: Implementation :: PyPy",
        "Programming Language :: Python :: 3.10",
        42,
    ]
    assert python_minors(classifiers) == ("3.9", "3.10")
    assert python_minors("Programming Language :: Python :: 3.9") == ()
    assert python_minors(None) == ()


def test_an_older_releases_document_does_not_borrow_the_newest_classifiers() -> None:
    """A release cut from the project document keeps the classifiers only when it is the
    release the document's ``info`` describes."""
    info = {
        "name": "demo",
        "version": "2.0",
        "classifiers": ["Programming Language :: Python :: 3.13"],
    }
    files: dict[str, list[object]] = {"1.0": [], "2.0": []}
    doc = JsonDocument("https://i.example/pypi/demo/json", {"info": info, "releases": files})
    newest, older = (cut_release(doc, v) for v in ("2.0", "1.0"))
    assert newest is not None and older is not None
    assert parse_release(newest, "demo", "2.0").python_minors == ("3.13",)
    assert parse_release(older, "demo", "1.0").python_minors == ()


def test_a_release_naming_no_minor_claims_the_python_of_its_upload_day() -> None:
    """ply 3.11 (February 2018) names no minor: it claims 3.6, and 3.11 is the nearest
    image; a release of last month claims nothing this table can know of."""
    assert python_at("2018-02-15") == "3.6"
    assert python_at("2024-10-07") == "3.13"
    assert python_at("2016-01-01") is None
    assert python_at("2099-01-01") is None
    assert python_at("15 Feb 2018") is None
    info = {
        "name": "ply",
        "version": "3.11",
        "classifiers": ["Programming Language :: Python :: 3"],
    }
    urls = [
        {"upload_time_iso_8601": "2018-02-15T19:01:27.075416Z"},
        {"upload_time": "2018-02-16T10:00:00"},
    ]
    assert first_upload(urls) == "2018-02-15"
    doc = JsonDocument("https://i.example/pypi/ply/json", {"info": info, "urls": []})
    assert parse_release(doc, "ply", "3.11").python_minors == ()
    files = [{**_file("ply-3.11.tar.gz"), **urls[0]}]
    doc = JsonDocument("https://i.example/pypi/ply/json", {"info": info, "urls": files})
    release = parse_release(doc, "ply", "3.11")
    assert release.python_minors == ("3.6",)
    assert choose_image(TWO, "trixie", None, None, release.python_minors) == ImageChoice("bookworm")
    named = {**info, "classifiers": ["Programming Language :: Python :: 3.13"]}
    doc = JsonDocument("https://i.example/pypi/ply/json", {"info": named, "urls": files})
    assert parse_release(doc, "ply", "3.11").python_minors == ("3.13",)


def _file(name: str) -> dict[str, object]:
    return {
        "filename": name,
        "digests": {"sha256": "a" * 64},
        "size": 10,
        "packagetype": "sdist",
        "url": f"../../packages/{name}",
    }

"""Test dependencies read statically from generated sdists and wheels (nothing runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from guest_runner.optional_deps import import_names
from slave.prepare.metadata import (
    MAX_EXTRA_FILE_BYTES,
    read_sdist_metadata,
    read_wheel_metadata,
)
from slave.prepare.models import GuestTarget
from slave.prepare.testdeps import (
    TestDependencies,
    find_test_dependencies,
    is_test_module,
    wanted_file,
)
from tests.fakes.dists import build_sdist, build_wheel, dedent

ENV = GuestTarget("3.11", "manylinux_2_36_x86_64").marker_environment()


def deps_of(
    tmp_path: Path,
    files: Mapping[str, str] | None = None,
    *,
    pyproject: str | None = None,
    requires_dist: Sequence[str] | None = None,
    runtime: Sequence[str] = (),
    name: str = "demo",
) -> TestDependencies:
    """find_test_dependencies on a generated sdist of ``name`` 1.0."""
    sdist = build_sdist(
        tmp_path,
        name,
        "1.0",
        {"setup.py": "raise SystemExit('never run me')\n", **(files or {})},
        pyproject=pyproject,
        requires_dist=requires_dist or (),
        metadata_version="2.2",
    )
    contents = read_sdist_metadata(sdist, also=wanted_file, tests=is_test_module)
    return find_test_dependencies(
        project=name,
        requires_dist=list(requires_dist) if requires_dist is not None else None,
        sdist=contents,
        environment=ENV,
        runtime=runtime,
    )


def test_nothing_declared_still_gets_pytest(tmp_path: Path) -> None:
    """A release declaring no test dependencies gets pytest and no source."""
    assert deps_of(tmp_path) == TestDependencies(["pytest"], [])


def test_test_extras_from_wheel_metadata(tmp_path: Path) -> None:
    """Extras named test/tests/testing/dev come from a wheel's METADATA; others do not."""
    wheel = build_wheel(
        tmp_path,
        "demo",
        "1.0",
        {},
        requires_dist=[
            "idna",
            'pytest>=8; extra == "test"',
            'hypothesis; extra == "testing" and python_version >= "3.8"',
            'pywin32; extra == "test" and sys_platform == "win32"',
            'brotli; extra == "fast"',
            'sphinx; extra == "dev"',
            'pytest-cov; extra == "dev"',
        ],
    )
    meta = read_wheel_metadata(wheel)
    found = find_test_dependencies(
        project="demo", requires_dist=meta.requires_dist, sdist=None, environment=ENV
    )
    assert found.requirements == ["pytest>=8", "hypothesis", "pytest-cov"]
    assert found.sources == ["extra:test", "extra:testing", "extra:dev"]


def test_pyproject_optional_dependencies_and_own_extras(tmp_path: Path) -> None:
    """pyproject extras count; ``demo[http]`` inside one expands the project's own extra."""
    pyproject = dedent("""
        [project]
        name = "demo"
        version = "1.0"
        dynamic = ["dependencies"]
        [project.optional-dependencies]
        http = ["httpx"]
        tests = ["demo[http]", "pytest-mock"]
    """)
    found = deps_of(tmp_path, pyproject=pyproject)
    assert found.requirements == ["httpx", "pytest-mock", "pytest"]
    assert found.sources == ["extra:tests"]


def test_any_extra_or_group_listing_pytest_when_no_test_source_does(tmp_path: Path) -> None:
    """idna keeps its test dependencies in an ``all`` extra next to its linters: an extra or
    group of any name listing pytest is read (tooling dropped) when no test source is."""
    pyproject = dedent("""
        [project]
        name = "demo"
        version = "1.0"
        [project.optional-dependencies]
        all = ["ruff >= 0.16.0", "mypy", "pytest >= 8.3.2", "hypothesis >= 6.141.1", "coverage"]
        socks = ["pysocks"]
        [dependency-groups]
        ci = ["pytest", "trustme"]
        lint = ["ruff"]
    """)
    found = deps_of(tmp_path, pyproject=pyproject)
    assert found.requirements == ["pytest>=8.3.2", "hypothesis>=6.141.1", "coverage", "trustme"]
    assert found.sources == ["extra:all", "dependency-groups:ci"]
    # A test-named source that lists pytest is enough: other extras are not read.
    tests = pyproject.replace("socks = [", 'tests = ["pytest", "trio"]\nsocks = [')
    found = deps_of(tmp_path / "t", pyproject=tests)
    assert found.requirements == ["pytest", "trio"]
    assert found.sources == ["extra:tests"]


def test_hatch_env_or_poetry_pdm_group_of_any_name_listing_pytest(tmp_path: Path) -> None:
    """soupsieve keeps beautifulsoup4 (its tests import bs4) in a hatch ``dev`` environment:
    environments and groups of any name listing pytest are read when no test source is."""
    pyproject = dedent("""
        [project]
        name = "demo"
        version = "1.0"
        [project.optional-dependencies]
        lxml = ["lxml"]
        [tool.hatch.envs.dev]
        dependencies = ["pytest", "pytest-cov", "beautifulsoup4"]
        features = ["lxml"]
        [tool.hatch.envs.docs]
        dependencies = ["mkdocs"]
        [tool.poetry.group.ci.dependencies]
        pytest = "^8"
        trustme = "*"
        [tool.poetry.group.lint.dependencies]
        ruff = "*"
        [tool.pdm.dev-dependencies]
        check = ["pytest", "pretend"]
        docs = ["sphinx"]
    """)
    found = deps_of(tmp_path, pyproject=pyproject)
    assert found.requirements == [
        "pytest",
        "pytest-cov",
        "beautifulsoup4",
        "lxml",
        "trustme",
        "pretend",
    ]
    assert found.sources == ["hatch:dev", "poetry:ci", "pdm:check"]


def test_dependency_groups_with_includes_and_a_cycle(tmp_path: Path) -> None:
    """PEP 735 groups: include-group is followed, a cycle is cut, dev tooling dropped."""
    pyproject = dedent("""
        [dependency-groups]
        base = ["hypothesis", {include-group = "tests"}]
        tests = ["pytest>=8", {include-group = "base"}, 'cpickle; implementation_name == "pypy"']
        Dev = [{include-group = "tests"}, "ruff", "mypy", "coverage[toml]", "sphinx-rtd-theme"]
        docs = ["sphinx"]
    """)
    found = deps_of(tmp_path, pyproject=pyproject)
    assert found.requirements == ["pytest>=8", "hypothesis", "coverage[toml]"]
    assert found.sources == ["dependency-groups:tests", "dependency-groups:Dev"]


def test_well_known_test_tools_the_tests_import_are_added_when_undeclared(
    tmp_path: Path,
) -> None:
    """mccabe's sdist declares no test dependency but its tests import hypothesis and
    hypothesmith: known test tools are added (``imports:tests``); other imported names
    (a local helper, a library that is not a test tool) are not, nor a tool already
    declared, nor anything a non-test module imports."""
    files = {
        "test_mccabe.py": (
            "import unittest\ntry:\n    import hypothesmith\n"
            "    from hypothesis import given, settings\nexcept ImportError:\n    pass\n"
        ),
        "tests/unit/test_x.py": "import mock\nimport requests\nfrom helpers import x\n",
        "tests/conftest.py": "import pytest_asyncio\n",
        "tools/make_docs.py": "import freezegun\n",
    }
    pyproject = '[project.optional-dependencies]\ntest = ["pytest", "mock>=5"]\n'
    found = deps_of(tmp_path, files, pyproject=pyproject)
    assert found.requirements == [
        "pytest", "mock>=5", "hypothesmith", "hypothesis", "pytest-asyncio"
    ]  # fmt: skip
    assert found.sources == ["extra:test", "imports:tests"]
    declared = deps_of(tmp_path / "d", {"tests/test_y.py": "import mock\n"}, pyproject=pyproject)
    assert declared.sources == ["extra:test"]


def test_the_releases_own_optional_dependencies_its_tests_import_are_added(
    tmp_path: Path,
) -> None:
    """oauthlib declares no test dependency in its sdist; its tests ``import jwt``: its
    ``signedtoken`` extra is added whole (pyjwt, and the cryptography pyjwt signs with:
    ``imports:extra:<name>``). blinker, of an extra its tests never import, is not, nor a
    docs extra whose pygments the tests import, nor an import that names no distribution
    of its extras; tooling in a taken extra is dropped."""
    requires = [
        'cryptography>=3.0.0; extra == "signedtoken"',
        'pyjwt<3,>=2.0.0; extra == "signedtoken"',
        'mypy; extra == "signedtoken"',
        'blinker>=1.4.0; extra == "signals"',
        'python-dateutil; extra == "dates"',
        'pygments==2.21.0; extra == "docs"',
        'mkdocstrings; extra == "docs"',
    ]
    files = {
        "tests/test_sig.py": "from jwt import InvalidKeyError\nimport numpy\n",
        "tests/oauth2/test_app.py": "import dateutil.tz\nimport pygments\n",
        "oauthlib/signals.py": "import blinker\n",
    }
    found = deps_of(tmp_path, files, requires_dist=requires)
    assert found.requirements == [
        "pytest", "cryptography>=3.0.0", "pyjwt<3,>=2.0.0", "python-dateutil"
    ]  # fmt: skip
    assert found.sources == ["imports:extra:signedtoken", "imports:extra:dates"]


def test_optional_dependencies_of_the_release_modules_its_tests_import_are_added(
    tmp_path: Path,
) -> None:
    """oauthlib's tests do ``from oauthlib import signals``; ``oauthlib/signals.py`` is the
    one module that imports blinker, its ``signals`` extra: added whole. A name more
    modules of the release import (``chardet``, tried by ``__init__.py`` and ``help.py``,
    an alternative the package prefers when present) is not, nor what a module the tests
    do not import needs, nor what a package's ``__init__.py`` imports."""
    requires = [
        'blinker>=1.4.0; extra == "signals"',
        'chardet<8; extra == "use-chardet"',
        'rsa>=4; extra == "rsa"',
        'lxml; extra == "html"',
    ]
    files = {
        "tests/test_signals.py": "from oauthlib import signals\nfrom oauthlib.help import x\n",
        "tests/test_html.py": "import oauthlib.html\n",
        "oauthlib/__init__.py": "try:\n    import chardet\nexcept ImportError:\n    pass\n",
        "oauthlib/signals.py": "try:\n    from blinker import signal\nexcept ImportError:\n    ...",
        "oauthlib/help.py": "import chardet\n",
        "oauthlib/crypto.py": "import rsa\n",
        "oauthlib/html/__init__.py": "import lxml\n",
    }
    found = deps_of(tmp_path, files, requires_dist=requires)
    assert found.requirements == ["pytest", "blinker>=1.4.0"]
    assert found.sources == ["imports:extra:signals"]


def test_import_names_of_a_distribution() -> None:
    assert import_names("PyJWT") >= {"pyjwt", "jwt"}
    assert "dateutil" in import_names("python-dateutil")
    assert "zope_interface" in import_names("zope.interface")
    assert "yaml" in import_names("PyYAML")
    assert "attr" not in import_names("attrs")  # a guess from the name only


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("tests/test_a.py", True),
        ("tests/unit/deep/test_b.py", True),
        ("tests/a/b/c/test_c.py", False),
        ("test_mccabe.py", True),
        ("pkg/tests_helper.py", False),
        ("pkg/conftest.py", True),
        ("src/pkg/sub/test_d.py", False),
        ("tests/data.json", False),
    ],
)
def test_test_module(path: str, read: bool) -> None:
    """Which sdist members are read for their imports."""
    assert is_test_module(path) is read


def test_tox_factor_conditions_naming_the_test_env_are_taken(tmp_path: Path) -> None:
    """pyparsing's tox.ini: ``unit: pytest`` and ``extras = unit: diagrams`` are the test
    run's; ``doctest: sphinx`` and ``py38: old`` select other environments."""
    tox = dedent("""
        [tox]
        envlist = py39-unit,py{310,311}-{unit,doctest}
        [testenv]
        deps =
            unit: pytest
            unit-!py315t: matplotlib; implementation_name != 'pypy'
            py{310,311}-tests: trustme
            doctest: sphinx
            py38: old-thing
            !unit: not-this
        extras = unit: diagrams
    """)
    pyproject = '[project.optional-dependencies]\ndiagrams = ["railroad-diagrams", "jinja2"]\n'
    found = deps_of(tmp_path, {"tox.ini": tox}, pyproject=pyproject)
    assert found.requirements == [
        "pytest",
        "matplotlib",
        "trustme",
        "railroad-diagrams",
        "jinja2",
    ]
    assert found.sources == ["tox.ini"]


def test_tox_ini_deps_extras_groups_and_includes(tmp_path: Path) -> None:
    """tox [testenv] deps (with -r inside the sdist, factors and URLs skipped), extras."""
    tox = dedent("""
        [tox]
        envlist = py311
        [base]
        deps = attrs>=20
        [testenv]
        deps =
            -r{toxinidir}/requirements/tests.txt
            {[base]deps}
            py38: old-thing
            git+https://example.invalid/x.git
            -e .
            trustme  # comment
        extras = testing
        commands = pytest {posargs}
        [testenv:docs]
        deps = sphinx
    """)
    files = {
        "tox.ini": tox,
        "requirements/tests.txt": (
            "-r ../requirements/base.txt\n-c constraints.txt\ntrio==0.27.0 \\\n  --hash=sha256:ab\n"
        ),
        "requirements/base.txt": "-r ../../outside.txt\nsortedcontainers\n",
        "requirements/constraints.txt": "sortedcontainers<3\nnot-required==1\n",
        "requirements/tests37.txt": "pytest==7.0\n",
    }
    pyproject = '[project.optional-dependencies]\ntesting = ["pytest-timeout"]\n'
    found = deps_of(tmp_path, files, pyproject=pyproject)
    assert found.requirements == [
        "pytest-timeout",
        "sortedcontainers",
        "trio==0.27.0",
        "attrs>=20",
        "trustme",
        "pytest",
    ]
    assert found.sources == [
        "extra:testing",
        "tox.ini",
        "requirements/base.txt",
        "requirements/constraints.txt",
        "requirements/tests.txt",
    ]


def test_pyproject_tool_tox_native_and_legacy(tmp_path: Path) -> None:
    """[tool.tox] env_run_base (deps, dependency_groups) and legacy_tox_ini both count."""
    native = dedent("""
        [dependency-groups]
        unit = ["pytest-randomly"]
        [tool.tox.env_run_base]
        deps = ["pytest-xdist"]
        dependency_groups = ["unit"]
    """)
    assert deps_of(tmp_path / "a", pyproject=native).requirements == [
        "pytest-xdist",
        "pytest-randomly",
        "pytest",
    ]
    legacy = dedent('''
        [tool.tox]
        legacy_tox_ini = """
        [testenv]
        deps = pytest-asyncio
        """
    ''')
    found = deps_of(tmp_path / "b", pyproject=legacy)
    assert found == TestDependencies(["pytest-asyncio", "pytest"], ["pyproject:tool.tox"])


def test_requirement_files_by_name(tmp_path: Path) -> None:
    """Test-named requirement files are read; dev-named ones only when no test file exists."""
    files = {
        "test-requirements.txt": "pytest-mock\n# note\n\n--index-url https://x.invalid\n",
        "requirements-dev.txt": "ipdb-helper\n",
        "tests/requirements.txt": "responses\n./vendored/pkg\n${TOKEN}-thing\n",
    }
    found = deps_of(tmp_path / "a", files)
    assert found.requirements == ["pytest-mock", "responses", "pytest"]
    assert found.sources == ["test-requirements.txt", "tests/requirements.txt"]
    only_dev = {"requirements-dev.txt": "black\nflake8-bugbear\npytest\nfreezegun\n"}
    found = deps_of(tmp_path / "b", only_dev)
    assert found == TestDependencies(["pytest", "freezegun"], ["requirements-dev.txt"])


def test_a_root_requirements_txt_that_installs_the_project_is_a_dev_source(
    tmp_path: Path,
) -> None:
    """async-timeout 5.0.1 lists its test tools in a root requirements.txt that starts
    with ``-e .``: a dev source (tooling dropped). An application's pins (no ``-e .``)
    are not, nor the root file when a dev-named file exists."""
    dev_env = (
        "-e .\nbuild==1.2.2.post1\ndocutils==0.21.2\nmypy==1.13.0\npre-commit==4.0.1\n"
        "pytest==8.3.3\npytest-asyncio==0.24.0\npytest-cov==6.0.0\ntwine==5.1.1\n"
    )
    found = deps_of(tmp_path / "a", {"requirements.txt": dev_env})
    assert found.requirements == ["pytest==8.3.3", "pytest-asyncio==0.24.0", "pytest-cov==6.0.0"]
    assert found.sources == ["requirements.txt"]
    pins = deps_of(tmp_path / "b", {"requirements.txt": "flask==3.0.0\npytest-asyncio\n"})
    assert pins == TestDependencies(["pytest"], [])
    both = {"requirements.txt": dev_env, "requirements-dev.txt": "pytest\n"}
    assert deps_of(tmp_path / "c", both).sources == ["requirements-dev.txt"]


def test_pytest_plugins_the_tests_use_by_marker_fixture_or_setting(tmp_path: Path) -> None:
    """A plugin used without an import: ``@pytest.mark.asyncio``, a test taking
    ``mocker``, a conftest's ``pytest_plugins``, ``trio_mode`` in pyproject's pytest
    settings, ``asyncio_mode`` in setup.cfg. A declared plugin is not added again, and
    a marker or fixture no plugin owns (``slow``, ``tmp_path``) or more than one provides
    (``benchmark``) adds nothing."""
    files = {
        "tests/test_a.py": (
            "import pytest\n\n@pytest.mark.asyncio\nasync def test_a():\n    pass\n\n"
            "@pytest.mark.slow\ndef test_b(\n    tmp_path,\n    mocker: object,\n):\n    pass\n"
        ),
        "tests/conftest.py": (
            'pytest_plugins = [\n    "pytest_httpserver",\n    "tests.helpers",\n]\n'
        ),
    }
    pyproject = (
        '[project.optional-dependencies]\ntest = ["pytest", "pytest-mock"]\n'
        "[tool.pytest.ini_options]\ntrio_mode = true\n"
    )
    found = deps_of(tmp_path / "a", files, pyproject=pyproject)
    assert found.requirements[:2] == ["pytest", "pytest-mock"]
    assert sorted(found.requirements[2:]) == ["pytest-asyncio", "pytest-httpserver", "pytest-trio"]
    assert found.sources == ["extra:test", "plugins:tests"]
    setup_cfg = {"setup.cfg": "[tool:pytest]\naddopts = --cov\nasyncio_mode = strict\n"}
    assert deps_of(tmp_path / "b", setup_cfg).requirements == ["pytest", "pytest-asyncio"]
    django = {"pytest.ini": "[pytest]\nDJANGO_SETTINGS_MODULE = tests.settings\n"}
    assert deps_of(tmp_path / "e", django).requirements == ["pytest", "pytest-django"]
    anyio = {
        "tests/test_d.py": "import pytest\n\n@pytest.mark.anyio\nasync def test_d():\n    pass\n"
    }
    assert deps_of(tmp_path / "d", anyio).requirements == ["pytest", "anyio"]
    # benchmark: pytest-benchmark's and pytest-codspeed's (yarl declares the latter)
    plain = {"tests/test_c.py": "def test_c(tmp_path, monkeypatch, benchmark):\n    pass\n"}
    assert deps_of(tmp_path / "c", plain) == TestDependencies(["pytest"], [])


def test_include_cycle_and_depth_are_bounded(tmp_path: Path) -> None:
    """-r cycles terminate; includes outside the sdist are never followed."""
    files = {
        "requirements/test.txt": "-r test.txt\n-r other.txt\nalpha\n",
        "requirements/other.txt": "-r test.txt\n--requirement=../../../etc/x.txt\nbeta\n",
    }
    assert deps_of(tmp_path, files).requirements == ["beta", "alpha", "pytest"]


def test_hatch_pdm_and_poetry(tmp_path: Path) -> None:
    """hatch test envs, pdm dev-dependencies and poetry groups (constraints translated)."""
    pyproject = dedent("""
        [project.optional-dependencies]
        extra1 = ["six"]
        [tool.hatch.envs.hatch-test]
        extra-dependencies = ["pytest-asyncio"]
        [tool.hatch.envs.default]
        dependencies = ["black", "freezegun"]
        features = ["extra1"]
        [tool.pdm.dev-dependencies]
        test = ["respx>=0.20", "-e file:///${PROJECT_ROOT}/#egg=demo"]
        lint = ["pylint-plugin"]
        [tool.poetry.group.test.dependencies]
        pytest = "^7.4"
        faker = {version = "~18.1", optional = true}
        local = {path = "../local"}
        [tool.poetry.dev-dependencies]
        zero = "^0.3.1"
        exact = "1.2"
    """)
    found = deps_of(tmp_path, pyproject=pyproject)
    assert found.requirements == [
        "pytest-asyncio",
        "respx>=0.20",
        "pytest<8,>=7.4",
        "faker<18.2,>=18.1",
        "freezegun",
        "six",
        "zero<0.4,>=0.3.1",
        "exact==1.2",
    ]
    assert found.sources == [
        "hatch:hatch-test",
        "pdm:test",
        "poetry:test",
        "hatch:default",
        "poetry:dev",
    ]


def test_project_runtime_names_and_first_specifier_win(tmp_path: Path) -> None:
    """The project, runtime dependencies and repeated names appear once at most."""
    pyproject = dedent("""
        [dependency-groups]
        tests = ["pytest>=8", "idna==3.0", "demo", "Requests"]
        testing = ["pytest<8", "requests[socks]"]
    """)
    found = deps_of(tmp_path, pyproject=pyproject, runtime=["idna>=2; python_version > '3'"])
    assert found.requirements == ["pytest>=8", "Requests"]
    assert found.sources == ["dependency-groups:tests", "dependency-groups:testing"]


def test_pkg_info_requires_dist_is_a_fallback_for_extras(tmp_path: Path) -> None:
    """With dynamic metadata, PKG-INFO's test extra is still a best guess."""
    sdist = build_sdist(
        tmp_path,
        "old",
        "1.0",
        {},
        requires_dist=['nose2; extra == "test"'],
        pkg_info_extra=[("Dynamic", "Requires-Dist")],
    )
    contents = read_sdist_metadata(sdist, also=wanted_file)
    found = find_test_dependencies(
        project="old", requires_dist=None, sdist=contents, environment=ENV
    )
    assert found == TestDependencies(["nose2", "pytest"], ["extra:test"])


def test_malformed_sources_are_skipped(tmp_path: Path) -> None:
    """Broken tox.ini, invalid lines and odd TOML types never raise."""
    files = {
        "tox.ini": "deps = [no section\n",
        "requirements-test.txt": "!!!\nvalid-one\nbad ; python_version ===\n",
    }
    pyproject = dedent("""
        [dependency-groups]
        tests = [1, {include-group = 2}, {other = "x"}, "ok"]
        [tool.hatch.envs]
        test = "not a table"
        [tool.poetry.group]
        test = []
    """)
    found = deps_of(tmp_path, files, pyproject=pyproject)
    assert found.requirements == ["ok", "valid-one", "pytest"]


def test_only_small_wanted_files_are_read(tmp_path: Path) -> None:
    """read_sdist_metadata reads only selected members, and none past the size cap."""
    files = {
        "requirements-test.txt": "x" * (MAX_EXTRA_FILE_BYTES + 1),
        "requirements.txt": "idna\n",
        "src/demo/requirements_helper.py": "print()\n",
        "a/b/c/requirements.txt": "deep\n",
        "tox.ini": "[testenv]\n",
    }
    sdist = build_sdist(tmp_path, "demo", "1.0", files)
    contents = read_sdist_metadata(sdist, also=wanted_file)
    assert sorted(contents.files) == ["requirements.txt", "tox.ini"]
    assert read_sdist_metadata(sdist).files == {}


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("requirements/tests.txt", True),
        ("dev-requirements.txt", True),
        ("ci/constraints.txt", True),
        ("requirements/tests.in", True),
        ("docs/conf.py", False),
        ("pkg/data/requests.txt", True),
        ("a/b/c/requirements.txt", False),
        ("pytest.ini", True),
    ],
)
def test_wanted_file(path: str, wanted: bool) -> None:
    """Which sdist members the reader asks for (small, shallow, requirement-like)."""
    assert wanted_file(path) is wanted


def test_requirements_the_project_takes_from_git_are_named_as_substituted(tmp_path: Path) -> None:
    """``[tool.uv.sources]`` pointing a test requirement at git, a URL, a path or the
    workspace: the index release stands in, and the substitution is named (urllib3 tests
    with its own hypercorn branch). Index sources and names that are not test
    requirements say nothing."""
    pyproject = dedent(
        """
        [project]
        name = "demo"
        version = "1.0"

        [dependency-groups]
        test = ["hypercorn>=0.15", "trustme", "helper", "plugin", "pinned"]

        [tool.uv.sources]
        hypercorn = { git = "https://github.com/urllib3/hypercorn", rev = "urllib3-changes" }
        helper = { workspace = true }
        plugin = [{ path = "../plugin", marker = "sys_platform == 'linux'" }]
        pinned = { index = "pytorch" }
        docs-theme = { git = "https://example.org/theme" }
        """
    )
    deps = deps_of(tmp_path, pyproject=pyproject)
    assert "hypercorn>=0.15" in deps.requirements
    assert deps.substituted == [
        "hypercorn (git https://github.com/urllib3/hypercorn)",
        "helper (workspace)",
        "plugin (path ../plugin)",
    ]
    assert deps_of(tmp_path / "plain").substituted == []


UV_LOCK = dedent(
    """
    version = 1
    revision = 3

    [[package]]
    name = "pytest"
    version = "8.4.2"
    resolution-markers = ["python_full_version < '3.10'"]

    [[package]]
    name = "pytest"
    version = "9.0.2"
    resolution-markers = [
        "python_full_version >= '3.12'",
        "python_full_version == '3.11.*'",
        "python_full_version == '3.10.*'",
    ]

    [[package]]
    name = "pytest-asyncio"
    version = "1.1.0"

    [[package]]
    name = "greenlet"
    version = "3.0.0"
    """
)


def test_pytest_and_its_plugins_come_at_the_locked_versions(tmp_path: Path) -> None:
    """Flask's uv.lock ran pytest 9.0.2 on Python >= 3.10: its unpinned ``pytest`` (a
    dependency group) is pinned to it for the guest's 3.11, a plugin too; greenlet, not
    test tooling, stays unpinned (the newest, as users get it)."""
    pyproject = dedent(
        """
        [project]
        name = "demo"
        version = "1.0"

        [dependency-groups]
        tests = ["pytest", "pytest-asyncio>=0.20", "greenlet"]
        """
    )
    deps = deps_of(tmp_path, {"uv.lock": UV_LOCK}, pyproject=pyproject)
    assert deps.requirements == ["pytest==9.0.2", "pytest-asyncio==1.1.0", "greenlet"]
    assert deps.sources[-1] == "lock:uv.lock"


def test_a_lock_never_overrides_what_the_project_declared(tmp_path: Path) -> None:
    """A pinned or bounded requirement the locked version does not satisfy is kept; no
    lock file, or one for other Pythons only, changes nothing."""
    pyproject = dedent(
        """
        [project]
        name = "demo"
        version = "1.0"

        [dependency-groups]
        tests = ["pytest==8.3.0", "pytest-asyncio<1"]
        """
    )
    deps = deps_of(tmp_path, {"uv.lock": UV_LOCK}, pyproject=pyproject)
    assert deps.requirements == ["pytest==8.3.0", "pytest-asyncio<1"]
    assert "lock:uv.lock" not in deps.sources
    old_only = UV_LOCK.split('[[package]]\nname = "pytest-asyncio"')[0].replace(
        "python_full_version == '3.11.*'", "python_full_version == '3.9.*'"
    )
    (tmp_path / "b").mkdir()
    plain = deps_of(tmp_path / "b", {"uv.lock": old_only})
    assert plain.requirements == ["pytest"]


def test_poetry_lock_pins_a_name_it_locks_once(tmp_path: Path) -> None:
    lock = '[[package]]\nname = "pytest"\nversion = "7.4.4"\n'
    assert deps_of(tmp_path, {"poetry.lock": lock}).requirements == ["pytest==7.4.4"]
    (tmp_path / "b").mkdir()
    twice = lock + '\n[[package]]\nname = "pytest"\nversion = "8.0.0"\n'
    assert deps_of(tmp_path / "b", {"poetry.lock": twice}).requirements == ["pytest"]


def test_a_big_lock_file_is_read(tmp_path: Path) -> None:
    """Lock files carry every wheel's hash: one far over the other files' cap is read."""
    padding = "".join(
        f'\n[[package]]\nname = "pad{i}"\nversion = "1.0"\nhash = "{"0" * 64}"\n'
        for i in range(MAX_EXTRA_FILE_BYTES // 60)
    )
    deps = deps_of(tmp_path, {"uv.lock": UV_LOCK + padding})
    assert len((UV_LOCK + padding).encode()) > MAX_EXTRA_FILE_BYTES
    assert deps.requirements == ["pytest==9.0.2"]

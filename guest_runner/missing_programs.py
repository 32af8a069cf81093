"""Did a test fail only because it runs a program the guest does not have?

Test suites run tools a CI runner has (``hg``, ``svn``, ``node``, ``cmake``, ``java``...).
The guest image is a small Debian: a test that executes a program it lacks fails there
and nowhere else, which says nothing about the release; it is counted apart. Only
programs that are not Python's to provide count (`EXTERNAL_PROGRAMS`): a release's own
console script missing from the venv is the release's failure, never set apart. What
counts, read from the failure's text, when the program is not on the guest's ``PATH``
(``shutil.which``, asked by the runner after the tests, in the guest):

- ``subprocess`` failing to start it: ``FileNotFoundError: [Errno 2] No such file or
  directory: 'hg'`` raised from ``subprocess`` (``_execute_child``), so an ``open()`` of a
  missing data file never counts; pexpect failing to: ``The command was not found or
  was not executable: zsh.``;
- a shell that could not find it: ``/bin/sh: 1: hg: not found`` or ``hg: command not
  found``;
- a database or broker CI runs as a service, not running here (`missing_service`): a
  connection to its well-known port on the loopback address refused (`SERVICE_PORTS`:
  MongoDB's 27017, Redis' 6379, PostgreSQL's 5432...), named by its server program
  (``mongod``). cachelib's MongoDB tests: ``ServerSelectionTimeoutError:
  localhost:27017: [Errno 111] Connection refused``. Any other refused port on
  loopback (a server the suite starts itself) is not set apart;
- a display or clipboard, which CI runs tests under (``xvfb-run``), when the guest has
  no ``DISPLAY`` (`missing_display`): Tk's ``no display name and no $DISPLAY
  environment variable``, python-xlib's ``Bad display name``, GTK's ``Gtk couldn't be
  initialized``, matplotlib refusing an interactive backend ``as 'headless' is
  currently running``, pyperclip's ``could not find a copy/paste mechanism``; named
  ``Xvfb`` (the clipboard: ``xclip``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping

#: Tools of a CI runner that no Python distribution installs (compilers and build tools,
#: version control, language runtimes, databases, document and media tools, debuggers).
EXTERNAL_PROGRAMS = frozenset(
    {
        "hg", "svn", "bzr", "brz", "fossil", "darcs", "git-lfs",
        "node", "nodejs", "npm", "npx", "yarn", "deno", "bun",
        "java", "javac", "mvn", "gradle", "ruby", "gem", "perl", "php", "lua", "R", "Rscript",
        "go", "rustc", "cargo", "gfortran", "clang", "clang++", "cmake", "ninja", "meson",
        "pkg-config", "autoconf", "automake", "libtool", "swig", "nvcc", "ccache",
        "docker", "podman", "kubectl", "vagrant",
        "psql", "pg_ctl", "initdb", "postgres", "mysql", "mysqld", "mongod", "redis-server",
        "memcached", "sqlite3",
        "pandoc", "latex", "pdflatex", "xelatex", "lualatex", "dvipng", "dot", "convert",
        "magick", "ffmpeg", "ffprobe", "gs", "inkscape", "tesseract", "gpg", "gpg2",
        "gdb", "valgrind", "xvfb-run", "Xvfb", "xdg-open", "7z", "rar", "unrar", "zstd",
        "lz4", "brotli", "bzip2", "lzma", "sudo", "file", "openssl", "ssh", "rsync", "wine",
        "zsh", "fish", "ksh", "tcsh", "csh", "man", "less", "vim", "vi", "nano", "emacs",
        "tmux", "screen", "expect", "tclsh", "make",
    }
)  # fmt: skip
#: ``No such file or directory: 'hg'`` (a bare name: no path separator)
_NOT_STARTED = re.compile(r"No such file or directory: '([A-Za-z0-9][\w.+-]{0,63})'")
_FROM_SUBPROCESS = re.compile(r"_execute_child|subprocess\.py")
#: pexpect's words for a program it could not find on PATH
_PEXPECT = re.compile(
    r"command was not found or was not executable: ([A-Za-z0-9][\w.+-]{0,63}?)\.?$", re.MULTILINE
)
_SHELL = re.compile(
    r"(?:^|[\s'\"])(?:/bin/)?(?:ba|da)?sh: (?:line )?\d*:? ?([A-Za-z0-9][\w.+-]{0,63}): "
    r"(?:command )?not found|\b([A-Za-z0-9][\w.+-]{0,63}): command not found",
    re.MULTILINE,
)


#: Well-known ports of the services CI runners start for test suites → server program.
SERVICE_PORTS = {
    27017: "mongod", 6379: "redis-server", 5432: "postgres", 3306: "mysqld",
    11211: "memcached", 9200: "elasticsearch", 5672: "rabbitmq-server", 9092: "kafka",
    2181: "zookeeper", 8086: "influxd", 9042: "cassandra", 1433: "sqlserver",
    1521: "oracle", 4222: "nats-server", 7474: "neo4j", 8529: "arangod", 26257: "cockroach",
}  # fmt: skip
_REFUSED = re.compile(r"Connection refused|ECONNREFUSED|Errno 111\b")
#: a loopback host and a port: ``localhost:27017``, ``('127.0.0.1', 6379)``,
#: ``"localhost" (127.0.0.1), port 5432``, ``connecting to localhost:6379``
_LOOPBACK_PORT = re.compile(
    r"(?:localhost|127\.0\.0\.1|::1)['\"\]]?(?:\s*\(127\.0\.0\.1\))?"
    r"(?::|,\s*|,?\s+port\s+)(\d{2,5})\b"
)


def missing_service(text: str) -> str | None:
    """The server program of a `SERVICE_PORTS` service whose loopback port refused the
    failure's connection, or None."""
    if not _REFUSED.search(text):
        return None
    for port in _LOOPBACK_PORT.findall(text):
        service = SERVICE_PORTS.get(int(port))
        if service is not None:
            return service
    return None


#: What GUI toolkits say when there is no display to connect to.
_NO_DISPLAY = re.compile(
    r"no display name and no \$DISPLAY environment variable"  # Tk
    r"|couldn't connect to display"  # Tk, with a DISPLAY that leads nowhere
    r"|Bad display name|Can't connect to display"  # python-xlib (pynput, pyautogui)
    r"|could not connect to display|cannot open display"  # Qt's xcb, GTK, Xlib's C
    r"|Gtk couldn't be initialized"  # PyGObject
    r"|as 'headless' is currently running"  # matplotlib asked for an interactive backend
)
#: pyperclip's words when neither a display nor a clipboard tool is there
_NO_CLIPBOARD = re.compile(r"could not find a copy/paste mechanism", re.IGNORECASE)


def missing_display(text: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """``Xvfb`` when the failure is a GUI toolkit finding no display (``xclip`` for the
    clipboard) and the guest has none (no ``DISPLAY`` or ``WAYLAND_DISPLAY``), else None."""
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    if _NO_DISPLAY.search(text):
        return "Xvfb"
    if _NO_CLIPBOARD.search(text):
        return "xclip"
    return None


def missing_program(
    text: str,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """The program whose absence alone made this failure, or None (see the module doc)."""
    names: list[str] = []
    if _FROM_SUBPROCESS.search(text):
        names += _NOT_STARTED.findall(text)
    names += [a or b for a, b in _SHELL.findall(text)]
    names += _PEXPECT.findall(text)
    for name in names:
        if name in EXTERNAL_PROGRAMS and which(name) is None:
            return name
    return missing_service(text) or missing_display(text, environ)

"""Is a test failure only the guest being offline? Read from the failure's text.

The guest has no network (its sinkhole is switched offline for the tests phase:
names do not resolve, there is no route, see ``guest_runner.network``): a test that
resolves a name or connects out fails there and nowhere else. Such a failure says nothing about the
release; it is counted apart. What counts:

- resolver errors (``socket.gaierror``, "Temporary failure in name resolution", ...);
- an unreachable network or host (ENETUNREACH, EHOSTUNREACH);
- a refused or timed-out connection, when the text names a host and one of the
  hosts it names is not loopback (a refused connection to ``127.0.0.1`` is the
  test's own server not running: a real failure);
- a network client the test ran (``git clone``, ``curl``, ``wget``...) that exited
  non-zero (``CalledProcessError``) on a URL of a host that is not loopback: chardet
  clones its test data with git, which cannot work offline.
"""

from __future__ import annotations

import re

RESOLVER = re.compile(
    r"gaierror|Temporary failure in name resolution|Name or service not known|"
    r"No address associated with hostname|nodename nor servname|Could not resolve host|"
    r"getaddrinfo failed|NameResolutionError|Failed to resolve",
)
UNREACHABLE = re.compile(
    r"Network is unreachable|ENETUNREACH|\[Errno 101\]|No route to host|EHOSTUNREACH|"
    r"\[Errno 113\]",
)
REFUSED_OR_TIMEOUT = re.compile(
    r"Connection refused|ECONNREFUSED|\[Errno 111\]|ConnectTimeout|Connection timed out|"
    r"ETIMEDOUT|\[Errno 110\]|timed out",
)
HOSTS = re.compile(
    r"host='([^']+)'|host=\"([^\"]+)\"|[a-z][a-z0-9+.-]*://(?:[^@/\s]*@)?(\[[^\]]+\]|[^/:\s'\"]+)"
    r"|\(\s*'([^']+)',\s*\d+\s*\)",
)
NETWORK_COMMAND = re.compile(
    r"Command '(?:\[')?(?:[\w./-]*/)?(?:git|curl|wget|svn|hg)\b[^\n]*?'"
    r" returned non-zero exit status",
)
_LOOPBACK = ("localhost", "::1", "[::1]", "0.0.0.0", "::", "ip6-localhost")  # noqa: S104 - compared


def is_loopback(host: str) -> bool:
    host = host.strip().lower()
    return host in _LOOPBACK or host.startswith("127.") or host.endswith(".localhost")


def hosts_named(text: str) -> list[str]:
    """Hosts a failure text names: ``host='x'``, URLs, ``('x', port)`` tuples."""
    return [next(g for g in found.groups() if g) for found in HOSTS.finditer(text)]


def is_offline_failure(text: str) -> bool:
    """True when ``text`` (a failure's message and traceback) shows only the missing network."""
    if RESOLVER.search(text) or UNREACHABLE.search(text):
        return True
    if REFUSED_OR_TIMEOUT.search(text):
        return any(not is_loopback(host) for host in hosts_named(text))
    return any(
        any(not is_loopback(host) for host in hosts_named(found.group(0)))
        for found in NETWORK_COMMAND.finditer(text)
    )

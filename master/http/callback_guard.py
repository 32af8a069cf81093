"""Where completion callbacks may go: not into the network the master runs in.

A callback URL comes from whoever submitted the job, so by default it may not
reach an address that is not public: loopback, private (RFC 1918, ULA),
link-local, carrier-grade NAT, multicast, unspecified, reserved or documentation
ranges (``ipaddress``'s ``is_global`` is false, or ``is_multicast``; an IPv4-mapped
IPv6 address is judged as its IPv4 address). ``[http] callback_allow`` lists the
exceptions: networks (``"10.1.0.0/16"``, ``"127.0.0.1"``) whose addresses are
allowed, and host names allowed whatever they resolve to.

The check happens at connect time, on the addresses the connection will use:
``GuardedResolver`` is the callback session's resolver, so a name is judged by
what it resolves to at that very moment (DNS rebinding, a TTL of 0 that answers
a public address at submission and 127.0.0.1 at delivery, does not help).
aiohttp does not ask the resolver for an IP literal, so ``CallbackPolicy.check_url``
judges literals before the request. Redirects are not followed (the sender passes
``allow_redirects=False``), so a public receiver cannot bounce the signed body
inward. The callback session ignores proxy variables (``trust_env=False``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallbackRefused(OSError):
    """A callback target the policy forbids; ``reason`` says which address and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``None``: it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    for kind in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not-global"


@dataclass(frozen=True)
class CallbackPolicy:
    """Public addresses, plus the allow-listed networks and host names."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CallbackPolicy:
        """From ``callback_allow`` entries: a network or address, else a host name.

        Raises ``ValueError`` naming an entry that is neither.
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.strip().rstrip(".").lower()
            if not name or "/" in name or ":" in name or " " in name:
                raise ValueError(f"callback_allow: {entry!r} is neither a network nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def host_allowed(self, host: str) -> bool:
        """True when the name itself is allow-listed (whatever it resolves to)."""
        return host.rstrip(".").lower() in self.hosts

    def check_address(self, host: str, address: str) -> None:
        """Raise ``CallbackRefused`` unless ``address`` (of ``host``) may be connected to."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        kind = _kind(ip)
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if kind is None or any(ip in net or (mapped and mapped in net) for net in self.networks):
            return
        shown = host if host == address else f"{host} ({address})"
        raise CallbackRefused(
            f"callback target {shown} is a {kind} address; allow it in [http] callback_allow"
        )

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host is a forbidden IP literal (names are judged at connect)."""
        host = URL(url).host
        if host is None:
            raise CallbackRefused(f"callback URL {url!r} has no host")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return  # a name: GuardedResolver judges what it resolves to
        self.check_address(host, host)


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` and refuses the lot if any address is forbidden by ``policy``."""

    def __init__(self, policy: CallbackPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host``; ``CallbackRefused`` (an ``OSError``) if one is forbidden."""
        results = await self._inner.resolve(host, port, family)
        if not self._policy.host_allowed(host):
            for result in results:
                self._policy.check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def callback_session(
    policy: CallbackPolicy,
    timeout: aiohttp.ClientTimeout,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A session whose every connection is checked by ``policy``; the caller closes it.

    ``resolver``: the name lookup under the guard (default: the system's); tests map names.
    """
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, resolver), use_dns_cache=False, limit=32
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


def refusal(exc: BaseException) -> CallbackRefused | None:
    """The ``CallbackRefused`` behind an aiohttp connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CallbackRefused):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, CallbackRefused):
            return os_error
        seen = seen.__cause__
    return None

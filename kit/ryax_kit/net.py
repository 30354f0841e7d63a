"""Outbound requests the platform makes on behalf of users (git fetches, run callbacks): only to
public addresses, unless an administrator allowed more.

A URL a user gives must not become a way into the platform's own network (SSRF): its host is
resolved and *every* address checked; loopback, private, link-local, cloud-metadata, shared
(CGNAT), unique-local, multicast and other non-public addresses are refused. The check is made
again when connecting: `guarded_connector()` gives an aiohttp connector whose resolver checks
the addresses it returns, so the connection goes to a checked address even if the name now
resolves elsewhere (DNS rebinding). Clients never follow redirects (`allow_redirects=False`):
a redirect to an internal address would go round the check.

The allow list (`RYAX_OUTBOUND_ALLOW`, read with `OutboundAllow.parse`) is comma-separated:
CIDRs (`10.20.0.0/16`), addresses (`192.168.1.10`, `fd00::1`) and host names (`git.internal`,
or `*.corp.example` for its subdomains). An allowed network lets those addresses through; an
allowed host name lets every address it resolves to through.

    allow = OutboundAllow.parse(os.environ.get("RYAX_OUTBOUND_ALLOW", ""))
    checked = await check_outbound_url(url, allow)      # OutboundRefused: the reason, for users
    async with aiohttp.ClientSession(connector=guarded_connector(allow)) as s:
        await s.post(checked.url, json=body, allow_redirects=False)
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .settings import ConfigurationError, Env

#: The environment variable every service reads its allow list from.
ALLOW_SETTING = "RYAX_OUTBOUND_ALLOW"
MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud metadata endpoints, named so a refusal says so (checked first).
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)
# Named ranges, so a refusal says which rule applied (checked before the generic ones).
_NAMED_RANGES: tuple[tuple[str, str], ...] = (
    ("169.254.0.0/16", "link-local address"),
    ("127.0.0.0/8", "loopback address"),
    ("10.0.0.0/8", "private address"),
    ("172.16.0.0/12", "private address"),
    ("192.168.0.0/16", "private address"),
    ("100.64.0.0/10", "shared (carrier-grade NAT) address"),
    ("0.0.0.0/8", "'this network' address"),
    ("::1/128", "loopback address"),
    ("::/128", "unspecified address"),
    ("fc00::/7", "unique-local (private) address"),
    ("fe80::/10", "link-local address"),
    ("64:ff9b::/96", "NAT64 address"),
    ("64:ff9b:1::/48", "NAT64 address"),
)
_NETWORKS = tuple((ipaddress.ip_network(net), label, net) for net, label in _NAMED_RANGES)


class OutboundRefused(ValueError):
    """The destination is refused (or cannot be checked); the message says why, for users."""


def internal_address_reason(address: str | IPAddress) -> str | None:
    """Why an IP address is not a public one (None when it is public and may be used)."""
    try:
        ip = (
            address
            if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
            else ipaddress.ip_address(str(address).split("%", 1)[0])
        )
    except ValueError:
        return "an unparsable address"
    if ip in METADATA_ADDRESSES:
        return f"a cloud metadata address ({ip})"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return internal_address_reason(embedded)
    for network, label, text in _NETWORKS:
        if ip.version == network.version and ip in network:
            return f"a {label} ({text})"
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global:
        return "a reserved, non-public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The host itself when it is an IP address (`[::1]` included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class OutboundAllow:
    """Internal destinations an administrator allowed (`RYAX_OUTBOUND_ALLOW`)."""

    networks: tuple[IPNetwork, ...] = ()
    #: Exact host names (lower case, no trailing dot).
    hosts: frozenset[str] = frozenset()
    #: `*.corp.example` -> "corp.example": its subdomains (not itself).
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> OutboundAllow:
        """Comma- or space-separated CIDRs, addresses and host names; ValueError names a bad
        entry."""
        items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for raw in items:
            item = raw.strip().lower().rstrip(".")
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = item[2:] if item.startswith("*.") else item
            if not _is_host_name(name):
                raise ValueError(
                    f"{ALLOW_SETTING}: {raw!r} is neither a CIDR, an IP address nor a host name"
                )
            if item.startswith("*."):
                suffixes.append(name)
            else:
                hosts.add(name)
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes))

    @classmethod
    def read(cls, e: Env) -> OutboundAllow:
        """`RYAX_OUTBOUND_ALLOW` from the environment; a bad entry stops the start."""
        try:
            return cls.parse(e.text(ALLOW_SETTING))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc

    def __bool__(self) -> bool:
        return bool(self.networks or self.hosts or self.suffixes)

    def allows_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith("." + s) for s in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def _is_host_name(name: str) -> bool:
    labels = name.split(".")
    return (
        0 < len(name) <= 253
        and all(0 < len(p) <= 63 for p in labels)
        and all(c.isalnum() or c in "-_" for p in labels for c in p)
        and not any(p.startswith("-") or p.endswith("-") for p in labels)
    )


def refusal(host: str, addresses: Sequence[str], allow: OutboundAllow = OutboundAllow()) -> str:
    """Why `host` (resolved to `addresses`) is refused, or "" when every address may be used."""
    if allow.allows_host(host):
        return ""
    for address in addresses:
        ip = literal_address(address)
        if ip is None:
            return f"host {host} resolves to {address!r}, an unparsable address"
        if allow.allows_address(ip):
            continue
        reason = internal_address_reason(ip)
        if reason is not None:
            literal = literal_address(host)
            shown = f"{host} is" if literal == ip else f"host {host} resolves to {ip}, which is"
            return f"{shown} {reason}"
    return ""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address of `host` (as text, in the resolver's order); OutboundRefused when it
        cannot be resolved."""
        ...


class DnsResolver:
    """The system resolver (getaddrinfo), bounded in time."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self._timeout
            )
        except (OSError, TimeoutError) as exc:
            raise OutboundRefused(f"the host {host} cannot be resolved: {exc}") from exc
        addresses: list[str] = []
        for *_, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OutboundRefused(f"the host {host} resolves to no address")
        return addresses


@dataclass(frozen=True, kw_only=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str
    port: int
    #: Every address the host resolved to, each checked (the first is the one to pin).
    addresses: tuple[str, ...] = field(default=())


DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22}


async def check_host(
    host: str,
    port: int,
    allow: OutboundAllow = OutboundAllow(),
    resolver: Resolver | None = None,
) -> list[str]:
    """The addresses of `host`, each checked; OutboundRefused names the first refused one."""
    literal = literal_address(host)
    addresses = (
        [str(literal)]
        if literal is not None
        else await (resolver or DnsResolver()).resolve(host, port)
    )
    why = refusal(host, addresses, allow)
    if why:
        raise OutboundRefused(why)
    return addresses


async def check_outbound_url(
    url: str,
    allow: OutboundAllow = OutboundAllow(),
    *,
    resolver: Resolver | None = None,
    schemes: Sequence[str] = ("http", "https"),
) -> CheckedUrl:
    """An absolute URL with one of `schemes` whose host resolves to public addresses only (or
    allowed ones). OutboundRefused says what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise OutboundRefused("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise OutboundRefused(f"the URL must be {' or '.join(schemes)}, not {scheme or 'relative'}")
    host = parts.hostname
    if not host:
        raise OutboundRefused("the URL names no host")
    port = port or DEFAULT_PORTS.get(scheme, 0)
    addresses = await check_host(host, port, allow, resolver)
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that checks, at connection time, every address it gives the
    connector: a name that resolved to a public address when it was checked and to an internal
    one now (DNS rebinding) is refused (OSError: the connection fails)."""

    def __init__(
        self, allow: OutboundAllow = OutboundAllow(), inner: AbstractResolver | None = None
    ):
        self._allow = allow
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        why = refusal(host, [r["host"] for r in results], self._allow)
        if why:
            raise OSError(errno.EACCES, f"refused at connection time: {why}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_connector(
    allow: OutboundAllow = OutboundAllow(), **kwargs: Any
) -> aiohttp.TCPConnector:
    """A connector that only connects to checked addresses (a host given as an IP literal is
    not resolved by aiohttp: check the URL with `check_outbound_url` before each request)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(allow), **kwargs)


def endpoint_host(address: str) -> str:
    """The host of a gRPC-style `host:port` (`[v6]:port`, `dns:///host:port`, `ipv4:...`)."""
    rest = address.strip()
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
            break
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    if rest.count(":") > 1:  # a bare IPv6 address without a port
        return rest
    return rest.rsplit(":", 1)[0] if ":" in rest else rest


def is_loopback_endpoint(address: str) -> bool:
    """`host:port` names this machine only: localhost or a loopback address (not 0.0.0.0,
    which is every interface)."""
    host = endpoint_host(address).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = literal_address(host)
    return ip is not None and ip.is_loopback

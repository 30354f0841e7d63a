"""Outbound URLs (SSRF): every address of the host checked, an allow list, and a connector that
checks again at connection time (DNS rebinding)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from ryax_kit.net import (
    DnsResolver,
    GuardedResolver,
    OutboundAllow,
    OutboundRefused,
    check_host,
    check_outbound_url,
    guarded_connector,
    internal_address_reason,
    refusal,
)


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OutboundRefused(f"the host {host} cannot be resolved")
        return self.table[host]


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.20.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "'this network'"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::7f00:1", "NAT64"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),  # documentation range
        ("fe80::1%eth0", "link-local"),
        ("not-an-ip", "unparsable"),
    ],
)
def test_security_internal_addresses_are_named(address: str, says: str) -> None:
    reason = internal_address_reason(address)
    assert reason is not None and says in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert internal_address_reason(address) is None


async def test_security_every_address_of_a_name_is_checked() -> None:
    resolver = FakeResolver(
        {
            "rebind.example": ["93.184.216.34", "127.0.0.1"],
            "localhost.example": ["127.0.0.1"],
            "ok.example": ["93.184.216.34", "2606:4700:4700::1111"],
            "meta.example": ["169.254.169.254"],
        }
    )
    with pytest.raises(OutboundRefused, match=r"resolves to 127\.0\.0\.1, which is a loopback"):
        await check_outbound_url("https://rebind.example/hook", resolver=resolver)
    with pytest.raises(OutboundRefused, match="loopback"):
        await check_outbound_url("http://localhost.example:8080/x", resolver=resolver)
    with pytest.raises(OutboundRefused, match="cloud metadata"):
        await check_outbound_url("http://meta.example/latest/meta-data/", resolver=resolver)
    checked = await check_outbound_url("https://ok.example/hook?x=1", resolver=resolver)
    assert checked.host == "ok.example" and checked.port == 443
    assert checked.addresses == ("93.184.216.34", "2606:4700:4700::1111")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8104/runner/healthz", "127.0.0.1 is a loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://[fd12::1]:8080/", "unique-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("ftp://example.com/x", "must be http or https"),
        ("file:///etc/passwd", "must be http or https"),
        ("/relative/path", "not relative"),
        ("http:///nohost", "names no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "not a valid URL"),
        ("https://" + "a" * 2100 + ".com/", "longer than"),
    ],
)
async def test_security_refused_urls_say_why(url: str, says: str) -> None:
    with pytest.raises(OutboundRefused, match=says.replace("(", r"\(")) as refused:
        await check_outbound_url(url, resolver=FakeResolver({}))
    assert says in str(refused.value)


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="cannot be resolved"):
        await check_outbound_url("https://nowhere.invalid/", resolver=FakeResolver({}))


async def test_security_the_system_resolver_sees_localhost_as_loopback() -> None:
    with pytest.raises(OutboundRefused, match="loopback"):
        await check_outbound_url("http://localhost:8104/", resolver=DnsResolver())


async def test_the_allow_list_lets_chosen_destinations_through() -> None:
    allow = OutboundAllow.parse("10.20.0.0/16, 192.168.1.10 hooks.internal *.corp.example")
    resolver = FakeResolver(
        {
            "hooks.internal": ["10.99.0.1"],
            "ci.corp.example": ["172.16.0.9"],
            "corp.example": ["172.16.0.9"],
            "other.internal": ["10.20.3.4", "10.21.0.1"],
        }
    )
    await check_outbound_url("http://10.20.1.1/", allow)
    await check_outbound_url("http://192.168.1.10/", allow)
    await check_outbound_url("https://hooks.internal/x", allow, resolver=resolver)
    await check_outbound_url("https://ci.corp.example/x", allow, resolver=resolver)
    with pytest.raises(OutboundRefused, match="private"):
        await check_outbound_url("https://corp.example/x", allow, resolver=resolver)
    with pytest.raises(OutboundRefused, match=r"10\.21\.0\.1"):
        await check_outbound_url("https://other.internal/x", allow, resolver=resolver)
    with pytest.raises(OutboundRefused, match="private"):
        await check_outbound_url("http://192.168.1.11/", allow)
    assert not OutboundAllow.parse(" , ")
    with pytest.raises(ValueError, match="RYAX_OUTBOUND_ALLOW"):
        OutboundAllow.parse("10.0.0.0/8, not a/host")


async def test_check_host_gives_the_addresses_to_pin() -> None:
    resolver = FakeResolver({"git.example": ["93.184.216.34"]})
    assert await check_host("git.example", 443, resolver=resolver) == ["93.184.216.34"]
    assert await check_host("1.1.1.1", 22, resolver=resolver) == ["1.1.1.1"]
    assert resolver.calls == ["git.example"]  # a literal address is not resolved
    assert refusal("x", ["127.0.0.1"], OutboundAllow.parse("127.0.0.0/8")) == ""


class RebindingResolver(AbstractResolver):
    """Answers a public address the first time (the check), then loopback (the connection)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def local_server() -> AsyncIterator[TestServer]:
    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/redirect", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_security_the_connection_goes_only_to_checked_addresses(
    local_server: TestServer,
) -> None:
    """A name that now resolves to loopback (DNS rebinding) is refused when connecting."""
    port = local_server.port
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(inner=RebindingResolver(["127.0.0.1"])), use_dns_cache=False
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="refused at connection time"):
            await session.post(f"http://rebind.example:{port}/hook", json={})
    # The same with the address allowed: the connection is made.
    allowed = aiohttp.TCPConnector(
        resolver=GuardedResolver(
            OutboundAllow.parse("127.0.0.0/8"), inner=RebindingResolver(["127.0.0.1"])
        )
    )
    async with (
        aiohttp.ClientSession(connector=allowed) as session,
        session.post(f"http://rebind.example:{port}/hook", json={}) as resp,
    ):
        assert resp.status == 200


async def test_security_the_guarded_connector_refuses_localhost(local_server: TestServer) -> None:
    async with aiohttp.ClientSession(connector=guarded_connector()) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match="loopback"):
            await session.post(f"http://localhost:{local_server.port}/hook", json={})


async def test_security_a_redirect_is_not_followed(local_server: TestServer) -> None:
    allow = OutboundAllow.parse("127.0.0.0/8")
    async with (
        aiohttp.ClientSession(connector=guarded_connector(allow)) as session,
        session.post(
            f"http://127.0.0.1:{local_server.port}/redirect", json={}, allow_redirects=False
        ) as resp,
    ):
        assert resp.status == 302

"""Where repositories may be fetched from: the platform's outbound rule (`ryax_kit.net`).

A host is resolved and every address checked; loopback, private, link-local, cloud-metadata and
other non-public addresses are refused unless allowed (`RYAX_OUTBOUND_ALLOW`, or everything
with `RYAX_REPOSITORY_ALLOW_LOCAL=true`, checked by the use cases). The first address is the one
git is pinned to for https (`http.curloptResolve`), so a name resolving elsewhere afterwards
(DNS rebinding) is not followed.
"""

from __future__ import annotations

from ryax_kit.net import (
    ALLOW_SETTING,
    DnsResolver,
    OutboundAllow,
    OutboundRefused,
    Resolver,
    literal_address,
)
from ryax_kit.net import refusal as outbound_refusal

from ..domain.errors import InvalidInput
from ..domain.git_url import ALLOW_LOCAL_SETTING


class OutboundAddressGuard:
    """`AddressGuard` over the kit's rule."""

    def __init__(self, allow: OutboundAllow | None = None, resolver: Resolver | None = None):
        self._allow = allow or OutboundAllow()
        self._resolver = resolver or DnsResolver()

    async def check(self, host: str, port: int) -> str:
        literal = literal_address(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._resolver.resolve(host, port)
            except OutboundRefused as exc:
                raise InvalidInput("url", str(exc)) from exc
        why = outbound_refusal(host, addresses, self._allow)
        if why:
            raise InvalidInput(
                "url",
                f"{why}: repositories on internal addresses are refused (an administrator can "
                f"allow chosen hosts and networks with {ALLOW_SETTING}, or every local source "
                f"with {ALLOW_LOCAL_SETTING})",
            )
        return addresses[0]

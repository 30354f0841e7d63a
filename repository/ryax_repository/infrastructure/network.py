"""Host name resolution, for the refusal of repositories on internal addresses."""

from __future__ import annotations

import asyncio
import socket

from ..domain.errors import InvalidInput


class DnsAddressResolver:
    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self._timeout
            )
        except (OSError, TimeoutError) as exc:
            raise InvalidInput("url", f"the host {host} cannot be resolved: {exc}") from exc
        addresses: list[str] = []
        for *_, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise InvalidInput("url", f"the host {host} resolves to no address")
        return addresses

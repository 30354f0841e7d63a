"""The worker's side of WorkerService.PresignTransfers: presigned URLs for this site's objects,
asked with the site's credential (the same `authorization: Bearer` metadata as Connect), on a
channel of its own (the Connect stream may be reconnecting meanwhile)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import grpc
from grpc import aio

from ..presigned import (
    GET,
    PresignDenied,
    PresignedUrl,
    PresignNotGranted,
    PresignUnavailable,
)
from ..proto import worker_service_pb2 as wpb
from ..proto import worker_service_pb2_grpc as wpb_grpc
from .runner_client import dial

#: Codes worth asking again later; any other is a refusal.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)


class RunnerPresigner:
    """UrlSource asking the runner."""

    def __init__(
        self,
        *,
        address: str,
        site_name: str,
        credential: str,
        ca_file: Path | None = None,
        server_name: str = "",
        timeout_seconds: float = 30.0,
    ) -> None:
        self._address = address
        self._site_name = site_name
        self._credential = credential
        self._ca_file = ca_file
        self._server_name = server_name
        self._timeout = timeout_seconds
        self._channel: aio.Channel | None = None

    async def presign(self, method: str, key: str) -> PresignedUrl:
        if self._channel is None:
            self._channel = dial(self._address, self._ca_file, self._server_name)
        stub = wpb_grpc.WorkerServiceStub(self._channel)
        request = wpb.PresignRequest(site_name=self._site_name)
        request.transfers.add(
            method=wpb.TRANSFER_METHOD_GET if method == GET else wpb.TRANSFER_METHOD_PUT, key=key
        )
        metadata = (("authorization", f"Bearer {self._credential}"),) if self._credential else ()
        try:
            answer = await stub.PresignTransfers(request, metadata=metadata, timeout=self._timeout)
        except aio.AioRpcError as error:
            detail = f"{error.code().name}: {error.details()}"
            if error.code() in _TRANSIENT:
                raise PresignUnavailable(detail) from None
            if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PresignNotGranted(f"the runner refused a URL for {key}: {detail}") from None
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                detail += " (check RYAX_SITE_CREDENTIAL)"
            raise PresignDenied(f"the runner refused a URL for {key}: {detail}") from None
        if len(answer.transfers) != 1 or answer.transfers[0].key != key:
            raise PresignUnavailable(f"the runner answered no URL for {key}")
        signed = answer.transfers[0]
        expires = (
            signed.expires_at.ToDatetime(tzinfo=UTC) if signed.HasField("expires_at") else None
        )
        return PresignedUrl(url=signed.url, expires_at=expires)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

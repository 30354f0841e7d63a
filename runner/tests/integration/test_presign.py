"""PresignTransfers on the runner's real gRPC port: a runner whose filestore is a local
directory signs nothing (FAILED_PRECONDITION, saying why) once the site's credential and the
object's grant are checked; a request for another site's object is PERMISSION_DENIED naming
it; without the credential, UNAUTHENTICATED before anything else is looked at."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc import aio
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, publish, step

from ryax_runner.infrastructure.proto import worker_service_pb2 as pb
from ryax_runner.infrastructure.proto import worker_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration


async def test_a_local_directory_filestore_signs_nothing(
    runner: RunningRunner, amqp_url: str
) -> None:
    credential = await runner.credential("site-1")
    worker = FakeWorker(runner.grpc_address, credential=credential)
    await worker.start()
    try:
        request = deploy_request([step("trigger", kind="trigger"), step("a", parents=("trigger",))])
        await publish(amqp_url, request)
        engine = runner.container.engine()
        deadline = time.monotonic() + 30
        while engine.deployments.get(request.deployment_id) is None or (
            engine.deployments[request.deployment_id].state != "deployed"
        ):
            assert time.monotonic() < deadline, "not deployed"
            await asyncio.sleep(0.05)
        async with aio.insecure_channel(runner.grpc_address) as channel:
            stub = pb_grpc.WorkerServiceStub(channel)
            metadata = (("authorization", f"Bearer {credential}"),)

            def ask(key: str) -> pb.PresignRequest:
                return pb.PresignRequest(
                    site_name="site-1",
                    transfers=[pb.TransferRequest(method=pb.TRANSFER_METHOD_GET, key=key)],
                )

            with pytest.raises(aio.AioRpcError) as error:
                await stub.PresignTransfers(ask("artefacts/a.tar.gz"), metadata=metadata)
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "local-directory filestore" in (error.value.details() or "")

            with pytest.raises(aio.AioRpcError) as error:
                await stub.PresignTransfers(ask("artefacts/other.tar.gz"), metadata=metadata)
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "'artefacts/other.tar.gz'" in (error.value.details() or "")

            # The credential first: without one, even a malformed request learns nothing more.
            for request in (ask("artefacts/a.tar.gz"), pb.PresignRequest(site_name="site-1")):
                with pytest.raises(aio.AioRpcError) as error:
                    await stub.PresignTransfers(request)
                assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await worker.stop()

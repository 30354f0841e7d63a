"""A fake worker: a real gRPC client of the runner's WorkerService that follows the protocol
(docs/runner-worker-protocol.md). It stands in for the worker service in tests and
benchmarks: steps "deploy" instantly, executions call a Python function.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from ryax_kit.framing import frame, read_frame
from ryax_runner.domain.values import Value
from ryax_runner.infrastructure.grpc.mappers import value_from_proto, value_to_proto
from ryax_runner.infrastructure.proto import worker_service_pb2 as pb
from ryax_runner.infrastructure.proto import worker_service_pb2_grpc as pb_grpc

#: handler(step_id, inputs) -> outputs dict, a list of output dicts (fan-out), or raises
#: ActionError(http_status, message) / any exception (FAILED).
Handler = Callable[[str, dict[str, Value]], Awaitable[dict[str, Value] | list[dict[str, Value]]]]


class ActionError(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status


class SocketRefused(Exception):
    """The runner refused the stream on its Unix socket (a Refused message)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SocketCall:
    """The Connect stream on the runner's Unix socket, as the fake uses a gRPC call: iterated
    for the runner's messages while the requests are written from `requests`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._pump: asyncio.Task[None] | None = None

    def send_all(self, requests: Any) -> None:
        async def pump() -> None:
            async for message in requests:
                self.writer.write(frame(message.SerializeToString()))
            if not self.writer.is_closing():
                self.writer.write_eof()

        self._pump = asyncio.create_task(pump())

    def __aiter__(self) -> SocketCall:
        return self

    async def __anext__(self) -> pb.RunnerMessage:
        payload = await read_frame(self.reader, 64 * 1024 * 1024)
        if payload is None:
            raise StopAsyncIteration
        message = pb.RunnerMessage.FromString(payload)
        if message.WhichOneof("message") == "refused":
            raise SocketRefused(message.refused.code, message.refused.detail)
        return message

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        self.writer.close()


async def echo(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    return dict(inputs.items())


@dataclass
class FakeWorker:
    address: str
    site_name: str = "site-1"
    worker_id: str = "worker-1"
    handler: Handler = echo
    labels: dict[str, str] = field(default_factory=dict)
    node_pools: list[tuple[str, float, int, int]] = field(default_factory=list)
    heartbeat: bool = True
    #: Log lines emitted per execution before its result.
    log_lines: int = 1
    fail_deploy: dict[str, str] = field(default_factory=dict)  # step_id -> reason
    #: The site's credential, presented as `authorization: Bearer <credential>`.
    credential: str = field(default="", repr=False)
    #: TLS: the CA (PEM) the runner's certificate is checked against; None = plaintext.
    root_certificates: bytes | None = None
    server_name: str = ""
    #: The runner's Unix socket (RYAX_RUNNER_WORKER_SOCKET): given, the stream goes there (the
    #: credential in Register), not to `address`.
    socket_path: Path | None = None

    def __post_init__(self) -> None:
        self.report_seq = 0
        self.last_order_seq = 0
        self.unacked: dict[int, pb.WorkerMessage] = {}
        self.deployed: dict[tuple[str, str], int] = {}
        self.running: set[str] = set()
        self.orders: list[pb.RunnerMessage] = []
        self.registered = asyncio.Event()
        self.heartbeat_interval = 2.0
        self._out: asyncio.Queue[pb.WorkerMessage | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._channel: aio.Channel | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executions: dict[str, asyncio.Task[Any]] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.stopped = False
        self.error: grpc.RpcError | SocketRefused | None = None
        self._socket: SocketCall | None = None

    # -- connection ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.stopped = False
        self.registered.clear()
        self._out = asyncio.Queue()
        if self.socket_path is not None:
            self._socket = SocketCall(*await asyncio.open_unix_connection(str(self.socket_path)))
            self._socket.send_all(self._requests())
            self._call: Any = self._socket
        elif self.root_certificates is None:
            self._channel = aio.insecure_channel(self.address)
        else:
            options = (
                [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
            )
            self._channel = aio.secure_channel(
                self.address,
                grpc.ssl_channel_credentials(root_certificates=self.root_certificates),
                options=options,
            )
        if self._channel is not None:
            stub = pb_grpc.WorkerServiceStub(self._channel)
            metadata = (("authorization", f"Bearer {self.credential}"),) if self.credential else ()
            self._call = stub.Connect(self._requests(), metadata=metadata)
        self._task = asyncio.create_task(self._receive())
        waiting = asyncio.create_task(self.registered.wait())
        await asyncio.wait({self._task, waiting}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not self.registered.is_set():
            # Refused (UNAUTHENTICATED, ALREADY_EXISTS...), the TLS handshake failed, or no answer.
            raise self.error or TimeoutError("no Registered from the runner within 10 s")

    async def disconnect(self) -> None:
        """Cut the stream but keep running executions (their results wait for a reconnect)."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        self._out.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def stop(self) -> None:
        """Drop the connection and everything running (a crash, as the runner sees it)."""
        self.stopped = True
        for t in list(self._tasks):
            t.cancel()
        await self.disconnect()

    async def _requests(self) -> Any:
        register = pb.Register(
            worker_id=self.worker_id,
            site_name=self.site_name,
            backend_kind="local",
            labels=self.labels,
            version="fake",
            last_seen_order_seq=self.last_order_seq,
            running_execution_ids=sorted(self.running | self._unacked_results()),
            # On the socket only (gRPC: the call's metadata).
            credential=self.credential if self.socket_path is not None else "",
        )
        for name, cpu, mem, gpu in self.node_pools:
            register.node_pools.add(name=name, cpu=cpu, memory_bytes=mem, gpu=gpu)
        for (dep, step), state in self.deployed.items():
            register.deployed_steps.add(deployment_id=dep, step_id=step, state=state)
        yield pb.WorkerMessage(report_seq=0, register=register)
        while True:
            msg = await self._out.get()
            if msg is None:
                return
            yield msg

    def _unacked_results(self) -> set[str]:
        return {
            m.execution_result.execution_id
            for m in self.unacked.values()
            if m.WhichOneof("message") == "execution_result"
        }

    def send(self, keep: bool = False, **kwargs: Any) -> int:
        self.report_seq += 1
        msg = pb.WorkerMessage(report_seq=self.report_seq, **kwargs)
        if keep:
            self.unacked[self.report_seq] = msg
        self._out.put_nowait(msg)
        return self.report_seq

    async def _receive(self) -> None:
        try:
            async for msg in self._call:
                kind = msg.WhichOneof("message")
                if kind == "registered":
                    self.report_seq = max(self.report_seq, msg.registered.last_report_seq)
                    self.heartbeat_interval = msg.registered.heartbeat_interval_seconds
                    for seq in sorted(self.unacked):  # re-send what was not acknowledged
                        self._out.put_nowait(self.unacked[seq])
                    self.registered.set()
                    if self._heartbeat_task is not None:
                        self._heartbeat_task.cancel()
                    self._heartbeat_task = asyncio.create_task(self._heartbeats())
                    continue
                if kind == "report_ack":
                    for seq in [s for s in self.unacked if s <= msg.report_ack.report_seq]:
                        del self.unacked[seq]
                    continue
                self.orders.append(msg)
                if msg.order_seq <= self.last_order_seq:
                    continue
                self.last_order_seq = msg.order_seq
                self.send(ack=pb.Ack(order_seq=msg.order_seq))
                if kind == "deploy":
                    self._deploy(msg.deploy)
                elif kind == "undeploy":
                    key = (msg.undeploy.deployment_id, msg.undeploy.step_id)
                    self.deployed.pop(key, None)
                    self._state(key, pb.DEPLOYMENT_STATE_KIND_UNDEPLOYED, "")
                elif kind == "execute" and msg.execute.execution_id not in self.running:
                    self.running.add(msg.execute.execution_id)
                    self._executions[msg.execute.execution_id] = self._spawn(
                        self._execute(msg.execute)
                    )
                elif kind == "cancel":
                    task = self._executions.get(msg.cancel.execution_id)
                    if task is not None:
                        task.cancel()
        except (grpc.RpcError, SocketRefused) as exc:
            self.error = exc
        except asyncio.CancelledError:
            pass

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _heartbeats(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if self.heartbeat and not self.stopped:
                n += 1
                self.send(heartbeat=pb.Heartbeat(seq=n))

    # -- orders --------------------------------------------------------------------------------

    def _state(self, key: tuple[str, str], state: int, reason: str) -> None:
        at = pb.DeploymentState(
            deployment_id=key[0],
            step_id=key[1],
            state=state,  # type: ignore[arg-type]
            reason=reason,
        )
        at.at.FromDatetime(datetime.now(UTC))
        self.send(keep=True, deployment_state=at)

    def _deploy(self, deploy: pb.Deploy) -> None:
        key = (deploy.deployment_id, deploy.step_id)
        reason = self.fail_deploy.get(deploy.step_id)
        if reason:
            self.deployed[key] = pb.DEPLOYMENT_STATE_KIND_FAILED
            self._state(key, pb.DEPLOYMENT_STATE_KIND_FAILED, reason)
            return
        self.deployed[key] = pb.DEPLOYMENT_STATE_KIND_READY
        self._state(key, pb.DEPLOYMENT_STATE_KIND_READY, "")

    def crash_step(self, deployment_id: str, step_id: str, reason: str) -> None:
        key = (deployment_id, step_id)
        self.deployed[key] = pb.DEPLOYMENT_STATE_KIND_FAILED
        self._state(key, pb.DEPLOYMENT_STATE_KIND_FAILED, reason)

    def fire(self, deployment_id: str, step_id: str, outputs: dict[str, Value]) -> None:
        new_run = pb.NewRun(deployment_id=deployment_id, step_id=step_id)
        for k, v in outputs.items():
            value_to_proto(v, new_run.outputs[k])
        self.send(keep=True, new_run=new_run)

    async def _execute(self, e: pb.Execute) -> None:
        started = datetime.now(UTC)
        inputs = {k: value_from_proto(v) for k, v in e.inputs.items()}
        result = pb.ExecutionResult(execution_id=e.execution_id)
        for i in range(self.log_lines):
            self.send(
                execution_log=pb.ExecutionLog(
                    execution_id=e.execution_id,
                    seq=i + 1,
                    stream=pb.LOG_STREAM_STDOUT,
                    line=f"{e.step_id} line {i + 1}",
                )
            )
        try:
            out = await self.handler(e.step_id, inputs)
            result.status = pb.EXECUTION_STATUS_COMPLETED
            if isinstance(out, list):
                result.outputs_is_list = True
                for item in out:
                    s = result.outputs_list.add()
                    for k, v in item.items():
                        value_to_proto(v, s.outputs[k])
            else:
                for k, v in out.items():
                    value_to_proto(v, result.outputs[k])
        except asyncio.CancelledError:
            if self.stopped:
                raise
            result.status = pb.EXECUTION_STATUS_CANCELLED
            result.error = "cancelled"
        except ActionError as exc:
            result.status = pb.EXECUTION_STATUS_FAILED
            result.error, result.http_status = str(exc), exc.http_status
        except Exception as exc:  # noqa: BLE001 - the action's error is the result
            result.status = pb.EXECUTION_STATUS_FAILED
            result.error = f"{type(exc).__name__}: {exc}"
            result.traceback = traceback.format_exc()
        result.log_line_count = self.log_lines
        result.started_at.FromDatetime(started)
        result.ended_at.FromDatetime(datetime.now(UTC))
        self.running.discard(e.execution_id)
        self._executions.pop(e.execution_id, None)
        if not self.stopped:
            self.send(keep=True, execution_result=result)

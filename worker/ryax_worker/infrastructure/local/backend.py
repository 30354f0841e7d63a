"""The `local` site backend: one long-running action-wrapper process per deployed step, each in
its sandbox (sandbox.py) with the limits of its step's resources.

A step's process is supervised: if it dies (or stops answering health checks) it is started
again after a backoff; after too many consecutive failures the backend gives up and the step is
reported FAILED. Executions of one step run one at a time (a queue per process). Cancelling or
timing out an execution kills its process (SIGKILL to the process group) and starts a fresh one:
user code in a thread cannot be interrupted, and a process that still runs it must not take the
next execution.

Paths cross the sandbox's edge here: inputs and the work directory go in as the action sees them,
file outputs come back as host paths; an output that is none of the action's folders fails the
execution naming it (the worker checks the host path again before publishing: staging.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc import aio

from ryax_kit.core.clock import Clock, SystemClock

from ...application.ports import (
    ActionEvent,
    ActionLog,
    ActionNewRun,
    ActionResult,
    ActionRunRequest,
    ActionStarted,
    ActionStatus,
    StepListener,
)
from ...application.retention import Retention, RetentionPolicy
from ...domain.errors import ActionCrashed, ActionUnavailable, DeploymentFailed, OutputRefused
from ...domain.model import (
    DeployStep,
    FileRef,
    LogStream,
    RestartPolicy,
    StepRef,
    Values,
    file_refs,
    step_dir_parts,
)
from ..grpc.mappers import init_request_to_proto, run_reply_from_proto, run_request_to_proto
from .artefacts import ArtefactCache
from .cgroups import Cgroups
from .process import PID_FILE, ActionProcess, ProcessOptions, SessionBroken, kill_leftover
from .sandbox import Layout, Limits, SandboxState, probe

log = logging.getLogger(__name__)
#: How often a run's CPU time and process count are checked against its limits.
LIMIT_WATCH_SECONDS = 0.2
#: Longest wait between two looks for idle processes (retention policy).
RETENTION_CHECK_SECONDS = 1.0
_BROKEN_CALL = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


class _NullListener:
    def step_down(self, ref: StepRef, reason: str, restarting: bool) -> None:
        del ref, reason, restarting

    def step_up(self, ref: StepRef) -> None:
        del ref

    def step_log(self, ref: StepRef, stream: LogStream, line: str) -> None:
        del ref, stream, line


def _map_values(values: Values, layout: Layout) -> Values:
    """File values given by the action (paths it sees) as host paths; OutputRefused for a path
    that is none of its folders."""
    mapped: Values = dict(values)
    for name, value in values.items():
        if isinstance(value, FileRef):
            host = layout.outside(value.key)
            if host is None:
                raise OutputRefused(name, value.key)
            mapped[name] = replace(value, key=str(host))
    return mapped


def _to_sandbox(values: Values, inside: Callable[[Path], str]) -> Values:
    return {
        name: replace(value, key=inside(Path(value.key))) if isinstance(value, FileRef) else value
        for name, value in values.items()
    }


def _give(path: Path, uid: int, gid: int) -> None:
    """Hand a file or folder of a run (and what it holds) to the action's user."""
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _limit_reason(result: ActionResult, limits: Limits) -> ActionResult:
    """A failure the limits caused says so."""
    text = f"{result.error}\n{result.traceback}"
    if limits.memory_bytes and "MemoryError" in text:
        return replace(
            result, error=f"memory limit of {limits.memory_text()} exceeded ({result.error})"
        )
    if limits.max_processes and (
        "Resource temporarily unavailable" in text or "BlockingIOError" in text
    ):
        return replace(
            result,
            error=f"process limit of {limits.max_processes} reached ({result.error})",
        )
    return result


class StepInstance:
    """The supervised process of one deployed step."""

    def __init__(
        self,
        *,
        spec: DeployStep,
        artefact_dir: Path,
        instance_dir: Path,
        executions_dir: Path,
        options: ProcessOptions,
        policy: RestartPolicy,
        backend: LocalBackend,
    ) -> None:
        self.spec = spec
        self._artefact_dir = artefact_dir
        self._instance_dir = instance_dir
        self._executions_dir = executions_dir
        self._options = options
        self.limits = Limits(
            memory_bytes=spec.resources.memory_bytes,
            cpu=spec.resources.cpu,
            time_seconds=0.0 if spec.is_trigger else spec.resources.time_seconds,
            max_processes=options.sandbox.max_processes,
        )
        self._policy = policy
        self._backend = backend
        self.process: ActionProcess | None = None
        self._ready = False
        self._gave_up: str | None = None
        self._closing = False
        self._changed = asyncio.Condition()
        self._run_lock = asyncio.Lock()
        self._failures = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._planned_replacement = False
        self._restart_reason: str | None = None
        self._stoppers: set[asyncio.Task[None]] = set()
        self.restarts = 0
        #: Stopped for being idle (the retention policy): the next run starts it again.
        self.asleep = False
        self.sleeps = 0
        self.wakes = 0

    @property
    def ref(self) -> StepRef:
        return self.spec.ref

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """First start: raises DeploymentFailed (no retry: the runner hears why at once)."""
        self.process = await self._spawn()
        await self._set_ready(True)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise {self.ref}")

    async def _spawn(self) -> ActionProcess:
        listener = self._backend.listener
        process = ActionProcess(
            ref=self.ref,
            artefact_dir=self._artefact_dir,
            instance_dir=self._instance_dir,
            executions_dir=self._executions_dir,
            options=self._options,
            limits=self.limits,
            on_line=lambda stream, line: listener.step_log(self.ref, stream, line),
        )
        code = Path(process.sandbox_path(self._artefact_dir / "code"))
        await process.start(init_request_to_proto(self.spec, code))
        return process

    async def _set_ready(self, ready: bool) -> None:
        async with self._changed:
            self._ready = ready
            self._changed.notify_all()

    async def _give_up(self, reason: str) -> None:
        message = f"{reason} (gave up after {self._failures} consecutive failures)"
        log.error("action keeps dying, giving up", extra={"step": str(self.ref), "reason": reason})
        async with self._changed:
            self._gave_up = message
            self._changed.notify_all()
        self._backend.listener.step_down(self.ref, message, False)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            process = self.process
            assert process is not None
            watch = asyncio.create_task(self._watch_health(process))
            try:
                await process.wait_exit()
            finally:
                watch.cancel()
            await self._set_ready(False)
            if self._closing:
                return
            planned, self._planned_replacement = self._planned_replacement, False
            reason = self._restart_reason or process.exit_reason()
            self._restart_reason = None
            await process.stop(grace=0.0)
            delay = 0.0
            if not planned:
                if loop.time() - process.started_at >= self._policy.healthy_after_seconds:
                    self._failures = 0
                self._failures += 1
                if self._policy.gives_up(self._failures):
                    await self._give_up(reason)
                    return
                log.warning(
                    "action process died",
                    extra={"step": str(self.ref), "reason": reason, "failures": self._failures},
                )
                self._backend.listener.step_down(self.ref, reason, True)
                delay = self._policy.delay(self._failures)
            while True:
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    self.process = await self._spawn()
                    break
                except DeploymentFailed as error:
                    self._failures += 1
                    if self._policy.gives_up(self._failures):
                        await self._give_up(error.detail)
                        return
                    log.warning(
                        "action restart failed",
                        extra={"step": str(self.ref), "reason": error.detail},
                    )
                    delay = self._policy.delay(self._failures)
            self.restarts += 1
            await self._set_ready(True)
            if not planned:
                log.info("action process restarted", extra={"step": str(self.ref)})
                self._backend.listener.step_up(self.ref)

    async def _watch_health(self, process: ActionProcess) -> None:
        misses = 0
        while process.alive:
            await asyncio.sleep(self._options.health_interval_seconds)
            if await process.check_health(self._options.health_timeout_seconds):
                misses = 0
                continue
            misses += 1
            if misses >= self._options.health_max_failures and process.alive:
                # A fork bomb starves the process of threads before the limit watch sees it:
                # the reason given is the limit when it is the cause.
                reason = await self._process_limit_breach(process)
                reason = reason or "the action process stopped answering health checks"
                self._restart_reason = reason
                process.kill_reason = reason
                log.warning(
                    "action process unhealthy, killing",
                    extra={"step": str(self.ref), "why": reason},
                )
                process.signal(signal.SIGKILL)
                return

    async def _process_limit_breach(self, process: ActionProcess) -> str:
        if self.limits.max_processes and await asyncio.to_thread(process.process_limit_hit):
            return f"process limit of {self.limits.max_processes} reached (processes and threads)"
        return ""

    async def stop(self) -> None:
        """Undeploy: stop supervising and stop the process."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
        if self.process is not None:
            await self.process.stop()
        for stopper in list(self._stoppers):
            with contextlib.suppress(BaseException):
                await stopper
        shutil.rmtree(self._instance_dir, ignore_errors=True)
        shutil.rmtree(self._executions_dir, ignore_errors=True)

    async def restart(self, reason: str) -> None:
        """Replace a running process by a fresh one, counted as a failure (a trigger ended)."""
        if self._gave_up is not None:
            raise ActionUnavailable(self._gave_up)
        if self._closing:
            raise ActionUnavailable(f"step {self.ref} is being undeployed")
        process = self.process
        if process is None or not process.alive or not self._ready:
            return  # already down: the supervisor is bringing it back
        self._restart_reason = reason
        self._ready = False
        self._spawn_stopper(process)

    async def sleep(self) -> bool:
        """Stop the idle process (retention policy); the step stays deployed. False when it
        cannot sleep now: running, starting, down or being undeployed."""
        if self._run_lock.locked() or self.asleep:
            return False
        async with self._run_lock:
            process = self.process
            if (
                self._closing
                or self._gave_up is not None
                or not self._ready
                or process is None
                or not process.alive
            ):
                return False
            await self._set_ready(False)
            if self._supervisor is not None:
                self._supervisor.cancel()
                with contextlib.suppress(BaseException):
                    await self._supervisor
                self._supervisor = None
            await process.stop()
            self.asleep = True
            self.sleeps += 1
            log.info("idle action process stopped", extra={"step": str(self.ref)})
            return True

    async def _wake(self) -> None:
        """Start the process of a sleeping step again (under the run lock)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            self.process = await self._spawn()
        except DeploymentFailed as error:
            raise ActionCrashed(
                f"the step's action process did not start again: {error.detail}"
            ) from error
        self.asleep = False
        self.wakes += 1
        self._failures = 0
        await self._set_ready(True)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"supervise {self.ref}")
        log.info(
            "action process started again",
            extra={
                "step": str(self.ref),
                "cold_start_ms": round((loop.time() - started) * 1000, 1),
                "forked": self.process.forked,
            },
        )

    def _replace_now(self, process: ActionProcess, why: str) -> None:
        """Kill the process right away and start a fresh one, not counted as a failure."""
        if not process.alive or self._closing:
            return
        log.info("replacing the action process", extra={"step": str(self.ref), "why": why})
        self._planned_replacement = True
        self._ready = False
        process.signal(signal.SIGKILL)

    def _spawn_stopper(self, process: ActionProcess) -> None:
        stopper = asyncio.create_task(process.stop())
        self._stoppers.add(stopper)
        stopper.add_done_callback(self._stoppers.discard)

    # -- runs ------------------------------------------------------------------------------

    async def _await_ready(self) -> ActionProcess:
        async with self._changed:
            while True:
                if self._gave_up is not None:
                    raise ActionUnavailable(f"step {self.ref} is down: {self._gave_up}")
                if self._closing:
                    raise ActionUnavailable(f"step {self.ref} is being undeployed")
                if self._ready and self.process is not None and self.process.alive:
                    return self.process
                await self._changed.wait()

    def _needs_hand_over(self, request: ActionRunRequest) -> bool:
        """Under a sandbox that drops to its user, unless the work folder was given to it for an
        earlier execution (left as given) and no input is a file."""
        return self._options.sandbox.drops_to_uid and (
            not request.work_dir_reused or bool(file_refs(request.inputs))
        )

    def _hand_over(self, request: ActionRunRequest) -> None:
        """The run's work folder and inputs become the action's user's (under the sandbox)."""
        sandbox = self._options.sandbox
        if not sandbox.drops_to_uid:
            return
        _give(request.work_dir, sandbox.uid, sandbox.gid)
        for value in request.inputs.values():
            if isinstance(value, FileRef):
                path = Path(value.key)
                _give(path, sandbox.uid, sandbox.gid)
                for parent in path.parents:
                    if parent == self._executions_dir or not parent.is_relative_to(
                        self._executions_dir
                    ):
                        break
                    parent.chmod(0o755)  # the worker's, but the action must go through

    def _from_sandbox(self, event: ActionEvent, layout: Layout) -> ActionEvent:
        """Paths the action gave, as host paths; a path out of its folders is refused."""
        if isinstance(event, ActionResult):
            try:
                return replace(
                    event,
                    outputs=_map_values(event.outputs, layout),
                    outputs_list=tuple(_map_values(v, layout) for v in event.outputs_list),
                )
            except OutputRefused as refused:
                return replace(
                    event,
                    status=ActionStatus.FAILED,
                    outputs={},
                    outputs_list=(),
                    error=refused.detail,
                    traceback="",
                )
        if isinstance(event, ActionNewRun):
            try:
                return replace(event, outputs=_map_values(event.outputs, layout))
            except OutputRefused as refused:
                return ActionLog(
                    stream=LogStream.STDERR,
                    line=f"ryax: new run dropped: {refused.detail}",
                    at=event.at,
                )
        return event

    async def run(self, request: ActionRunRequest) -> AsyncGenerator[ActionEvent, None]:
        async with self._run_lock:
            if self.asleep and not self._closing:
                await self._wake()
            process = await self._await_ready()
            if self._needs_hand_over(request):
                await asyncio.to_thread(self._hand_over, request)
            yield ActionStarted()
            process.reset_peak_memory()
            cpu_before = process.cpu_seconds()
            watch = asyncio.create_task(self._watch_limits(process, cpu_before))
            replies = process.replies(
                run_request_to_proto(
                    request.execution_id,
                    _to_sandbox(request.inputs, process.layout.inside),
                    Path(process.sandbox_path(request.work_dir)),
                ),
                session=not self.spec.is_trigger,
            )
            settled = False
            replace_because = ""
            try:
                async for reply in replies:
                    event = run_reply_from_proto(reply, datetime.now(UTC))
                    if event is None:
                        continue
                    event = self._from_sandbox(event, process.layout)
                    if isinstance(event, ActionResult):
                        settled = True
                        event = replace(
                            _limit_reason(event, self.limits),
                            cpu_seconds=max(process.cpu_seconds() - cpu_before, 0.0),
                            max_memory_bytes=process.peak_memory_bytes(),
                        )
                        if event.status != ActionStatus.COMPLETED and process.leftovers():
                            replace_because = "a failed execution left processes behind"
                    yield event
                settled = True
            except (aio.AioRpcError, SessionBroken) as error:
                settled = True
                broken = isinstance(error, SessionBroken) or error.code() in _BROKEN_CALL
                if broken:
                    await _exit_within(process, 2.0)
                if not process.alive:
                    raise ActionCrashed(process.exit_reason()) from error
                if isinstance(error, SessionBroken):
                    raise ActionCrashed(f"the action's session failed: {error}") from error
                raise ActionCrashed(
                    f"the action's call failed: {error.code().name}: {error.details()}"
                ) from error
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we are cancelled (Cancel order, timeout, shutdown)
                # grpc cancels the calls of a closed channel: the process died meanwhile.
                settled = True
                await _exit_within(process, 2.0)
                raise ActionCrashed(process.exit_reason()) from None
            finally:
                watch.cancel()
                await replies.aclose()  # before its Result: the call is cancelled
                if not settled:
                    self._replace_now(process, f"execution {request.execution_id} was stopped")
                elif replace_because:
                    self._replace_now(process, replace_because)

    async def _watch_limits(self, process: ActionProcess, cpu_before: float) -> None:
        """During a run: past `resources.time` seconds of CPU, or with as many processes and
        threads as it may have (a fork bomb holds them all), the sandbox is killed with the
        reason, and a fresh process takes the next execution."""
        limits = self.limits
        while process.alive:
            await asyncio.sleep(LIMIT_WATCH_SECONDS)
            reason = ""
            used = await asyncio.to_thread(process.cpu_seconds)
            if limits.time_seconds and used - cpu_before >= limits.time_seconds:
                reason = f"killed: CPU time limit of {limits.time_seconds:g} s exceeded"
                reason += " (resources.time)"
            else:
                reason = await self._process_limit_breach(process)
            if reason:
                log.warning("action over its limits", extra={"step": str(self.ref), "why": reason})
                process.kill_reason = reason
                self._replace_now(process, reason)
                return


async def _exit_within(process: ActionProcess, seconds: float) -> None:
    """Give a process whose call broke a moment to be seen dead (its exit says why)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.wait_exit()), seconds)


def _clean_instances(instances_dir: Path) -> int:
    if not instances_dir.is_dir():
        return 0
    killed = sum(1 for pid_file in instances_dir.glob(f"*/*/{PID_FILE}") if kill_leftover(pid_file))
    shutil.rmtree(instances_dir, ignore_errors=True)
    return killed


class LocalBackend:
    """SiteBackend adapter running each deployed step as a local process."""

    kind = "local"

    def __init__(
        self,
        *,
        artefacts: ArtefactCache,
        instances_dir: Path,
        executions_dir: Path,
        options: ProcessOptions,
        policy: RestartPolicy,
        retention: RetentionPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._artefacts = artefacts
        self._instances_dir = instances_dir
        self._executions_dir = executions_dir
        self._options = options
        self._policy = policy
        self._instances: dict[StepRef, StepInstance] = {}
        self.listener: StepListener = _NullListener()
        self.sandbox = SandboxState(options.sandbox)
        self.retention = Retention(
            policy=retention or RetentionPolicy(retention_seconds=0), clock=clock or SystemClock()
        )
        self._retirer: asyncio.Task[None] | None = None

    def set_listener(self, listener: StepListener) -> None:
        self.listener = listener

    def instance(self, ref: StepRef) -> StepInstance | None:
        return self._instances.get(ref)

    def process_count(self) -> int:
        return sum(1 for i in self._instances.values() if i.process is not None and i.process.alive)

    def restart_count(self) -> int:
        return sum(i.restarts for i in self._instances.values())

    def asleep_count(self) -> int:
        """Deployed steps whose process is stopped for being idle."""
        return sum(1 for i in self._instances.values() if i.asleep)

    def cold_start_count(self) -> int:
        """Processes of sleeping steps started again by an execution."""
        return sum(i.wakes for i in self._instances.values())

    def fork_server_pids(self) -> list[int]:
        servers = self._options.fork_servers
        return servers.pids() if servers is not None else []

    async def _retire(self) -> None:
        """Stop the processes idle for the retention time (checked at least every second)."""
        while True:
            wait = self.retention.next_due_in()
            await asyncio.sleep(min(wait, RETENTION_CHECK_SECONDS) if wait is not None else 1.0)
            for ref in self.retention.due():
                instance = self._instances.get(ref)
                if instance is None:
                    continue
                try:
                    if await instance.sleep():
                        self.retention.slept(ref)
                except Exception:
                    log.exception("cannot stop an idle action process", extra={"step": str(ref)})

    async def start(self) -> None:
        """Clean what a previous worker on this cache left: partial downloads, and action
        processes still running if it was killed without stopping them."""
        self._artefacts.clean_partial()
        killed = await asyncio.to_thread(_clean_instances, self._instances_dir)
        if killed:
            log.warning(
                "stopped action processes left by a previous worker", extra={"count": killed}
            )
        await self._check_sandbox()
        if self._retirer is None:
            self._retirer = asyncio.create_task(self._retire(), name="retire idle actions")

    async def _check_sandbox(self) -> None:
        """Start an empty sandbox once (readiness says whether it works) and find where the
        limits come from (cgroups v2 or v1, else rlimits)."""
        config = self._options.sandbox
        state = self.sandbox
        if not config.active:
            log.warning(
                "ACTIONS ARE NOT SANDBOXED (RYAX_SANDBOX=none): they run as this worker's user, "
                "see every file it can read and share its environment's view of the machine"
            )
        state.problem, state.start_seconds = await probe(config)
        if state.problem:
            log.error("the action sandbox does not work", extra={"reason": state.problem})
        try:
            cgroups = await asyncio.to_thread(Cgroups.setup)
            self._options = replace(self._options, cgroups=cgroups)
            state.cgroups = cgroups.describe()
        except (OSError, RuntimeError) as error:
            state.cgroups = f"rlimits (no cgroups: {error})"
        log.info(
            "action sandbox",
            extra={
                "sandbox": config.mode,
                "working": not state.problem,
                "user": f"{config.uid}:{config.gid}" if config.drops_to_uid else "worker's",
                "limits": state.cgroups,
                "empty_sandbox_start_ms": round(state.start_seconds * 1000, 1),
            },
        )

    async def deploy(self, spec: DeployStep) -> None:
        current = self._instances.get(spec.ref)
        if current is not None:
            if current.spec == replace(spec, order_seq=current.spec.order_seq):
                if current.asleep:
                    return  # deployed, its process stopped for being idle
                try:
                    await current._await_ready()
                    return
                except ActionUnavailable:
                    pass
            await self.undeploy(spec.ref)
        if self.sandbox.problem:
            raise DeploymentFailed(f"actions cannot be sandboxed here: {self.sandbox.problem}")
        artefact_dir = await self._artefacts.get(spec.artefact_key, spec.artefact_sha256)
        instance = StepInstance(
            spec=spec,
            artefact_dir=artefact_dir,
            instance_dir=self._instances_dir.joinpath(*step_dir_parts(spec.ref)),
            executions_dir=self._executions_dir.joinpath(*step_dir_parts(spec.ref)),
            options=self._options,
            policy=self._policy,
            backend=self,
        )
        await instance.start()
        self._instances[spec.ref] = instance
        self.retention.track(spec)

    async def undeploy(self, ref: StepRef) -> None:
        instance = self._instances.pop(ref, None)
        self.retention.forget(ref)
        if instance is not None:
            await instance.stop()

    async def run(
        self, ref: StepRef, request: ActionRunRequest
    ) -> AsyncGenerator[ActionEvent, None]:
        instance = self._instances.get(ref)
        if instance is None:
            raise ActionUnavailable(f"step {ref} is not deployed on this site")
        self.retention.begin(ref)
        try:
            async with aclosing(instance.run(request)) as events:
                async for event in events:
                    yield event
        finally:
            self.retention.end(ref)

    async def restart(self, ref: StepRef, reason: str) -> None:
        instance = self._instances.get(ref)
        if instance is None:
            raise ActionUnavailable(f"step {ref} is not deployed on this site")
        await instance.restart(reason)

    async def close(self) -> None:
        if self._retirer is not None:
            self._retirer.cancel()
            with contextlib.suppress(BaseException):
                await self._retirer
            self._retirer = None
        instances = list(self._instances.values())
        self._instances.clear()
        await asyncio.gather(*(instance.stop() for instance in instances), return_exceptions=True)
        if self._options.fork_servers is not None:
            await self._options.fork_servers.close()
        if self._options.cgroups is not None:
            await asyncio.to_thread(self._options.cgroups.close)

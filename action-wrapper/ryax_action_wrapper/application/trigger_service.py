"""The `service` object a trigger's `run(service, input_values)` receives (the interface Ryax
documents as RyaxSourceProtocol)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Generator, Sequence
from enum import Enum
from typing import Any

from ..domain.io import IODeclaration, PathProbe, validate_output_set
from ..domain.model import LogStream
from .channel import EventChannel


class RyaxRunStatus(Enum):
    DONE = 1
    ERROR = 2


class _Done:
    """An awaitable that is already complete (create_run called from another thread)."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class TriggerService:
    def __init__(
        self,
        *,
        channel: EventChannel,
        outputs: Sequence[IODeclaration],
        input_values: dict[str, Any],
        work_dir: str,
        probe: PathProbe,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._channel = channel
        self._outputs = tuple(outputs)
        self._work_dir = work_dir
        self._probe = probe
        self._loop = loop
        self.input_values = input_values
        # The name an older published example uses.
        self.inputs_values = input_values
        self.runs_created = 0

    def create_run(
        self,
        data: dict[str, Any],
        running_time: float = 0.001,
        status: Any = RyaxRunStatus.DONE,
    ) -> Awaitable[None]:
        """Start a new run with these outputs. The outputs are checked now (a ValueError names
        the bad output); awaiting the result waits until the run was handed to the worker.

        Works awaited or not, and from a thread the trigger started.
        """
        del running_time  # accepted for compatibility; the platform measures time itself
        if _is_error(status):
            self._channel.emit_line(
                LogStream.LOG,
                "WARNING ryax: create_run with status ERROR: failed runs from a trigger are not "
                "forwarded by this platform yet; no run was created",
            )
            return _Done()
        if not isinstance(data, dict):
            raise TypeError(f"create_run expects a dict of outputs, got {type(data).__name__}")
        outputs, ignored = validate_output_set(
            self._outputs, data, work_dir=self._work_dir, probe=self._probe
        )
        if ignored:
            self._channel.emit_line(
                LogStream.LOG,
                f"WARNING ryax: create_run: ignored undeclared output(s): {', '.join(ignored)}",
            )
        self.runs_created += 1
        if _on_loop(self._loop):
            return self._channel.send_new_run(outputs)
        done = threading.Event()
        self._loop.call_soon_threadsafe(
            lambda: self._channel.send_new_run(outputs).add_done_callback(lambda _: done.set())
        )
        done.wait()
        return _Done()

    async def create_run_error(self) -> None:
        await self.create_run({}, status=RyaxRunStatus.ERROR)

    def get_output_definitions(self) -> dict[str, Any]:
        return {
            d.name: {
                "type": d.type.value,
                "optional": d.optional,
                "enum_values": list(d.enum_values),
            }
            for d in self._outputs
        }


def _is_error(status: Any) -> bool:
    return getattr(status, "name", None) == "ERROR" or status == RyaxRunStatus.ERROR.value


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False

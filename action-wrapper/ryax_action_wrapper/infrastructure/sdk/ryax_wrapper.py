"""Names published Ryax triggers import (`from ryax_wrapper import RyaxSourceProtocol`)."""

from __future__ import annotations

from typing import Any, Protocol

from ryax_action_wrapper.application.trigger_service import RyaxRunStatus

__all__ = ["RyaxRunStatus", "RyaxSourceProtocol"]


class RyaxSourceProtocol(Protocol):
    input_values: dict[str, Any]

    async def create_run(
        self,
        data: dict[str, Any],
        running_time: float = 0.001,
        status: RyaxRunStatus = RyaxRunStatus.DONE,
    ) -> None: ...

    async def create_run_error(self) -> None: ...

    def get_output_definitions(self) -> dict[str, Any]: ...

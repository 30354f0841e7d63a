"""Timer trigger: start a run every `interval` seconds."""

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol


class RunCreator(Protocol):
    """The part of the service the action wrapper passes to `run` that this trigger uses."""

    async def create_run(self, data: dict[str, Any]) -> None: ...


async def run(service: RunCreator, input_values: dict[str, Any]) -> None:
    interval = int(input_values["interval"])
    max_runs = int(input_values.get("max_runs") or 0)
    if interval < 1:
        raise ValueError(f"interval must be at least 1 second, got {interval}")
    runs = 0
    while max_runs == 0 or runs < max_runs:
        await service.create_run({"time": datetime.now(UTC).isoformat(timespec="seconds")})
        runs += 1
        if max_runs == 0 or runs < max_runs:
            await asyncio.sleep(interval)

"""Run a fake worker as its own process: `python -m runner_testkit.worker_main ADDRESS [SITE]`,
the site's credential in RYAX_SITE_CREDENTIAL.

Its executions return {"out": inputs["x"]} at once (a no-op action)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from runner_testkit.fake_worker import FakeWorker
from ryax_runner.domain.values import Value


async def noop(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    return {"out": inputs.get("x")}


async def main(address: str, site: str) -> None:
    worker = FakeWorker(
        address,
        site_name=site,
        worker_id=f"fake-{site}",
        handler=noop,
        log_lines=1,
        credential=os.environ.get("RYAX_SITE_CREDENTIAL", ""),
    )
    for _ in range(100):
        try:
            await worker.start()
            break
        except Exception:  # noqa: BLE001 - the runner may not listen yet
            await worker.stop()
            await asyncio.sleep(0.2)
    print("registered", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "site-1"))

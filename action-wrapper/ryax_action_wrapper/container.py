"""The one place that names concrete adapters. No I/O here.

(No dependency-injector: everything the wrapper imports is copied into every built action, so
it keeps to the standard library, grpcio and protobuf.)
"""

from __future__ import annotations

from .application.runtime import ActionRuntime
from .infrastructure.capture import CaptureLogHandler, FdCapture
from .infrastructure.files import ProcessWorkingDirectory, probe_path
from .infrastructure.loader import ImportlibCodeLoader


def build_runtime(log_handler: CaptureLogHandler) -> tuple[ActionRuntime, FdCapture]:
    """The runtime, and the capture of the process's output to close when the process ends."""
    capture = FdCapture(log_handler)
    runtime = ActionRuntime(
        loader=ImportlibCodeLoader(),
        capture=capture,
        workdir=ProcessWorkingDirectory(),
        probe=probe_path,
    )
    return runtime, capture

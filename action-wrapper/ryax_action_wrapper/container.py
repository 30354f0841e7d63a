"""The one place that names concrete adapters. No I/O here.

(No dependency-injector: everything the wrapper imports is copied into every built action, so
it keeps to the standard library, grpcio and protobuf.)
"""

from __future__ import annotations

from .application.runtime import ActionRuntime
from .infrastructure.capture import CaptureLogHandler, FdCapture
from .infrastructure.files import ProcessWorkingDirectory, probe_path
from .infrastructure.loader import ImportlibCodeLoader


def build_runtime(log_handler: CaptureLogHandler) -> ActionRuntime:
    return ActionRuntime(
        loader=ImportlibCodeLoader(),
        capture=FdCapture(log_handler),
        workdir=ProcessWorkingDirectory(),
        probe=probe_path,
    )

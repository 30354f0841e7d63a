"""Import the user code from the action folder."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..application.ports import CodeLoadError
from ..domain.model import ActionKind

#: Folder holding the `ryax` and `ryax_wrapper` helper modules offered to user code.
SDK_DIR = str(Path(__file__).resolve().parent / "sdk")


class ImportlibCodeLoader:
    def load(self, action_dir: str, kind: ActionKind) -> Callable[..., Any]:
        folder = Path(action_dir)
        entry_file = folder / kind.entry_file
        if not folder.is_dir():
            raise CodeLoadError(f"action folder {action_dir} does not exist")
        if not entry_file.is_file():
            raise CodeLoadError(f"{kind.entry_file} not found in {action_dir} (a {kind} needs it)")
        for path in (str(folder.resolve()), SDK_DIR):
            if path in sys.path:
                sys.path.remove(path)
            sys.path.insert(0, path)
        module_name = entry_file.stem
        # A second Init reloads the code (and the helper modules of the action folder).
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if name == module_name or file.startswith(str(folder.resolve()) + os.sep):
                del sys.modules[name]
        spec = importlib.util.spec_from_file_location(module_name, entry_file)
        if spec is None or spec.loader is None:
            raise CodeLoadError(f"{kind.entry_file}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        previous = os.getcwd()
        try:
            # Code that reads its own files at import time finds them.
            os.chdir(folder)
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is a load error too
            del sys.modules[module_name]
            raise CodeLoadError(
                f"{kind.entry_file}: {_describe(exc)}", _import_traceback(exc, entry_file)
            ) from None
        finally:
            os.chdir(previous)
        function = getattr(module, kind.entry_function, None)
        if function is None:
            raise CodeLoadError(f"{kind.entry_file} has no {kind.entry_function}() function")
        if not callable(function):
            raise CodeLoadError(f"{kind.entry_file}: {kind.entry_function} is not a function")
        return function  # type: ignore[no-any-return]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import_traceback(exc: BaseException, entry_file: Path) -> str:
    te = traceback.TracebackException.from_exception(exc)
    frames = list(te.stack)
    # Drop importlib's frames: start at the user's entry file.
    for index, frame in enumerate(frames):
        if frame.filename == str(entry_file):
            te.stack = traceback.StackSummary.from_list(frames[index:])
            break
    return "".join(te.format())

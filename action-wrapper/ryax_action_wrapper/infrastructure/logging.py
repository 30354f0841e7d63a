"""Structured logging: one line per record, JSON when RYAX_LOG_FORMAT=json, secrets masked.

A copy of `ryax_kit.logging`'s formatters, because the wrapper runs inside users' environments
and imports nothing outside its package; tests/unit/test_logging_parity.py checks both write the
same lines, so change the two together.

Fields given with `extra={...}` become keys of the JSON line (or `key=value` in text). A field
whose name says it holds a secret (password, secret, token, authorization, credential, key of a
known kind) is written `***`; a `Bearer <token>` or a URL password in any message, field or
traceback is masked too.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|credential|api[_-]?key|private[_-]?key", re.I
)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
#: Credentials inside URLs: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+(@)", re.I)


def mask_text(text: str) -> str:
    """Mask bearer tokens and URL passwords in free text."""
    return _URL_PASSWORD.sub(r"\1***\2", _BEARER.sub(r"\1***", text))


def mask_field(key: str, value: object) -> object:
    """`***` for a field whose name says it is secret; masked text for any other string."""
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        return mask_text(value)
    return value


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: mask_field(key, value)
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": mask_text(record.getMessage()),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: " + mask_text(
            record.getMessage()
        )
        text = f"{base} {extras}" if extras else base
        if record.exc_info:
            text += "\n" + mask_text(self.formatException(record.exc_info))
        return text

"""The wrapper's log formatters are a copy of `ryax_kit.logging`'s (the wrapper imports nothing
outside its package): the same records must give the same lines, so the copy cannot drift."""

from __future__ import annotations

import ast
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ryax_action_wrapper.infrastructure import logging as wrapper
from ryax_kit import logging as kit

SERVICE = "action-wrapper"

#: JSON fields that may differ between the two formatters. None can: both format the same
#: record object (same `created`, same exc_info), so `ts` and `exc` match to the letter too.
#: A field added here is a difference the copy is allowed to keep: say why beside it.
CANNOT_MATCH: frozenset[str] = frozenset()


def record(
    msg: str, *args: object, exc: bool = False, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError(
                "cannot reach amqp://ryax:s3cr3t@broker:5672/ with Bearer abc.def-123"
            )
        except ConnectionError:
            exc_info = sys.exc_info()
    r = logging.LogRecord("ryax_action_wrapper.test", level, __file__, 42, msg, args, exc_info)
    r.__dict__.update(extra)
    return r


RECORDS = {
    "plain": lambda: record("execution started"),
    "extras": lambda: record(
        "run %s of %d inputs",
        "exec-1",
        3,
        execution_id="exec-1",
        attempt=2,
        ratio=0.5,
        done=False,
        nothing=None,
        outputs={"slug": "hello-world"},
        names=["a", "b"],
        path=Path("/tmp/work"),
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        note="unicode: é ✓",
        _private="never shown",
    ),
    "secrets": lambda: record(
        "called with Bearer abc.def-123 on postgresql://u:pw@db/ryax",
        password="hunter2",
        db_password="hunter3",
        secret="s",
        client_secret="cs",
        token="t0k3n",
        authorization="Bearer zzz",
        credentials={"user": "u"},
        api_key="k",
        apikey="k2",
        private_key="-----BEGIN",
        url="amqp://guest:guest-pass@127.0.0.1:5672/ryax",
        header="Authorization: Bearer abc.def-123",
    ),
    "exception": lambda: record(
        "handler failed for %s", "https://user:pw@example.org/x", exc=True, level=logging.ERROR
    ),
    "exception and extras": lambda: record(
        "boom", exc=True, level=logging.ERROR, execution_id="e", token="t"
    ),
}


def comparable(line: str) -> list[tuple[str, object]]:
    """The line's fields in their order, without those that cannot match."""
    fields = json.loads(line)
    return [(k, v) for k, v in fields.items() if k not in CANNOT_MATCH]


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_json_lines_are_the_kits(name: str) -> None:
    r = RECORDS[name]()
    ours = wrapper.JsonFormatter(SERVICE).format(r)
    theirs = kit.JsonFormatter(SERVICE).format(r)
    assert comparable(ours) == comparable(theirs)
    if not CANNOT_MATCH:
        assert ours == theirs


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_text_lines_are_the_kits(name: str) -> None:
    r = RECORDS[name]()
    assert wrapper.TextFormatter().format(r) == kit.TextFormatter().format(r)


def test_secrets_never_reach_the_line() -> None:
    for name, make in RECORDS.items():
        r = make()
        for line in (wrapper.JsonFormatter(SERVICE).format(r), wrapper.TextFormatter().format(r)):
            for secret in ("hunter", "s3cr3t", "abc.def-123", "t0k3n", "guest-pass", ":pw@"):
                assert secret not in line, (name, secret, line)
    fields = json.loads(wrapper.JsonFormatter(SERVICE).format(RECORDS["secrets"]()))
    assert fields["api_key"] == fields["private_key"] == fields["password"] == "***"
    assert fields["url"] == "amqp://guest:***@127.0.0.1:5672/ryax"
    assert fields["msg"] == "called with Bearer *** on postgresql://u:***@db/ryax"


def test_the_wrapper_imports_nothing_of_the_kit() -> None:
    """Why the copy exists: the wrapper runs in users' environments, where the kit is not."""
    package = Path(wrapper.__file__).resolve().parents[1]
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "ryax_kit" for n in names), (source, names)

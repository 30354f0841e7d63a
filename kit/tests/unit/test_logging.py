from __future__ import annotations

import json
import logging

import pytest

from ryax_kit.logging import JsonFormatter, TextFormatter, configure_logging, mask_text


def record(msg: str, **extra: object) -> logging.LogRecord:
    r = logging.LogRecord("ryax.test", logging.INFO, __file__, 1, msg, None, None)
    r.__dict__.update(extra)
    return r


def test_json_lines_carry_the_extras_and_mask_secrets() -> None:
    line = json.loads(
        JsonFormatter("runner").format(
            record(
                "called with Bearer abc.def-123",
                run_id="r1",
                password="hunter2",
                api_key="k",
                url="amqp://guest:s3cr3t@127.0.0.1:5672/ryax",
            )
        )
    )
    assert line["service"] == "runner"
    assert line["level"] == "info"
    assert line["msg"] == "called with Bearer ***"
    assert line["run_id"] == "r1"
    assert line["password"] == "***"
    assert line["api_key"] == "***"
    assert line["url"] == "amqp://guest:***@127.0.0.1:5672/ryax"


def test_text_lines() -> None:
    text = TextFormatter().format(record("hello", token="t0k3n", n=3))
    assert "hello" in text and "token=***" in text and "n=3" in text
    assert "t0k3n" not in text


def test_exceptions_are_masked_too() -> None:
    try:
        raise RuntimeError("connect to postgresql://u:pw@h/db failed")
    except RuntimeError:
        import sys

        r = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    line = json.loads(JsonFormatter("s").format(r))
    assert "pw@" not in line["exc"] and "u:***@h" in line["exc"]


def test_mask_text_leaves_ordinary_text() -> None:
    assert mask_text("run 12 ended: completed") == "run 12 ended: completed"


def test_configure_logging_refuses_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("s", "xml", "info")

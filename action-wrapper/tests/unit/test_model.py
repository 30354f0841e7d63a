from __future__ import annotations

from dataclasses import dataclass

import pytest

from ryax_action_wrapper.domain.model import clamp_fraction, describe_exception


@dataclass
class RyaxException(Exception):
    message: str
    code: int


def test_exception_with_message_and_code_sets_http_status() -> None:
    assert describe_exception(RyaxException(message="not here", code=404)) == ("not here", 404)


def test_out_of_range_code_is_no_status() -> None:
    assert describe_exception(RyaxException(message="x", code=42)) == ("x", 0)


def test_plain_exception() -> None:
    assert describe_exception(ValueError("bad image")) == ("ValueError: bad image", 0)
    assert describe_exception(KeyError()) == ("KeyError", 0)


def test_progress_fraction() -> None:
    assert clamp_fraction(0.5) == 0.5
    assert clamp_fraction(3) == 1.0
    assert clamp_fraction(-1) == 0.0
    with pytest.raises(TypeError):
        clamp_fraction("half")

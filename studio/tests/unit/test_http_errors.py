"""How the studio's domain errors are answered over HTTP (status, code, located problems)."""

from __future__ import annotations

import json

import pytest

from ryax_studio.domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Conflict,
    DomainError,
    Forbidden,
    InvalidDocument,
    InvalidInput,
    InvalidWorkflow,
    NotFound,
)
from ryax_studio.domain.problems import Problem
from ryax_studio.infrastructure.api.routes import ERRORS

PROBLEM = Problem(code="invalid_document", message="spec: bad", line=4, path="spec")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("name", "bad"), 400),
        (AuthenticationFailed(), 401),
        (Forbidden("no"), 403),
        (NotFound("none"), 404),
        (AlreadyExists("taken"), 409),
        (Conflict("later"), 409),
        (InvalidDocument([PROBLEM]), 400),
        (InvalidDocument([PROBLEM], code="invalid_yaml"), 400),
        (InvalidDocument([PROBLEM], code="too_many_steps"), 400),
        (InvalidDocument([PROBLEM], code="too_large"), 413),
        (InvalidWorkflow([PROBLEM]), 422),
    ],
)
def test_statuses(error: DomainError, status: int) -> None:
    assert ERRORS.status_of(error) == status


def test_an_invalid_document_lists_its_problems() -> None:
    answer = ERRORS.answer(InvalidDocument([PROBLEM], code="invalid_yaml"))
    assert answer.text is not None
    assert json.loads(answer.text) == {
        "error": "invalid_yaml",
        "detail": "line 4: spec: bad",
        "problems": [
            {
                "code": "invalid_document",
                "message": "spec: bad",
                "step_id": None,
                "input": None,
                "line": 4,
                "path": "spec",
                "file": None,
            }
        ],
    }
    assert "problems" not in json.loads(ERRORS.answer(NotFound("x")).text or "{}")

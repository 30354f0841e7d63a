"""The worker's protobuf mappers carry "the action returned a list" end to end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ryax_worker.domain.model import ExecutionFinished, ExecutionId, ExecutionStatus
from ryax_worker.infrastructure.grpc.mappers import (
    MAX_REPORT_BYTES,
    bounded_report_to_proto,
    report_to_proto,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("is_list", [True, False])
def test_an_empty_list_result_is_not_mistaken_for_no_outputs(is_list: bool) -> None:
    finished = ExecutionFinished(
        execution_id=ExecutionId("e1"),
        status=ExecutionStatus.COMPLETED,
        started_at=AT,
        ended_at=AT,
        outputs_list=(),
        outputs_is_list=is_list,
    )
    message = report_to_proto(7, finished)
    assert message.report_seq == 7
    assert message.execution_result.outputs_is_list is is_list
    assert len(message.execution_result.outputs_list) == 0


def test_a_result_too_large_for_a_report_fails_naming_its_largest_outputs() -> None:
    finished = ExecutionFinished(
        execution_id=ExecutionId("e2"),
        status=ExecutionStatus.COMPLETED,
        started_at=AT,
        ended_at=AT,
        outputs={"big": "x" * (MAX_REPORT_BYTES + 10), "small": "ok"},
    )
    message = bounded_report_to_proto(8, finished)
    result = message.execution_result
    assert message.ByteSize() <= MAX_REPORT_BYTES
    assert len(result.outputs) == 0
    assert result.error.startswith("output `big` is ")
    assert "output `small` is" in result.error
    assert "return large values as files" in result.error

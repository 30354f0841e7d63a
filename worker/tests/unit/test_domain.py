"""Domain rules: report numbering and buffering, order dedup, local file names, policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ryax_worker.domain.errors import InvalidInput
from ryax_worker.domain.model import (
    Backoff,
    DeploymentId,
    DeploymentStateChanged,
    DeploymentStateKind,
    ExecutionFinished,
    ExecutionId,
    ExecutionProgressed,
    ExecutionStatus,
    FileRef,
    Heartbeat,
    LogLine,
    LogStream,
    OrderAck,
    OrderLedger,
    ReportBuffer,
    RestartPolicy,
    StepId,
    StepRef,
    input_path_parts,
    parse_memory,
    safe_file_name,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)
REF = StepRef(DeploymentId("d1"), StepId("s1"))


def result(execution: str) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id=ExecutionId(execution),
        status=ExecutionStatus.COMPLETED,
        started_at=AT,
        ended_at=AT,
    )


def state(kind: DeploymentStateKind = DeploymentStateKind.READY) -> DeploymentStateChanged:
    return DeploymentStateChanged(ref=REF, state=kind, reason="", at=AT)


def log(seq: int) -> LogLine:
    return LogLine(
        seq=seq, stream=LogStream.STDOUT, line=f"l{seq}", at=AT, execution_id=ExecutionId("e")
    )


def take_all(buffer: ReportBuffer) -> list[tuple[int, object]]:
    out: list[tuple[int, object]] = []
    while (numbered := buffer.take()) is not None:
        out.append((numbered.seq, numbered.report))
    return out


class TestReportBuffer:
    def test_numbers_in_order_from_one(self) -> None:
        buffer = ReportBuffer()
        buffer.add(state())
        buffer.add(Heartbeat(seq=1, at=AT))
        buffer.add(result("e1"))
        assert [seq for seq, _ in take_all(buffer)] == [1, 2, 3]

    def test_keeps_reliable_reports_until_acked(self) -> None:
        buffer = ReportBuffer()
        for report in (state(), Heartbeat(seq=1, at=AT), result("e1"), OrderAck(order_seq=4)):
            buffer.add(report)
        take_all(buffer)
        assert buffer.unacked() == 2  # the state and the result
        buffer.ack(1)
        assert buffer.unacked() == 1
        buffer.ack(3)
        assert buffer.is_settled()

    def test_resume_resends_unacked_with_their_numbers_first(self) -> None:
        buffer = ReportBuffer()
        buffer.add(state())  # 1
        buffer.add(result("e1"))  # 2
        buffer.add(log(1))  # 3
        take_all(buffer)
        buffer.ack(1)
        buffer.add(result("e2"))  # created while disconnected: not numbered yet
        buffer.add(Heartbeat(seq=9, at=AT))  # stale after a reconnect
        buffer.resume(last_applied=2)
        sent = take_all(buffer)
        # Only a ReportAck makes the buffer forget: 2 is re-sent although the runner applied it.
        assert [seq for seq, _ in sent] == [2, 3, 4]
        assert sent[0][1] == result("e1")
        assert sent[2][1] == result("e2")

    def test_resume_numbers_after_the_runners_last_seq(self) -> None:
        buffer = ReportBuffer()  # a worker restarted from scratch
        buffer.add(state())
        buffer.resume(last_applied=500)
        assert [seq for seq, _ in take_all(buffer)] == [501]
        buffer.ack(501)
        buffer.resume(last_applied=3)  # never goes back
        buffer.add(state())
        assert [seq for seq, _ in take_all(buffer)] == [502]

    def test_resume_drops_stale_heartbeats_progress_and_acks(self) -> None:
        buffer = ReportBuffer()
        buffer.add(Heartbeat(seq=1, at=AT))
        buffer.add(OrderAck(order_seq=3))
        buffer.add(ExecutionProgressed(execution_id=ExecutionId("e"), fraction=0.5, message=""))
        buffer.add(log(1))
        buffer.resume(0)
        assert [type(r).__name__ for _, r in take_all(buffer)] == ["LogLine"]

    def test_unsettled_ids_cover_pending_and_unacked_results(self) -> None:
        buffer = ReportBuffer()
        buffer.add(result("sent"))
        buffer.take()
        buffer.add(result("pending"))
        assert buffer.unsettled_ids() == {"sent", "pending"}
        buffer.ack(1)
        assert buffer.unsettled_ids() == {"pending"}

    def test_bounded_memory_drops_oldest_log_lines_only(self) -> None:
        buffer = ReportBuffer(max_kept_logs=3)
        buffer.add(result("e1"))
        for seq in range(1, 5):
            buffer.add(log(seq))
        assert buffer.dropped_logs == 2
        kinds = [r for _, r in take_all(buffer)]
        assert kinds[0] == result("e1")
        assert [r.seq for r in kinds[1:] if isinstance(r, LogLine)] == [3, 4]


def test_order_ledger_ignores_replays() -> None:
    ledger = OrderLedger()
    assert ledger.is_new(1)
    ledger.handled(1)
    ledger.handled(3)
    assert not ledger.is_new(2)
    assert not ledger.is_new(3)
    assert ledger.is_new(4)


class TestLocalNames:
    def test_names_are_reduced_to_one_segment(self) -> None:
        assert safe_file_name("/tmp/work/../x/a.txt") == "a.txt"
        assert safe_file_name("..") == "file"
        assert safe_file_name("dir/") == "dir"

    def test_input_path(self) -> None:
        ref = FileRef(key="runs/x/y/out/../../evil", name="../../evil")
        assert input_path_parts("data", ref) == ("data", "evil")


def test_parse_memory() -> None:
    assert parse_memory("2048") == 2048
    # K, M, G, T are powers of 1024, as in a step's resources.memory (the studio's).
    assert parse_memory("4G") == parse_memory("4GiB") == parse_memory("4gb") == 4 * 2**30
    assert parse_memory("512Mi") == parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5T") == int(1.5 * 2**40)
    assert parse_memory("100B") == 100
    with pytest.raises(InvalidInput):
        parse_memory("lots")


def test_restart_policy() -> None:
    policy = RestartPolicy(initial_delay_seconds=1, max_delay_seconds=5, max_consecutive_failures=3)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    assert not policy.gives_up(3)
    assert policy.gives_up(4)


def test_backoff_doubles_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=2)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1, 2, 2]
    backoff.reset()
    assert backoff.next_delay() == 0.5

"""What the runner writes on a worker's stream: report acks carried by the orders waiting to
leave (a worker that said acks_with_orders), or a ReportAck message each (one that did not)."""

from __future__ import annotations

from ryax_runner.application.messages import CancelOrder, ReportAck
from ryax_runner.infrastructure.grpc.server import StreamChannel
from ryax_runner.infrastructure.proto import worker_service_pb2 as pb


def written(channel: StreamChannel) -> list[tuple[str | None, int, int]]:
    """(kind, order_seq or report_ack's seq, acked_report_seq) of each message written."""
    out = []
    while not channel.queue.empty():
        queued = channel.queue.get_nowait()
        assert queued is not None
        message = channel.stamp(queued)
        if message is None:
            continue
        kind = message.WhichOneof("message")
        seq = message.report_ack.report_seq if kind == "report_ack" else message.order_seq
        out.append((kind, seq, message.acked_report_seq))
    return out


def cancel(seq: int) -> CancelOrder:
    return CancelOrder(order_seq=seq, execution_id=f"e{seq}", reason="test")


def test_acks_ride_on_the_orders_waiting_to_leave() -> None:
    channel = StreamChannel(acks_with_orders=True)
    channel.send(cancel(1))
    channel.send(cancel(2))
    channel.send(ReportAck(report_seq=7))  # orders queued: no message of its own
    assert written(channel) == [("cancel", 1, 7), ("cancel", 2, 0)]
    channel.send(ReportAck(report_seq=9))  # nothing queued: a ReportAck
    channel.send(cancel(3))
    channel.send(ReportAck(report_seq=11))  # folded into the ReportAck still queued
    assert written(channel) == [("report_ack", 11, 0), ("cancel", 3, 0)]
    channel.send(ReportAck(report_seq=12))
    channel.send(cancel(4))
    queued = channel.queue.get_nowait()
    assert queued is not None and channel.stamp(queued) is not None  # the ack, at 12
    channel.send(ReportAck(report_seq=12))  # an ack already written: the order carries none
    assert written(channel) == [("cancel", 4, 0)]


def test_a_report_ack_already_carried_is_not_written() -> None:
    channel = StreamChannel(acks_with_orders=True)
    channel.send(ReportAck(report_seq=5))
    channel.queue.put_nowait(pb.RunnerMessage(order_seq=1, cancel=pb.Cancel(execution_id="x")))
    first = channel.queue.get_nowait()
    channel.queue.put_nowait(first)  # the order now written before the ReportAck
    assert written(channel) == [("cancel", 1, 5)]


def test_a_worker_without_acks_with_orders_gets_each_report_ack() -> None:
    channel = StreamChannel()
    channel.send(cancel(1))
    channel.send(ReportAck(report_seq=7))
    channel.send(ReportAck(report_seq=8))
    assert written(channel) == [("cancel", 1, 0), ("report_ack", 7, 0), ("report_ack", 8, 0)]

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ryax_kit.messaging.consumer import RetryPolicy, TransientError, is_poison, is_transient
from ryax_kit.testing import FakeClock, FakeTimers


def test_fake_timers_run_due_callbacks_in_order_and_move_the_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    timers = FakeTimers(clock)
    seen: list[tuple[str, float]] = []
    timers.call_later(2, lambda: seen.append(("b", timers.monotonic())))
    first = timers.call_later(1, lambda: seen.append(("a", timers.monotonic())))
    cancelled = timers.call_later(1.5, lambda: seen.append(("x", 0)))
    cancelled.cancel()

    def chain() -> None:
        seen.append(("c", timers.monotonic()))
        timers.call_later(0.5, lambda: seen.append(("d", timers.monotonic())))

    timers.call_later(2.5, chain)
    timers.advance(2.9)
    assert [name for name, _ in seen] == ["a", "b", "c"]
    assert first is not None
    timers.advance(0.1)
    assert [name for name, _ in seen] == ["a", "b", "c", "d"]
    assert seen[-1][1] == pytest.approx(1003.0)
    assert (clock.now() - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() == pytest.approx(3)
    assert timers.pending == 0


def test_transient_classification() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(TransientError("later"))
    assert not is_transient(ValueError("bad"))
    try:
        try:
            raise OSError("socket closed")
        except OSError as inner:
            raise RuntimeError("statement failed") from inner
    except RuntimeError as wrapped:
        assert is_transient(wrapped)

    class Invalidated(Exception):
        connection_invalidated = True

    assert is_transient(Invalidated())


def test_sqlalchemy_and_driver_errors_are_classified_by_name() -> None:
    import asyncpg
    import sqlalchemy.exc

    assert is_transient(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("down")))
    assert not is_transient(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("dup")))
    # The driver refusing a value is about the value: retrying it would never end.
    refused = asyncpg.DataError("invalid input for query argument $1")
    assert not is_transient(sqlalchemy.exc.DBAPIError("INSERT", {}, refused))
    assert is_transient(asyncpg.exceptions._base.InterfaceError("connection is closed"))
    from google.protobuf.message import DecodeError

    assert is_poison(DecodeError("truncated"))


def test_retry_policy_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(first_delay_seconds=0.5, max_delay_seconds=4)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]

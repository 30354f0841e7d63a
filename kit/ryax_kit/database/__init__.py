"""PostgreSQL for every service: the engine, the service's own database created at start,
Alembic migrations applied at start (serialised by an advisory lock), and the unit-of-work
base (one session per request or message; exit rolls back; commit saves, writes the events to
the outbox in the same transaction, and wakes the relay), and a lease (one holder at a time:
a session advisory lock on a connection of its own, `lease.Lease`)."""

from .engine import (
    MigrationFailed,
    alembic_config,
    create_engine,
    ensure_database,
    migrate,
    ping,
)
from .lease import Lease
from .uow import SqlAlchemyUnitOfWorkBase

__all__ = [
    "Lease",
    "MigrationFailed",
    "SqlAlchemyUnitOfWorkBase",
    "alembic_config",
    "create_engine",
    "ensure_database",
    "migrate",
    "ping",
]

"""The one place that names concrete adapters. Building it does no I/O (the signing keys are
read when `tokens` is first asked for, at the start of the app)."""

from __future__ import annotations

from datetime import timedelta

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.core import SystemClock
from ryax_kit.database import create_engine

from .application.use_cases import AuthorizationUseCases
from .domain.model import LockoutPolicy
from .infrastructure.database.uow import SqlAlchemyUnitOfWork
from .infrastructure.security import Argon2PasswordHasher, JwtAccessTokens
from .settings import Settings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    engine = providers.Singleton(create_engine, url=settings.provided.database_url)
    session_factory = providers.Singleton(
        async_sessionmaker[AsyncSession], engine, expire_on_commit=False
    )
    uow = providers.Factory(SqlAlchemyUnitOfWork, session_factory=session_factory)
    clock = providers.Singleton(SystemClock)
    hasher = providers.Singleton(Argon2PasswordHasher)
    #: Reads the key files (a bad one stops the start, naming the variable).
    tokens = providers.Singleton(
        JwtAccessTokens.from_files,
        current=settings.provided.signing_key_file,
        previous=settings.provided.signing_key_previous_files,
        lifetime=providers.Factory(timedelta, minutes=settings.provided.access_token_minutes),
    )
    lockout = providers.Singleton(
        LockoutPolicy,
        max_failures=settings.provided.login_max_failures,
        lock_for=providers.Factory(timedelta, seconds=settings.provided.login_lock_seconds),
    )
    use_cases = providers.Singleton(
        AuthorizationUseCases,
        uow_factory=uow.provider,
        hasher=hasher,
        tokens=tokens,
        clock=clock,
        lockout=lockout,
    )

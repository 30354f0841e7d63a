"""SQL repositories. They track the aggregates they hand out; the unit of work saves them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain.model import (
    ApiKeyId,
    LoginAttempts,
    MachineToken,
    Project,
    ProjectApiKey,
    ProjectId,
    Role,
    TokenId,
    User,
    UserId,
)
from .tables import (
    login_attempts,
    machine_tokens,
    memberships,
    project_api_keys,
    projects,
    revoked_tokens,
    users,
)


def _user(row: Any) -> User:
    return User(
        id=UserId(row.id),
        username=row.username,
        password_hash=row.password_hash,
        is_admin=row.is_admin,
        created_at=row.created_at,
        token_generation=row.token_generation,
    )


class SqlAlchemyUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[UserId, User] = {}

    def _track(self, user: User | None) -> User | None:
        if user is not None:
            self.seen[user.id] = user
        return user

    async def add(self, user: User) -> None:
        self.seen[user.id] = user

    async def get(self, user_id: UserId) -> User | None:
        row = (await self._session.execute(sa.select(users).where(users.c.id == user_id))).first()
        return self._track(_user(row)) if row else None

    async def get_by_username(self, username: str) -> User | None:
        query = sa.select(users).where(users.c.username == username)
        row = (await self._session.execute(query)).first()
        return self._track(_user(row)) if row else None

    async def list_all(self) -> list[User]:
        rows = (await self._session.execute(sa.select(users).order_by(users.c.username))).all()
        return [_user(r) for r in rows]

    async def count(self) -> int:
        return int(
            (
                await self._session.execute(sa.select(sa.func.count()).select_from(users))
            ).scalar_one()
        )

    async def save(self) -> None:
        for user in self.seen.values():
            values = {
                "id": user.id,
                "username": user.username,
                "password_hash": user.password_hash,
                "is_admin": user.is_admin,
                "created_at": user.created_at,
                "token_generation": user.token_generation,
            }
            stmt = insert(users).values(**values)
            stmt = stmt.on_conflict_do_update(index_elements=[users.c.id], set_=values)
            await self._session.execute(stmt)


class SqlAlchemyProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[ProjectId, Project] = {}

    async def _load(self, where: sa.ColumnElement[bool]) -> list[Project]:
        rows = (
            await self._session.execute(sa.select(projects).where(where).order_by(projects.c.name))
        ).all()
        if not rows:
            return []
        ids = [r.id for r in rows]
        members = (
            await self._session.execute(
                sa.select(memberships).where(memberships.c.project_id.in_(ids))
            )
        ).all()
        by_project: dict[str, dict[UserId, Role]] = {i: {} for i in ids}
        for m in members:
            by_project[m.project_id][UserId(m.user_id)] = Role(m.role)
        result = [
            Project(
                id=ProjectId(r.id), name=r.name, created_at=r.created_at, members=by_project[r.id]
            )
            for r in rows
        ]
        for p in result:
            self.seen[p.id] = p
        return result

    async def add(self, project: Project) -> None:
        self.seen[project.id] = project

    async def get(self, project_id: ProjectId) -> Project | None:
        found = await self._load(projects.c.id == project_id)
        return found[0] if found else None

    async def get_by_name(self, name: str) -> Project | None:
        found = await self._load(projects.c.name == name)
        return found[0] if found else None

    async def list_all(self) -> list[Project]:
        return await self._load(sa.true())

    async def list_for_user(self, user_id: UserId) -> list[Project]:
        member_of = sa.select(memberships.c.project_id).where(memberships.c.user_id == user_id)
        return await self._load(projects.c.id.in_(member_of))

    async def save(self) -> None:
        for p in self.seen.values():
            values = {"id": p.id, "name": p.name, "created_at": p.created_at}
            stmt = insert(projects).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[projects.c.id], set_=values)
            )
            await self._session.execute(
                sa.delete(memberships).where(memberships.c.project_id == p.id)
            )
            if p.members:
                await self._session.execute(
                    sa.insert(memberships),
                    [
                        {"project_id": p.id, "user_id": u, "role": str(r)}
                        for u, r in p.members.items()
                    ],
                )


def _token(row: Any) -> MachineToken:
    return MachineToken(
        id=TokenId(row.id),
        user_id=UserId(row.user_id),
        name=row.name,
        token_hash=row.token_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class SqlAlchemyMachineTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[TokenId, MachineToken] = {}

    async def _one(self, where: sa.ColumnElement[bool]) -> MachineToken | None:
        row = (await self._session.execute(sa.select(machine_tokens).where(where))).first()
        if row is None:
            return None
        token = _token(row)
        self.seen[token.id] = token
        return token

    async def add(self, token: MachineToken) -> None:
        self.seen[token.id] = token

    async def get(self, token_id: TokenId) -> MachineToken | None:
        return await self._one(machine_tokens.c.id == token_id)

    async def get_by_hash(self, token_hash: str) -> MachineToken | None:
        return await self._one(machine_tokens.c.token_hash == token_hash)

    async def list_for_user(self, user_id: UserId) -> list[MachineToken]:
        query = (
            sa.select(machine_tokens)
            .where(machine_tokens.c.user_id == user_id)
            .order_by(machine_tokens.c.created_at)
        )
        return [_token(r) for r in (await self._session.execute(query)).all()]

    async def revoke_all_for_user(self, user_id: UserId, now: datetime) -> int:
        for token in self.seen.values():
            if token.user_id == user_id:
                token.revoke(now)
        result = await self._session.execute(
            sa.update(machine_tokens)
            .where(machine_tokens.c.user_id == user_id, machine_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def save(self) -> None:
        for t in self.seen.values():
            values = {
                "id": t.id,
                "user_id": t.user_id,
                "name": t.name,
                "token_hash": t.token_hash,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "revoked_at": t.revoked_at,
                "last_used_at": t.last_used_at,
            }
            stmt = insert(machine_tokens).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[machine_tokens.c.id], set_=values)
            )


def _api_key(row: Any) -> ProjectApiKey:
    return ProjectApiKey(
        id=ApiKeyId(row.id),
        project_id=ProjectId(row.project_id),
        name=row.name,
        key_hash=row.key_hash,
        created_at=row.created_at,
        created_by=UserId(row.created_by) if row.created_by else None,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


class SqlAlchemyProjectApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[ApiKeyId, ProjectApiKey] = {}

    async def _one(self, where: sa.ColumnElement[bool]) -> ProjectApiKey | None:
        row = (await self._session.execute(sa.select(project_api_keys).where(where))).first()
        if row is None:
            return None
        key = _api_key(row)
        self.seen[key.id] = key
        return key

    async def add(self, key: ProjectApiKey) -> None:
        self.seen[key.id] = key

    async def get(self, key_id: ApiKeyId) -> ProjectApiKey | None:
        return await self._one(project_api_keys.c.id == key_id)

    async def get_by_hash(self, key_hash: str) -> ProjectApiKey | None:
        return await self._one(project_api_keys.c.key_hash == key_hash)

    async def list_for_project(self, project_id: ProjectId) -> list[ProjectApiKey]:
        query = (
            sa.select(project_api_keys)
            .where(project_api_keys.c.project_id == project_id)
            .order_by(project_api_keys.c.created_at, project_api_keys.c.id)
        )
        return [_api_key(r) for r in (await self._session.execute(query)).all()]

    async def save(self) -> None:
        for k in self.seen.values():
            values = {
                "id": k.id,
                "project_id": k.project_id,
                "name": k.name,
                "key_hash": k.key_hash,
                "created_at": k.created_at,
                "created_by": k.created_by,
                "last_used_at": k.last_used_at,
                "revoked_at": k.revoked_at,
            }
            stmt = insert(project_api_keys).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[project_api_keys.c.id], set_=values)
            )


class SqlAlchemyRevokedTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, token_id: TokenId, expires_at: datetime) -> None:
        stmt = insert(revoked_tokens).values(token_id=token_id, expires_at=expires_at)
        await self._session.execute(stmt.on_conflict_do_nothing())

    async def contains(self, token_id: TokenId) -> bool:
        query = sa.select(revoked_tokens.c.token_id).where(revoked_tokens.c.token_id == token_id)
        return (await self._session.execute(query)).first() is not None

    async def purge_expired(self, now: datetime) -> int:
        result = await self._session.execute(
            sa.delete(revoked_tokens).where(revoked_tokens.c.expires_at < now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class SqlAlchemyLoginAttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[str, LoginAttempts] = {}
        self.removed: set[str] = set()

    async def get(self, username: str) -> LoginAttempts | None:
        query = sa.select(login_attempts).where(login_attempts.c.username == username)
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        attempts = LoginAttempts(
            username=row.username,
            failures=row.failures,
            locked_until=row.locked_until,
            last_failed_at=row.last_failed_at,
        )
        self.seen[username] = attempts
        return attempts

    async def add(self, attempts: LoginAttempts) -> None:
        self.seen[attempts.username] = attempts
        self.removed.discard(attempts.username)

    async def remove(self, username: str) -> None:
        self.seen.pop(username, None)
        self.removed.add(username)

    async def forget_before(self, before: datetime) -> None:
        await self._session.execute(
            sa.delete(login_attempts).where(
                login_attempts.c.last_failed_at < before,
                sa.or_(
                    login_attempts.c.locked_until.is_(None),
                    login_attempts.c.locked_until < before,
                ),
            )
        )

    async def save(self) -> None:
        if self.removed:
            await self._session.execute(
                sa.delete(login_attempts).where(login_attempts.c.username.in_(self.removed))
            )
        for a in self.seen.values():
            values = {
                "username": a.username,
                "failures": a.failures,
                "locked_until": a.locked_until,
                "last_failed_at": a.last_failed_at,
            }
            stmt = insert(login_attempts).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[login_attempts.c.username], set_=values)
            )
